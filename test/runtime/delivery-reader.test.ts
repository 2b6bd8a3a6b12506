import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { createLogger } from '../../src/base/logger.js';
import type { FrameReader, ReadDeferred, ReadResult } from '../../src/input/frame-reader.js';
import { BoundedRange } from '../../src/runtime/bounded-range.js';
import { DeliveryReader, type ReadingTask } from '../../src/runtime/delivery-reader.js';
import type { Queued } from '../../src/runtime/partition-group.js';
import { PartitionPauses } from '../../src/runtime/partition-pauses.js';
import type { Delivery } from '../../src/runtime/processor-status.js';

// A record's value says what reading it gives: `frame:<bytes>` a frame of that size,
// `claim:<bytes>` a claim check of that size (deferred when it does not fit the budget),
// `registry` a writer schema the registry cannot give now.
const reader = {
  read: async (_topic: string, _p: number, m: KafkaMessage, _now: number, budget: number): Promise<ReadResult | ReadDeferred> => {
    const [kind, n] = String(m.value).split(':');
    const bytes = Number(n ?? 0);
    if (kind === 'registry') return { deferred: true, bytes: 0, retryAfterMs: 1000, reason: 'registry down' };
    if (kind === 'claim' && bytes > budget) return { deferred: true, bytes, reason: 'does not fit' };
    return { ok: true, input: { bytes, captureTime: Number(m.offset) } } as unknown as ReadResult;
  },
} as unknown as Pick<FrameReader, 'read'>;

/** A task that buffers what it accepts, `room` bytes at most before it pauses. */
class FakeTask implements ReadingTask {
  readonly partition = 0;
  readonly accepted: { topic: string; offsets: string[]; caughtUp: boolean }[] = [];
  bufferedBytes = 0;
  buffered = 0;
  blockedOn: string[] = [];
  pumps = 0;
  constructor(private readonly room: number) {}
  get bufferRoom(): number {
    return Math.max(0, this.room - this.bufferedBytes);
  }
  accept(topic: string, items: Queued<ReadResult>[], caughtUp: boolean): void {
    this.accepted.push({ topic, offsets: items.map((i) => i.offset), caughtUp });
    this.buffered += items.length;
    this.bufferedBytes += items.reduce((s, i) => s + i.bytes, 0);
  }
  pump(): void {
    this.pumps++;
  }
  pausable(): string[] {
    return [];
  }
  /** The merge took everything. */
  drain(): void {
    this.buffered = 0;
    this.bufferedBytes = 0;
  }
}

function setup(range?: BoundedRange): { deliveries: DeliveryReader; log: string[]; delivered: Delivery[]; now: { t: number } } {
  const log: string[] = [];
  const delivered: Delivery[] = [];
  const now = { t: 0 };
  const consumer = {
    seek: ({ topic, partition, offset }: { topic: string; partition: number; offset: string }) => log.push(`seek ${topic}:${partition}@${offset}`),
    pause: (ts: { topic: string }[]) => log.push(`pause ${ts.map((t) => t.topic).join(',')}`),
    resume: (ts: { topic: string }[]) => log.push(`resume ${ts.map((t) => t.topic).join(',')}`),
  };
  const deliveries = new DeliveryReader({
    consumer,
    reader,
    pauses: new PartitionPauses(consumer, ['rgb', 'ir'], range),
    range,
    topics: ['rgb', 'ir'],
    log: createLogger({}, 'silent'),
    now: () => now.t,
    onDelivery: (d) => delivered.push(d),
  });
  return { deliveries, log, delivered, now };
}

/** A delivery of `values` from rgb:0, starting at offset `from`, the partition's end at `highWatermark`. */
function batch(values: string[], from: number, highWatermark: number): Pick<EachBatchPayload, 'batch' | 'heartbeat' | 'isRunning' | 'isStale'> {
  const messages = values.map((v, i) => ({ offset: String(from + i), value: Buffer.from(v) }) as KafkaMessage);
  return {
    batch: { topic: 'rgb', partition: 0, messages, highWatermark: String(highWatermark), lastOffset: () => String(from + values.length - 1) } as unknown as EachBatchPayload['batch'],
    heartbeat: async () => undefined,
    isRunning: () => true,
    isStale: () => false,
  };
}

test('a delivery is taken up to the end of a bounded range: the partition is caught up there, done, and stays paused', async () => {
  const range = new BoundedRange({ start: new Map([['rgb:0', 0n]]), end: new Map([['rgb:0', 3n]]) });
  const { deliveries, log, delivered } = setup(range);
  const task = new FakeTask(1000);
  await deliveries.read(task, batch(['frame:1', 'frame:1', 'frame:1', 'frame:1', 'frame:1'], 0, 5));
  assert.deepEqual(task.accepted, [{ topic: 'rgb', offsets: ['0', '1', '2'], caughtUp: true }]);
  assert.deepEqual(delivered, [{ topic: 'rgb', partition: 0, records: 3, lag: 0 }]);
  assert.equal(task.pumps, 1);
  assert.ok(range.done('rgb', 0));
  assert.deepEqual(log, ['pause rgb']);
  assert.equal(deliveries.readingSince, null);
});

test('a claim check that does not fit what the task may still buffer is read again from its offset once the task has room', async () => {
  const { deliveries, log } = setup();
  const task = new FakeTask(100);
  await deliveries.read(task, batch(['claim:150', 'frame:10'], 0, 10));
  assert.deepEqual(task.accepted[0]?.offsets, ['0', '1'], 'the first record to an empty task is read, whatever its size');
  await deliveries.read(task, batch(['frame:10', 'claim:50', 'frame:10'], 2, 10));
  assert.deepEqual(task.accepted[1], { topic: 'rgb', offsets: ['2'], caughtUp: false });
  assert.deepEqual(log, ['seek rgb:0@3', 'pause rgb']);
  deliveries.applyBackpressure(task);
  assert.equal(log.length, 2, 'still no room: still paused');
  task.drain();
  deliveries.applyBackpressure(task);
  assert.deepEqual(log.at(-1), 'resume rgb');
});

test('a record the schema registry cannot give now is read again after its backoff; the partition waits paused', async () => {
  const { deliveries, log, now } = setup();
  const task = new FakeTask(1000);
  now.t = 5000;
  await deliveries.read(task, batch(['frame:1', 'registry'], 0, 2));
  assert.deepEqual(task.accepted[0]?.offsets, ['0']);
  assert.deepEqual(log, ['seek rgb:0@1', 'pause rgb']);
  now.t = 5999;
  deliveries.applyBackpressure(task);
  assert.equal(log.length, 2);
  now.t = 6000;
  deliveries.applyBackpressure(task);
  assert.deepEqual(log.at(-1), 'resume rgb');
});
