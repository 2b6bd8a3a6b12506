import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at } from '../../src/base/invariant.js';
import { RequestQueue } from '../../src/kafka/request-queue.js';

/** A fake request: records each request's records and resolves when told to (the broker's ack). */
function recorder(): { requests: number[][]; acks: (() => void)[]; fail: ((err: Error) => void)[]; write: (r: number[]) => Promise<void> } {
  const requests: number[][] = [];
  const acks: (() => void)[] = [];
  const fail: ((err: Error) => void)[] = [];
  return {
    requests,
    acks,
    fail,
    write: (records) =>
      new Promise<void>((resolve, reject) => {
        requests.push(records);
        acks.push(resolve);
        fail.push(reject);
      }),
  };
}
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('one request in flight; what is handed in meanwhile goes out together in the next, in call order', async () => {
  const r = recorder();
  const q = new RequestQueue<number>(r.write, () => 1);
  const acked: number[] = [];
  const sends = [[1], [2, 3], [4], [5]].map((records) => q.send(records).then(() => acked.push(...records)));
  await tick();
  assert.deepEqual(r.requests, [[1]], 'the first send goes alone; the rest wait for its ack');
  assert.equal(q.pending, 5);
  at(r.acks, 0)();
  await tick();
  assert.deepEqual(r.requests, [[1], [2, 3, 4, 5]]);
  at(r.acks, 1)();
  await Promise.all(sends);
  assert.deepEqual(acked, [1, 2, 3, 4, 5]);
  assert.equal(q.pending, 0);
});

test('a request carries at most maxRequestBytes (a single larger send still goes, alone)', async () => {
  const r = recorder();
  const q = new RequestQueue<number>(r.write, (n) => n, 10);
  const all = [q.send([1]), q.send([6]), q.send([3]), q.send([4]), q.send([20]), q.send([1])];
  for (let i = 0; i < 5; i++) {
    await tick();
    at(r.acks, i)();
  }
  await Promise.all(all);
  assert.deepEqual(r.requests, [[1], [6, 3], [4], [20], [1]]);
});

test('a barrier runs after everything before it is acknowledged and before anything after it is sent', async () => {
  const r = recorder();
  const q = new RequestQueue<number>(r.write, () => 1);
  const log: string[] = [];
  void q.send([1]);
  void q.send([2]);
  const barrier = q.barrier(async () => {
    log.push(`barrier after ${r.requests.flat().join(',')}`);
    return 'committed';
  });
  void q.send([3]);
  await tick();
  at(r.acks, 0)();
  await tick();
  assert.deepEqual(r.requests, [[1], [2]], 'the send after the barrier does not join the request before it');
  assert.deepEqual(log, []);
  at(r.acks, 1)();
  assert.equal(await barrier, 'committed');
  assert.deepEqual(log, ['barrier after 1,2']);
  await tick();
  assert.deepEqual(r.requests, [[1], [2], [3]]);
  at(r.acks, 2)();
});

test('a failed request rejects its senders and calls their onFailure before a later barrier runs; the queue goes on', async () => {
  const r = recorder();
  const q = new RequestQueue<number>(r.write, () => 1);
  const failures: string[] = [];
  const first = q.send([1], (err) => failures.push(`1: ${(err as Error).message}`));
  await tick();
  const second = q.send([2], (err) => failures.push(`2: ${(err as Error).message}`));
  const barrier = q.barrier(async () => [...failures]);
  at(r.fail, 0)(new Error('NOT_LEADER'));
  await assert.rejects(first, /NOT_LEADER/);
  await tick();
  at(r.fail, 1)(new Error('broker gone'));
  await assert.rejects(second, /broker gone/);
  assert.deepEqual(await barrier, ['1: NOT_LEADER', '2: broker gone'], 'the barrier saw both failures');
  const third = q.send([3]);
  await tick();
  at(r.acks, 2)();
  await third;
  assert.equal(q.pending, 0);
});
