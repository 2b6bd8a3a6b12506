import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import type { CommandContext } from '../../src/cli/command.js';
import { datasetCommand } from '../../src/cli/commands/dataset.js';
import { META_FILE, type DatasetMeta } from '../../src/simulate/dataset-layout.js';
import { commonModalities, loadSample, scanDataset } from '../../src/simulate/dataset-reader.js';
import { sampleSeed, writeDataset } from '../../src/simulate/dataset-writer.js';
import { generatePart } from '../../src/simulate/part-generator.js';

const dir = mkdtempSync(join(tmpdir(), 'mmad-dataset-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const OPTIONS = {
  product: 'composite_coupon',
  seed: 5,
  width: 64,
  height: 48,
  train: 2,
  validation: 1,
  test: 1,
  defects: ['crack', 'delamination'] as const,
  defectSize: 1,
  defectContrast: 1,
  pngCompressionLevel: 6,
};

function files(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(root, join(d, e.name)));
    }
  };
  walk(root);
  return out.sort();
}

const sha = (b: ArrayBufferView): string => createHash('sha256').update(Buffer.from(b.buffer, b.byteOffset, b.byteLength)).digest('hex');

test('a written dataset has the MVTec 3D-AD layout, with ir beside rgb and xyz and masks only in test', async () => {
  const root = join(dir, 'a');
  const summary = await writeDataset({ root, ...OPTIONS });
  assert.equal(summary.samples, 2 + 1 + 3);
  const all = files(join(root, 'composite_coupon'));
  const expected: string[] = [META_FILE];
  for (const [split, defect, n, gt] of [
    ['train', 'good', 2, false],
    ['validation', 'good', 1, false],
    ['test', 'good', 1, true],
    ['test', 'crack', 1, true],
    ['test', 'delamination', 1, true],
  ] as const) {
    for (let i = 0; i < n; i++) {
      const nnn = String(i).padStart(3, '0');
      expected.push(`${split}/${defect}/rgb/${nnn}.png`, `${split}/${defect}/ir/${nnn}.png`, `${split}/${defect}/xyz/${nnn}.tiff`);
      if (gt) expected.push(`${split}/${defect}/gt/${nnn}.png`);
    }
  }
  assert.deepEqual(all, expected.sort());
  assert.equal(summary.files, expected.length);
  const meta = JSON.parse(readFileSync(join(root, 'composite_coupon', META_FILE), 'utf8')) as DatasetMeta;
  assert.equal(meta.product, 'composite_coupon');
  assert.deepEqual(Object.keys(meta.defects), ['crack', 'delamination']);
  assert.deepEqual(meta.defects.delamination?.visibility, { rgb: 'none', ir: 'strong', xyz: 'none', ct: 'strong' });
  assert.equal(meta.ct, undefined, 'no CT volumes unless asked for');
});

test('with CT volumes: ct/ per sample, gt_ct/ (3D mask) and gt_ct_2d/ (its projection) per test sample, interior defects among the defaults; volumes tifffile reads', async () => {
  const root = join(dir, 'ct');
  const summary = await writeDataset({ root, ...OPTIONS, product: 'battery_lid', width: 64, height: 64, train: 1, validation: 0, defects: [], ct: true });
  const category = join(root, 'battery_lid');
  const meta = JSON.parse(readFileSync(join(category, META_FILE), 'utf8')) as DatasetMeta;
  assert.deepEqual(Object.keys(meta.defects), ['contamination', 'scratch', 'dent', 'bulge', 'crack', 'missing_material', 'extra_material', 'hot_spot', 'void', 'porosity', 'inclusion']);
  assert.deepEqual(meta.ct, { width: 32, height: 32, depth: 32, voxelSizeMm: { x: 3.438, y: 3.438, z: 0.163 }, bytesPerVolume: 32 * 32 * 32 * 2 });
  assert.equal(summary.samples, 1 + 12);
  const all = files(category);
  assert.ok(all.includes('train/good/ct/000.tiff') && !all.includes('train/good/gt_ct/000.tiff'), 'a volume for every sample, ground truth for test samples only');
  for (const defect of ['good', 'void', 'crack']) for (const f of ['ct/000.tiff', 'gt_ct/000.tiff', 'gt_ct_2d/000.png']) assert.ok(all.includes(`test/${defect}/${f}`), `test/${defect}/${f}`);
  const out = execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      `
import sys, json, numpy, tifffile
from PIL import Image
d = sys.argv[1]
r = {}
for k in ['good', 'void', 'crack', 'hot_spot']:
    v = tifffile.imread(f'{d}/test/{k}/ct/000.tiff')
    m = tifffile.imread(f'{d}/test/{k}/gt_ct/000.tiff')
    p = numpy.asarray(Image.open(f'{d}/test/{k}/gt_ct_2d/000.png'))
    r[k] = {'ct': [str(v.dtype), list(v.shape)], 'mask': [str(m.dtype), list(m.shape), int((m > 0).sum())], 'proj': [list(p.shape), int((p > 0).sum())],
            'material': int(numpy.median(v[v.shape[0] // 2])) , 'air': int(numpy.median(v[0]))}
print(json.dumps(r))
`,
      category,
    ],
    { encoding: 'utf8' },
  );
  const r = JSON.parse(out) as Record<string, { ct: unknown; mask: [string, number[], number]; proj: [number[], number]; material: number; air: number }>;
  for (const [k, x] of Object.entries(r)) {
    assert.deepEqual(x.ct, ['uint16', [32, 32, 32]], k);
    assert.deepEqual([x.mask[0], x.mask[1]], ['uint8', [32, 32, 32]], k);
    assert.deepEqual(x.proj[0], [64, 64], k);
    assert.ok(x.air < 3000, `${k}: the lowest slice is air below the part (${x.air})`);
  }
  assert.deepEqual([r.good?.mask[2], r.good?.proj[1], r.hot_spot?.mask[2]], [0, 0, 0], 'a good part and a defect a CT cannot see have empty masks');
  assert.ok((r.void?.mask[2] ?? 0) > 0 && (r.void?.proj[1] ?? 0) > 0, 'a void is in the 3D mask and its projection');
  assert.ok((r.crack?.mask[2] ?? 0) > 0, 'a crack is in the 3D mask');
});

test('every xyz file reads back with tifffile: float32, H×W×3, the generator\'s exact values', () => {
  const root = join(dir, 'a', 'composite_coupon');
  const tiffs = files(root).filter((f) => f.endsWith('.tiff'));
  const out = execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      `
import sys, json, hashlib, tifffile
r = {}
for f in sys.argv[2:]:
    a = tifffile.imread(sys.argv[1] + '/' + f)
    r[f] = [str(a.dtype), list(a.shape), hashlib.sha256(a.astype('<f4').tobytes()).hexdigest()]
print(json.dumps(r))
`,
      root,
      ...tiffs,
    ],
    { encoding: 'utf8' },
  );
  const read = JSON.parse(out) as Record<string, [string, number[], string]>;
  assert.equal(Object.keys(read).length, 6);
  for (const f of tiffs) {
    const [split, defect, , name] = f.split('/') as [string, string, string, string];
    const index = Number(name.slice(0, 3));
    const part = generatePart({
      product: 'composite_coupon',
      seed: sampleSeed(OPTIONS.seed, 'composite_coupon', split as 'train', defect, index),
      defect: defect === 'good' ? null : (defect as 'crack'),
      width: 64,
      height: 48,
    });
    assert.deepEqual(read[f], ['float32', [48, 64, 3], sha(part.xyz)], f);
  }
});

test('the reader finds every sample and decodes each modality pixel-aligned and equal to what was generated', async () => {
  const [category] = scanDataset(join(dir, 'a'));
  assert.ok(category !== undefined);
  assert.equal(category.name, 'composite_coupon');
  assert.equal(category.meta?.seed, 5);
  assert.equal(category.samples.length, 6);
  assert.deepEqual(commonModalities(category.samples), ['rgb', 'ir', 'xyz']);
  const sample = present(category.samples.find((s) => s.split === 'test' && s.defect === 'delamination'), 'the delamination test sample');
  const loaded = await loadSample(sample);
  const part = generatePart({ product: 'composite_coupon', seed: sampleSeed(5, 'composite_coupon', 'test', 'delamination', 0), defect: 'delamination', width: 64, height: 48 });
  for (const m of ['rgb', 'ir', 'xyz', 'gt'] as const) {
    assert.equal(loaded[m]?.width, 64, m);
    assert.equal(loaded[m].height, 48, m);
  }
  assert.equal(sha(present(loaded.rgb, 'rgb').rgb), sha(part.rgb));
  assert.equal(sha(present(loaded.ir, 'ir').ir), sha(part.ir));
  assert.equal(sha(present(loaded.xyz, 'xyz').xyz), sha(part.xyz));
  assert.equal(sha(present(loaded.gt, 'gt').mask), sha(part.mask));
  assert.ok(part.defectPixels > 0);
  // scanning one category folder directly, and only some splits
  assert.equal(scanDataset(join(dir, 'a', 'composite_coupon'), { splits: ['train'] })[0]?.samples.length, 2);
  assert.throws(() => scanDataset(join(dir, 'nowhere')), /does not exist/);
  assert.throws(() => scanDataset(join(dir, 'a'), { categories: ['bagel'] }), /bagel not found/);
});

test('the dataset command writes the same bytes for the same seed, and other bytes for another seed', async () => {
  const lines: string[] = [];
  const run = async (root: string, seed: string): Promise<number> => {
    const ctx: CommandContext = {
      values: { root, product: 'battery_lid', train: '1', validation: '0', test: '1', size: '48', seed, defects: 'hot_spot,scratch' },
      positionals: [],
      shutdown: new Promise(() => undefined),
      out: (l) => lines.push(l),
    };
    return datasetCommand.run(ctx);
  };
  assert.equal(await run(join(dir, 'c1'), '3'), 0);
  assert.equal(await run(join(dir, 'c2'), '3'), 0);
  assert.equal(await run(join(dir, 'c3'), '4'), 0);
  assert.ok(lines.some((l) => /battery_lid: 4 samples, 16 files/.test(l)), lines.join('\n'));
  assert.ok(!existsSync(join(dir, 'c1', 'composite_coupon')), 'a defect list restricts the products to those that have them');
  const list = files(join(dir, 'c1'));
  assert.deepEqual(list, files(join(dir, 'c2')));
  for (const f of list) assert.ok(readFileSync(join(dir, 'c1', f)).equals(readFileSync(join(dir, 'c2', f))), f);
  const tiff = 'battery_lid/test/scratch/xyz/000.tiff';
  assert.ok(!readFileSync(join(dir, 'c1', tiff)).equals(readFileSync(join(dir, 'c3', tiff))));
});
