import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { simulateCommand } from '../../src/cli/commands/simulate.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { Frame, Label } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { pngHeader } from '../../src/codec/png.js';
import { EmissionStream, LineSchedule, type TimingOptions } from '../../src/simulate/line-schedule.js';
import { KafkaRecordSink, stationProducer, stationTopicPlans } from '../../src/simulate/kafka-sink.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { decodeXyzTiff } from '../../src/codec/tiff-reader.js';
import { consumeAll, deleteTopics, keyed, testConfig, testKafka, uniqueName } from '../helpers/kafka.js';
import { cliContext } from './cli-context.js';

const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const dir = mkdtempSync(join(tmpdir(), 'mmad-sim-'));
after(async () => {
  await deleteTopics(admin, stationTopicPlans(config).map((p) => p.name));
  await admin.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

const PARTS = 300;
const TIMING: TimingOptions = {
  ratePerSecond: 10,
  rgbIrJitterMs: 3,
  xyzFraction: 0.5,
  xyzDelayMinMs: 1000,
  xyzDelayMaxMs: 5000,
  dropRate: 0.1,
  duplicateRate: 0.1,
  reorderRate: 0.05,
  reorderMaxMs: 2000,
  clockSkewMs: 100,
  burstRate: 0,
  burstSize: 10,
  burstFactor: 5,
};

/** Within 5 standard deviations of a binomial expectation. */
function plausible(count: number, trials: number, p: number): boolean {
  return Math.abs(count - trials * p) <= 5 * Math.sqrt(trials * p * (1 - p)) + 1;
}

test('simulate publishes a line into Kafka: counts per topic, co-partitioned keys, labels apart, faults at their rates', async () => {
  const file = join(dir, 'mmad.json');
  writeFileSync(file, JSON.stringify({ topics: config.topics }));
  const { ctx, lines } = cliContext({
    config: file,
    count: String(PARTS),
    'max-speed': true,
    pool: '6',
    size: '32',
    seed: '7',
    rate: '10',
    'xyz-fraction': '0.5',
    'xyz-delay': '1s..5s',
    drop: '0.1',
    duplicate: '0.1',
    reorder: '0.05',
    'reorder-max': '2s',
    skew: '100ms',
    'ir-jitter': '3ms',
    'burst-rate': '0',
    'defect-rate': '0.5',
    'id-prefix': 'T-',
  });
  assert.equal(await simulateCommand.run(ctx), 0);

  // what the plan says must arrive (the plan is a pure function of the seed)
  const stream = new EmissionStream(new LineSchedule(TIMING, 7), PARTS);
  const planned = { rgb: 0, ir: 0, xyz: 0, ct: 0 };
  for (let e = stream.next(); e !== undefined; e = stream.next()) if (e.kind === 'frame') planned[e.frame.modality]++;
  const report = lines.find((l) => l.startsWith('frames: '));
  assert.equal(report, `frames: ${planned.rgb + planned.ir + planned.xyz} (rgb ${planned.rgb}, ir ${planned.ir}, xyz ${planned.xyz})   labels: ${PARTS}`);

  const t = config.topics;
  const topics = [t.inputs.rgb, t.inputs.ir, t.inputs.xyz, t.labels];
  const total = planned.rgb + planned.ir + planned.xyz + PARTS;
  const records = (await consumeAll(kafka, config, topics)).map(keyed);
  assert.equal(records.length, total, 'nothing more than planned arrives');
  const on = (topic: string): typeof records => records.filter((r) => r.topic === topic);
  assert.equal(on(t.inputs.rgb).length, planned.rgb);
  assert.equal(on(t.inputs.ir).length, planned.ir);
  assert.equal(on(t.inputs.xyz).length, planned.xyz);
  assert.equal(on(t.labels).length, PARTS);

  // one partitioner for all: every record of a sample on the same partition number, the one partitionFor names
  const partitionOf = new Map<string, number>();
  for (const r of records) {
    assert.equal(r.partition, partitionFor(r.key, 3), `${r.topic} ${r.key}`);
    const seen = partitionOf.get(r.key);
    if (seen !== undefined) assert.equal(r.partition, seen, `${r.key} is co-partitioned`);
    partitionOf.set(r.key, r.partition);
  }
  const perPartition = [0, 1, 2].map((p) => on(t.labels).filter((r) => r.partition === p).length);
  assert.ok(perPartition.every((n) => n > 50), `labels spread over partitions: ${perPartition.join(',')}`);
  for (const line of lines.filter((l) => l.trimStart().startsWith(t.inputs.rgb))) {
    assert.match(line, new RegExp(`total=${planned.rgb}$`));
  }

  const catalog = SchemaCatalog.load();
  const frameCodec = AvroCodec.local(catalog, 'Frame');
  const labelCodec = AvroCodec.local(catalog, 'Label');
  const labels = new Map<string, Label>();
  for (const r of on(t.labels)) labels.set(r.key, labelCodec.decodeSync(r.value));
  assert.equal(labels.size, PARTS, 'one label per sample');
  const defective = [...labels.values()].filter((l) => l.defectType !== 'good');
  assert.ok(plausible(defective.length, PARTS, 0.5), `${defective.length} defective`);
  assert.ok(defective.every((l) => l.mask !== null && l.defectPixels > 0 && l.productType === 'battery_lid'));
  assert.ok([...labels.values()].every((l) => l.source === 'simulator' && l.seed !== null && l.width === 32));

  const frames = new Map<string, Frame[]>();
  let duplicates = 0;
  const seenValues = new Set<string>();
  for (const r of records.filter((x) => x.topic !== t.labels)) {
    const f = frameCodec.decodeSync(r.value);
    assert.equal(f.sampleId, r.key);
    // the frames carry what a sensor knows, never the ground truth
    assert.deepEqual(Object.keys(f.attributes), ['product']);
    const id = `${r.topic}/${r.value.toString('base64')}`;
    if (seenValues.has(id)) duplicates++;
    seenValues.add(id);
    frames.set(r.key, [...(frames.get(r.key) ?? []), f]);
  }
  const plannedFrames = [...labels.values()].reduce((n, l) => n + l.modalitiesSent.length + l.modalitiesDropped.length, 0);
  const dropped = [...labels.values()].reduce((n, l) => n + l.modalitiesDropped.length, 0);
  const originals = planned.rgb + planned.ir + planned.xyz - duplicates;
  assert.ok(plausible(dropped, plannedFrames, 0.1), `dropped ${dropped} of ${plannedFrames}`);
  assert.ok(plausible(duplicates, originals, 0.1), `duplicated ${duplicates} of ${originals}`);
  assert.ok(dropped > 0 && duplicates > 0);

  for (const [id, label] of labels) {
    const fs = frames.get(id) ?? [];
    assert.deepEqual([...new Set(fs.map((f) => f.modality))].sort(), [...label.modalitiesSent].sort(), `${id}: sent modalities`);
    const expected = [...label.modalitiesSent, ...label.modalitiesDropped].sort();
    for (const f of fs) {
      assert.deepEqual([...present(f.expectedModalities, `${id}: the station's hint`)].sort(), expected, `${id}: the station's hint`);
      assert.equal(f.width, 32);
      assert.equal(f.height, 32);
    }
    const at = (m: string): number | undefined => fs.find((f) => f.modality === m)?.captureTime.getTime();
    const rgb = at('rgb');
    const ir = at('ir');
    const xyz = at('xyz');
    // stamps are whole milliseconds of each sensor's clock: jitter + rounding + the two sensors' skews
    if (rgb !== undefined && ir !== undefined) assert.ok(Math.abs(ir - rgb) <= 3 + 1 + 200, `${id}: rgb and ir ${ir - rgb} ms apart`);
    if (rgb !== undefined && xyz !== undefined) assert.ok(xyz - rgb >= 1000 - 201 && xyz - rgb <= 5000 + 201, `${id}: xyz ${xyz - rgb} ms later`);
  }

  // payloads are what the schema promises
  const sample = present([...frames.values()].find((fs) => fs.length >= 3 && fs.some((f) => f.modality === 'xyz')), 'a sample with all three modalities');
  for (const f of sample) {
    const payload = present(f.payload, `the ${f.modality} payload`);
    if (f.modality === 'rgb') assert.deepEqual(pngHeader(payload), { width: 32, height: 32, bitDepth: 8, colourType: 2, channels: 3, interlaced: false });
    if (f.modality === 'ir') assert.deepEqual(pngHeader(payload), { width: 32, height: 32, bitDepth: 16, colourType: 0, channels: 1, interlaced: false });
    if (f.modality === 'xyz') {
      assert.equal(f.encoding, 'tiff');
      assert.equal(decodeXyzTiff(payload).xyz.length, 32 * 32 * 3);
    }
  }
});

test('the station sink sends one request at a time: what callers hand in meanwhile goes out together, in call order', async () => {
  const topic = uniqueName('sink');
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  const producer = stationProducer(kafka, config);
  await producer.connect();
  let requests = 0;
  let inFlight = 0;
  let overlapped = false;
  const real = producer.sendBatch.bind(producer);
  producer.sendBatch = async (batch) => {
    requests++;
    overlapped ||= ++inFlight > 1;
    try {
      return await real(batch);
    } finally {
      inFlight--;
    }
  };
  try {
    const sink = new KafkaRecordSink(producer);
    const calls = 40;
    // every call hands in two records at once, as a station does with a part's frames
    await Promise.all(
      Array.from({ length: calls }, (_, i) =>
        sink.send([0, 1].map((k) => ({ topic, partition: 0, key: `p${i}`, value: Buffer.from(`${i}.${k}`), timestamp: Date.now() }))),
      ),
    );
    assert.equal(overlapped, false, 'never two requests in flight');
    assert.ok(requests < calls, `${requests} requests for ${calls} calls: calls made while one was in flight went together`);
    const got = (await consumeAll(kafka, config, [topic])).map(keyed);
    assert.deepEqual(
      got.map((r) => r.value.toString()),
      Array.from({ length: calls }, (_, i) => [`${i}.0`, `${i}.1`]).flat(),
    );
  } finally {
    await producer.disconnect();
    await deleteTopics(admin, [topic]);
  }
});
