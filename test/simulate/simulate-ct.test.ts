/**
 * A simulated line with a CT on the real broker: the parts the schedule sends to the CT get a
 * ct frame on the ct input topic (co-partitioned, keyed by sample id) carrying a volume the
 * service's decoder reads; the labels say which parts got one and which scans never came.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { simulateCommand } from '../../src/cli/commands/simulate.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { loadConfig } from '../../src/config/load-config.js';
import { decodeFrame, decodeLimitsOf } from '../../src/inference/preprocess.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { stationTopicPlans } from '../../src/simulate/kafka-sink.js';
import { consumeAll, deleteTopics, keyed, testConfig, testKafka } from '../helpers/kafka.js';
import { cliContext } from './cli-context.js';

const base = testConfig();
const topics = { ...base.topics, inputs: { ...base.topics.inputs, ct: base.topics.inputs.rgb.replace(/\.rgb$/, '.ct') } };
const config = loadConfig({ env: { KAFKA_BROKERS: base.kafka.brokers.join(',') }, overrides: { topics } });
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const dir = mkdtempSync(join(tmpdir(), 'mmad-sim-ct-'));
after(async () => {
  await deleteTopics(admin, stationTopicPlans(config).map((p) => p.name));
  await admin.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

test('simulate --ct-fraction: ct frames with a volume on the ct topic for the parts sent to the CT, announced in every frame, labelled', { timeout: 120_000 }, async () => {
  const file = join(dir, 'mmad.json');
  writeFileSync(file, JSON.stringify({ topics: config.topics, simulate: { ctMissRate: 0.2 } }));
  const PARTS = 24;
  const { ctx, lines } = cliContext({ config: file, count: String(PARTS), 'max-speed': true, pool: '3', size: '32', seed: '3', 'ct-fraction': '0.5', drop: '0', duplicate: '0', 'id-prefix': 'C-' });
  assert.equal(await simulateCommand.run(ctx), 0, lines.join('\n'));
  const catalog = SchemaCatalog.load();
  const frames = AvroCodec.local(catalog, 'Frame');
  const labels = AvroCodec.local(catalog, 'Label');
  const t = config.topics;
  const ctTopic = present(t.inputs.ct, 'the ct topic');
  const records = (await consumeAll(kafka, config, [ctTopic, t.inputs.rgb, t.labels])).map(keyed);
  const ls = records.filter((r) => r.topic === t.labels).map((r) => labels.decodeSync(r.value));
  assert.equal(ls.length, PARTS);
  const sent = new Set(ls.filter((l) => l.modalitiesSent.includes('ct')).map((l) => l.sampleId));
  const missed = ls.filter((l) => l.modalitiesDropped.includes('ct')).map((l) => l.sampleId);
  const cts = records.filter((r) => r.topic === ctTopic);
  assert.ok(sent.size > 0 && sent.size < PARTS, `${sent.size} of ${PARTS} parts scanned`);
  assert.deepEqual(cts.map((r) => r.key).sort(), [...sent].sort(), 'a ct frame for every part the labels say got one, and no other');
  const routed = new Set([...sent, ...missed]);
  for (const r of records.filter((x) => x.topic === t.inputs.rgb)) {
    const f = frames.decodeSync(r.value);
    assert.equal(f.expectedModalities?.includes('ct'), routed.has(f.sampleId), `${f.sampleId}: the hint announces the scan, also one that never comes`);
  }
  for (const r of cts) {
    assert.equal(r.partition, partitionFor(r.key, t.partitions), 'keyed and partitioned like every input');
    const f = frames.decodeSync(r.value);
    assert.deepEqual([f.modality, f.encoding, f.channels, f.dtype, f.width, f.height, f.volume?.depth], ['ct', 'tiff', 1, 'uint16', 16, 16, 32]);
    const label = present(ls.find((l) => l.sampleId === f.sampleId), 'its label');
    assert.ok(f.captureTime.getTime() - label.captureTime.getTime() >= 59_000, 'minutes after the part passed');
    const v = await decodeFrame(f, present(f.payload, 'the volume'), decodeLimitsOf(config));
    assert.deepEqual([v.data.length, v.volume?.depth], [16 * 16 * 32, 32], 'the service decodes the volume');
  }
  assert.ok(lines.some((l) => l.startsWith('frames: ') && l.includes(`, ct ${cts.length})`)), lines.join('\n'));
});
