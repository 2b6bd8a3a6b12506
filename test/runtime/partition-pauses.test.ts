import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedRange } from '../../src/runtime/bounded-range.js';
import { PartitionPauses } from '../../src/runtime/partition-pauses.js';

/** A consumer that logs its pause and resume calls. */
function consumer(): { log: string[]; pause: (t: { topic: string; partitions: number[] }[]) => void; resume: (t: { topic: string; partitions: number[] }[]) => void } {
  const log: string[] = [];
  const fmt = (ts: { topic: string; partitions: number[] }[]): string => ts.map((t) => `${t.topic}:${t.partitions.join(',')}`).join(' ');
  return { log, pause: (ts) => log.push(`pause ${fmt(ts)}`), resume: (ts) => log.push(`resume ${fmt(ts)}`) };
}

test("a task's partitions are paused and resumed as asked, each change once", () => {
  const c = consumer();
  const p = new PartitionPauses(c, ['rgb', 'ir'], undefined);
  p.pauseTask(1);
  p.set(1, ['rgb']);
  p.set(1, ['rgb']);
  p.set(2, ['ir']);
  assert.deepEqual(p.tasks(), [1, 2]);
  p.resumeTask(1);
  assert.deepEqual(c.log, ['pause rgb:1 ir:1', 'resume ir:1', 'pause ir:2', 'resume rgb:1']);
  assert.deepEqual(p.tasks(), [2]);
});

test('a partition at the end of a bounded range stays paused whatever is asked', () => {
  const c = consumer();
  const range = new BoundedRange({ start: new Map([['rgb:0', 0n], ['ir:0', 0n]]), end: new Map([['rgb:0', 5n], ['ir:0', 5n]]) });
  const p = new PartitionPauses(c, ['rgb', 'ir'], range);
  p.pauseTask(0);
  range.delivered('rgb', 0, 5n, false);
  p.resumeTask(0);
  assert.deepEqual(c.log, ['pause rgb:0 ir:0', 'resume ir:0']);
  assert.deepEqual(p.tasks(), [0]);
});
