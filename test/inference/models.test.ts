import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { at, present } from '../../src/base/invariant.js';
import type { FramePayload } from '../../src/codec/frame-payload.js';
import sharp from 'sharp';
import { SampleJudge, type Released } from '../../src/inference/judge.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { checkSignature, loadManifest } from '../../src/inference/model-manifest.js';
import { buildOutputs } from '../../src/output/event-builder.js';
import { createLogger } from '../../src/base/logger.js';
import { makeFrame } from '../helpers/frames.js';
import { quietLogger } from '../helpers/kafka.js';
import { TEST_MANIFEST, TEST_MODELS_DIR, copyOfTestModels, inferenceConfig, readF32 } from '../helpers/models.js';

const registry = await ModelRegistry.open(inferenceConfig(), quietLogger);
after(() => registry.close());

function expectCode(fn: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MmadError && e.code === code && pattern.test(e.message));
}

test('the manifest loads and every model passes its checksum and signature checks', () => {
  const { models } = loadManifest(TEST_MANIFEST);
  assert.deepEqual(models.map((m) => m.id), ['test-rgb', 'test-rgb-ir', 'test-rgb-ir-xyz', 'test-xyz']);
  assert.equal(registry.models.length, 4);
  assert.ok(registry.models.every((m) => m.provider === 'cpu'));
});

test('parity: onnxruntime-node reproduces the outputs saved on the Python side', async () => {
  for (const m of registry.models) {
    const dir = join(TEST_MODELS_DIR, 'parity', m.spec.id);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
      inputs: Record<string, { file: string; shape: number[] }>;
      outputs: Record<string, { file: string; shape: number[] }>;
      atol: number;
    };
    const feeds = Object.fromEntries(Object.entries(index.inputs).map(([k, v]) => [k, new ort.Tensor('float32', readF32(join(dir, v.file)), v.shape)]));
    const { outputs: out } = await m.session.run(feeds);
    for (const [name, spec] of Object.entries(index.outputs)) {
      const want = readF32(join(dir, spec.file));
      const output = present(out[name], `${m.spec.id} output ${name}`);
      const got = output.data;
      assert.deepEqual([...output.dims], spec.shape, `${m.spec.id} ${name} shape`);
      let worst = 0;
      for (const [i, w] of want.entries()) worst = Math.max(worst, Math.abs(at(got, i) - w));
      assert.ok(worst <= index.atol, `${m.spec.id} ${name}: max abs error ${worst} > ${index.atol}`);
    }
  }
});

test('routing: exact modality set first, else the largest covered subset; none → undefined', () => {
  const r = (mods: ('rgb' | 'ir' | 'xyz')[]): string => {
    const route = registry.route(mods);
    return route === undefined ? 'none' : `${route.model.spec.id} ${route.match}${route.unused.length ? ` -${route.unused.join(',')}` : ''}`;
  };
  assert.equal(r(['rgb']), 'test-rgb exact');
  assert.equal(r(['rgb', 'ir']), 'test-rgb-ir exact');
  assert.equal(r(['rgb', 'ir', 'xyz']), 'test-rgb-ir-xyz exact');
  assert.equal(r(['xyz']), 'test-xyz exact');
  assert.equal(r(['rgb', 'xyz']), 'test-rgb subset -xyz', 'no rgb+xyz student: ties at size 1 broken by id');
  assert.equal(r(['ir']), 'none');
});

test('micro-batching: concurrent samples share runs; each gets its own result', async () => {
  const m = present(registry.models.find((x) => x.spec.id === 'test-rgb'), 'model test-rgb');
  const before = { ...m.batcher.stats };
  const n = 20;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const rgb = new Float32Array(3 * 32 * 32).fill(128 + i); // deviation i from the reference
      return m.batcher.submit({ rgb });
    }),
  );
  const runs = m.batcher.stats.runs - before.runs;
  assert.equal(m.batcher.stats.samples - before.samples, n);
  assert.ok(runs <= Math.ceil(n / 8) + 1, `${runs} runs for ${n} samples at batch size 8`);
  results.forEach((r, i) => assert.ok(Math.abs(r.score - i / 64) < 1e-4, `sample ${i}: score ${r.score}`));
  assert.ok(results.some((r) => r.batchSize > 1));
});

test('a model file that differs from the manifest is refused, naming the model and the mismatch', () => {
  const dir = copyOfTestModels();
  const onnxFile = join(dir, 'test-rgb.onnx');
  const bytes = readFileSync(onnxFile);
  const last = bytes.length - 1;
  bytes[last] = at(bytes, last) ^ 0xff;
  writeFileSync(onnxFile, bytes);
  expectCode(() => loadManifest(join(dir, 'manifest.json')), ErrorCode.MODEL_CHECKSUM, /model test-rgb: SHA-256 of .* is [0-9a-f]{64}, the manifest says/);
});

test('a missing model file, an invalid manifest and a wrong signature are each refused clearly', async () => {
  const dir = copyOfTestModels();
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { models: Record<string, unknown>[] };
  const write = (m: unknown): string => {
    const p = join(dir, `m-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(p, JSON.stringify(m));
    return p;
  };
  expectCode(() => loadManifest(write({ ...manifest, models: [{ ...manifest.models[0], file: 'gone.onnx' }] })), ErrorCode.MODEL_MISSING, /test-rgb: ONNX file .*gone\.onnx is missing/);
  expectCode(() => loadManifest(write({ ...manifest, models: [{ ...manifest.models[0], threshold: 'high' }] })), ErrorCode.MODEL_INVALID, /\/models\/0\/threshold/);
  expectCode(() => loadManifest(join(dir, 'nope.json')), ErrorCode.MODEL_INVALID, /cannot read model manifest/);
  // a file outside the manifest's folder, by path or through a link, is never read
  const elsewhere = mkdtempSync(join(tmpdir(), 'mmad-elsewhere-'));
  copyFileSync(join(dir, 'test-rgb.onnx'), join(elsewhere, 'test-rgb.onnx'));
  symlinkSync(join(elsewhere, 'test-rgb.onnx'), join(dir, 'linked.onnx'));
  expectCode(() => loadManifest(write({ ...manifest, models: [{ ...manifest.models[0], file: relative(dir, join(elsewhere, 'test-rgb.onnx')) }] })), ErrorCode.MODEL_INVALID, /test-rgb: file .* is outside the manifest's folder/);
  expectCode(() => loadManifest(write({ ...manifest, models: [{ ...manifest.models[0], file: 'linked.onnx' }] })), ErrorCode.MODEL_INVALID, /test-rgb: file linked\.onnx is outside the manifest's folder/);
  // the rgb+ir graph under the rgb entry: its inputs are not what the manifest says
  const { models } = loadManifest(TEST_MANIFEST);
  const session = await ort.InferenceSession.create(join(TEST_MODELS_DIR, 'test-rgb-ir.onnx'));
  expectCode(() => checkSignature(present(models.find((m) => m.id === 'test-rgb'), 'model test-rgb'), session), ErrorCode.MODEL_SIGNATURE, /model test-rgb v0\.0\.1 .*inputs are \[rgb, ir\], the manifest says \[rgb\]/);
  await session.release();
});

test('an unavailable GPU provider falls back to CPU when allowed, and refuses to start when not', async () => {
  const fallback = await ModelRegistry.open(inferenceConfig({ executionProviders: ['cuda'], cpuFallback: true }), quietLogger);
  assert.ok(fallback.models.every((m) => m.provider === 'cpu'));
  await fallback.close();
  await assert.rejects(ModelRegistry.open(inferenceConfig({ executionProviders: ['cuda'], cpuFallback: false }), quietLogger), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.MODEL_INVALID && /cuda/.test(e.message));
});

/** A copy of the test students with a schemaVersion 2 manifest: each threshold (1.0) comes with a fitted Gumbel, location 0.5, scale 0.1. */
function studentsWithDistributions(): string {
  const dir = copyOfTestModels();
  const path = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as { schemaVersion: number; models: { threshold: Record<string, unknown> }[] };
  manifest.schemaVersion = 2;
  for (const m of manifest.models) {
    m.threshold = {
      ...m.threshold,
      falseAlarmRate: 0.01,
      distribution: { kind: 'gumbel', location: 0.5, scale: 0.1, fit: 'maximum-likelihood' },
      validationCount: 20,
      validationMean: 0.56,
      validationStd: 0.13,
    };
  }
  writeFileSync(path, JSON.stringify(manifest));
  return path;
}

test('the line threshold: resolved at load from inference.threshold, logged with its source', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({}, 'info', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const r = await ModelRegistry.open(inferenceConfig({ manifest: studentsWithDistributions(), threshold: { falseAlarmRate: 0.001, overrides: { 'test-xyz': 2.5 } } }), logger);
  try {
    const got = r.models.map((m) => `${m.spec.id} ${m.threshold.value.toFixed(4)} ${m.threshold.source}`).join('; ');
    // 0.5 - 0.1 ln(-ln 0.999) = 1.1907
    assert.equal(got, 'test-rgb 1.1907 falseAlarmRate; test-rgb-ir 1.1907 falseAlarmRate; test-rgb-ir-xyz 1.1907 falseAlarmRate; test-xyz 2.5000 override');
    const ready = lines.filter((l) => l.msg === 'model ready').map((l) => `${String(l.model)} ${String(l.threshold)} ${String(l.thresholdSource)} ${String(l.falseAlarmRate)} ${String(l.manifestThreshold)}`);
    assert.deepEqual(ready, [
      'test-rgb 1.1907255070523717 falseAlarmRate 0.001 1',
      'test-rgb-ir 1.1907255070523717 falseAlarmRate 0.001 1',
      'test-rgb-ir-xyz 1.1907255070523717 falseAlarmRate 0.001 1',
      'test-xyz 2.5 override undefined 1',
    ]);
  } finally {
    await r.close();
  }
  assert.ok(registry.models.every((m) => m.threshold.source === 'manifest' && m.threshold.value === 1), 'no inference.threshold: the manifest value');
});

test('a false-alarm rate with students whose manifest has no distribution (schemaVersion 1) refuses to start, naming them', async () => {
  await assert.rejects(
    ModelRegistry.open(inferenceConfig({ threshold: { falseAlarmRate: 0.01 } }), quietLogger),
    (e: unknown) => e instanceof MmadError && e.code === ErrorCode.MODEL_INVALID && /no fitted distribution .* for model test-rgb v0\.0\.1, model test-rgb-ir v0\.0\.1, .*model test-xyz v0\.0\.1/.test(e.message),
  );
});

test('a judgement decides with, and carries, the line threshold', async () => {
  const frame = await makeFrame('part-1', 'rgb', { square: [8, 8, 8], captureTime: 0 });
  const payload = present(frame.payload, 'the frame payload');
  const release: Released = {
    type: 'release',
    kind: 'complete',
    sampleId: 'part-1',
    revision: 1,
    frames: [{ sampleId: 'part-1', modality: 'rgb', captureTime: 0, arrivedAt: 0, bytes: payload.length, expectedModalities: null, source: { topic: 't', partition: 0, offset: '0' }, payload: { frame, payload, raw: Buffer.alloc(0), key: null, timestamp: 0 } satisfies FramePayload }],
    missing: [],
    final: true,
    firstCapture: 0,
    firstArrival: 0,
  };
  const lenient = await ModelRegistry.open(inferenceConfig({ threshold: { overrides: { 'test-rgb': 1000 } } }), quietLogger);
  try {
    const judge = (r: ModelRegistry): Promise<string> =>
      new SampleJudge(r, { maxPixels: 1 << 20 }, ['rgb'], () => 0).judge(release).then((j) => `${j.verdict} ${String(j.threshold)} ${present(j.score, 'the score') > 1 ? 'score>1' : 'score<=1'}`);
    assert.equal(await judge(registry), 'NOK 1 score>1', 'the manifest threshold');
    assert.equal(await judge(lenient), 'OK 1000 score>1', 'the override');
  } finally {
    await lenient.close();
  }
});

test('a non-square student judges a non-square frame: resized to its height × width, the map and regions in the frame geometry', async () => {
  // a 440 × 200 frame (the rope's 900 × 400 aspect) for a 20 × 44 student: grey with one bright square
  const [width, height] = [440, 200];
  const px = new Uint8Array(width * height * 3).fill(128);
  for (let y = 80; y < 120; y++) for (let x = 300; x < 340; x++) px.fill(250, (y * width + x) * 3, (y * width + x) * 3 + 3);
  const payload = await sharp(px, { raw: { width, height, channels: 3 } }).toColourspace('srgb').png().toBuffer();
  const frame = { ...(await makeFrame('wide-1', 'rgb', { captureTime: 0 })), width, height, payload };
  const release: Released = {
    type: 'release',
    kind: 'complete',
    sampleId: 'wide-1',
    revision: 1,
    frames: [{ sampleId: 'wide-1', modality: 'rgb', captureTime: 0, arrivedAt: 0, bytes: payload.length, expectedModalities: null, source: { topic: 't', partition: 0, offset: '0' }, payload: { frame, payload, raw: Buffer.alloc(0), key: null, timestamp: 0 } satisfies FramePayload }],
    missing: [],
    final: true,
    firstCapture: 0,
    firstArrival: 0,
  };
  const wide = await ModelRegistry.open(inferenceConfig({ manifest: join(TEST_MODELS_DIR, 'wide', 'manifest.json') }), quietLogger);
  try {
    const j = await new SampleJudge(wide, { maxPixels: 1 << 20 }, ['rgb'], () => 0).judge(release);
    assert.equal(j.verdict, 'NOK');
    const map = present(j.map, 'the map');
    const source = present(j.sourceSize, 'the source size');
    assert.deepEqual([map.height, map.width, source.width, source.height], [20, 44, 440, 200]);
    const peak = map.data.indexOf(Math.max(...map.data));
    const [row, col] = [Math.floor(peak / 44), peak % 44];
    // the square spans rows 8..11 and columns 30..33 of the 20 × 44 map (source / 10)
    assert.ok(row >= 8 && row <= 11 && col >= 30 && col <= 33, `peak at (${row}, ${col})`);
    const { event } = buildOutputs(j, { heatmapSize: 16, maxRegions: 4 }, () => 0);
    assert.ok(event !== null);
    const heatmap = present(event.heatmap, 'the heatmap');
    assert.deepEqual([heatmap.width, heatmap.height], [16, 7], 'the heatmap keeps the 20 × 44 aspect');
    const r = at(event.regions, 0);
    assert.ok(r.x <= 300 && r.x + r.width >= 340 && r.y <= 80 && r.y + r.height >= 120, `region ${JSON.stringify(r)} covers the square in frame pixels`);
    assert.ok(r.x + r.width <= width && r.y + r.height <= height);
  } finally {
    await wide.close();
  }
});
