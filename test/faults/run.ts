/**
 * npm run faults -- [--runs 5] [--seed 1] [--parts 300] [--instances 3] [--kills 5] [--pauses 1] [--partitions 6] [--at-least-once]
 * Runs the fault-injection suite repeatedly (seed, seed+1, ...) and prints its counts.
 */
import { parseArgs } from 'node:util';
import { runFaultSuite } from './fault-suite.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
    parts: { type: 'string', default: '300' },
    instances: { type: 'string', default: '3' },
    partitions: { type: 'string', default: '6' },
    kills: { type: 'string', default: '5' },
    pauses: { type: 'string', default: '1' },
    'at-least-once': { type: 'boolean', default: false },
  },
});
let failed = 0;
for (let i = 0; i < Number(values.runs); i++) {
  const seed = Number(values.seed) + i;
  const r = await runFaultSuite({
    seed,
    parts: Number(values.parts),
    instances: Number(values.instances),
    partitions: Number(values.partitions),
    kills: Number(values.kills),
    pauses: Number(values.pauses),
    brokerRestart: true,
    guarantee: values['at-least-once'] ? 'at-least-once' : 'exactly-once',
    log: (l) => console.log(`  [seed ${seed}] ${l}`),
  });
  const ok = r.lost === 0 && r.doubled === 0 && r.mismatched === 0 && r.extraDeadLetters === 0;
  if (!ok) failed++;
  console.log(
    `seed ${seed}: ${ok ? 'PASS' : 'FAIL'} samples=${r.samples} revisions=${r.revisions} kills=${r.kills} restarts=${r.restarts} pauses=${r.pauses} brokerRestarts=${r.brokerRestarts} ` +
      `duplicatesSent=${r.duplicatesSent} duplicatesSuppressed=${r.duplicatesSuppressed} lost=${r.lost} doubled=${r.doubled} mismatched=${r.mismatched} extraDeadLetters=${r.extraDeadLetters} ${(r.elapsedMs / 1000).toFixed(0)}s`,
  );
  for (const p of r.problems) console.log(`    ${p}`);
}
console.log(`${Number(values.runs) - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
