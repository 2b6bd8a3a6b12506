#!/usr/bin/env node
// The project's test command (npm test): type-checks the TypeScript, checks the layer
// rules of src/ (dependency-cruiser, .dependency-cruiser.cjs), lints (ESLint with
// typescript-eslint, eslint.config.js), provides
// one real Kafka broker for the whole run (KAFKA_BROKERS if set, else a container or a local KRaft broker, see
// src/kafka/provide-broker.ts), runs every test/**/*.test.ts with node's test
// runner (each file's process ended when its tests have), stops the broker, and fails the run if any broker JVM it started is
// still alive afterwards.
//
//   npm test                      all tests: TypeScript, then the Python package in models/
//   npm test -- test/codec        only TypeScript files under a path (or single files)
//   npm test -- models            only the Python side: Ruff, then models/tests (in the venv
//                                 models/scripts/setup-venv.sh creates)
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = join(fileURLToPath(import.meta.url), '..', '..');
const { loadConfig } = await import('../src/config/load-config.ts');
const { provideBroker } = await import('../src/kafka/provide-broker.ts');
const { findBrokerProcesses, BROKER_GROUP_ENV } = await import('../src/kafka/local-kraft.ts');
const { randomBytes } = await import('node:crypto');

function collect(path, out) {
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const e of readdirSync(path).sort()) if (e !== 'fixtures') collect(join(path, e), out);
  } else if (/\.test\.ts$/.test(path)) out.push(relative(root, path));
  return out;
}
const args = process.argv.slice(2);
const python = args.length === 0 || args.includes('models');
const tsArgs = args.filter((a) => a !== 'models');
const files = args.length > 0 && tsArgs.length === 0 ? [] : (tsArgs.length > 0 ? tsArgs : ['test']).flatMap((p) => collect(join(root, p), []));
if (files.length === 0 && !python) {
  console.error(`no test files under ${args.join(' ') || 'test/'}`);
  process.exit(1);
}

/** Runs one check to its end, its output on ours; false (after printing `failure`) when it fails. */
function passes(command, args, failure, cwd = root) {
  const r = spawnSync(command, args, { stdio: 'inherit', cwd });
  if (r.status !== 0) console.error(failure);
  return r.status === 0;
}

/** The Python side: its own venv (created once, reused), its linter (Ruff, configured in pyproject.toml), its own test runner. */
function pythonTests() {
  const setup = spawnSync('bash', [join(root, 'models', 'scripts', 'setup-venv.sh')], { stdio: 'inherit' });
  if (setup.status !== 0) return 1;
  const ruff = join(root, 'models', '.venv', 'bin', 'ruff');
  if (!passes(ruff, ['check', '.'], 'ruff found problems in models/ (run models/.venv/bin/ruff check models/ --fix for the safe fixes)', join(root, 'models'))) return 1;
  const py = join(root, 'models', '.venv', 'bin', 'python');
  const r = spawnSync(py, ['-m', 'pytest', join(root, 'models', 'tests'), '-q', '-p', 'no:cacheprovider'], { stdio: 'inherit', cwd: join(root, 'models') });
  return r.status ?? 1;
}
if (files.length === 0) process.exit(pythonTests());

// tsx strips types without checking them: check them first, and stop on an error.
if (!passes(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json'), '--noEmit'], 'type check failed')) process.exit(1);
// the layer rules (.dependency-cruiser.cjs): no upward import between src/ folders, no import cycle
const depcruise = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
if (!passes(process.execPath, [depcruise, 'src', '--config', join(root, '.dependency-cruiser.cjs')], 'the layer rules failed (ARCHITECTURE.md, "Layers")')) process.exit(1);
// the linter: what it covers and its rules are in eslint.config.js
const eslint = join(root, 'node_modules', 'eslint', 'bin', 'eslint.js');
if (!passes(process.execPath, [eslint, '.'], 'the linter found problems (run it alone: npm run lint)')) process.exit(1);

// every broker this run starts (here or in a test) carries this group on its command line
const group = `test-${randomBytes(6).toString('hex')}`;
process.env[BROKER_GROUP_ENV] = group;
const broker = await provideBroker(loadConfig());
/** The whole TypeScript run takes 5-7 minutes on 2 cores; far past that, something hangs. */
const TEST_LIMIT_MIN = Number(process.env.TEST_LIMIT_MIN ?? 40);
let code;
// a run that is interrupted stops there: its broker stopped, no Python tests after it
let interrupted = false;
try {
  code = await new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      // --test-force-exit: a file's process ends when its tests have, so a client a test left half-closed
      // (kafkajs can leave a socket or timer behind a disconnect that races a crash) cannot hold the run
      ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...files],
      { cwd: root, stdio: 'inherit', env: { ...process.env, KAFKA_BROKERS: broker.brokers.join(',') } },
    );
    for (const sig of ['SIGINT', 'SIGTERM'])
      process.once(sig, () => {
        interrupted = true;
        child.kill(sig);
      });
    // a test that hangs (or a file whose process never exits) fails the run with this line instead of running out CI's clock
    const limit = setTimeout(() => {
      console.error(`FAIL: the TypeScript tests ran past ${TEST_LIMIT_MIN} minutes: a test hangs or a file's process does not exit (the spec output above names the last file that ended)`);
      interrupted = true;
      child.kill('SIGTERM');
    }, TEST_LIMIT_MIN * 60_000);
    child.on('exit', (c, s) => {
      clearTimeout(limit);
      resolve(c ?? (s ? 1 : 0));
    });
  });
} finally {
  await broker.stop();
}
// The brokers tests started must all be gone (a watchdog needs up to a second).
let leftover = [];
for (let i = 0; i < 30; i++) {
  leftover = findBrokerProcesses({ group });
  if (leftover.length === 0) break;
  await new Promise((r) => setTimeout(r, 200));
}
if (leftover.length > 0) {
  console.error(`FAIL: Kafka broker JVM(s) still running after the tests: pids ${leftover.join(', ')}`);
  for (const pid of leftover) process.kill(pid, 'SIGKILL');
  code = code || 1;
}
if (python && !interrupted) code = pythonTests() || code;
process.exit(code);
