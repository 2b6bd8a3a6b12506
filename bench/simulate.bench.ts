/**
 * Benchmark of the simulator, figures measured side by side in one run:
 *   - part generation (render only) at 256×256, per product type;
 *   - encoding cost per modality (rgb PNG, ir 16-bit PNG, xyz TIFF, gt PNG);
 *   - writing a dataset to disk;
 *   - publishing to a real broker at full speed from a pre-rendered pool
 *     (KAFKA_BROKERS, or a broker started here with provideBroker).
 * Ratios put the stages in relation: how much faster publishing is than
 * rendering is why load tests use a pool.
 *
 *   node --import tsx bench/simulate.bench.ts [--parts 12] [--publish 600]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load-config.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { provideBroker } from '../src/kafka/provide-broker.js';
import { writeDataset } from '../src/simulate/dataset-writer.js';
import { encodeIrPng, encodeMaskPng, encodeRgbPng } from '../src/simulate/image-codec.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopicPlans, stationTopics } from '../src/simulate/kafka-sink.js';
import { SimulatedPartSource } from '../src/simulate/line-simulator.js';
import { generatePart, type GeneratedPart } from '../src/simulate/part-generator.js';
import { PRODUCTS } from '../src/simulate/products/index.js';
import { runStation, throughput } from '../src/simulate/station-publisher.js';
import { encodeXyzTiff } from '../src/codec/tiff-writer.js';
import { createLogger } from '../src/base/logger.js';
import { at } from '../src/base/invariant.js';
import { steadyTiming } from './backlog.js';

const { values } = parseArgs({ options: { parts: { type: 'string', default: '12' }, publish: { type: 'string', default: '600' } } });
const PARTS = Number(values.parts);
const PUBLISH = Number(values.publish);
const SIZE = 256;
const fmt = (v: number, d = 1): string => v.toFixed(d);

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(at(widths, i)) : c.padStart(at(widths, i)))).join('  ');
}

console.log(`simulator benchmark — ${SIZE}×${SIZE}, node ${process.version}, ${PARTS} parts per product\n`);

// 1. generation and encoding, per product
interface Gen {
  name: string;
  renderMs: number;
  encodeMs: Record<'rgb' | 'ir' | 'xyz' | 'gt', number>;
  bytes: Record<'rgb' | 'ir' | 'xyz' | 'gt', number>;
}
const gens: Gen[] = [];
for (const product of PRODUCTS) {
  generatePart({ product, seed: 'warm-up', defect: null, width: SIZE }); // JIT warm-up
  const parts: GeneratedPart[] = [];
  const t0 = performance.now();
  for (let i = 0; i < PARTS; i++) parts.push(generatePart({ product, seed: i, defect: i % 2 === 0 ? null : at(product.defects, i % product.defects.length), width: SIZE }));
  const renderMs = (performance.now() - t0) / PARTS;
  const encodeMs = { rgb: 0, ir: 0, xyz: 0, gt: 0 };
  const bytes = { rgb: 0, ir: 0, xyz: 0, gt: 0 };
  for (const p of parts) {
    // one at a time, so each figure is the cost of one encode (libvips may use more than one thread for it)
    let t = performance.now();
    bytes.rgb += (await encodeRgbPng(p.rgb, SIZE, SIZE)).length;
    encodeMs.rgb += performance.now() - t;
    t = performance.now();
    bytes.ir += (await encodeIrPng(p.ir, SIZE, SIZE)).length;
    encodeMs.ir += performance.now() - t;
    t = performance.now();
    bytes.xyz += encodeXyzTiff(p.xyz, SIZE, SIZE).length;
    encodeMs.xyz += performance.now() - t;
    t = performance.now();
    bytes.gt += (await encodeMaskPng(p.mask, SIZE, SIZE)).length;
    encodeMs.gt += performance.now() - t;
  }
  for (const k of ['rgb', 'ir', 'xyz', 'gt'] as const) {
    encodeMs[k] /= PARTS;
    bytes[k] /= PARTS;
  }
  gens.push({ name: product.name, renderMs, encodeMs, bytes });
}

const w1 = [26, 18, 18, 10];
console.log('generation (render only: geometry, scanner, camera, thermal)');
console.log(row(['', ...gens.map((g) => g.name), `ratio`], w1));
console.log(row(['ms per part', ...gens.map((g) => fmt(g.renderMs)), fmt(at(gens, 1).renderMs / at(gens, 0).renderMs, 2)], w1));
console.log(row(['parts/s', ...gens.map((g) => fmt(1000 / g.renderMs)), fmt(at(gens, 0).renderMs / at(gens, 1).renderMs, 2)], w1));
console.log('');
console.log('encoding per part (ms, KB), and its share of render + encode');
const w2 = [26, 18, 18, 10];
console.log(row(['', ...gens.map((g) => g.name), 'share'], w2));
for (const k of ['rgb', 'ir', 'xyz', 'gt'] as const) {
  const label = { rgb: 'rgb 8-bit PNG', ir: 'ir 16-bit PNG', xyz: 'xyz float TIFF', gt: 'gt 8-bit PNG' }[k];
  const share = gens.reduce((s, g) => s + g.encodeMs[k] / (g.renderMs + Object.values(g.encodeMs).reduce((a, b) => a + b, 0)), 0) / gens.length;
  console.log(row([label, ...gens.map((g) => `${fmt(g.encodeMs[k], 2)} ms ${fmt(g.bytes[k] / 1024, 0)} KB`), `${fmt(100 * share, 0)}%`], w2));
}
const fullMs = gens.map((g) => g.renderMs + Object.values(g.encodeMs).reduce((a, b) => a + b, 0));
console.log(row(['render + encode parts/s', ...fullMs.map((m) => fmt(1000 / m)), ''], w2));
console.log('');

// 2. dataset writing (render, encode and write overlap)
const dir = mkdtempSync(join(tmpdir(), 'mmad-bench-'));
try {
  const s = await writeDataset({
    root: dir,
    product: 'battery_lid',
    seed: 1,
    width: SIZE,
    height: SIZE,
    train: PARTS,
    validation: 0,
    test: 1,
    defects: ['dent', 'crack', 'hot_spot'],
    defectSize: 1,
    defectContrast: 1,
    pngCompressionLevel: 6,
  });
  const datasetRate = s.samples / (s.elapsedMs / 1000);
  console.log(`dataset write (battery_lid, ${s.samples} samples, ${s.files} files): ${fmt(datasetRate)} samples/s, ${fmt(s.bytes / 1e6 / (s.elapsedMs / 1000))} MB/s`);
  console.log(`  ratio to render + encode one at a time: ${fmt(datasetRate / (1000 / at(fullMs, 0)), 2)}× (render of one sample overlaps encoding/writing of the previous)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log('');

// 3. publishing to a real broker from a pool, at full speed
const quiet = createLogger({}, 'error');
const prefix = `bench-${Date.now().toString(36)}`;
const base = loadConfig({
  overrides: {
    topics: {
      inputs: { rgb: `${prefix}.rgb`, ir: `${prefix}.ir`, xyz: `${prefix}.xyz` },
      events: `${prefix}.events`,
      alerts: `${prefix}.alerts`,
      deadLetters: `${prefix}.dlq`,
      labels: `${prefix}.labels`,
    },
  },
});
const broker = await provideBroker(base, { logger: quiet });
const config = { ...base, kafka: { ...base.kafka, brokers: broker.brokers } };
const kafka = createKafka(config, config.kafka.brokers, quiet);
const admin = kafka.admin();
const producer = stationProducer(kafka, config);
try {
  await admin.connect();
  const topics = await stationTopics(admin, config);
  const codecs = await stationCodecs(config, topics);
  await producer.connect();
  const rows: [string, ReturnType<typeof throughput>, number][] = [];
  for (const [name, xyzFraction] of [
    ['rgb+ir, xyz for 30%', 0.3],
    ['rgb+ir+xyz every part', 1],
  ] as const) {
    const source = await SimulatedPartSource.create({ product: 'battery_lid', width: SIZE, height: SIZE, seed: 1, defectRate: 0.2, defects: [], poolSize: 16 });
    const report = await runStation({
      source,
      topics,
      sink: new KafkaRecordSink(producer),
      codecs,
      identity: { line: 'bench', station: 'bench' },
      timing: steadyTiming({ xyzFraction, xyzDelayMaxMs: 2000 }),
      scheduleSeed: 1,
      count: PUBLISH,
      pace: false,
      idPrefix: `${prefix}-${xyzFraction}-`,
    });
    rows.push([name, throughput(report), report.parts / (report.elapsedMs / 1000)]);
  }
  console.log(`publish to ${broker.kind} broker ${broker.brokers.join(',')} (pool of 16, ${PUBLISH} parts, idempotent producer, acks=all)`);
  const w3 = [24, 12, 10, 10, 22];
  console.log(row(['', 'frames/s', 'MB/s', 'parts/s', 'vs render+encode'], w3));
  for (const [name, t, partsPerS] of rows) {
    console.log(row([name, fmt(t.framesPerSecond), fmt(t.megabytesPerSecond), fmt(partsPerS), `${fmt(partsPerS / (1000 / at(fullMs, 0)), 1)}×`], w3));
  }
} finally {
  await producer.disconnect().catch(() => undefined);
  const names = stationTopicPlans(config).map((p) => p.name);
  await admin.deleteTopics({ topics: names, timeout: 30_000 }).catch(() => undefined);
  await admin.disconnect().catch(() => undefined);
  await broker.stop();
}
