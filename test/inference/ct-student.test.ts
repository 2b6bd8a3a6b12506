/**
 * A student that takes ct (test/fixtures/models/ct: null students of an in-line rgb+ir
 * student and an rgb+ir+ct one, whose ct input is an 8 × 16 × 16 grid): the manifest's ct
 * input and anomaly_depth output, parity with the Python side, routing, and a part judged
 * in-line and again with its volume, its regions carrying the depth of their peak.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { at, present } from '../../src/base/invariant.js';
import type { FramePayload } from '../../src/codec/frame-payload.js';
import type { Frame, Modality } from '../../src/codec/records.js';
import { SampleJudge, type Released } from '../../src/inference/judge.js';
import { loadManifest } from '../../src/inference/model-manifest.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { buildOutputs } from '../../src/output/event-builder.js';
import type { JoinInput } from '../../src/join/sample-joiner.js';
import { makeFrame, makeVolumeFrame } from '../helpers/frames.js';
import { quietLogger } from '../helpers/kafka.js';
import { CT_MANIFEST, TEST_MODELS_DIR, copyOfTestModels, inferenceConfig, readF32 } from '../helpers/models.js';

const registry = await ModelRegistry.open(inferenceConfig({ manifest: CT_MANIFEST }), quietLogger);
after(() => registry.close());

function expectCode(fn: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MmadError && e.code === code && pattern.test(e.message), `expected ${code} matching ${String(pattern)}`);
}

test('a manifest with a ct input loads: the volume grid, the anomaly_depth output, the map size of the images', () => {
  const { models } = loadManifest(CT_MANIFEST);
  const byId = new Map(models.map((m) => [m.id, m]));
  const ct = present(byId.get('null-rgb-ir-ct'), 'the ct student');
  assert.deepEqual([ct.height, ct.width, ct.volume, ct.outputs.map((o) => o.name)], [32, 32, { depth: 8, height: 16, width: 16 }, ['anomaly_map', 'score', 'anomaly_depth']]);
  assert.deepEqual(ct.outputs.map((o) => o.name), ['anomaly_map', 'score', 'anomaly_depth']);
  const inline = present(byId.get('null-rgb-ir'), 'the in-line student');
  assert.deepEqual([inline.volume, inline.outputs.map((o) => o.name)], [null, ['anomaly_map', 'score']]);
  assert.deepEqual(registry.models.map((m) => m.spec.id), ['null-rgb-ir', 'null-rgb-ir-ct'], 'both open, signatures checked');
});

test('a ct input with the wrong layout or rank, an image input as a volume, a ct model without anomaly_depth: each refused, naming it', () => {
  const dir = copyOfTestModels();
  const manifest = JSON.parse(readFileSync(join(dir, 'ct', 'manifest.json'), 'utf8')) as { models: { id: string; inputs: Record<string, unknown>[]; outputs: Record<string, unknown>[] }[] };
  const ctEntry = present(manifest.models.find((m) => m.id === 'null-rgb-ir-ct'), 'the ct entry');
  const withEntry = (e: unknown): string => {
    const p = join(dir, 'ct', `m-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(p, JSON.stringify({ ...manifest, models: [e] }));
    return p;
  };
  const ctInput = present(ctEntry.inputs[2], 'the ct input');
  const inputs = (ct: Record<string, unknown>): Record<string, unknown>[] => [...ctEntry.inputs.slice(0, 2), ct];
  expectCode(() => loadManifest(withEntry({ ...ctEntry, inputs: inputs({ ...ctInput, layout: 'NCHW' }) })), ErrorCode.MODEL_INVALID,
    /model null-rgb-ir-ct: input ct \(ct\) has layout NCHW and 5 dimensions; a ct input is NCDHW, \[batch, 1, depth, height, width\] \(5 dimensions\)/);
  expectCode(() => loadManifest(withEntry({ ...ctEntry, inputs: inputs({ ...ctInput, shape: ['batch', 1, 16, 16] }) })), ErrorCode.MODEL_INVALID,
    /input ct \(ct\) has layout NCDHW and 4 dimensions; a ct input is NCDHW/);
  expectCode(() => loadManifest(withEntry({ ...ctEntry, inputs: [{ ...ctEntry.inputs[0], layout: 'NCDHW', shape: ['batch', 3, 1, 32, 32] }, ...ctEntry.inputs.slice(1)] })), ErrorCode.MODEL_INVALID,
    /input rgb \(rgb\) has layout NCDHW and 5 dimensions; a rgb input is NCHW, \[batch, channels, height, width\]/);
  expectCode(() => loadManifest(withEntry({ ...ctEntry, inputs: inputs({ ...ctInput, shape: ['batch', 2, 8, 16, 16] }) })), ErrorCode.MODEL_INVALID,
    /null-rgb-ir-ct: a model takes one ct input of shape \[batch, 1, depth, height, width\]/);
  expectCode(() => loadManifest(withEntry({ ...ctEntry, outputs: ctEntry.outputs.slice(0, 2) })), ErrorCode.MODEL_INVALID,
    /null-rgb-ir-ct: outputs are \[anomaly_map,score\], a model with a ct input has \[anomaly_map,score,anomaly_depth\]/);
});

test('parity: onnxruntime-node reproduces the ct student\'s outputs saved on the Python side, anomaly_depth included', async () => {
  for (const m of registry.models) {
    const dir = join(TEST_MODELS_DIR, 'ct', 'parity', m.spec.id);
    type Entry = { name: string; file: string; shape: number[] };
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { inputs: Entry[]; outputs: Entry[]; tolerance: { absolute: number; relative: number } };
    const feeds = Object.fromEntries(index.inputs.map((v) => [v.name, { data: readF32(join(dir, v.file)), dims: v.shape }]));
    const { outputs } = await m.session.run(feeds);
    assert.deepEqual(index.outputs.map((o) => o.name).sort(), Object.keys(outputs).sort(), m.spec.id);
    for (const spec of index.outputs) {
      const want = readF32(join(dir, spec.file));
      const got = present(outputs[spec.name], `${m.spec.id} ${spec.name}`).data;
      const { absolute, relative } = index.tolerance;
      const bad = [...want.entries()].filter(([i, w]) => !(Math.abs(at(got, i) - w) <= absolute + relative * Math.abs(w)));
      assert.equal(bad.length, 0, `${m.spec.id} ${spec.name}: ${bad.length} values out of tolerance`);
    }
  }
});

test('routing: rgb+ir → the in-line student; rgb+ir+ct → the ct student; ct beats another modality at equal size', async () => {
  const r = (mods: Modality[]): string => {
    const route = registry.route(mods);
    return route === undefined ? 'none' : `${route.model.spec.id} ${route.match}${route.unused.length ? ` -${route.unused.join(',')}` : ''}`;
  };
  assert.equal(r(['rgb', 'ir']), 'null-rgb-ir exact');
  assert.equal(r(['rgb', 'ir', 'ct']), 'null-rgb-ir-ct exact');
  assert.equal(r(['rgb', 'ir', 'xyz', 'ct']), 'null-rgb-ir-ct subset -xyz');
  assert.equal(r(['rgb', 'ct']), 'none');
});

const VOXEL_Z = 0.5;

function input(frame: Frame): JoinInput<FramePayload> {
  const payload = present(frame.payload, 'a payload');
  return {
    sampleId: frame.sampleId, modality: frame.modality as Modality, captureTime: frame.captureTime.getTime(), arrivedAt: 0, bytes: payload.length,
    expectedModalities: null, source: { topic: `in.${frame.modality}`, partition: 0, offset: '0' }, payload: { frame, payload, raw: Buffer.alloc(0), key: null, timestamp: 0 },
  };
}

function release(sampleId: string, frames: Frame[], revision: number): Released {
  return { type: 'release', kind: 'complete', sampleId, revision, frames: frames.map(input), missing: [], final: revision > 1, firstCapture: 0, firstArrival: 0 };
}

test('a part judged in-line by the rgb+ir student, then with its late volume by the ct student: regions carry the depth of their peak in mm', async () => {
  const judge = new SampleJudge(registry, { maxPixels: 1 << 20 }, ['rgb', 'ir', 'ct'], () => 0);
  for (const depth of [8, 16]) {
    const id = `part-${depth}`;
    const rgb = await makeFrame(id, 'rgb', { captureTime: 0 });
    const ir = await makeFrame(id, 'ir', { captureTime: 0 });
    const first = await judge.judge(release(id, [rgb, ir], 1));
    assert.deepEqual([first.route?.model.spec.id, first.verdict, first.used, first.missing, first.depth], ['null-rgb-ir', 'OK', ['rgb', 'ir'], ['ct'], null]);
    const refined = await judge.judge(release(id, [rgb, ir, makeVolumeFrame(id, { depth, voxelZMm: VOXEL_Z, captureTime: 60_000 })], 2));
    assert.deepEqual([refined.route?.model.spec.id, refined.route?.match, refined.verdict, refined.used, refined.missing], ['null-rgb-ir-ct', 'exact', 'NOK', ['rgb', 'ir', 'ct'], []]);
    assert.deepEqual(refined.sourceSize, { width: 32, height: 32 }, 'regions in the cameras\' pixels, not the volume\'s');
    const { event } = buildOutputs(refined, { heatmapSize: 16, maxRegions: 4 }, () => 0);
    const regions = present(event, 'the event').regions;
    assert.equal(regions.length, 1, JSON.stringify(regions));
    const r = at(regions, 0);
    assert.deepEqual([r.x, r.y, r.width, r.height], [20, 8, 4, 4], 'the bright column, volume 10..11 × 4..5 → map 20..23 × 8..11');
    // slice 5 of the model's 8, each (depth / 8) source slices of 0.5 mm
    assert.equal(r.depthMm, (5 + 0.5) * (depth / 8) * VOXEL_Z, `depth ${depth}`);
    const inline = buildOutputs(first, { heatmapSize: 16, maxRegions: 4 }, () => 0).event;
    assert.ok(inline?.regions.every((x) => x.depthMm === null));
  }
});
