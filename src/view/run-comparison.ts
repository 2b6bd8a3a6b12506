/**
 * The diff page's data: a replay's output (a `replay --out` file or the
 * replay's events topic), read once when the view starts, compared by
 * `diffRuns` (src/replay/diff.ts, what `mmad diff` prints) with the live
 * events topic's events for the same sample ids. The live side is read back on
 * each request by `EventHistory.eventsOf`: the partitions of the replay's
 * parts, from `slackMs` before the earliest capture time in the replay, at most
 * `maxScanned` events (the bound the page states).
 */
import type { Kafka } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { diffRuns } from '../replay/diff.js';
import { readEventFile, readEventTopic, summarise, type EventSummary } from '../replay/event-summary.js';
import type { EventHistory } from './event-history.js';

export interface CompareSource {
  /** A JSON-lines file written by `replay --out`. */
  file?: string;
  /** A replay's events topic. */
  topic?: string;
}

export interface DiffPart {
  sampleId: string;
  live: EventSummary;
  replay: EventSummary;
  /** The live part's page, with the window its live events lie in. */
  href: string;
}

export interface DiffJson {
  replay: { source: string; events: number; parts: number; readAt: number };
  live: { topic: string; from: number; scanned: number; maxScanned: number; complete: boolean };
  counts: { partsLive: number; partsReplay: number; both: number; onlyLive: number; onlyReplay: number; identical: number; sameVerdictDifferent: number; changed: number; meanAbsScoreDelta: number | null };
  /** Live verdict → replay verdict → parts, as rows. */
  transitions: { live: string; replay: string; parts: number }[];
  /** The parts whose verdict changed, by sample id; at most `listMax`. */
  changed: DiffPart[];
  /** Parts the replay judged and the live read did not find; at most `listMax`. */
  onlyReplay: string[];
  listMax: number;
  notices: string[];
}

/** Capture and publish clocks differ: the live read starts this long before the replay's earliest capture. */
const SLACK_MS = 60_000;

export class RunComparison {
  private inFlight: Promise<DiffJson> | undefined;
  private readonly ids: Set<string>;
  private readonly from: number;

  private constructor(
    readonly source: string,
    private readonly replay: EventSummary[],
    private readonly readAt: number,
    private readonly history: EventHistory,
    private readonly liveTopic: string,
    readonly listMax: number,
  ) {
    this.ids = new Set(replay.map((e) => e.sampleId));
    // a loop, not Math.min(...): a replay of many parts would overflow the call's arguments
    let earliest = Number.POSITIVE_INFINITY;
    for (const e of replay) earliest = Math.min(earliest, Date.parse(e.captureTime));
    this.from = earliest - SLACK_MS;
  }

  /** Reads the replay's output; a source that cannot be read or holds no events is a usage error. */
  static async load(kafka: Kafka, config: Config, codec: AvroCodec<'AnomalyEvent'>, source: CompareSource, history: EventHistory, listMax = 200): Promise<RunComparison> {
    if (source.file !== undefined && source.topic !== undefined) throw new MmadError(ErrorCode.USAGE, 'compare with one replay: --compare FILE or --compare-topic TOPIC, not both');
    const { file, topic } = source;
    let name: string;
    let option: string;
    let events: EventSummary[];
    if (file !== undefined) {
      name = file;
      option = `--compare ${file}`;
      try {
        events = await readEventFile(file);
      } catch (err) {
        throw new MmadError(ErrorCode.USAGE, `${option}: ${messageOf(err)}`, { cause: err });
      }
      events.forEach((e, i) => checkSummary(e, `${option}: event ${i + 1}`));
    } else if (topic !== undefined) {
      name = `topic ${topic}`;
      option = `--compare-topic ${topic}`;
      if (topic === config.topics.events) throw new MmadError(ErrorCode.USAGE, `${option} is the live events topic: give the replay's`);
      try {
        events = await readEventTopic(kafka, config, topic, codec);
      } catch (err) {
        throw new MmadError(ErrorCode.USAGE, `${option}: ${messageOf(err)}`, { cause: err });
      }
    } else throw new MmadError(ErrorCode.USAGE, 'no replay to compare with');
    if (events.length === 0) throw new MmadError(ErrorCode.USAGE, `${option}: holds no events`);
    return new RunComparison(name, events, Date.now(), history, config.topics.events, listMax);
  }

  /** The diff now; concurrent requests share one read of the live topic. */
  async diff(): Promise<DiffJson> {
    this.inFlight ??= this.compute().finally(() => (this.inFlight = undefined));
    return await this.inFlight;
  }

  private async compute(): Promise<DiffJson> {
    const read = await this.history.eventsOf(this.ids, this.from);
    const window = new Map<string, { first: number; last: number }>();
    for (const { e, timestamp } of read.events) {
      const w = window.get(e.sampleId);
      window.set(e.sampleId, w === undefined ? { first: timestamp, last: timestamp } : { first: Math.min(w.first, timestamp), last: Math.max(w.last, timestamp) });
    }
    const d = diffRuns(
      read.events.map(({ e }) => summarise(e)),
      this.replay,
    );
    const href = (id: string): string => {
      const w = window.get(id);
      return `/parts/${encodeURIComponent(id)}${w === undefined ? '' : `?from=${w.first}&to=${w.last + 1}`}`;
    };
    const notices = [...read.notices];
    if (d.onlyB.length > 0) notices.push(`${d.onlyB.length} replayed part(s) have no event in ${this.liveTopic} within the bound`);
    return {
      replay: { source: this.source, events: this.replay.length, parts: this.ids.size, readAt: this.readAt },
      live: { topic: this.liveTopic, from: this.from, scanned: read.scanned, maxScanned: this.history.limits.maxScanned, complete: read.complete },
      counts: {
        partsLive: d.partsA,
        partsReplay: d.partsB,
        both: d.both,
        onlyLive: d.onlyA.length,
        onlyReplay: d.onlyB.length,
        identical: d.identical,
        sameVerdictDifferent: d.sameVerdictDifferent,
        changed: d.changed.length,
        meanAbsScoreDelta: d.meanAbsScoreDelta,
      },
      transitions: [...d.transitions].flatMap(([live, row]) => [...row].map(([replay, parts]) => ({ live, replay, parts }))),
      changed: d.changed.slice(0, this.listMax).map((c) => ({ sampleId: c.sampleId, live: c.a, replay: c.b, href: href(c.sampleId) })),
      onlyReplay: d.onlyB.slice(0, this.listMax),
      listMax: this.listMax,
      notices,
    };
  }
}

/** A line of a `replay --out` file is an event summary: the fields the diff reads, of their types. */
function checkSummary(e: unknown, where: string): asserts e is EventSummary {
  const o = e as Record<string, unknown> | null;
  const bad = (field: string, want: string): never => {
    throw new MmadError(ErrorCode.USAGE, `${where} is not an event summary of 'replay --out': ${field} should be ${want}`);
  };
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('the line', 'a JSON object');
  else {
    if (typeof o.sampleId !== 'string' || o.sampleId === '') bad('sampleId', 'a non-empty string');
    if (!Number.isInteger(o.revision)) bad('revision', 'an integer');
    if (typeof o.verdict !== 'string') bad('verdict', 'a string');
    if (o.score !== null && typeof o.score !== 'number') bad('score', 'a number or null');
    if (o.threshold !== null && o.threshold !== undefined && typeof o.threshold !== 'number') bad('threshold', 'a number or null');
    if (o.model !== null && typeof o.model !== 'string') bad('model', 'a string or null');
    if (!Array.isArray(o.modalitiesUsed) || !o.modalitiesUsed.every((m) => typeof m === 'string')) bad('modalitiesUsed', 'an array of strings');
    if (typeof o.captureTime !== 'string' || !Number.isFinite(Date.parse(o.captureTime))) bad('captureTime', 'an ISO-8601 time');
  }
}
