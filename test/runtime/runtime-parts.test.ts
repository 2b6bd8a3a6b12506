import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { assignTasks } from '../../src/runtime/co-partition-assignor.js';
import { OffsetTracker } from '../../src/runtime/offset-tracker.js';
import { PartitionGroup, type Queued } from '../../src/runtime/partition-group.js';

test('tasks are spread in contiguous ranges over members sorted by id; every task exactly once', () => {
  const a = assignTasks(['m-b', 'm-a', 'm-c'], 8);
  assert.deepEqual([...a.entries()], [
    ['m-a', [0, 1]],
    ['m-b', [2, 3, 4]],
    ['m-c', [5, 6, 7]],
  ]);
  for (const [members, p] of [[1, 6], [2, 6], [4, 6], [7, 6], [3, 100]] as const) {
    const ids = Array.from({ length: members }, (_, i) => `m${i}`);
    const all = [...assignTasks(ids, p).values()].flat().sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: p }, (_, i) => i), `${members} members, ${p} tasks`);
  }
  assert.deepEqual(assignTasks(['x', 'y'], 4), assignTasks(['y', 'x'], 4), 'a pure function of the group');
});

test('the committable offset is the smallest held one, or one past the last consumed', () => {
  const t = new OffsetTracker();
  assert.equal(t.committable(), undefined);
  for (const o of ['10', '11', '12', '13']) t.hold(o);
  assert.equal(t.committable(), '10');
  t.release('11');
  t.release('12');
  assert.equal(t.committable(), '10', 'frame 10 still pending in a join');
  t.release('10');
  assert.equal(t.committable(), '13');
  t.release('13');
  assert.equal(t.committable(), '14');
  t.hold('20');
  assert.equal(t.committable(), '20');
});

function q(topic: string, offset: number, time: number): Queued<string> {
  return { topic, offset: String(offset), time, bytes: 10, item: `${topic}@${offset}` };
}

test('the partition group merges by event time and waits for a partition with unread records, however long', () => {
  const g = new PartitionGroup<string>(['rgb', 'ir', 'xyz'], 0);
  g.add('rgb', [q('rgb', 0, 100), q('rgb', 1, 300)], false);
  g.add('ir', [q('ir', 0, 101), q('ir', 1, 250)], false);
  assert.equal(g.next(0), undefined, 'xyz has nothing yet and is not caught up: wait');
  assert.deepEqual(g.blockedOn, ['xyz']);
  g.add('xyz', [q('xyz', 0, 200)], true);
  const order: string[] = [];
  for (let it = g.next(1); it !== undefined; it = g.next(1)) order.push(it.item);
  assert.deepEqual(order, ['rgb@0', 'ir@0', 'xyz@0', 'ir@1'], 'stops when ir and xyz are drained: ir is not caught up');
  assert.equal(g.next(3_600_000), undefined, 'an hour later: ir still has unread records, the merge still waits');
  assert.deepEqual(g.bufferedTopics(), ['rgb'], 'only rgb may be paused; ir must keep fetching');
  assert.equal(g.drained, false);
  g.position('ir', true);
  assert.equal(g.next(3_600_001)?.item, 'rgb@1', 'a delivery of only transaction markers said ir is at its end');
  assert.equal(g.size, 0);
  assert.equal(g.drained, false, 'rgb\'s last delivery stopped short of its end');
  g.position('rgb', true);
  assert.equal(g.drained, true);
});

test('a caught-up partition with nothing buffered is waited for max idle (max.task.idle.ms), counted from the last delivery', () => {
  const g = new PartitionGroup<string>(['rgb', 'ir'], 500);
  g.add('ir', [], true);
  g.add('rgb', [q('rgb', 0, 100)], true);
  assert.equal(g.next(1000), undefined, 'ir is caught up but may get a frame any moment');
  g.add('rgb', [q('rgb', 1, 200)], true);
  assert.equal(g.next(1400), undefined, 'a delivery restarts the wait');
  assert.equal(g.next(1901)?.item, 'rgb@0');
  const eager = new PartitionGroup<string>(['rgb', 'ir'], 0);
  eager.add('ir', [], true);
  eager.add('rgb', [q('rgb', 0, 100)], true);
  assert.equal(eager.next(0)?.item, 'rgb@0', 'max idle 0: no wait for a caught-up partition');
});

test('unusable records (no event time) are passed on at once', () => {
  const g = new PartitionGroup<string>(['rgb', 'ir'], 10_000);
  g.add('rgb', [q('rgb', 0, Number.NEGATIVE_INFINITY)], false);
  assert.equal(g.next(0)?.item, 'rgb@0');
});

test('a frame the merge has handed on is no longer reachable from the partition group', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const g = new PartitionGroup<{ payload: Uint8Array }>(['rgb', 'ir'], 0);
  const refs: WeakRef<object>[] = [];
  // a steady line: frames keep arriving while earlier ones are taken, so the queues never run empty
  for (let i = 0; i < 50; i++) {
    const rgb = { payload: new Uint8Array(1024) };
    const ir = { payload: new Uint8Array(1024) };
    refs.push(new WeakRef(rgb.payload), new WeakRef(ir.payload));
    g.add('rgb', [{ topic: 'rgb', offset: String(i), time: i, bytes: 1024, item: rgb }], false);
    g.add('ir', [{ topic: 'ir', offset: String(i), time: i + 0.5, bytes: 1024, item: ir }], false);
    if (i > 0) {
      g.next(0);
      g.next(0);
    }
  }
  assert.equal(g.size, 2, "the last part's frames are still buffered");
  await new Promise((r) => setImmediate(r));
  gc();
  const alive = refs.filter((r) => r.deref() !== undefined).length;
  assert.equal(alive, 2, `${alive} frames still reachable: only the two buffered ones may be`);
});
