import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { publishDatasetCommand } from '../../src/cli/commands/publish-dataset.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { Frame, Label } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { META_FILE } from '../../src/simulate/dataset-layout.js';
import { writeDataset } from '../../src/simulate/dataset-writer.js';
import { stationTopicPlans } from '../../src/simulate/kafka-sink.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { consumeAll, deleteTopics, keyed, testConfig, testKafka } from '../helpers/kafka.js';
import { plain } from '../helpers/records.js';
import { cliContext } from './cli-context.js';

const dir = mkdtempSync(join(tmpdir(), 'mmad-pub-'));
const configs: ReturnType<typeof testConfig>[] = [];
const admin = testKafka(testConfig()).admin();
await admin.connect();
after(async () => {
  await deleteTopics(admin, configs.flatMap((c) => stationTopicPlans(c).map((p) => p.name)));
  await admin.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

const catalog = SchemaCatalog.load();
const frameCodec = AvroCodec.local(catalog, 'Frame');
const labelCodec = AvroCodec.local(catalog, 'Label');
const root = join(dir, 'ds');
await writeDataset({
  root,
  product: 'composite_coupon',
  seed: 2,
  width: 40,
  height: 32,
  train: 1,
  validation: 0,
  test: 3,
  defects: ['crack', 'delamination'],
  defectSize: 1,
  defectContrast: 1,
  pngCompressionLevel: 6,
});

async function publish(folder: string, extra: Record<string, string | boolean>): Promise<{ config: ReturnType<typeof testConfig>; lines: string[] }> {
  const config = testConfig();
  configs.push(config);
  const file = join(dir, `${config.topics.labels}.json`);
  writeFileSync(file, JSON.stringify({ topics: config.topics }));
  const { ctx, lines } = cliContext({ config: file, 'max-speed': true, drop: '0', duplicate: '0', 'id-prefix': 'D-', ...extra }, [folder]);
  assert.equal(await publishDatasetCommand.run(ctx), 0);
  return { config, lines };
}

test('publish-dataset streams a generated dataset: the files on disk are the frames, the folders and masks are the labels', async () => {
  const { config, lines } = await publish(root, { 'xyz-fraction': '1', 'xyz-delay': '200ms..1s', seed: '3' });
  assert.ok(lines.some((l) => l.startsWith('9 samples from composite_coupon (9); modalities rgb, ir, xyz')), lines.join('\n'));
  const t = config.topics;
  const records = (await consumeAll(testKafka(config), config, [t.inputs.rgb, t.inputs.ir, t.inputs.xyz, t.labels])).map(keyed);
  assert.equal(records.length, 36);
  for (const topic of [t.inputs.rgb, t.inputs.ir, t.inputs.xyz, t.labels]) assert.equal(records.filter((r) => r.topic === topic).length, 9, topic);
  for (const r of records) assert.equal(r.partition, partitionFor(r.key, 3), `${r.topic} ${r.key} co-partitioned`);

  const meta = JSON.parse(readFileSync(join(root, 'composite_coupon', META_FILE), 'utf8')) as { defects: Record<string, { visibility: unknown }> };
  const file = (name: string, folder: string, ext: string): Buffer => {
    const m = present(/^D-composite_coupon-(\w+?)-(\w+)-(\d{3})$/.exec(name), `the split, defect and stem of ${name}`);
    return readFileSync(join(root, 'composite_coupon', at(m, 1), at(m, 2), folder, `${at(m, 3)}.${ext}`));
  };
  for (const r of records) {
    if (r.topic === t.labels) {
      const l: Label = labelCodec.decodeSync(r.value);
      const defect = at(present(/-test-(\w+)-\d{3}$/.exec(r.key), `the defect of ${r.key}`), 1);
      assert.equal(l.defectType, defect);
      assert.equal(l.productType, 'composite_coupon');
      assert.equal(l.source, `dataset:composite_coupon/test/${defect}/${r.key.slice(-3)}`);
      assert.equal(l.width, 40);
      if (defect === 'good') {
        assert.equal(l.mask, null);
        assert.deepEqual(l.visibility.map((v) => v.level), ['none', 'none', 'none']);
      } else {
        assert.ok(present(l.mask, `${r.key}: the mask`).equals(file(r.key, 'gt', 'png')), `${r.key}: the mask is the gt file`);
        assert.ok(l.defectPixels > 0);
        const table = present(meta.defects[defect], `the ${defect} entry of the dataset's meta`).visibility as Record<string, string>;
        // the label names the modalities the station publishes: the dataset has no CT volumes, so the table's ct column is not among them
        const { ct: _ct, ...published } = table;
        assert.deepEqual(Object.fromEntries(l.visibility.map((v) => [v.modality, v.level])), published);
      }
    } else {
      const f: Frame = frameCodec.decodeSync(r.value);
      const [folder, ext] = f.modality === 'xyz' ? ['xyz', 'tiff'] : [f.modality, 'png'];
      assert.ok(present(f.payload, `${r.key} ${f.modality}: the payload`).equals(file(r.key, folder, ext)), `${r.key} ${f.modality}: the same bytes as on disk`);
      assert.deepEqual(f.expectedModalities, ['rgb', 'ir', 'xyz']);
      assert.deepEqual([f.width, f.height], [40, 32]);
    }
  }
});

test('a recorded dataset without ir or a sidecar (the real MVTec 3D-AD shape) publishes rgb and xyz only, visibility unknown', async () => {
  const mvtecLike = join(dir, 'mvtec-like');
  cpSync(join(root, 'composite_coupon'), join(mvtecLike, 'coupon'), { recursive: true });
  for (const d of ['good', 'crack', 'delamination']) rmSync(join(mvtecLike, 'coupon', 'test', d, 'ir'), { recursive: true });
  rmSync(join(mvtecLike, 'coupon', META_FILE));
  const { config, lines } = await publish(mvtecLike, { 'xyz-fraction': '1', 'xyz-delay': '0s', splits: 'test,train', order: 'sorted', count: '5' });
  assert.ok(lines.some((l) => l.startsWith('10 samples from coupon (10); modalities rgb, xyz')), lines.join('\n'));
  const t = config.topics;
  const records = (await consumeAll(testKafka(config), config, [t.inputs.rgb, t.inputs.ir, t.inputs.xyz, t.labels])).map(keyed);
  assert.equal(records.filter((r) => r.topic === t.inputs.ir).length, 0, lines.join('\n'));
  assert.equal(records.filter((r) => r.topic === t.inputs.rgb).length, 5, lines.join('\n'));
  assert.equal(records.filter((r) => r.topic === t.inputs.rgb).length, 5);
  assert.equal(records.filter((r) => r.topic === t.inputs.xyz).length, 5, lines.join('\n'));
  const labels = records.filter((r) => r.topic === t.labels).map((r) => labelCodec.decodeSync(r.value));
  // sorted order: test before train in folder order, crack first
  assert.deepEqual(labels.map((l) => l.sampleId).sort(), ['D-coupon-test-crack-000', 'D-coupon-test-crack-001', 'D-coupon-test-crack-002', 'D-coupon-test-delamination-000', 'D-coupon-test-delamination-001']);
  for (const l of labels) {
    assert.deepEqual(plain(l.visibility), [
      { modality: 'rgb', level: 'unknown' },
      { modality: 'xyz', level: 'unknown' },
    ]);
    assert.equal(l.seed, null);
  }
  const frame = frameCodec.decodeSync(present(records.find((r) => r.topic === t.inputs.rgb), 'an rgb frame').value);
  assert.deepEqual(frame.expectedModalities, ['rgb', 'xyz']);
});

test('a dataset with CT volumes publishes them as ct frames on the ct topic: the file on disk, the sidecar\'s voxel size, announced', async () => {
  const ctRoot = join(dir, 'ct');
  await writeDataset({ root: ctRoot, product: 'battery_lid', seed: 4, width: 32, height: 32, train: 0, validation: 0, test: 1, defects: ['void'], defectSize: 1, defectContrast: 1, pngCompressionLevel: 6, ct: true });
  const base = testConfig();
  const config = { ...base, topics: { ...base.topics, inputs: { ...base.topics.inputs, ct: base.topics.inputs.rgb.replace(/\.rgb$/, '.ct') } } };
  configs.push(config);
  const file = join(dir, `${config.topics.labels}.json`);
  writeFileSync(file, JSON.stringify({ topics: config.topics, simulate: { ctMissRate: 0, ctDelayMinMs: 1000, ctDelayMaxMs: 2000 } }));
  const { ctx, lines } = cliContext({ config: file, 'max-speed': true, drop: '0', duplicate: '0', 'id-prefix': 'D-', 'ct-fraction': '1', 'xyz-fraction': '0', order: 'sorted' }, [ctRoot]);
  assert.equal(await publishDatasetCommand.run(ctx), 0, lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('2 samples from battery_lid (2); modalities rgb, ir, xyz, ct')), lines.join('\n'));
  const ctTopic = present(config.topics.inputs.ct, 'the ct topic');
  const records = (await consumeAll(testKafka(config), config, [ctTopic])).map(keyed);
  assert.deepEqual(records.map((r) => r.key).sort(), ['D-battery_lid-test-good-000', 'D-battery_lid-test-void-000']);
  const meta = JSON.parse(readFileSync(join(ctRoot, 'battery_lid', META_FILE), 'utf8')) as { ct: { voxelSizeMm: unknown } };
  for (const r of records) {
    const f = frameCodec.decodeSync(r.value);
    const defect = r.key.includes('void') ? 'void' : 'good';
    assert.ok(present(f.payload, 'the volume').equals(readFileSync(join(ctRoot, 'battery_lid', 'test', defect, 'ct', '000.tiff'))), `${r.key}: the file on disk`);
    assert.deepEqual(plain([f.width, f.height, f.volume?.depth, f.volume?.voxelSizeMm]), [16, 16, 32, meta.ct.voxelSizeMm]);
    assert.deepEqual(f.expectedModalities, ['rgb', 'ir', 'ct'], 'announced, without the xyz this line does not scan');
  }
});

test('publish-dataset refuses what it cannot publish, naming the problem', async () => {
  const { ctx } = cliContext({}, [join(dir, 'nothing-here')]);
  await assert.rejects(publishDatasetCommand.run(ctx), /does not exist/);
  const { ctx: ctx2 } = cliContext({ splits: 'test,holdout' }, [root]);
  await assert.rejects(publishDatasetCommand.run(ctx2), /--splits: 'holdout'/);
  const broken = join(dir, 'broken');
  cpSync(join(root, 'composite_coupon'), join(broken, 'c'), { recursive: true });
  writeFileSync(join(broken, 'c', 'test', 'crack', 'xyz', '000.tiff'), 'not a tiff at all');
  const config = testConfig();
  configs.push(config);
  const file = join(dir, 'broken.json');
  writeFileSync(file, JSON.stringify({ topics: config.topics }));
  const { ctx: ctx3 } = cliContext({ config: file, 'max-speed': true, order: 'sorted' }, [broken]);
  await assert.rejects(publishDatasetCommand.run(ctx3), /c\/test\/crack\/000: TIFF: byte-order mark/);
});
