import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedRange } from '../../src/runtime/bounded-range.js';
import type { Task } from '../../src/runtime/task.js';

function range(): BoundedRange {
  // task 0 reads rgb:0 from 10 to 20 and ir:0 from 5 to 5 (empty)
  return new BoundedRange({ start: new Map([['rgb:0', 10n], ['ir:0', 5n]]), end: new Map([['rgb:0', 20n], ['ir:0', 5n]]) });
}

/** A task as the range sees it: what it buffers, and what flush/commit/idle did. */
function fakeTask(log: string[], o: { buffered?: number; failed?: boolean } = {}): Task {
  return {
    buffered: o.buffered ?? 0,
    failed: o.failed ?? false,
    flush: () => log.push('flush'),
    commit: async () => void log.push('commit'),
    idle: async () => void log.push('idle'),
  } as unknown as Task;
}

test('progress counts records read between start and end; a partition the range does not name has nothing to read', () => {
  const r = range();
  assert.equal(r.end('xyz', 0), 0n);
  r.startAt('rgb', 0, 10n, false);
  r.startAt('ir', 0, 5n, true);
  assert.deepEqual(r.progress(), { done: 0, total: 10, partitionsDone: 1, partitions: 2 });
  r.delivered('rgb', 0, 14n, false);
  assert.deepEqual(r.progress(), { done: 4, total: 10, partitionsDone: 1, partitions: 2 });
  assert.equal(r.done('rgb', 0), false);
  r.delivered('rgb', 0, 17n, true);
  assert.deepEqual(r.progress(), { done: 10, total: 10, partitionsDone: 2, partitions: 2 }, 'a delivery that met a record at or past the end read it all');
  assert.equal(r.done('rgb', 0), true);
});

test('the range finishes once every partition is at its end and its task holds nothing: flush, commit, then finished', async () => {
  const r = range();
  const log: string[] = [];
  let finished = false;
  void r.finished.then(() => (finished = true));
  r.startAt('ir', 0, 5n, true);
  await r.finishIfDone([fakeTask(log)], 2);
  assert.deepEqual(log, [], 'rgb is not at its end');
  r.delivered('rgb', 0, 20n, false);
  await r.finishIfDone([], 2);
  await r.finishIfDone([fakeTask(log, { buffered: 3 })], 2);
  assert.deepEqual(log, [], 'no task running the partitions yet, then one with frames still buffered');
  await r.finishIfDone([fakeTask(log, { failed: true })], 2);
  assert.deepEqual(log, ['flush', 'commit', 'idle']);
  await new Promise((res) => setImmediate(res));
  assert.equal(finished, false, 'a task failed meanwhile: it is rebuilt and reads its rest again');
  await r.finishIfDone([fakeTask(log)], 2);
  await r.finished;
  assert.deepEqual(log, ['flush', 'commit', 'idle', 'flush', 'commit', 'idle']);
});
