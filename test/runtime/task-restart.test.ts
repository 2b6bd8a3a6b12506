import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { AnomalyEvent } from '../../src/codec/records.js';
import type { Config } from '../../src/config/config-schema.js';
import { loadConfig } from '../../src/config/load-config.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { sameDecision } from '../../src/replay/diff.js';
import { summarise } from '../../src/replay/event-summary.js';
import type { SensorModality } from '../../src/simulate/defects.js';
import { EmissionStream, LineSchedule } from '../../src/simulate/line-schedule.js';
import { createLogger } from '../../src/base/logger.js';
import { TEST_MANIFEST } from '../helpers/models.js';
import { xorshift } from '../helpers/random.js';
import { TaskDriver, type DriverRun, type InputFrame } from '../helpers/task-driver.js';

// A task that dies and is rebuilt from what it committed (changelog + input offsets) must
// publish exactly what a task that never stopped publishes: the property exactly-once rests on.
// test/faults runs it with real processes and a real broker; here every crash point is reachable.

const T0 = Date.parse('2026-03-01T08:00:00Z');

function config(join: Record<string, unknown>): Config {
  return loadConfig({
    env: {},
    overrides: {
      topics: { inputs: { rgb: 'rgb', ir: 'ir', xyz: 'xyz' } },
      join: { idleAdvanceMs: 1000, ...join },
      inference: { manifest: TEST_MANIFEST, maxBatchWaitMs: 1 },
    },
  });
}

const LINE_JOIN = { modalities: { rgb: { policy: 'required', timeoutMs: 3000 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 8000 } } };

let registry: ModelRegistry;
before(async () => {
  registry = await ModelRegistry.open(config(LINE_JOIN), createLogger({}, 'silent'));
});
after(async () => {
  await registry.close();
});

/** The same decision as replay's diff means it (verdict, model, modalities, score), and the same `final`. */
function same(a: AnomalyEvent, b: AnomalyEvent): boolean {
  return sameDecision(summarise(a), summarise(b)) && a.final === b.final;
}

function decision(e: AnomalyEvent): string {
  return `${e.verdict} ${e.model?.id ?? '-'} final=${String(e.final)} used=${e.modalitiesUsed.join('+')} score=${e.score ?? '-'}`;
}

/** Differences between a run with restarts and one without: lost, doubled, changed revisions; other dead letters. */
function differences(clean: DriverRun, faulty: DriverRun): string[] {
  const key = (e: AnomalyEvent): string => `${e.sampleId}#${e.revision}`;
  const out: string[] = [];
  const cleanBy = new Map(clean.events.map((e) => [key(e), e]));
  const seen = new Map<string, number>();
  for (const e of faulty.events) {
    seen.set(key(e), (seen.get(key(e)) ?? 0) + 1);
    const c = cleanBy.get(key(e));
    if (c === undefined) out.push(`${key(e)} only with restarts: ${decision(e)}`);
    else if (!same(c, e)) out.push(`${key(e)}: ${decision(e)} with restarts, ${decision(c)} without`);
  }
  for (const [k, n] of seen) if (n > 1) out.push(`${k} published ${n} times`);
  for (const k of cleanBy.keys()) if (!seen.has(k)) out.push(`${k} lost`);
  const dl = (r: DriverRun): string => JSON.stringify([...r.deadLetters].sort());
  if (dl(clean) !== dl(faulty)) out.push(`dead letters ${dl(faulty)} with restarts, ${dl(clean)} without`);
  return out;
}

/** A frame of part `sampleId` captured `dt` ms after T0. */
function at(sampleId: string, modality: SensorModality, dt: number, expected?: SensorModality[]): InputFrame {
  return { sampleId, modality, captureTime: T0 + dt, ...(expected === undefined ? {} : { expected }) };
}

test('a duplicate of a part whose frames are committed is still a duplicate after a restart', async () => {
  const driver = TaskDriver.create(config(LINE_JOIN), registry);
  // the station announces rgb and ir and sends A's ir twice; the copy arrives after B, once A's frames are committed
  const hint: SensorModality[] = ['rgb', 'ir'];
  const topics = await driver.topics([at('A', 'rgb', 0, hint), at('B', 'rgb', 100, hint), at('C', 'rgb', 200, hint), at('A', 'ir', 1, hint), at('B', 'ir', 101, hint), at('A', 'ir', 1, hint), at('C', 'ir', 201, hint)]);
  // one record per delivery, rgb first: A and B are judged and committed at step 5, the copy is read at 6
  const clean = await driver.run(topics, { random: () => 0, idleSteps: 12 });
  const faulty = await driver.run(topics, { random: () => 0, idleSteps: 12, crashAt: [6] });
  assert.equal(faulty.restarts, 1);
  assert.deepEqual(clean.events.map((e) => `${e.sampleId}#${e.revision} ${e.verdict}`), ['A#1 OK', 'B#1 OK', 'C#1 OK']);
  assert.deepEqual(differences(clean, faulty), []);
});

test('a late xyz of a part that closed before a restart is still too late after it', async () => {
  const driver = TaskDriver.create(config({ modalities: { rgb: { policy: 'required', timeoutMs: 3000 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 2000 } } }), registry);
  // A's 3D scan comes after B's: by then stream time has passed A's window and A is closed
  const topics = await driver.topics([at('A', 'rgb', 0), at('B', 'rgb', 3000), at('A', 'ir', 1), at('B', 'ir', 3001), at('B', 'xyz', 3000), at('A', 'xyz', 0)]);
  // A and B are committed at step 5; A's xyz is read at 6, and the task dies before committing it
  const clean = await driver.run(topics, { random: () => 0, idleSteps: 12 });
  const faulty = await driver.run(topics, { random: () => 0, idleSteps: 12, crashAt: [6] });
  assert.equal(faulty.restarts, 1);
  assert.deepEqual(clean.events.map((e) => `${e.sampleId}#${e.revision} ${e.modalitiesUsed.join('+')}`), ['A#1 rgb+ir', 'B#1 rgb+ir+xyz']);
  assert.deepEqual([...clean.deadLetters], [['JOIN_TOO_LATE', 1]]);
  assert.deepEqual(differences(clean, faulty), []);
});

test('records delivered again to a kept task after a rebalance are dropped: a waiting part keeps its offsets', async () => {
  const driver = TaskDriver.create(config(LINE_JOIN), registry);
  // A is judged on rgb+ir and waits for its 3D scan, which comes after B's; B waits for that scan too (merge order)
  const topics = await driver.topics([at('A', 'rgb', 0), at('B', 'rgb', 100), at('A', 'ir', 1), at('B', 'ir', 101), at('B', 'xyz', 100), at('A', 'xyz', 0)]);
  // a commit after every delivery; after the 5th the consumer goes back to the committed offsets
  // (A's rgb and ir are still held) and hands A's and B's frames over again; the task dies at step 9
  const clean = await driver.run(topics, { random: () => 0, commitEvery: 1, idleSteps: 12 });
  const faulty = await driver.run(topics, { random: () => 0, commitEvery: 1, idleSteps: 12, rebalanceAt: [5], crashAt: [9] });
  assert.deepEqual(clean.events.map((e) => `${e.sampleId}#${e.revision} ${e.modalitiesUsed.join('+')}`), ['A#1 rgb+ir', 'A#2 rgb+ir+xyz', 'B#1 rgb+ir+xyz']);
  assert.equal(faulty.redelivered, 4);
  assert.equal(faulty.restarts, 1);
  assert.deepEqual(differences(clean, faulty), []);
});

/** A station's line (duplicates, drops, held-back frames, slow 3D scans, bursts) as the three input topics of one task. */
function line(seed: number, parts: number): InputFrame[] {
  const timing = { ratePerSecond: 20, rgbIrJitterMs: 3, xyzFraction: 0.4, xyzDelayMinMs: 500, xyzDelayMaxMs: 4000, dropRate: 0.02, duplicateRate: 0.05, reorderRate: 0.05, reorderMaxMs: 500, clockSkewMs: 10, burstRate: 0.05, burstSize: 5, burstFactor: 4 };
  const stream = new EmissionStream(new LineSchedule(timing, seed), parts);
  const frames: InputFrame[] = [];
  for (let e = stream.next(); e !== undefined; e = stream.next()) {
    if (e.kind === 'frame' && e.frame.modality !== 'ct') frames.push({ sampleId: `P${seed}-${e.part.index}`, modality: e.frame.modality, captureTime: T0 + e.frame.stampedMs, anomalous: e.part.index % 5 === 2 });
  }
  return frames;
}

test('restarts and rebalances anywhere, while reading or while the idle timer closes the last parts, publish what a run without them does', async () => {
  const driver = TaskDriver.create(config(LINE_JOIN), registry);
  let restarts = 0;
  let revisions = 0;
  for (let seed = 1; seed <= 24; seed++) {
    const topics = await driver.topics(line(seed, 40));
    const records = [...topics.values()].reduce((n, t) => n + t.length, 0);
    const clean = await driver.run(topics, { random: xorshift(seed * 7) });
    // about 20 deliveries of input, then 60 idle steps: crash points in both
    const r = xorshift(seed);
    const crashAt = [2 + Math.floor(r() * 20), 20 + Math.floor(r() * 20), 40 + Math.floor(r() * 30)];
    const rebalanceAt = [2 + Math.floor(r() * 30), 2 + Math.floor(r() * 30)];
    const faulty = await driver.run(topics, { random: xorshift(seed * 13), crashAt, rebalanceAt });
    restarts += faulty.restarts;
    revisions += clean.events.length;
    assert.deepEqual(differences(clean, faulty), [], `seed ${seed} (${records} records), crashes at steps ${crashAt.join(', ')}, rebalances at ${rebalanceAt.join(', ')}`);
    assert.ok(clean.events.some((e) => !e.final) && clean.events.some((e) => e.verdict === 'NOK'), `seed ${seed}: provisional verdicts and anomalies in the line`);
  }
  assert.ok(restarts >= 48, `${restarts} restarts happened`);
  assert.ok(revisions > 24 * 40, `${revisions} revisions`);
});

test('the changelog forgets a part when the join does, also one restored after a restart', async () => {
  const driver = TaskDriver.create(config({ ...LINE_JOIN, closedRetentionMs: 10_000 }), registry);
  const topics = await driver.topics(line(3, 30));
  // the last crash comes in the idle phase, after parts closed and were committed but before the join forgot them
  const faulty = await driver.run(topics, { random: xorshift(5), crashAt: [10, 40, 50], idleSteps: 80 });
  const clean = await driver.run(topics, { random: xorshift(5), idleSteps: 80 });
  assert.equal(faulty.restarts, 3);
  assert.deepEqual(differences(clean, faulty), []);
  assert.deepEqual([...clean.changelog], []);
  assert.deepEqual([...faulty.changelog], [], 'entries of parts restored closed are deleted too');
  // and while the join remembers a part, its entry stays
  const early = await driver.run(topics, { random: xorshift(5), idleSteps: 8 });
  assert.ok(early.changelog.size >= 25, `${early.changelog.size} parts remembered`);
});

test('a task whose judging hangs reports how long it has had work without progress; an idle task reports none', async () => {
  const driver = TaskDriver.create(config(LINE_JOIN), registry);
  const topics = await driver.topics(line(4, 6));
  let clock = 4_000_000_000_000;
  const task = driver.stalledTask(topics, () => clock);
  assert.equal(task.stalledFor(clock), 0, 'it just took input');
  clock += 5_000;
  task.pump();
  assert.equal(task.stalledFor(clock), 5_000, 'parts are being judged and none finishes');
  const idle = driver.stalledTask(new Map([...topics.keys()].map((t) => [t, []])), () => clock);
  clock += 5_000;
  assert.equal(idle.stalledFor(clock), 0, 'no work, no stall');
});
