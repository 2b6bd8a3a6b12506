import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../src/cli/main.js';
import { planTopics } from '../../src/kafka/topics.js';
import { deleteTopics, serviceEnv, testConfig, testKafka } from '../helpers/kafka.js';

const bin = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');

function mmad(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, MMAD_LOG_LEVEL: 'error', ...env }, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('mmad --help lists every command; each command has --help', () => {
  const top = mmad(['--help']);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) {
    assert.ok(top.stdout.includes(c.name), `top-level help lists ${c.name}`);
    const h = mmad([c.name, '--help']);
    assert.equal(h.code, 0, `${c.name} --help`);
    assert.match(h.stdout, new RegExp(`^Usage: mmad ${c.name}`));
    for (const opt of Object.keys(c.options)) assert.ok(h.stdout.includes(`--${opt}`), `${c.name} --help documents --${opt}`);
  }
});

test('usage errors exit 2 with the help; configuration errors exit 1 naming the path', () => {
  const unknown = mmad(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const badFlag = mmad(['topics', '--colour']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /Usage: mmad topics/);
  const badConfig = mmad(['config'], { MMAD_TOPICS__PARTITIONS: '-1' });
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /CONFIG_INVALID.*\n?.*topics\.partitions/);
});

test('mmad config prints the effective configuration', () => {
  const r = mmad(['config'], { MMAD_TOPICS__EVENTS: 'plant.events' });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /events: plant\.events/);
});

const config = testConfig();
const env = { ...serviceEnv(config), MMAD_TOPICS__PARTITIONS: '2' };
after(async () => {
  const admin = testKafka(config).admin();
  await admin.connect();
  await deleteTopics(admin, planTopics(config).map((p) => p.name));
  await admin.disconnect();
});

test('mmad topics create / verify on a configured broker', () => {
  const before = mmad(['topics', 'verify'], env);
  assert.equal(before.code, 1);
  assert.match(before.stderr, /topics missing/);
  const create = mmad(['topics', 'create'], env);
  assert.equal(create.code, 0, create.stderr);
  for (const t of [config.topics.inputs.rgb, config.topics.events, config.topics.deadLetters]) {
    assert.match(create.stdout, new RegExp(`${t.replace(/\./g, '\\.')}\\s+\\S+\\s+2\\s+created`));
  }
  const verify = mmad(['topics', 'verify'], env);
  assert.equal(verify.code, 0, verify.stderr);
  assert.match(verify.stdout, /existed/);
});

test('the README main command: mmad demo with no broker configured runs a simulated line through the service on a local broker', () => {
  const demo = mmad(['demo', '--parts', '12', '--rate', '6'], { KAFKA_BROKERS: '', MMAD_BROKER__PROVIDER: 'local' });
  assert.equal(demo.code, 0, demo.stderr);
  assert.match(demo.stdout, /broker: 127\.0\.0\.1:\d+ \(local;/);
  assert.match(demo.stdout, /mmad\.frames\.rgb\s+input:rgb\s+6\s+created/);
  assert.match(demo.stdout, /students: .*mtfi-rgb-ir@/);
  assert.match(demo.stdout, /parts with ground truth: 12, judged: 12/);
  assert.match(demo.stdout, /verdict vs label/);
  // the line's CT: its topic, its volumes, the report's columns
  assert.match(demo.stdout, /mmad\.frames\.ct\s+input:ct\s+6\s+created/);
  assert.match(demo.stdout, /line done: 12 parts, \d+ frames \(\d+ CT volumes;/);
  assert.match(demo.stdout, /defect type\s+parts\s+found \(NOK\)\s+CT scanned\s+found only after CT/);
  assert.match(demo.stdout, /first verdict after capture: p50 \d+ ms/);
  // the line drops frames on purpose: a part whose rgb (required) was dropped is UNKNOWN and
  // closed after rgb's wait, so its CT volume (5-15 s later) and a late xyz are dead-lettered as
  // too late (two at most per dropped frame); nothing else may be
  const dropped = Number(/line done: 12 parts, \d+ frames \(\d+ CT volumes; (\d+) dropped/.exec(demo.stdout)?.[1]);
  const deadLetters = Number(/service: \d+ frames read, \d+ verdicts, (\d+) dead letters/.exec(demo.stdout)?.[1]);
  assert.ok(Number.isInteger(dropped) && Number.isInteger(deadLetters) && deadLetters <= 2 * dropped, `${deadLetters} dead letters, ${dropped} frames dropped on purpose`);
  // not a terminal: the progress line is written when it changes, never twice in a row
  const lines = demo.stdout.split('\n');
  const progress = lines.filter((l) => l.includes('parts judged'));
  assert.ok(progress.length > 0 && progress.every((l) => /^\[[#.]{20}\] \d+\/12 /.test(l)), progress.join('\n'));
  assert.ok(lines.every((l, i) => i === 0 || l === '' || l !== lines[i - 1]), 'a line repeated');
});
