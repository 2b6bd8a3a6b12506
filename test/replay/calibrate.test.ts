/** Thresholds from a line's own good parts (src/replay/calibrate.ts, `mmad calibrate`): no broker, event files. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { loadConfig } from '../../src/config/load-config.js';
import { labelRecord } from '../../src/simulate/station-records.js';
import { fitTail } from '../../src/inference/tail-fit.js';
import { tailQuantile } from '../../src/inference/threshold.js';
import { calibrateLine, formatCalibration, overridesYaml } from '../../src/replay/calibrate.js';
import type { EventSummary } from '../../src/replay/event-summary.js';
import { deleteTopics, serviceEnv, testConfig, testKafka } from '../helpers/kafka.js';

const bin = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');

function ev(sampleId: string, model: string, score: number | null, o: Partial<EventSummary> = {}): EventSummary {
  const verdict = score === null ? 'UNKNOWN' : score >= 4 ? 'NOK' : 'OK';
  return { sampleId, revision: 1, final: true, verdict, reason: null, score, threshold: 4, model, modalitiesUsed: ['rgb'], captureTime: '2026-11-20T08:00:00.000Z', ...o };
}

/** Good scores: Gumbel quantiles in a scrambled order (i·7919 mod n), the same on every run. */
const gumbel = (n: number): number[] => Array.from({ length: n }, (_, i) => -Math.log(-Math.log((((i * 7919) % n) + 0.5) / n)));

/** A week of a line: 400 good parts and 12 defective ones judged by `a`; 150 of the good ones refined by `b`; `c` judged 30; `d` in two versions. */
function week(): { events: EventSummary[]; good: string[]; defective: string[] } {
  const events: EventSummary[] = [];
  const g = gumbel(400);
  const good = g.map((_, i) => `g${i}`);
  g.forEach((s, i) => events.push(ev(`g${i}`, 'a@0.6.0', s)));
  const defective = Array.from({ length: 12 }, (_, i) => `d${i}`);
  defective.forEach((id, i) => events.push(ev(id, 'a@0.6.0', 6 + i)));
  gumbel(150).forEach((s, i) => events.push(ev(`g${i}`, 'b@0.6.0', 2 * s, { revision: 2, modalitiesUsed: ['rgb', 'xyz'] })));
  gumbel(30).forEach((s, i) => events.push(ev(`g${i}`, 'c@0.6.0', s, { revision: 3 })));
  gumbel(60).forEach((s, i) => events.push(ev(`g${100 + i}`, i % 2 === 0 ? 'd@0.5.0' : 'd@0.6.0', s)));
  events.push(ev('g0', 'a@0.6.0', 99, { revision: 0 }), ev('u1', 'a@0.6.0', null), ev('u2', 'none', null, { model: null }));
  return { events, good, defective };
}

test('each student is fitted to its good parts, each part once at its last revision by it', () => {
  const { events, good, defective } = week();
  const c = calibrateLine(events, { falseAlarmRate: 0.01, good: new Set(good) });
  assert.deepEqual([c.scoredParts, c.usedParts, c.goodNotFound], [412, 400, 0]);
  const byId = new Map(c.models.map((m) => [`${m.id}@${m.version}`, m]));
  assert.deepEqual([...byId.keys()], ['a@0.6.0', 'b@0.6.0', 'c@0.6.0', 'd@0.5.0', 'd@0.6.0']);
  const a = byId.get('a@0.6.0');
  assert.ok(a !== undefined);
  assert.equal(a.parts, 400, 'g0 once, at revision 1 (not the earlier 99)');
  assert.equal(a.threshold, tailQuantile(fitTail(gumbel(400)), 0.99));
  assert.ok(a.overThreshold !== null && a.overThreshold <= 0.015 && a.overThreshold >= 0.005, `over the new threshold: ${String(a.overThreshold)}`);
  assert.equal(a.current, 4);
  assert.equal(a.overCurrent, gumbel(400).filter((s) => s >= 4).length / 400);
  assert.ok(a.interval !== null && a.interval[0] < a.threshold && a.threshold < a.interval[1], 'the bootstrap range holds the threshold');
  assert.deepEqual(calibrateLine(events, { falseAlarmRate: 0.01, good: new Set(good) }).models[0]?.interval, a.interval, 'seeded: the same range every run');
  const b = byId.get('b@0.6.0');
  assert.equal(b?.parts, 150, 'a refined part counts for the student that refined it too');
  assert.ok(Math.abs((b.threshold ?? 0) / tailQuantile(fitTail(gumbel(150)), 0.99) - 2) < 1e-6);
  assert.equal(byId.get('c@0.6.0')?.threshold, null);
  assert.match(byId.get('c@0.6.0')?.note ?? '', /30 good parts: a threshold needs 50 at least/);
  const text = formatCalibration(c, 'week.jsonl');
  assert.match(text, /^a +0\.6\.0 +400 +4\.0000 +\d+\.\d % +\d\.\d+ +\d\.\d+-\d\.\d+ +\d\.\d % +-?\d\.\d+, \d\.\d+, maximum-likelihood$/m);
  assert.match(text, /calibration for a false-alarm rate of 0\.01 from week\.jsonl: 400 good parts used of 412 scored/);
  assert.match(text, /c v0\.6\.0: no threshold: 30 good parts/);
  assert.match(text, /several versions of d: no override is written/);
  // without a list of good parts the defective ones raise the threshold; --exclude takes them out again
  const all = calibrateLine(events, { falseAlarmRate: 0.01 }).models.find((m) => m.id === 'a');
  assert.ok((all?.threshold ?? 0) > a.threshold + 0.5);
  const excluded = calibrateLine(events, { falseAlarmRate: 0.01, exclude: new Set(defective) }).models.find((m) => m.id === 'a');
  assert.equal(excluded?.threshold, a.threshold);
  assert.equal(calibrateLine(events, { falseAlarmRate: 0.01, good: new Set(['g1', 'nope']) }).goodNotFound, 1);
  assert.throws(() => calibrateLine(events, { falseAlarmRate: 1 }), /strictly between 0 and 1/);
  assert.match(calibrateLine(events, { falseAlarmRate: 0.3 }).models[0]?.note ?? '', /a rate of 0\.3 is beyond the fitted tail/);
});

test('the overrides written load as the line\'s configuration, for the students with one version and a threshold', () => {
  const { events, good } = week();
  const c = calibrateLine(events, { falseAlarmRate: 0.01, good: new Set(good) });
  const dir = mkdtempSync(join(tmpdir(), 'mmad-calibrate-'));
  const file = join(dir, 'overrides.yaml');
  writeFileSync(file, overridesYaml(c, 'week.jsonl', new Date('2026-11-27T00:00:00Z')));
  const config = loadConfig({ file, env: {} });
  const o = config.inference.threshold.overrides;
  assert.deepEqual(Object.keys(o).sort(), ['a', 'b']);
  assert.ok(Math.abs((o.a as number) / (c.models[0]?.threshold as number) - 1) < 1e-5);
});

test('mmad calibrate reads a replay file and the id lists, prints the table and writes the overrides', () => {
  const { events, good, defective } = week();
  const dir = mkdtempSync(join(tmpdir(), 'mmad-calibrate-'));
  const run = join(dir, 'week.jsonl');
  writeFileSync(run, `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
  writeFileSync(join(dir, 'good.txt'), `# passed final inspection\n${good.join('\n')}\n`);
  writeFileSync(join(dir, 'bad.txt'), `${defective.join('\n')}\n`);
  const env = { ...process.env, MMAD_LOG_LEVEL: 'error' };
  const out = join(dir, 'line.yaml');
  const r = spawnSync(process.execPath, [bin, 'calibrate', run, '--good', join(dir, 'good.txt'), '--out', out], { encoding: 'utf8', env });
  assert.equal(r.status, 1, `c and d get no threshold: exit 1\n${r.stderr}`);
  assert.match(r.stdout, /400 good parts used of 412 scored/);
  assert.match(r.stdout, /^a\s+0\.6\.0\s+400\s+4\.0000/m);
  assert.match(readFileSync(out, 'utf8'), /^ {6}a: \d+\.\d+$/m);
  const excl = spawnSync(process.execPath, [bin, 'calibrate', run, '--exclude', join(dir, 'bad.txt'), '--false-alarm-rate', '0.02'], { encoding: 'utf8', env });
  assert.match(excl.stdout, /false-alarm rate of 0\.02 .*: 400 good parts used of 412 scored/);
  const bad = spawnSync(process.execPath, [bin, 'calibrate', run, '--false-alarm-rate', '2'], { encoding: 'utf8', env });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--false-alarm-rate 2: expected a rate strictly between 0 and 1/);
  const missing = spawnSync(process.execPath, [bin, 'calibrate', run, '--good', join(dir, 'nope.txt')], { encoding: 'utf8', env });
  assert.match(missing.stderr, /cannot read the list of sample ids/);
  const unwritable = spawnSync(process.execPath, [bin, 'calibrate', run, '--out', join(dir, 'no-such-dir', 'line.yaml')], { encoding: 'utf8', env });
  assert.match(unwritable.stderr, /cannot write the thresholds to .*no-such-dir/);
});

test('mmad calibrate --labels keeps the parts a labels topic says are good (the last label of a part winning)', async () => {
  const config = testConfig();
  const kafka = testKafka(config);
  const topic = config.topics.labels;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  const codec = AvroCodec.local(SchemaCatalog.load(), 'Label');
  const label = (sampleId: string, defectType: string): { key: string; value: Buffer } => ({
    key: sampleId,
    value: codec.encode(labelRecord({
      id: { line: 'line-1', station: 'station-1' }, sampleId, productType: 'battery_lid', defectType, visibility: {}, modalities: ['rgb'], mask: null,
      width: 8, height: 8, defectPixels: 0, captureTime: new Date('2026-11-20T08:00:00Z'), sent: ['rgb'], dropped: [], source: 'test', seed: null, attributes: {},
    })),
  });
  const { events } = week();
  // g0..g79 labelled good, d0..d11 defective, g80 first good then found dented; the other goods unlabelled
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [...Array.from({ length: 81 }, (_, i) => label(`g${i}`, 'good')), ...Array.from({ length: 12 }, (_, i) => label(`d${i}`, 'dent'))] });
  await producer.send({ topic, messages: [label('g80', 'dent')] });
  await producer.disconnect();
  try {
    const dir = mkdtempSync(join(tmpdir(), 'mmad-calibrate-'));
    const run = join(dir, 'week.jsonl');
    writeFileSync(run, `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const env = { ...process.env, ...serviceEnv(config), MMAD_LOG_LEVEL: 'error' };
    const r = spawnSync(process.execPath, [bin, 'calibrate', run, '--labels', topic], { encoding: 'utf8', env, timeout: 120_000 });
    assert.match(r.stdout, new RegExp(`labels in ${topic.replace(/\./g, '\\.')}: 93 parts, 80 good`), r.stderr);
    assert.match(r.stdout, /80 good parts used of 412 scored/);
    assert.match(r.stdout, /^a\s+0\.6\.0\s+80\s/m);
    writeFileSync(join(dir, 'good.txt'), Array.from({ length: 60 }, (_, i) => `g${i + 40}`).join('\n'));
    const both = spawnSync(process.execPath, [bin, 'calibrate', run, '--labels', topic, '--good', join(dir, 'good.txt')], { encoding: 'utf8', env, timeout: 120_000 });
    assert.match(both.stdout, /40 good parts used of 412 scored/, 'labelled good and listed: g40..g79');
  } finally {
    await deleteTopics(admin, [topic]);
    await admin.disconnect();
  }
});
