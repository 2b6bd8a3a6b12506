import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { EmissionStream, LineSchedule, type Emission, type TimingOptions } from '../../src/simulate/line-schedule.js';

const BASE: TimingOptions = {
  ratePerSecond: 10,
  rgbIrJitterMs: 3,
  xyzFraction: 0.3,
  xyzDelayMinMs: 5_000,
  xyzDelayMaxMs: 60_000,
  dropRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderMaxMs: 2_000,
  clockSkewMs: 0,
  burstRate: 0,
  burstSize: 10,
  burstFactor: 5,
};

function drain(timing: TimingOptions, parts: number, seed = 1, modalities?: ('rgb' | 'ir' | 'xyz')[]): Emission[] {
  const stream = new EmissionStream(new LineSchedule(timing, seed, modalities), parts);
  const out: Emission[] = [];
  for (let e = stream.next(); e !== undefined; e = stream.next()) out.push(e);
  return out;
}

/** A binomial count is within 5 standard deviations of its expectation. */
function plausible(count: number, trials: number, p: number): boolean {
  const sd = Math.sqrt(trials * p * (1 - p));
  return Math.abs(count - trials * p) <= 5 * sd + 1;
}

test('a clean line: rgb and ir within milliseconds, xyz for the configured share after its delay, in send order', () => {
  const es = drain(BASE, 3000);
  const parts = new Map<number, Emission[]>();
  for (const e of es) parts.set(e.part.index, [...(parts.get(e.part.index) ?? []), e]);
  assert.equal(parts.size, 3000);
  for (let i = 1; i < es.length; i++) assert.ok(at(es, i).sendMs >= at(es, i - 1).sendMs, 'emissions come in send order');
  let withXyz = 0;
  for (const list of parts.values()) {
    const frames = list.filter((e) => e.kind === 'frame').map((e) => e.frame);
    const rgb = present(frames.find((f) => f.modality === 'rgb'), 'the rgb frame');
    const ir = present(frames.find((f) => f.modality === 'ir'), 'the ir frame');
    assert.ok(ir.captureMs - rgb.captureMs >= 0 && ir.captureMs - rgb.captureMs <= 3);
    const xyz = frames.find((f) => f.modality === 'xyz');
    const plan = at(list, 0).part;
    assert.equal(xyz !== undefined, plan.getsXyz);
    assert.deepEqual(plan.expected, plan.getsXyz ? ['rgb', 'ir', 'xyz'] : ['rgb', 'ir']);
    if (xyz !== undefined) {
      withXyz++;
      const delay = xyz.captureMs - plan.timeMs;
      assert.ok(delay >= 5_000 && delay <= 60_000, `xyz delay ${delay}`);
    }
  }
  assert.ok(plausible(withXyz, 3000, 0.3), `${withXyz} parts with xyz`);
  const last = present(es.filter((e) => e.kind === 'label').at(-1), 'the last label').part.timeMs;
  assert.ok(Math.abs(last / 2999 - 100) < 2, `mean spacing ${last / 2999} ms at 10 parts/s`);
});

test('drops, duplicates and held-back frames happen at their configured rates', () => {
  const timing = { ...BASE, xyzFraction: 1, xyzDelayMinMs: 100, xyzDelayMaxMs: 200, dropRate: 0.1, duplicateRate: 0.05, reorderRate: 0.08, reorderMaxMs: 3000 };
  const es = drain(timing, 4000, 3);
  const frames = es.filter((e): e is Extract<Emission, { kind: 'frame' }> => e.kind === 'frame');
  const planned = 4000 * 3;
  const plans = es.filter((e) => e.kind === 'label').map((e) => e.part);
  const dropped = plans.reduce((n, p) => n + p.dropped.length, 0);
  const originals = frames.filter((e) => !e.frame.duplicate);
  const dups = frames.filter((e) => e.frame.duplicate);
  const held = originals.filter((e) => e.frame.delayed);
  assert.equal(dropped + originals.length, planned);
  assert.ok(plausible(dropped, planned, 0.1), `dropped ${dropped}`);
  assert.ok(plausible(dups.length, originals.length, 0.05), `duplicates ${dups.length}`);
  assert.ok(plausible(held.length, originals.length, 0.08), `held back ${held.length}`);
  // a duplicate is the same frame again (same capture stamp), later
  for (const d of dups) {
    const o = present(originals.find((x) => x.part.index === d.part.index && x.frame.modality === d.frame.modality), 'the original of a duplicate');
    assert.equal(d.frame.stampedMs, o.frame.stampedMs);
    assert.ok(d.sendMs > o.sendMs);
  }
  // held-back frames really arrive out of order: after a frame of a later part
  let overtaken = 0;
  for (const h of held) {
    const pos = es.indexOf(h);
    if (es.slice(0, pos).some((e) => e.kind === 'frame' && e.part.timeMs > h.part.timeMs + 1)) overtaken++;
  }
  assert.ok(overtaken > 0.5 * held.length, `${overtaken} of ${held.length} held-back frames were overtaken`);
  // labels record exactly what was lost
  for (const p of plans) assert.deepEqual([...p.sent, ...p.dropped].sort(), [...p.expected].sort());
});

test('each sensor clock has one constant skew; bursts compress the spacing', () => {
  const schedule = new LineSchedule({ ...BASE, clockSkewMs: 500 }, 9);
  const skews = Object.values(schedule.skewMs);
  assert.ok(skews.every((s) => Math.abs(s) <= 500) && new Set(skews).size > 1);
  for (let i = 0; i < 200; i++) {
    const p = schedule.nextPart();
    for (const f of p.frames) assert.equal(f.stampedMs - Math.round(f.captureMs), schedule.skewMs[f.modality]);
  }
  const plain = drain(BASE, 2000, 4).filter((e) => e.kind === 'label');
  const bursty = drain({ ...BASE, burstRate: 0.05, burstSize: 10, burstFactor: 5 }, 2000, 4).filter((e) => e.kind === 'label');
  const gaps = (l: Emission[]): number[] => l.slice(1).map((e, i) => e.sendMs - at(l, i).sendMs);
  const short = (g: number[]): number => g.filter((x) => x < 30).length;
  assert.equal(short(gaps(plain)), 0);
  assert.ok(short(gaps(bursty)) > 300, `${short(gaps(bursty))} burst gaps`);
});

test('the plan is a pure function of the seed, and a station without ir plans none', () => {
  const t = { ...BASE, dropRate: 0.1, duplicateRate: 0.1, reorderRate: 0.1, clockSkewMs: 50, burstRate: 0.1 };
  const key = (es: Emission[]): string => es.map((e) => `${e.kind}${e.part.index}${e.kind === 'frame' ? e.frame.modality : ''}@${e.sendMs.toFixed(3)}`).join(',');
  assert.equal(key(drain(t, 300, 8)), key(drain(t, 300, 8)));
  assert.notEqual(key(drain(t, 300, 8)), key(drain(t, 300, 9)));
  const noIr = drain(t, 300, 8, ['rgb', 'xyz']);
  assert.ok(noIr.every((e) => e.kind === 'label' || e.frame.modality !== 'ir'));
  assert.ok(noIr.every((e) => !e.part.expected.includes('ir')));
  assert.throws(() => new LineSchedule({ ...BASE, dropRate: 1.5 }, 1), /dropRate/);
  assert.throws(() => new LineSchedule({ ...BASE, xyzDelayMinMs: 10, xyzDelayMaxMs: 5 }, 1), /xyzDelayMaxMs/);
});

test('an endless line plans parts lazily and can be closed', () => {
  const stream = new EmissionStream(new LineSchedule(BASE, 2));
  for (let i = 0; i < 1000; i++) stream.next();
  assert.ok(stream.partsPlanned < 400, `${stream.partsPlanned} parts planned for 1000 emissions`);
  stream.close();
  let rest = 0;
  while (stream.next() !== undefined) rest++;
  assert.ok(rest > 0 && stream.next() === undefined, 'what was planned drains, then the stream ends');
});

test('a CT for the configured share: announced, minutes later, sometimes never; a line without one plans exactly as before', () => {
  const withCt: TimingOptions = { ...BASE, ctFraction: 0.2, ctDelayMinMs: 60_000, ctDelayMaxMs: 300_000, ctMissRate: 0.1 };
  const es = drain(withCt, 3000);
  const plans = new Map(es.map((e) => [e.part.index, e.part]));
  const cts = es.filter((e) => e.kind === 'frame' && e.frame.modality === 'ct');
  let routed = 0;
  let missed = 0;
  for (const plan of plans.values()) {
    if (!plan.getsCt) {
      assert.ok(!plan.expected.includes('ct'));
      continue;
    }
    routed++;
    assert.deepEqual(plan.expected, plan.getsXyz ? ['rgb', 'ir', 'xyz', 'ct'] : ['rgb', 'ir', 'ct'], 'the station announces the scan');
    if (plan.dropped.includes('ct')) missed++;
    else assert.ok(plan.sent.includes('ct'));
  }
  assert.ok(plausible(routed, 3000, 0.2), `${routed} parts sent to the CT`);
  assert.ok(plausible(missed, routed, 0.1), `${missed} of ${routed} scans never came`);
  assert.equal(cts.length, routed - missed);
  for (const e of cts) {
    if (e.kind !== 'frame') continue;
    const delay = e.frame.captureMs - e.part.timeMs;
    assert.ok(delay >= 60_000 && delay <= 300_000, `ct delay ${delay}`);
  }
  // the CT draws from its own generator: the fast sensors' plan is the one a line without a CT has
  const strip = (list: Emission[]): unknown[] => list.filter((e) => e.kind === 'label' || e.frame.modality !== 'ct').map((e) => [e.kind, e.part.index, e.part.timeMs, e.kind === 'frame' ? [e.frame.modality, e.frame.stampedMs, e.frame.sendMs] : null]);
  assert.deepEqual(strip(drain(withCt, 300)), strip(drain(BASE, 300)));
  assert.throws(() => new LineSchedule({ ...withCt, ctDelayMinMs: 10, ctDelayMaxMs: 5 }, 1), /CT delay 10\.\.5/);
});
