/**
 * A consumer delivery (one input partition's batch) into its task, and the
 * task's input flow control. Records are decoded one by one with a heartbeat
 * every few of them (kafkajs heartbeats only between batches otherwise), up to
 * the end of a bounded range, and a claim check is read only when it fits what
 * the task may still buffer: otherwise the consumer is seeked back to the
 * record and its partition paused until the task has room, so the bytes are
 * counted before they are read. A record whose writer schema the registry
 * cannot give now is deferred the same way, for the backoff it names.
 *
 * Backpressure: after each delivery and on each tick, a task's partitions are
 * paused at its bounds (join, in flight, buffered bytes) and for its deferred
 * records, and resumed when those clear; never dropped.
 */
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { Logger } from '../base/logger.js';
import type { FrameReader, ReadResult } from '../input/frame-reader.js';
import type { BoundedRange } from './bounded-range.js';
import type { Queued } from './partition-group.js';
import type { PartitionPauses } from './partition-pauses.js';
import type { Delivery } from './processor-status.js';
import type { Task } from './task.js';

/** What reading a delivery needs of a task. */
export type ReadingTask = Pick<Task, 'partition' | 'bufferRoom' | 'buffered' | 'accept' | 'pump' | 'pausable' | 'blockedOn'>;

export interface DeliveryReaderOptions {
  consumer: Pick<Consumer, 'seek'>;
  reader: Pick<FrameReader, 'read'>;
  pauses: PartitionPauses;
  range: BoundedRange | undefined;
  topics: string[];
  log: Logger;
  now: () => number;
  /** Called for each delivery a task takes from an input partition (metrics: records read, lag). */
  onDelivery?: (d: Delivery) => void;
}

export class DeliveryReader {
  /** Per input partition ("topic:partition"): bytes of the claim check that did not fit, the record to read once they do. */
  private readonly deferredClaims = new Map<string, number>();
  /** Per input partition: when to read again a record deferred for the schema registry (epoch ms). */
  private readonly waitingFor = new Map<string, number>();
  private registryWarned = 0;
  /** When the delivery being read started (null between deliveries). */
  private startedAt: number | null = null;
  /** When each task's merge was first seen (or last reported) waiting for unread records. */
  private readonly blockedReported = new Map<number, number>();

  constructor(private readonly o: DeliveryReaderOptions) {}

  /** When the delivery being read started, null between deliveries: a read that never ends shows here. */
  get readingSince(): number | null {
    return this.startedAt;
  }

  async read(task: ReadingTask, { batch, heartbeat, isRunning, isStale }: Pick<EachBatchPayload, 'batch' | 'heartbeat' | 'isRunning' | 'isStale'>): Promise<void> {
    this.startedAt = this.o.now();
    try {
      await this.readBatch(task, batch, heartbeat, isRunning, isStale);
    } finally {
      this.startedAt = null;
    }
  }

  private async readBatch(task: ReadingTask, batch: EachBatchPayload['batch'], heartbeat: () => Promise<void>, isRunning: () => boolean, isStale: () => boolean): Promise<void> {
    const items: Queued<ReadResult>[] = [];
    let n = 0;
    const stop = this.o.range?.end(batch.topic, batch.partition);
    let pastEnd = false;
    // what the task may still buffer: a claim check that does not fit is not read now (the
    // record is fetched again once the task has made room), so claimed bytes never exceed the bound
    let room = task.bufferRoom;
    let beat = this.o.now();
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) return;
      if (stop !== undefined && BigInt(message.offset) >= stop) {
        pastEnd = true;
        break;
      }
      // the first record of a delivery to an empty task is always read (it could never fit otherwise)
      const budget = items.length === 0 && task.buffered === 0 ? Number.POSITIVE_INFINITY : room;
      const result = await this.o.reader.read(batch.topic, batch.partition, message, this.o.now(), budget);
      if ('deferred' in result) {
        this.o.consumer.seek({ topic: batch.topic, partition: batch.partition, offset: message.offset });
        const key = `${batch.topic}:${batch.partition}`;
        if (result.retryAfterMs === undefined) {
          this.deferredClaims.set(key, result.bytes);
        } else {
          this.waitingFor.set(key, this.o.now() + result.retryAfterMs);
          if (this.o.now() - this.registryWarned > 30_000) {
            this.registryWarned = this.o.now();
            this.o.log.warn('schema registry unavailable: input paused, read again after the backoff (nothing is dead-lettered for it)', { task: batch.partition, topic: batch.topic, error: result.reason });
          }
        }
        break;
      }
      const bytes = result.ok ? result.input.bytes : message.value?.length ?? 0;
      room -= bytes;
      items.push({ topic: batch.topic, offset: message.offset, time: result.ok ? result.input.captureTime : Number.NEGATIVE_INFINITY, bytes, item: result });
      // every 16 records, and after any read that took a while (a claim check, a registry look-up)
      if (++n % 16 === 0 || this.o.now() - beat > 1_000) {
        await heartbeat();
        beat = this.o.now();
      }
    }
    const last = items.at(-1);
    const next = last !== undefined ? BigInt(last.offset) + 1n : BigInt(batch.lastOffset()) + 1n;
    const limit = stop !== undefined && stop < BigInt(batch.highWatermark) ? stop : BigInt(batch.highWatermark);
    const caughtUp = pastEnd || next >= limit;
    this.o.range?.delivered(batch.topic, batch.partition, next, pastEnd);
    task.accept(batch.topic, items, caughtUp);
    this.o.onDelivery?.({ topic: batch.topic, partition: batch.partition, records: items.length, lag: Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(batch.lastOffset()) - 1n)) });
    task.pump();
    this.applyBackpressure(task);
    await heartbeat();
  }

  /** Pauses the task's partitions at its bounds, and a partition whose next record is deferred. */
  applyBackpressure(task: ReadingTask): void {
    const pause = new Set(task.pausable());
    for (const topic of this.o.topics) {
      const key = `${topic}:${task.partition}`;
      const need = this.deferredClaims.get(key);
      if (need !== undefined) {
        if (need > task.bufferRoom && task.buffered > 0) pause.add(topic);
        else this.deferredClaims.delete(key);
      }
      const until = this.waitingFor.get(key);
      if (until !== undefined) {
        if (this.o.now() < until) pause.add(topic);
        else this.waitingFor.delete(key);
      }
    }
    this.o.pauses.set(task.partition, [...pause]);
  }

  /** A merge that waits a long time for records known to exist is worth a warning (every 30 s). */
  reportBlocked(task: ReadingTask): void {
    const on = task.blockedOn;
    if (on.length === 0 || task.buffered === 0) {
      this.blockedReported.delete(task.partition);
      return;
    }
    const since = this.blockedReported.get(task.partition);
    const now = this.o.now();
    if (since === undefined) this.blockedReported.set(task.partition, now);
    else if (now - since >= 30_000) {
      this.blockedReported.set(task.partition, now);
      this.o.log.warn('task waits for input partitions with unread records before merging further', { task: task.partition, topics: on, buffered: task.buffered });
    }
  }
}
