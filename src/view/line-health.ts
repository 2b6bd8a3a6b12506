/**
 * The live page's health figures: per-modality coverage and end-to-end latency
 * percentiles over the parts the store keeps (its last `maxParts`), and the
 * service's consumer lag on its input topics, polled by the view's server.
 *
 * Coverage: for each modality, the share of the kept parts whose latest
 * revision used it and the share whose latest revision said it was missing.
 * Latency: the events' own `timings.endToEndMs` (the service's end to end:
 * from the part's first frame arriving at the service to the event being
 * published), over every revision the store keeps of those parts (each one is
 * an event the service published), nearest-rank percentiles.
 */
import type { Admin, Kafka } from 'kafkajs';
import { MODALITIES } from '../codec/records.js';
import { messageOf } from '../base/errors.js';
import type { Logger } from '../base/logger.js';
import type { PartView } from './line-store.js';

export interface ModalityCoverage {
  modality: string;
  /** Parts whose latest revision used it, over the parts in the window. */
  used: number;
  /** Parts whose latest revision had it missing, over the parts in the window. */
  missing: number;
}

export interface LatencySummary {
  /** Revisions (events) the percentiles are over. */
  events: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface TopicLag {
  topic: string;
  lag: number;
  /** Partitions the group has no committed offset for (counted from their low offset). */
  uncommitted: number;
}

export type LagReport =
  | { state: 'ok'; groupId: string; total: number; topics: TopicLag[]; at: number }
  | { state: 'no-group'; groupId: string; at: number }
  | { state: 'error'; groupId: string; message: string; at: number };

export interface Health {
  /** The window: the parts the store keeps now, and its bound. */
  window: { parts: number; maxParts: number };
  coverage: ModalityCoverage[];
  latency: LatencySummary;
  lag: LagReport | null;
}

/** Nearest-rank percentile (p in (0, 100]) of `sorted` (ascending); null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? null;
}

export function coverageOf(parts: readonly PartView[]): ModalityCoverage[] {
  const used = new Map<string, number>();
  const missing = new Map<string, number>();
  let n = 0;
  for (const p of parts) {
    const rev = p.revisions[p.revisions.length - 1];
    if (rev === undefined) continue;
    n++;
    for (const m of new Set(rev.modalitiesUsed)) used.set(m, (used.get(m) ?? 0) + 1);
    for (const m of new Set(rev.modalitiesMissing)) missing.set(m, (missing.get(m) ?? 0) + 1);
  }
  const known: string[] = [...MODALITIES];
  const seen = [...new Set([...used.keys(), ...missing.keys()])];
  const order = [...known.filter((m) => seen.includes(m)), ...seen.filter((m) => !known.includes(m)).sort()];
  return order.map((modality) => ({ modality, used: n === 0 ? 0 : (used.get(modality) ?? 0) / n, missing: n === 0 ? 0 : (missing.get(modality) ?? 0) / n }));
}

export function latencyOf(parts: readonly PartView[]): LatencySummary {
  const values: number[] = [];
  for (const p of parts) for (const r of p.revisions) if (Number.isFinite(r.endToEndMs)) values.push(r.endToEndMs);
  values.sort((a, b) => a - b);
  return { events: values.length, p50: percentile(values, 50), p90: percentile(values, 90), p99: percentile(values, 99) };
}

/**
 * The lag of a group: per partition the end (high) offset less the committed
 * one; a partition without a committed offset counts from its low offset (what
 * a group starting from the earliest would still read).
 */
export function lagOf(
  committed: readonly { topic: string; partitions: readonly { partition: number; offset: string }[] }[],
  ends: readonly { topic: string; partitions: readonly { partition: number; low: string; high: string }[] }[],
): { total: number; topics: TopicLag[] } {
  const topics: TopicLag[] = [];
  let total = 0;
  for (const t of ends) {
    const offsets = new Map((committed.find((c) => c.topic === t.topic)?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
    let lag = 0n;
    let uncommitted = 0;
    for (const p of t.partitions) {
      const high = BigInt(p.high);
      const at = offsets.get(p.partition);
      let from: bigint;
      if (at === undefined || at < 0n) {
        uncommitted++;
        from = BigInt(p.low);
      } else from = at;
      if (high > from) lag += high - from;
    }
    topics.push({ topic: t.topic, lag: Number(lag), uncommitted });
    total += Number(lag);
  }
  return { total, topics };
}

/** Polls the service's consumer group's lag on its input topics every `intervalMs`. */
export class LagPoller {
  private admin: Admin | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The poll under way (or the last one): stop() waits for it, since a request in flight reconnects a disconnected admin. */
  private polling: Promise<void> = Promise.resolve();
  last: LagReport | null = null;

  constructor(
    private readonly kafka: Kafka,
    readonly groupId: string,
    private readonly topics: readonly string[],
    private readonly intervalMs: number,
    private readonly onReport: (r: LagReport) => void,
    private readonly log: Logger,
  ) {
    if (!(Number.isInteger(intervalMs) && intervalMs >= 100)) throw new RangeError(`lag poll interval must be an integer of at least 100 ms, got ${intervalMs}`);
  }

  start(): void {
    const tick = async (): Promise<void> => {
      const report = await this.poll();
      if (this.stopped) return;
      this.last = report;
      this.onReport(report);
      this.timer = setTimeout(() => {
        this.polling = tick();
      }, this.intervalMs);
      this.timer.unref();
    };
    this.polling = tick();
  }

  async poll(): Promise<LagReport> {
    const at = Date.now();
    try {
      if (this.admin === undefined) {
        // few retries: a failed read is reported as such and tried again at the next interval
        const admin = this.kafka.admin({ retry: { retries: 1 } });
        await admin.connect();
        this.admin = admin;
      }
      const { groups } = await this.admin.describeGroups([this.groupId]);
      const group = groups.find((g) => g.groupId === this.groupId);
      const committed = await this.admin.fetchOffsets({ groupId: this.groupId, topics: [...this.topics] });
      const anyCommit = committed.some((t) => t.partitions.some((p) => BigInt(p.offset) >= 0n));
      if ((group === undefined || group.state === 'Dead') && !anyCommit) return { state: 'no-group', groupId: this.groupId, at };
      const ends = [];
      for (const topic of this.topics) ends.push({ topic, partitions: (await this.admin.fetchTopicOffsets(topic)).map((o) => ({ partition: o.partition, low: o.low, high: o.high })) });
      return { state: 'ok', groupId: this.groupId, ...lagOf(committed, ends), at };
    } catch (err) {
      if (this.last?.state !== 'error') this.log.warn('the view could not read the service\'s consumer lag', { groupId: this.groupId, error: messageOf(err) });
      await this.admin?.disconnect().catch(() => undefined);
      this.admin = undefined;
      return { state: 'error', groupId: this.groupId, message: messageOf(err), at };
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
    await this.admin?.disconnect().catch(() => undefined);
    this.admin = undefined;
  }
}
