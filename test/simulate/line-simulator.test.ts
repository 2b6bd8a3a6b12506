import assert from 'node:assert/strict';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { defaultConfig } from '../../src/config/load-config.js';
import { decodeFrame, decodeLimitsOf, rawBytes } from '../../src/inference/preprocess.js';
import { SimulatedPartSource, partChoice, poolPlan, renderPart, type SimulationOptions } from '../../src/simulate/line-simulator.js';
import type { SourcedPart } from '../../src/simulate/station-publisher.js';
import { frameRecord } from '../../src/simulate/station-records.js';

const BASE: SimulationOptions = { product: 'battery_lid', width: 32, height: 32, seed: 4, defectRate: 0.5, defects: ['dent', 'hot_spot'], poolSize: 4 };

test('a pooled line keeps the configured defect rate and kinds, with fresh sample names', async () => {
  assert.deepEqual(
    poolPlan(BASE).map((p) => p.defect),
    ['dent', 'hot_spot', null, null],
  );
  const source = await SimulatedPartSource.create(BASE);
  let defective = 0;
  const names = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const part = await source.get(i);
    names.add(part.name);
    const want = partChoice(BASE, i).defect ?? 'good';
    assert.equal(part.defectType, want, `part ${i}`);
    if (want !== 'good') {
      defective++;
      assert.ok(part.mask !== null && part.defectPixels > 0);
    } else assert.equal(part.mask, null);
    assert.deepEqual(Object.keys(part.payloads).sort(), ['ir', 'rgb', 'xyz']);
    assert.deepEqual(part.frameAttributes, { product: 'battery_lid' });
  }
  assert.equal(names.size, 400, 'every part gets its own name, pool or not');
  assert.ok(defective > 150 && defective < 250, `${defective} of 400 defective at rate 0.5`);
});

test('without a pool every part is rendered fresh, deterministically', async () => {
  const o = { ...BASE, poolSize: 0 };
  const a = await SimulatedPartSource.create(o);
  const b = await SimulatedPartSource.create(o);
  const [pa, pb] = [await a.get(3), await b.get(3)];
  for (const m of ['rgb', 'ir', 'xyz'] as const) assert.ok(present(pa.payloads[m], m).equals(present(pb.payloads[m], m)), m);
  const direct = await renderPart(o, partChoice(o, 3));
  assert.ok(direct.encoded.xyz.equals(present(pa.payloads.xyz, 'xyz')));
  assert.equal(pa.seed, direct.seed);
  const other = await a.get(4);
  assert.ok(!present(other.payloads.rgb, 'rgb').equals(present(pa.payloads.rgb, 'rgb')), 'parts differ from one another');
  a.release(3);
  a.release(4);
  assert.throws(() => partChoice({ ...BASE, defects: ['delamination'] }, 0), /no defect 'delamination'/);
});

test('prerendered parts are the line\'s own parts, each distinct, rendered before the line starts', async () => {
  const o: SimulationOptions = { ...BASE, defectRate: 0.5, poolSize: 0, prerender: 12 };
  let progress = 0;
  const ahead = await SimulatedPartSource.create(o, (done, total) => {
    assert.equal(total, 12);
    progress = done;
  });
  assert.equal(progress, 12, 'every prerendered part reported');
  assert.ok(ahead.poolMs > 0);
  const fresh = await SimulatedPartSource.create({ ...o, prerender: 0 });
  const seen = new Set<string>();
  for (let i = 0; i < 14; i++) {
    const [pa, pf] = [await ahead.get(i), await fresh.get(i)];
    assert.equal(pa.defectType, partChoice(o, i).defect ?? 'good', `part ${i}`);
    assert.ok(present(pa.payloads.rgb, 'rgb').equals(present(pf.payloads.rgb, 'rgb')), `part ${i}: the same bytes rendered ahead or as the line reaches it`);
    seen.add(present(pa.payloads.rgb, 'rgb').toString('base64'));
    ahead.release(i);
    fresh.release(i);
  }
  assert.equal(seen.size, 14, 'no part repeats, unlike a pool');
  // a pool leaves nothing to prerender: its parts are the ones reused
  let pooled = 0;
  await SimulatedPartSource.create({ ...o, poolSize: 3 }, () => pooled++);
  assert.equal(pooled, 3);
});

test('a line with raw frames sends the samples its files hold, and the service decodes both alike', async () => {
  const o: SimulationOptions = { ...BASE, poolSize: 0, ct: true };
  const files = await SimulatedPartSource.create(o);
  const raw = await SimulatedPartSource.create({ ...o, rawFrames: true });
  const [pf, pr] = [await files.get(1), await raw.get(1)];
  assert.equal(pf.raw, false);
  assert.equal(pr.raw, true);
  const limits = decodeLimitsOf(defaultConfig());
  for (const m of ['rgb', 'ir', 'xyz', 'ct'] as const) {
    const frame = (p: SourcedPart) => {
      const ct = m === 'ct' ? present(p.ct, 'ct') : undefined;
      return frameRecord({
        id: { line: 'l', station: 's' },
        sampleId: p.name,
        modality: m,
        captureTime: new Date(0),
        width: ct?.width ?? p.width,
        height: ct?.height ?? p.height,
        payload: present(p.payloads[m], m),
        expected: null,
        attributes: {},
        ...(ct === undefined ? {} : { volume: ct.volume }),
        raw: p.raw === true,
      });
    };
    const [ff, fr] = [frame(pf), frame(pr)];
    assert.equal(fr.encoding, 'raw', m);
    assert.notEqual(ff.encoding, 'raw', m);
    assert.equal(present(fr.payload, m).length, rawBytes(fr) * (m === 'ct' ? present(fr.volume, 'volume').depth : 1), `${m}: a raw payload is exactly its samples`);
    const [a, b] = await Promise.all([decodeFrame(ff, present(ff.payload, m), limits), decodeFrame(fr, present(fr.payload, m), limits)]);
    assert.deepEqual([b.width, b.height, b.channels], [a.width, a.height, a.channels], m);
    assert.ok(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)), `${m}: the same samples`);
  }
  assert.deepEqual(pr.mask, pf.mask, 'the label mask stays a PNG');
});
