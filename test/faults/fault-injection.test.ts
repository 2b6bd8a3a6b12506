import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFaultSuite } from './fault-suite.js';

// The fault-injection suite at a size that fits CI (npm run faults runs it larger and repeatedly):
// two `mmad run` processes on six partitions, three SIGKILLs with restarts, one instance frozen
// (SIGSTOP) past its session and woken (a zombie its successor must fence) and one broker restart
// while they work through a line with duplicates, reordering and drops; checked against a clean run.
test('killed and frozen instances and a broker restart lose nothing and double nothing; verdicts equal a clean run', { timeout: 600_000 }, async () => {
  const r = await runFaultSuite({ seed: 7, parts: 80, instances: 2, partitions: 6, kills: 3, pauses: 1, brokerRestart: true, guarantee: 'exactly-once', log: (l) => console.log(`# ${l}`) });
  console.log(`# ${JSON.stringify({ ...r, problems: undefined })}`);
  for (const p of r.problems) console.log(`# ${p}`);
  assert.equal(r.kills, 3, 'the faults happened');
  assert.equal(r.restarts, 3);
  assert.equal(r.pauses, 1, 'an instance was frozen past its session and woken');
  assert.equal(r.brokerRestarts, 1);
  assert.ok(r.duplicatesSent > 0 && r.duplicatesSuppressed > 0, 'the input had duplicates and the join recognised them');
  assert.ok(r.samples >= 75 && r.revisions > r.samples, `every part judged, some refined (${r.samples} parts, ${r.revisions} revisions)`);
  // the counts, and what differed, in the failure message itself (a CI log may show only that)
  const seen = `: ${JSON.stringify({ lost: r.lost, doubled: r.doubled, mismatched: r.mismatched, extraDeadLetters: r.extraDeadLetters })} ${r.problems.join('; ')}`;
  assert.equal(r.lost, 0, `lost revisions${seen}`);
  assert.equal(r.doubled, 0, `doubled revisions${seen}`);
  assert.equal(r.mismatched, 0, `revisions that differ from the clean run${seen}`);
  assert.equal(r.extraDeadLetters, 0, `dead letters the clean run did not have${seen}`);
});
