/**
 * The students shipped in models/exported: every one loads through the registry (checksum
 * and signature checks), and onnxruntime-node reproduces the anomaly maps and scores the
 * Python side saved for it (parity/<id>/index.json) within the tolerance written there.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { at, present } from '../../src/base/invariant.js';
import { loadConfig } from '../../src/config/load-config.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { fromRoot } from '../../src/config/paths.js';
import { quietLogger } from '../helpers/kafka.js';
import { readF32 } from '../helpers/models.js';

interface ParityFile {
  name: string;
  shape: number[];
  dtype: string;
  file: string;
  sha256: string;
}
interface ParityIndex {
  model: string;
  byteOrder: string;
  inputs: ParityFile[];
  outputs: ParityFile[];
  tolerance: { absolute: number; relative: number };
}

const MANIFEST = fromRoot('models/exported/manifest.json');
const config = loadConfig({ env: {}, overrides: { inference: { manifest: MANIFEST, maxBatchWaitMs: 2 } } });
const registry = await ModelRegistry.open(config, quietLogger);
after(() => registry.close());

function readChecked(dir: string, f: ParityFile): Float32Array {
  const path = join(dir, f.file);
  assert.equal(createHash('sha256').update(readFileSync(path)).digest('hex'), f.sha256, `${path}: checksum`);
  const data = readF32(path);
  assert.equal(data.length, f.shape.reduce((a, b) => a * b, 1), `${path}: element count`);
  return data;
}

test('the default manifest offers the seven subsets of the in-line sensors and two with ct, each a model of its own', () => {
  const sets = registry.models.map((m) => [...m.spec.modalities].sort().join('+')).sort();
  assert.deepEqual(sets, ['ct', 'ct+ir+rgb', 'ir', 'ir+rgb', 'ir+rgb+xyz', 'ir+xyz', 'rgb', 'rgb+xyz', 'xyz']);
});

for (const model of registry.models) {
  const { spec } = model;
  test(`parity: ${spec.id} on onnxruntime-node gives the saved maps and scores`, async () => {
    const indexPath = join(dirname(MANIFEST), 'parity', spec.id, 'index.json');
    const dir = dirname(indexPath);
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as ParityIndex;
    assert.equal(index.byteOrder, 'little');
    assert.equal(join(dir, index.model), join(dirname(MANIFEST), spec.file), 'the fixture names this model file');
    assert.deepEqual(index.inputs.map((i) => i.name), model.session.inputNames);
    const feeds = Object.fromEntries(index.inputs.map((i) => [i.name, new ort.Tensor('float32', readChecked(dir, i), i.shape)]));
    const { outputs: out } = await model.session.run(feeds);
    const { absolute, relative } = index.tolerance;
    for (const o of index.outputs) {
      const want = readChecked(dir, o);
      const got = present(out[o.name], `${spec.id} output ${o.name}`);
      assert.deepEqual([...got.dims], o.shape, `${spec.id} ${o.name}: shape`);
      let worst = 0;
      for (const [i, w] of want.entries()) {
        const excess = Math.abs(at(got.data, i) - w) - (absolute + relative * Math.abs(w));
        worst = Math.max(worst, excess);
      }
      assert.ok(worst <= 0, `${spec.id} ${o.name}: outside |a-e| <= ${absolute} + ${relative}|e| by ${worst}`);
    }
    const scores = present(out.score, `${spec.id} output score`).data;
    assert.ok([...scores].every(Number.isFinite), `${spec.id}: finite scores`);
  });
}
