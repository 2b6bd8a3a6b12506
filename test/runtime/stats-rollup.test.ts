import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emptyJoinStats } from '../../src/join/sample-joiner.js';
import { StatsRollup } from '../../src/runtime/stats-rollup.js';
import type { Task } from '../../src/runtime/task.js';

/** A task that counted `n` of everything, with `n` rgb frames joined, `n` duplicates and `n` samples pending. */
function counted(partition: number, n: number): Task {
  return {
    partition,
    stats: { framesRead: n, redelivered: n, deadLetters: n, judged: n, keyProblems: n, commits: n },
    joiner: {
      stats: { ...emptyJoinStats(), framesIn: { rgb: n }, duplicates: n },
      pendingCount: n,
      bytesHeld: 100 * n,
      closedMemory: { samples: 2 * n, bytes: 200 * n },
    },
  } as unknown as Task;
}

const state = { paused: [2], clockSkew: [], stuckClaimReads: 1 };

test('the counters cover the whole run: tasks that moved away or were rebuilt keep counting; state is of the running tasks', () => {
  const r = new StatsRollup();
  const gone = counted(0, 5);
  r.retire(gone);
  r.restarted();
  const s = r.stats([counted(2, 1), counted(1, 2)], state);
  assert.deepEqual(s, {
    tasks: [1, 2],
    framesRead: 8,
    redelivered: 8,
    judged: 8,
    deadLetters: 8,
    keyProblems: 8,
    duplicates: 8,
    pendingSamples: 3,
    paused: [2],
    commits: 8,
    taskRestarts: 1,
    clockSkew: [],
    stuckClaimReads: 1,
  });
});

test("the join snapshot sums every task's join statistics, and the memory of the running ones", () => {
  const r = new StatsRollup();
  r.retire(counted(0, 5));
  const j = r.joinSnapshot([counted(1, 2)]);
  assert.deepEqual(j.stats.framesIn, { rgb: 7 });
  assert.equal(j.stats.duplicates, 7);
  assert.deepEqual([j.pendingSamples, j.pendingBytes, j.closedSamples, j.closedBytes], [2, 200, 4, 400]);
  assert.deepEqual(r.joinSnapshot([]).stats.framesIn, { rgb: 5 }, 'the retired part is not counted twice');
});
