/**
 * What the web view remembers of the line, bounded: the last `maxParts` parts
 * (each with at most `maxRevisions` revisions, newest kept), the last
 * `maxAlerts` alerts, and dead letters as counts per reason (at most
 * `maxReasons` reasons, the rest counted under OTHER) with the last
 * `maxDeadLetters` of them in short (no original bytes). Parts are ordered by
 * their latest revision's arrival; the part whose latest revision is oldest is
 * forgotten when a part beyond `maxParts` arrives, whatever its verdict.
 * Every change is handed to the listeners, which the server turns into
 * Server-Sent Events.
 */
import type { Alert, AnomalyEvent, DeadLetter, Heatmap, Region, SourceFrame, Verdict } from '../codec/records.js';

export interface StoreLimits {
  maxParts: number;
  maxRevisions: number;
  maxAlerts: number;
  maxDeadLetters: number;
  maxReasons: number;
}

export const DEFAULT_LIMITS: StoreLimits = { maxParts: 200, maxRevisions: 8, maxAlerts: 100, maxDeadLetters: 50, maxReasons: 64 };

/** One revision of a part, as the pages show it (the event less its timings' detail). */
export interface RevisionView {
  revision: number;
  final: boolean;
  verdict: Verdict;
  reason: string | null;
  score: number | null;
  threshold: number | null;
  modalitiesUsed: string[];
  modalitiesMissing: string[];
  model: { id: string; version: string; modalities: string[] } | null;
  regions: Region[];
  /** The heatmap PNG stays on the server (frames are rendered there); the pages get its size and scale. */
  heatmap: Heatmap | null;
  sources: SourceFrame[];
  captureTime: number;
  producedAt: number;
  endToEndMs: number;
}

export interface PartView {
  sampleId: string;
  line: string;
  station: string;
  /** Ascending by revision. */
  revisions: RevisionView[];
  /** When the view first heard of the part (epoch ms). */
  firstSeen: number;
  /** When its latest revision arrived. */
  updatedAt: number;
}

export interface AlertView {
  sampleId: string;
  revision: number;
  severity: string;
  score: number;
  threshold: number;
  modelId: string;
  message: string;
  producedAt: number;
}

export interface DeadLetterView {
  reasonCode: string;
  /** Cut to 300 characters. */
  message: string;
  sampleId: string | null;
  modality: string | null;
  source: { topic: string; partition: number; offset: number };
  producedAt: number;
}

export type StoreChange =
  | { kind: 'part'; part: PartView }
  | { kind: 'forget'; sampleId: string }
  | { kind: 'alert'; alert: AlertView }
  | { kind: 'deadletter'; deadLetter: DeadLetterView; count: number };

export const OTHER_REASON = 'OTHER';
const MAX_MESSAGE_CHARS = 300;

export class LineStore {
  private readonly parts = new Map<string, PartView>();
  private readonly alertList: AlertView[] = [];
  private readonly deadLetterList: DeadLetterView[] = [];
  private readonly reasons = new Map<string, number>();
  private readonly listeners = new Set<(change: StoreChange) => void>();
  /** Records taken since start, by kind. */
  readonly taken = { events: 0, alerts: 0, deadLetters: 0, staleRevisions: 0 };

  constructor(
    readonly limits: StoreLimits = DEFAULT_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    for (const [k, v] of Object.entries(limits)) if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`${k} must be a positive integer, got ${String(v)}`);
  }

  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: (change: StoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  addEvent(e: AnomalyEvent): void {
    this.taken.events++;
    const at = this.now();
    const rev = revisionOf(e);
    let part = this.parts.get(e.sampleId);
    if (part !== undefined) {
      // to the end: the order is that of the latest revisions
      this.parts.delete(e.sampleId);
      this.parts.set(e.sampleId, part);
    } else {
      part = { sampleId: e.sampleId, line: e.line, station: e.station, revisions: [], firstSeen: at, updatedAt: at };
      this.parts.set(e.sampleId, part);
      while (this.parts.size > this.limits.maxParts) {
        const oldest = this.parts.keys().next().value;
        if (oldest === undefined) break;
        this.parts.delete(oldest);
        this.emit({ kind: 'forget', sampleId: oldest });
      }
    }
    const same = part.revisions.findIndex((r) => r.revision === rev.revision);
    if (same >= 0) {
      // the same revision read again (a consumer restart): the newer copy wins
      part.revisions[same] = rev;
    } else {
      part.revisions.push(rev);
      part.revisions.sort((a, b) => a.revision - b.revision);
      if (part.revisions.length > this.limits.maxRevisions) {
        this.taken.staleRevisions += part.revisions.length - this.limits.maxRevisions;
        part.revisions.splice(0, part.revisions.length - this.limits.maxRevisions);
      }
    }
    part.updatedAt = at;
    this.emit({ kind: 'part', part });
  }

  addAlert(a: Alert): void {
    this.taken.alerts++;
    const view: AlertView = {
      sampleId: a.sampleId,
      revision: a.revision,
      severity: a.severity,
      score: a.score,
      threshold: a.threshold,
      modelId: a.modelId,
      message: a.message,
      producedAt: a.producedAt.getTime(),
    };
    pushBounded(this.alertList, view, this.limits.maxAlerts);
    this.emit({ kind: 'alert', alert: view });
  }

  addDeadLetter(d: DeadLetter): void {
    this.taken.deadLetters++;
    const reason = this.reasons.has(d.reasonCode) || this.reasons.size < this.limits.maxReasons ? d.reasonCode : OTHER_REASON;
    const count = (this.reasons.get(reason) ?? 0) + 1;
    this.reasons.set(reason, count);
    const view: DeadLetterView = {
      reasonCode: d.reasonCode.slice(0, 64),
      message: d.message.length > MAX_MESSAGE_CHARS ? `${d.message.slice(0, MAX_MESSAGE_CHARS)}…` : d.message,
      sampleId: d.sampleId === null ? null : d.sampleId.slice(0, 256),
      modality: d.modality,
      source: { topic: d.source.topic, partition: d.source.partition, offset: d.source.offset },
      producedAt: d.producedAt.getTime(),
    };
    pushBounded(this.deadLetterList, view, this.limits.maxDeadLetters);
    this.emit({ kind: 'deadletter', deadLetter: view, count });
  }

  part(sampleId: string): PartView | undefined {
    return this.parts.get(sampleId);
  }

  /** Parts, the one with the latest revision first. */
  recentParts(): PartView[] {
    return [...this.parts.values()].reverse();
  }

  /** Alerts, newest first. */
  alerts(): AlertView[] {
    return [...this.alertList].reverse();
  }

  /** Dead letters, newest first. */
  deadLetters(): DeadLetterView[] {
    return [...this.deadLetterList].reverse();
  }

  /** Dead letters counted per reason, most first. */
  deadLetterCounts(): { reason: string; count: number }[] {
    return [...this.reasons].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  }

  get size(): { parts: number; revisions: number; alerts: number; deadLetters: number; reasons: number } {
    let revisions = 0;
    for (const p of this.parts.values()) revisions += p.revisions.length;
    return { parts: this.parts.size, revisions, alerts: this.alertList.length, deadLetters: this.deadLetterList.length, reasons: this.reasons.size };
  }

  private emit(change: StoreChange): void {
    for (const l of this.listeners) l(change);
  }
}

function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

function revisionOf(e: AnomalyEvent): RevisionView {
  return {
    revision: e.revision,
    final: e.final,
    verdict: e.verdict,
    reason: e.reason,
    score: e.score,
    threshold: e.threshold,
    modalitiesUsed: [...e.modalitiesUsed],
    modalitiesMissing: [...e.modalitiesMissing],
    model: e.model === null ? null : { id: e.model.id, version: e.model.version, modalities: [...e.model.modalities] },
    regions: e.regions.map((r) => ({ ...r })),
    // a copy: avsc's buffer may be a view into the fetched batch, which it would keep alive
    heatmap: e.heatmap === null ? null : { ...e.heatmap, png: Buffer.from(e.heatmap.png) },
    sources: e.sources.map((s) => ({ ...s })),
    captureTime: e.captureTime.getTime(),
    producedAt: e.producedAt.getTime(),
    endToEndMs: e.timings.endToEndMs,
  };
}

/** A part as JSON for the pages: the heatmap without its PNG bytes (the server renders those). */
export function partJson(p: PartView): unknown {
  return {
    sampleId: p.sampleId,
    line: p.line,
    station: p.station,
    firstSeen: p.firstSeen,
    updatedAt: p.updatedAt,
    revisions: p.revisions.map((r) => ({
      ...r,
      heatmap: r.heatmap === null ? null : { width: r.heatmap.width, height: r.heatmap.height, scale: r.heatmap.scale },
      sources: r.sources.map((s) => ({ ...s, captureTime: s.captureTime.getTime() })),
    })),
  };
}
