/**
 * The service beside a peer on its own (bench/peer-compare.ts): one backlog, the
 * service at both guarantees and the Python peer, each run checked, figures side by side.
 *
 *   npm run bench -- peer [--parts 300] [--runs 2] [--size 256] [--students shipped|null]
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load-config.js';
import { provideBroker } from '../src/kafka/provide-broker.js';
import { createLogger } from '../src/base/logger.js';
import { fromRoot } from '../src/config/paths.js';
import { comparePeer, setUpPeer } from './peer-compare.js';
import { writeNullStudents } from './null-students.js';

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: '300' },
    runs: { type: 'string', default: '2' },
    size: { type: 'string', default: '256' },
    students: { type: 'string', default: 'shipped' },
  },
});
const students = values.students;
if (students !== 'shipped' && students !== 'null') throw new Error(`--students is shipped or null, not ${students}`);
const { parts, runs, size } = { parts: Number(values.parts), runs: Number(values.runs), size: Number(values.size) };
const base = loadConfig({ env: {} });
/** The students both contenders run: the shipped ones, or their null students (what each spends around the model). */
const manifest = students === 'null' ? writeNullStudents(base.inference.manifest) : fromRoot(base.inference.manifest);
if (manifest === undefined) throw new Error('--students null needs the null students (models/.venv)');
const notReady = setUpPeer();
if (notReady !== undefined) throw new Error(notReady);
const broker = await provideBroker(base, { logger: createLogger({}, 'error') });
try {
  console.log(`peer benchmark — ${broker.kind} broker, battery_lid rgb+ir ${String(size)}×${String(size)} frames, ${String(parts)} parts, ${String(runs)} runs, node ${process.version}`);
  await comparePeer({ parts, runs, size, manifest, nullStudents: students === 'null', broker });
} finally {
  await broker.stop();
}
