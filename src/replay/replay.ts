/**
 * Replay of history: the input topics between two times (record timestamps,
 * i.e. when the stations wrote the frames) run again through the service, in
 * a consumer group of their own, into output topics of their own, with the
 * models of a chosen manifest; it stops at the end of the range.
 *
 * The start is set as the replay group's committed offsets, the end is a
 * bounded StreamProcessor run (`range`): records past it are not read, and
 * when every partition has reached it the joins are flushed and committed.
 * The event-time merge makes the join independent of fetch timing, so for
 * input that arrived on time a replay publishes what the live run published.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Admin } from 'kafkajs';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError } from '../base/errors.js';
import { present } from '../base/invariant.js';
import type { ModelRegistry } from '../inference/model-registry.js';
import { createKafka } from '../kafka/kafka-client.js';
import { ensureTopics, inputTopics, planTopics } from '../kafka/topics.js';
import type { InputRange } from '../runtime/bounded-range.js';
import { StreamProcessor } from '../runtime/stream-processor.js';
import type { Logger } from '../base/logger.js';
import { summarise, type EventSummary } from './event-summary.js';

export interface ReplayOptions {
  /** Epoch ms; the range starts at the first record with a timestamp at or after it (-Infinity: the beginning). */
  from: number;
  /** Epoch ms; the range ends before the first record with a timestamp at or after it (Infinity: the end offsets now). */
  to: number;
  /** Write the events as JSON lines (one EventSummary each) to this file as well. */
  out?: string;
  logger: Logger;
  onProgress?: (p: ReplayProgress) => void;
  progressEveryMs?: number;
}

export interface ReplayProgress {
  records: number;
  total: number;
  events: number;
  elapsedMs: number;
  recordsPerSecond: number;
  etaMs: number | null;
}

export interface ReplaySummary extends ReplayProgress {
  range: InputRange;
  eventsOut: EventSummary[];
}

/** One partition's offsets for a time range, and what the partition holds now. */
export interface PartitionRange {
  partition: number;
  /** The first record with a timestamp at or after `from` (the log start for -Infinity). */
  start: bigint;
  /** Before the first record with a timestamp at or after `to` (the end offset for Infinity); never below `start`. */
  end: bigint;
  /** The partition's log start (records before it have left: retention, deleted records) and end offset now. */
  low: bigint;
  high: bigint;
}

/**
 * The offsets of a time range (record timestamps) on every partition of
 * `topic`, by the broker's offsets-for-times lookup: the one place the project
 * turns times into offsets (replay ranges, the web view's history search).
 */
export async function offsetsForTimes(admin: Admin, topic: string, from: number, to: number): Promise<PartitionRange[]> {
  const bounds = await admin.fetchTopicOffsets(topic);
  const at = async (t: number, edge: 'low' | 'high'): Promise<Map<number, bigint>> =>
    Number.isFinite(t) ? new Map((await admin.fetchTopicOffsetsByTimestamp(topic, t)).map((o) => [o.partition, BigInt(o.offset)])) : new Map(bounds.map((b) => [b.partition, BigInt(b[edge])]));
  const s = await at(from, 'low');
  const e = await at(to, 'high');
  return bounds.map((b) => {
    const low = BigInt(b.low);
    const high = BigInt(b.high);
    const lo = s.get(b.partition) ?? low;
    const hi = e.get(b.partition) ?? high;
    return { partition: b.partition, start: lo, end: hi < lo ? lo : hi, low, high };
  });
}

/** Input offsets of the time range, per `${topic}:${partition}`. */
export async function planRange(config: Config, from: number, to: number, logger: Logger): Promise<InputRange> {
  if (!(from < to)) throw new MmadError(ErrorCode.USAGE, `the range is empty: --from must be before --to`);
  const admin = createKafka(config, config.kafka.brokers, logger).admin();
  await admin.connect();
  try {
    const start = new Map<string, bigint>();
    const end = new Map<string, bigint>();
    const existing = new Set(await admin.listTopics());
    for (const { topic } of inputTopics(config)) {
      if (!existing.has(topic)) throw new MmadError(ErrorCode.TOPIC_MISSING, `input topic ${topic} does not exist`);
      for (const p of await offsetsForTimes(admin, topic, from, to)) {
        start.set(`${topic}:${p.partition}`, p.start);
        end.set(`${topic}:${p.partition}`, p.end);
      }
    }
    return { start, end };
  } finally {
    await admin.disconnect();
  }
}

/** Runs the range through the service with `config` (its group and output topics are the replay's); resolves at the end of the range. */
export async function replayRange(config: Config, registry: ModelRegistry, o: ReplayOptions): Promise<ReplaySummary> {
  const range = await planRange(config, o.from, o.to, o.logger);
  const kafka = createKafka(config, config.kafka.brokers, o.logger);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, planTopics(config));
    const described = await admin.describeGroups([config.input.groupId]);
    if (described.groups.some((g) => g.members.length > 0)) {
      throw new MmadError(ErrorCode.USAGE, `consumer group ${config.input.groupId} has active members: a replay needs a group of its own`);
    }
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const [key, offset] of range.start) {
      const i = key.lastIndexOf(':');
      const topic = key.slice(0, i);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), { partition: Number(key.slice(i + 1)), offset: String(offset) }]);
    }
    for (const [topic, partitions] of byTopic) await admin.setOffsets({ groupId: config.input.groupId, topic, partitions });
  } finally {
    await admin.disconnect();
  }

  // a revision written in a transaction that was aborted and redone is written again: keep the last
  const events = new Map<string, EventSummary>();
  const processor = new StreamProcessor(config, registry, {
    logger: o.logger,
    range,
    onWritten: (_j, outputs) => {
      if (outputs.event !== null) events.set(`${outputs.event.sampleId}#${outputs.event.revision}`, summarise(outputs.event));
    },
  });
  const t0 = performance.now();
  const progress = (): ReplayProgress => {
    const p = present(processor.rangeProgress(), 'the progress of a bounded run');
    const elapsedMs = performance.now() - t0;
    const rate = p.done / Math.max(0.001, elapsedMs / 1000);
    return { records: p.done, total: p.total, events: events.size, elapsedMs, recordsPerSecond: rate, etaMs: rate > 0 ? ((p.total - p.done) / rate) * 1000 : null };
  };
  await processor.start();
  const { onProgress } = o;
  const timer = onProgress === undefined ? undefined : setInterval(() => onProgress(progress()), o.progressEveryMs ?? 1000);
  try {
    const end = await Promise.race([processor.finished.then(() => null), processor.fatal]);
    if (end !== null) {
      await processor.abort();
      throw end;
    }
    await processor.stop();
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
  const eventsOut = [...events.values()];
  if (o.out !== undefined) await writeJsonLines(o.out, eventsOut);
  return { ...progress(), range, eventsOut };
}

/** Writes one JSON line per value, a line at a time (never one string of the whole file). */
async function writeJsonLines(path: string, values: Iterable<unknown>): Promise<void> {
  const out = createWriteStream(path);
  const failed = once(out, 'error').then(([err]) => {
    throw err;
  });
  failed.catch(() => undefined); // observed through the races below; never unhandled
  try {
    for (const v of values) {
      if (!out.write(`${JSON.stringify(v)}\n`)) await Promise.race([once(out, 'drain'), failed]);
    }
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  } finally {
    out.destroy();
  }
}
