/**
 * The view's history: parts found by sample id, time range (the events'
 * record timestamps) and verdict, in memory or read back from the events
 * topic on demand, and a part's revisions read back for its page when the
 * store has forgotten it.
 *
 * A time range is turned into offsets by `offsetsForTimes` (src/replay/, the
 * lookup replays use); a sample id alone reads only its partition (events are
 * keyed by the sample id with the default partitioner), the last `maxScanned`
 * records of it. Every query is bounded: at most `maxScanned` events read (a
 * consumer of its own group, which commits nothing, for the query's length),
 * at most `maxResults` parts returned; the parts read back for pages are kept
 * in a small cache. Ranges that reach before what a partition still keeps
 * (retention, deleted records) are said so.
 */
import type { Kafka } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { AnomalyEvent } from '../codec/records.js';
import type { Config } from '../config/config-schema.js';
import { messageOf } from '../base/errors.js';
import { createConsumer, frameConsumerConfig, onFatalCrash, onGroupJoin } from '../kafka/kafka-client.js';
import { partitionFor } from '../kafka/partitioner.js';
import { offsetsForTimes, type PartitionRange } from '../replay/replay.js';
import { LineStore, type PartView } from './line-store.js';

export interface SearchQuery {
  /** Exact. */
  sampleId?: string;
  /** Epoch ms, record timestamps of the events: [from, to). */
  from?: number;
  to?: number;
  nokOnly: boolean;
}

export interface SearchHit {
  sampleId: string;
  line: string;
  station: string;
  /** The latest revision found. */
  revision: number;
  final: boolean;
  verdict: string;
  score: number | null;
  threshold: number | null;
  captureTime: number;
  /** Record timestamps of the first and last revision found. */
  firstAt: number;
  lastAt: number;
  revisionsFound: number;
  inMemory: boolean;
  /** The part page; read back from the topic, it carries the window its revisions lie in. */
  href: string;
}

export interface SearchResult {
  hits: SearchHit[];
  /** More parts matched than `maxResults`: the first ones (oldest first) are returned. */
  truncated: boolean;
  /** Events read from the topic (0 when memory answered). */
  scanned: number;
  maxResults: number;
  maxScanned: number;
  source: 'memory' | 'topic';
  /** Retention, the scan bound, a read that did not finish. */
  notices: string[];
}

export interface HistoryLimits {
  maxResults: number;
  maxScanned: number;
  /** Parts read back for their pages, kept. */
  maxCachedParts: number;
  readTimeoutMs: number;
}

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = { maxResults: 100, maxScanned: 20_000, maxCachedParts: 32, readTimeoutMs: 20_000 };

export class EventHistory {
  private readonly cache = new Map<string, PartView | null>();
  private queries = 0;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: Config,
    private readonly store: LineStore,
    private readonly codec: AvroCodec<'AnomalyEvent'>,
    private readonly groupPrefix: string,
    readonly limits: HistoryLimits = DEFAULT_HISTORY_LIMITS,
  ) {}

  async search(q: SearchQuery): Promise<SearchResult> {
    const base = { maxResults: this.limits.maxResults, maxScanned: this.limits.maxScanned };
    const ranged = q.from !== undefined || q.to !== undefined;
    if (q.sampleId !== undefined && !ranged) {
      const p = this.store.part(q.sampleId);
      if (p !== undefined) {
        const hit = hitOfPart(p);
        return { ...base, hits: q.nokOnly && hit.verdict !== 'NOK' ? [] : [hit], truncated: false, scanned: 0, source: 'memory', notices: [] };
      }
    }
    const from = q.from ?? Number.NEGATIVE_INFINITY;
    const to = q.to ?? Number.POSITIVE_INFINITY;
    if (!(from < to)) return { ...base, hits: [], truncated: false, scanned: 0, source: 'topic', notices: ['the range is empty: "from" must be before "to"'] };
    const { ranges, notices } = await this.plan(from, to, q.sampleId);
    const found = new Map<string, { e: AnomalyEvent; first: number; last: number; n: number }>();
    const read = await this.read(ranges, (e, ts) => {
      if (q.sampleId !== undefined && e.sampleId !== q.sampleId) return;
      const have = found.get(e.sampleId);
      if (have === undefined) found.set(e.sampleId, { e, first: ts, last: ts, n: 1 });
      else {
        if (e.revision >= have.e.revision) have.e = e;
        have.first = Math.min(have.first, ts);
        have.last = Math.max(have.last, ts);
        have.n++;
      }
    });
    notices.push(...read.notices);
    const matching = [...found.values()].filter((f) => !q.nokOnly || f.e.verdict === 'NOK').sort((a, b) => a.first - b.first || (a.e.sampleId < b.e.sampleId ? -1 : 1));
    const hits = matching.slice(0, this.limits.maxResults).map((f): SearchHit => ({
      sampleId: f.e.sampleId,
      line: f.e.line,
      station: f.e.station,
      revision: f.e.revision,
      final: f.e.final,
      verdict: f.e.verdict,
      score: f.e.score,
      threshold: f.e.threshold,
      captureTime: f.e.captureTime.getTime(),
      firstAt: f.first,
      lastAt: f.last,
      revisionsFound: f.n,
      inMemory: this.store.part(f.e.sampleId) !== undefined,
      href: `/parts/${encodeURIComponent(f.e.sampleId)}?from=${f.first}&to=${f.last + 1}`,
    }));
    return { ...base, hits, truncated: matching.length > hits.length, scanned: read.scanned, source: 'topic', notices };
  }

  /**
   * A part's revisions whose events lie in [from, to) (record timestamps), read
   * from the sample's partition of the events topic; undefined when none.
   */
  async part(sampleId: string, from: number, to: number): Promise<PartView | undefined> {
    const key = `${sampleId}\u0000${from}\u0000${to}`;
    if (this.cache.has(key)) {
      const hit = this.cache.get(key) ?? null;
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit ?? undefined;
    }
    if (!(from < to)) return undefined;
    const { ranges } = await this.plan(from, to, sampleId);
    let at = 0;
    const one = new LineStore({ ...this.store.limits, maxParts: 1 }, () => at);
    const read = await this.read(ranges, (e, ts) => {
      if (e.sampleId !== sampleId) return;
      at = ts;
      one.addEvent(e);
    });
    const part = one.part(sampleId) ?? null;
    // a read cut short is not remembered: a later request may get it whole
    if (read.complete) {
      this.cache.set(key, part);
      while (this.cache.size > this.limits.maxCachedParts) {
        const oldest = this.cache.keys().next().value;
        if (oldest === undefined) break;
        this.cache.delete(oldest);
      }
    }
    return part ?? undefined;
  }

  /**
   * The events of `sampleIds` published in [from, now), read back from their
   * partitions of the events topic (what a diff compares a replay against):
   * at most `maxScanned` events read, the rest said in the notices.
   */
  async eventsOf(sampleIds: ReadonlySet<string>, from: number): Promise<{ events: { e: AnomalyEvent; timestamp: number }[]; scanned: number; complete: boolean; notices: string[] }> {
    const { ranges, notices } = await this.plan(from, Number.POSITIVE_INFINITY, undefined, sampleIds);
    const events: { e: AnomalyEvent; timestamp: number }[] = [];
    const read = await this.read(ranges, (e, timestamp) => {
      if (sampleIds.has(e.sampleId)) events.push({ e, timestamp });
    });
    return { events, scanned: read.scanned, complete: read.complete, notices: [...notices, ...read.notices] };
  }

  /** The offsets to read (the partitions of `sampleId`, or of `sampleIds`, else all), and what retention has taken from the range. */
  private async plan(from: number, to: number, sampleId: string | undefined, sampleIds?: ReadonlySet<string>): Promise<{ ranges: PartitionRange[]; notices: string[] }> {
    const topic = this.config.topics.events;
    const admin = this.kafka.admin();
    await admin.connect();
    let all: PartitionRange[];
    try {
      all = await offsetsForTimes(admin, topic, from, to);
    } finally {
      await admin.disconnect();
    }
    const ids = sampleId !== undefined ? [sampleId] : sampleIds === undefined ? undefined : [...sampleIds];
    const only = ids === undefined ? undefined : new Set(ids.map((id) => partitionFor(id, all.length)));
    const ranges = all.filter((r) => only === undefined || only.has(r.partition));
    const notices: string[] = [];
    for (const r of ranges) {
      if (r.low === 0n) continue;
      if (r.end <= r.low) notices.push(`the range has left the topic's retention on ${topic}/${r.partition}: it keeps records from offset ${r.low} on, none of them in the range`);
      else if (Number.isFinite(from) && r.start <= r.low) notices.push(`the range may begin before what ${topic}/${r.partition} still keeps (retention: it starts at offset ${r.low}); older parts are not found`);
    }
    if (sampleId !== undefined && !Number.isFinite(from)) {
      // without a start, the latest records of the partition
      for (const r of ranges) {
        const cut = r.end - BigInt(this.limits.maxScanned);
        if (cut > r.start) {
          r.start = cut;
          notices.push(`only the last ${this.limits.maxScanned} events of ${topic}/${r.partition} were read: give a time range to search further back`);
        }
      }
    }
    return { ranges, notices };
  }

  /** Reads the ranges (read committed) to their ends or `maxScanned` events, whichever first. */
  private async read(ranges: PartitionRange[], each: (e: AnomalyEvent, timestamp: number) => void): Promise<{ scanned: number; complete: boolean; notices: string[] }> {
    const topic = this.config.topics.events;
    const remaining = new Map(ranges.filter((r) => r.end > r.start).map((r) => [r.partition, r]));
    const notices: string[] = [];
    let scanned = 0;
    if (remaining.size === 0) return { scanned, complete: true, notices };
    const consumer = createConsumer(this.kafka, { ...frameConsumerConfig(this.config, `${this.groupPrefix}-search-${++this.queries}-${Date.now().toString(36)}`), readUncommitted: false });
    await consumer.connect();
    let complete: boolean;
    let endJoins = (): void => undefined;
    try {
      complete = await new Promise<boolean>((resolve, reject) => {
        const timer = setTimeout(() => {
          notices.push(`reading the events topic took longer than ${this.limits.readTimeoutMs} ms: the results are partial`);
          resolve(false);
        }, this.limits.readTimeoutMs);
        const finish = (whole: boolean): void => {
          clearTimeout(timer);
          resolve(whole);
        };
        onFatalCrash(consumer, (error) => {
          clearTimeout(timer);
          reject(error);
        });
        endJoins = onGroupJoin(consumer, (assignment) => {
          for (const partition of assignment[topic] ?? []) {
            const r = remaining.get(partition);
            if (r === undefined) consumer.pause([{ topic, partitions: [partition] }]);
            else consumer.seek({ topic, partition, offset: r.start.toString() });
          }
        });
        // read_committed skips aborted records and markers: a partition is done when its position passes the end
        consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
          const r = remaining.get(payload.partition);
          if (r !== undefined && BigInt(payload.lastOffset) + 1n >= r.end) remaining.delete(payload.partition);
          if (remaining.size === 0) finish(true);
        });
        void consumer
          .subscribe({ topic, fromBeginning: true })
          .then(() =>
            consumer.run({
              autoCommit: false,
              eachBatch: async ({ batch }) => {
                const r = remaining.get(batch.partition);
                if (r === undefined) return;
                for (const m of batch.messages) {
                  const offset = BigInt(m.offset);
                  if (offset < r.start || offset >= r.end || m.value === null) continue;
                  if (scanned >= this.limits.maxScanned) {
                    notices.push(`stopped after reading ${this.limits.maxScanned} events: narrow the range to see all`);
                    remaining.clear();
                    finish(false);
                    return;
                  }
                  scanned++;
                  try {
                    each(await this.codec.decode(m.value), Number(m.timestamp));
                  } catch (err) {
                    notices.push(`an event at ${topic}/${batch.partition}@${m.offset} does not decode: ${messageOf(err)}`);
                  }
                }
              },
            }),
          )
          .catch((err: unknown) => {
            clearTimeout(timer);
            reject(err instanceof Error ? err : new Error(messageOf(err)));
          });
      });
    } finally {
      endJoins();
      await consumer.disconnect().catch(() => undefined);
    }
    return { scanned, complete, notices: [...new Set(notices)] };
  }
}

function hitOfPart(p: PartView): SearchHit {
  const last = p.revisions[p.revisions.length - 1];
  const first = p.revisions[0];
  return {
    sampleId: p.sampleId,
    line: p.line,
    station: p.station,
    revision: last?.revision ?? 0,
    final: last?.final ?? false,
    verdict: last?.verdict ?? 'UNKNOWN',
    score: last?.score ?? null,
    threshold: last?.threshold ?? null,
    captureTime: last?.captureTime ?? 0,
    firstAt: first?.producedAt ?? p.firstSeen,
    lastAt: last?.producedAt ?? p.updatedAt,
    revisionsFound: p.revisions.length,
    inMemory: true,
    href: `/parts/${encodeURIComponent(p.sampleId)}`,
  };
}
