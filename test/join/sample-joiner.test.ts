/**
 * The join, driven like Kafka Streams' TopologyTestDriver: frames with
 * explicit capture times, a fake wall clock, assertions on what was released,
 * timed out or rejected. No broker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at } from '../../src/base/invariant.js';
import type { Modality } from '../../src/codec/records.js';
import { CLOSED_ENTRY_BYTES, SampleJoiner, type JoinInput, type JoinOutput, type JoinPolicy } from '../../src/join/sample-joiner.js';

const T0 = Date.parse('2026-11-23T08:00:00Z');

const POLICY: JoinPolicy = {
  modalities: {
    rgb: { policy: 'required', timeoutMs: 10_000 },
    ir: { policy: 'optional', timeoutMs: 2_000 },
    xyz: { policy: 'late', windowMs: 120_000 },
  },
  graceMs: 5_000,
  idleAdvanceMs: 2_000,
  maxPendingSamples: 100,
  maxPendingBytes: 1 << 30,
  closedRetentionMs: 600_000,
  maxClosedSamples: 100_000,
  maxClosedBytes: 1 << 30,
};

/** A bare frame for a joiner driven directly. */
function f(id: string, m: Modality, at: number): JoinInput<string> {
  return { sampleId: id, modality: m, captureTime: T0 + at, arrivedAt: T0 + at, bytes: 1, expectedModalities: null, source: { topic: m, partition: 0, offset: '0' }, payload: '' };
}

/** Drives one joiner: frames at capture times (ms after T0) and a wall clock. */
class JoinDriver {
  readonly joiner: SampleJoiner<string>;
  readonly outputs: JoinOutput<string>[] = [];
  wall = T0;
  private offset = 0;

  constructor(policy: Partial<JoinPolicy> = {}) {
    this.joiner = new SampleJoiner<string>({ ...POLICY, ...policy });
  }

  frame(sampleId: string, modality: Modality, at: number, opts: { expected?: Modality[]; bytes?: number } = {}): JoinOutput<string>[] {
    this.wall = Math.max(this.wall, T0 + at + 5); // arrives a few ms after capture unless the clock is ahead
    const input: JoinInput<string> = {
      sampleId,
      modality,
      captureTime: T0 + at,
      arrivedAt: this.wall,
      bytes: opts.bytes ?? 1000,
      expectedModalities: opts.expected ?? null,
      source: { topic: `in.${modality}`, partition: 0, offset: String(this.offset++) },
      payload: `${sampleId}/${modality}`,
    };
    const out = this.joiner.add(input);
    this.outputs.push(...out);
    return out;
  }

  advanceWall(ms: number): JoinOutput<string>[] {
    this.wall += ms;
    const out = this.joiner.tick(this.wall);
    this.outputs.push(...out);
    return out;
  }

  /** Compact view: "S1 r1 complete final [rgb,ir,xyz]". */
  summary(outs: JoinOutput<string>[] = this.outputs): string[] {
    return outs.map((o) => {
      if (o.type === 'rejected') return `${o.frame.sampleId} rejected ${o.frame.modality} ${o.code}`;
      const mods = o.frames.map((f) => f.modality).join(',');
      const kind = o.type === 'release' ? o.kind : 'UNKNOWN';
      return `${o.sampleId} r${o.revision} ${kind}${o.final ? ' final' : ''} [${mods}]`;
    });
  }
}

test('a sample with every modality its hint announces is released once, complete and final', () => {
  const d = new JoinDriver();
  const all: Modality[] = ['rgb', 'ir', 'xyz'];
  d.frame('S1', 'rgb', 0, { expected: all });
  d.frame('S1', 'xyz', 1, { expected: all }); // the 3D scan happened to be quick
  assert.deepEqual(d.summary(), []);
  d.frame('S1', 'ir', 3, { expected: all });
  assert.deepEqual(d.summary(), ['S1 r1 complete final [rgb,ir,xyz]']);
  assert.equal(d.joiner.pendingCount, 0);
});

test('a late modality announced by the hint is not waited for: provisional first, refined when it comes', () => {
  const d = new JoinDriver();
  const all: Modality[] = ['rgb', 'ir', 'xyz'];
  d.frame('S1', 'rgb', 0, { expected: all });
  d.frame('S1', 'ir', 3, { expected: all });
  d.frame('S1', 'xyz', 30_000, { expected: all });
  assert.deepEqual(d.summary(), ['S1 r1 provisional [rgb,ir]', 'S1 r2 refine final [rgb,ir,xyz]']);
});

test('a provisional verdict is released as soon as rgb and ir are in; xyz inside its window refines it', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0);
  assert.deepEqual(d.summary(), []);
  d.frame('S1', 'ir', 2);
  assert.deepEqual(d.summary(), ['S1 r1 provisional [rgb,ir]']);
  const first = d.outputs[0];
  assert.equal(first?.type === 'release' && first.missing.join(), 'xyz');
  d.frame('S1', 'xyz', 45_000);
  assert.deepEqual(d.summary(), ['S1 r1 provisional [rgb,ir]', 'S1 r2 refine final [rgb,ir,xyz]']);
});

test('an optional modality that does not come is waited for until its timeout in stream time', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0);
  d.frame('S2', 'rgb', 1_000);
  d.frame('S2', 'ir', 1_001);
  assert.deepEqual(d.summary(), ['S2 r1 provisional [rgb,ir]']);
  d.frame('S3', 'rgb', 2_000); // stream time reaches S1's ir deadline
  assert.deepEqual(d.summary().slice(1), ['S1 r1 timeout [rgb]']);
  assert.equal(d.joiner.stats.timedOut.ir, 1);
});

test('a sample whose required modality never arrives gets UNKNOWN with the reason', () => {
  const d = new JoinDriver();
  d.frame('S1', 'ir', 0);
  d.frame('S2', 'rgb', 9_999);
  assert.ok(!d.summary().some((s) => s.startsWith('S1')));
  d.frame('S3', 'rgb', 10_000);
  const unknown = d.outputs.find((o) => o.type === 'unknown');
  assert.ok(unknown !== undefined);
  assert.equal(unknown.sampleId, 'S1');
  assert.match(unknown.reason, /required modality rgb did not arrive within 10000 ms/);
  assert.deepEqual(unknown.missing, ['rgb', 'xyz']);
  assert.equal(d.joiner.stats.unknown, 1);
});

test('duplicates are kept once and counted, before and after the sample is released', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0);
  d.frame('S1', 'rgb', 0);
  d.frame('S1', 'ir', 1);
  d.frame('S1', 'ir', 1);
  d.frame('S1', 'rgb', 0);
  assert.deepEqual(d.summary(), ['S1 r1 provisional [rgb,ir]']);
  assert.equal(d.joiner.stats.duplicates, 3);
});

test('out-of-order frames join as if they had come in order', () => {
  const inOrder = new JoinDriver();
  const shuffled = new JoinDriver();
  const frames: [string, Modality, number][] = [
    ['A', 'rgb', 0], ['A', 'ir', 2], ['B', 'rgb', 500], ['B', 'ir', 503], ['C', 'rgb', 1_000], ['C', 'ir', 1_001],
    ['A', 'xyz', 20_000], ['D', 'rgb', 21_000], ['B', 'xyz', 21_500], ['D', 'ir', 21_001], ['E', 'rgb', 200_000],
  ];
  for (const f of frames) inOrder.frame(...f);
  const order = [1, 0, 3, 5, 2, 4, 9, 7, 6, 8, 10];
  for (const i of order) shuffled.frame(...at(frames, i));
  const key = (d: JoinDriver): string[] => d.summary().sort();
  assert.deepEqual(key(shuffled), key(inOrder));
  assert.ok(key(inOrder).includes('A r2 refine final [rgb,ir,xyz]'));
});

test('a frame of a closed sample is rejected as too late, with the reason', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0);
  d.frame('S1', 'ir', 1);
  d.frame('S2', 'rgb', 121_000); // S1's xyz window (120 s) has passed
  const out = d.frame('S1', 'xyz', 121_500);
  assert.deepEqual(d.summary(out), ['S1 rejected xyz JOIN_TOO_LATE']);
  const r = out[0];
  assert.ok(r?.type === 'rejected' && /already closed/.test(r.message));
  assert.equal(d.joiner.stats.tooLate, 1);
});

test('a frame of an unknown sample older than the longest wait plus grace is rejected', () => {
  const d = new JoinDriver();
  d.frame('S9', 'rgb', 500_000);
  const out = d.frame('S1', 'rgb', 500_000 - 125_001 - 1);
  assert.deepEqual(d.summary(out), ['S1 rejected rgb JOIN_TOO_LATE']);
  const ok = d.frame('S2', 'rgb', 500_000 - 125_000 + 10);
  assert.ok(ok.every((o) => o.type !== 'rejected'));
});

test('the expected-modalities hint stops the wait early; a frame it did not announce is rejected with that reason', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0, { expected: ['rgb', 'ir'] });
  d.frame('S1', 'ir', 1, { expected: ['rgb', 'ir'] });
  assert.deepEqual(d.summary(), ['S1 r1 complete final [rgb,ir]']);
  const out = d.frame('S1', 'xyz', 30_000);
  const r = out[0];
  assert.ok(r?.type === 'rejected' && /hint did not include xyz/.test(r.message));
});

test('when the line stops, the idle timer advances stream time with the wall clock', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0); // ir never comes, and nothing else arrives
  assert.deepEqual(d.summary(d.advanceWall(1_500)), [], 'not idle long enough');
  assert.deepEqual(d.summary(d.advanceWall(600)), ['S1 r1 timeout [rgb]'], 'idle 2.1 s: stream time passed the ir timeout');
  assert.ok(d.joiner.now >= T0 + 2_000);
});

test('the idle timer also closes the xyz window of a judged sample, without another event', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0);
  d.frame('S1', 'ir', 1);
  assert.equal(d.joiner.pendingCount, 1, 'open for xyz');
  d.advanceWall(121_000);
  assert.equal(d.joiner.pendingCount, 0);
  assert.deepEqual(d.summary(), ['S1 r1 provisional [rgb,ir]']);
});

test('memory bounds: full at max pending samples or bytes, room again once samples release', () => {
  const d = new JoinDriver({ maxPendingSamples: 2, maxPendingBytes: 1_048_576 });
  d.frame('S1', 'rgb', 0);
  assert.equal(d.joiner.full, false);
  d.frame('S2', 'rgb', 1);
  assert.equal(d.joiner.full, true);
  d.frame('S1', 'ir', 2);
  assert.equal(d.joiner.full, true, 'S1 is still open for xyz');
  d.advanceWall(200_000);
  assert.equal(d.joiner.full, false);
  const big = new JoinDriver({ maxPendingBytes: 1_048_576 });
  big.frame('B1', 'rgb', 0, { bytes: 600_000 });
  assert.equal(big.joiner.full, false);
  big.frame('B2', 'rgb', 1, { bytes: 600_000 });
  assert.equal(big.joiner.full, true);
  assert.equal(big.joiner.bytesHeld, 1_200_000);
});

test('flush releases everything still pending, as at the end of a replay range', () => {
  const d = new JoinDriver();
  d.frame('S1', 'rgb', 0);
  d.frame('S2', 'ir', 10);
  d.frame('S3', 'rgb', 20);
  d.frame('S3', 'ir', 21);
  const out = d.joiner.flush();
  assert.deepEqual(d.summary(out), ['S1 r1 timeout final [rgb]', 'S2 r1 UNKNOWN final [ir]'], 'nothing can come after the end of input');
  assert.equal(d.joiner.pendingCount, 0);
});

test('released frames carry their sources and the first capture/arrival for latency figures', () => {
  const d = new JoinDriver();
  d.frame('S1', 'ir', 3);
  d.frame('S1', 'rgb', 0);
  const r = d.outputs[0];
  assert.ok(r?.type === 'release');
  assert.equal(r.firstCapture, T0);
  assert.deepEqual(r.frames.map((f) => [f.modality, f.source.topic, f.payload]), [['rgb', 'in.rgb', 'S1/rgb'], ['ir', 'in.ir', 'S1/ir']]);
});

test('thousands of interleaved samples: every one is released exactly once per revision', () => {
  const d = new JoinDriver({ maxPendingSamples: 100_000 });
  const n = 3000;
  for (let i = 0; i < n; i++) {
    const t = i * 50;
    d.frame(`P${i}`, 'rgb', t);
    if (i % 7 !== 0) d.frame(`P${i}`, 'ir', t + 3);
    if (i % 3 === 0 && i >= 30) d.frame(`P${i - 30}`, 'xyz', t); // xyz of an earlier part, 1.5 s later
  }
  d.outputs.push(...d.joiner.flush());
  const firsts = new Map<string, number>();
  for (const o of d.outputs) {
    if (o.type === 'rejected') continue;
    const k = `${o.sampleId}#${o.revision}`;
    firsts.set(k, (firsts.get(k) ?? 0) + 1);
  }
  assert.ok([...firsts.values()].every((c) => c === 1), 'no revision released twice');
  const samples = new Set([...firsts.keys()].map((k) => k.split('#')[0]));
  assert.equal(samples.size, n, 'every part judged');
});

test('the listener hears of every closed sample (with its frames) and every duplicate', () => {
  const closed: string[] = [];
  const dups: string[] = [];
  const j = new SampleJoiner<string>(POLICY, {
    closed: (id, frames) => closed.push(`${id}:${frames.map((f) => f.modality).join(',')}`),
    duplicate: (f) => dups.push(`${f.sampleId}:${f.modality}`),
  });
  j.add(f('A', 'rgb', 0));
  j.add(f('A', 'ir', 1));
  j.add(f('A', 'ir', 1));
  assert.deepEqual(closed, [], 'A stays open for xyz');
  j.add(f('A', 'xyz', 50));
  assert.deepEqual(closed, ['A:rgb,ir,xyz']);
  j.add(f('A', 'rgb', 0));
  assert.deepEqual(dups, ['A:ir', 'A:rgb']);
  j.add(f('B', 'ir', 100));
  j.flush();
  assert.deepEqual(closed, ['A:rgb,ir,xyz', 'B:ir']);
});

test('restored state: re-read frames of a judged sample publish nothing again; a new late modality refines it', () => {
  // before the crash: S1 released as r1 with rgb+ir, waiting for xyz; S2 closed
  const d = new JoinDriver();
  d.joiner.restore({ sampleId: 'S1', revision: 1, modalities: ['rgb', 'ir'], firstCapture: T0, closed: false, closedAt: null });
  d.joiner.restore({ sampleId: 'S2', revision: 1, modalities: ['rgb', 'ir'], firstCapture: T0 - 1000, closed: true, closedAt: T0 });
  d.frame('S2', 'rgb', -1000);
  d.frame('S1', 'rgb', 0);
  d.frame('S1', 'ir', 2);
  d.frame('S2', 'ir', -998);
  assert.deepEqual(d.summary(), [], 'nothing is published twice');
  assert.equal(d.joiner.stats.duplicates, 2, "S2's frames are duplicates of a closed sample");
  d.frame('S1', 'xyz', 40_000);
  assert.deepEqual(d.summary(), ['S1 r2 refine final [rgb,ir,xyz]']);
});

test('restored state: a judged sample whose window expires closes without another event', () => {
  const closed: string[] = [];
  const j = new SampleJoiner<string>(POLICY, { closed: (id) => closed.push(id) });
  j.restore({ sampleId: 'S1', revision: 1, modalities: ['rgb'], firstCapture: T0, closed: false, closedAt: null });
  const out = j.flush();
  assert.deepEqual(out, []);
  assert.deepEqual(closed, ['S1']);
});

test('closed samples are remembered up to maxClosedSamples and maxClosedBytes, the oldest forgotten first', () => {
  for (const bound of [{ maxClosedSamples: 3 }, { maxClosedBytes: 3 * (CLOSED_ENTRY_BYTES + 2 * 'C0'.length) }]) {
    const forgotten: string[] = [];
    const j = new SampleJoiner<string>({ ...POLICY, ...bound }, { forgotten: (id) => forgotten.push(id) });
    for (let i = 0; i < 6; i++) j.add({ ...f(`C${i}`, 'rgb', i * 10), expectedModalities: ['rgb'] });
    assert.deepEqual(forgotten, ['C0', 'C1', 'C2'], JSON.stringify(bound));
    assert.equal(j.closedMemory.samples, 3);
    assert.equal(j.stats.forgottenEarly, 3);
    assert.ok(j.knows('C5') && !j.knows('C0'));
    // a frame of a remembered sample is a duplicate; one of a forgotten sample is a new sample's
    assert.deepEqual(j.add({ ...f('C5', 'rgb', 60), expectedModalities: ['rgb'] }), []);
    assert.equal(j.add({ ...f('C0', 'rgb', 60), expectedModalities: ['rgb'] }).length, 1);
  }
});
