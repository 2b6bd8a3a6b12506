/**
 * Benchmark of the whole service, figures side by side in one run:
 *
 *   1. Sustained throughput: a backlog of simulated parts (rgb + ir, the
 *      expected-modalities hint on) is published first, then an in-process
 *      stream processor judges it; parts/s from the first frame it reads to
 *      its last event, for each micro-batch size. Where the CPU goes per part:
 *      the model's threads, the main thread, the other threads (decoding,
 *      GC) and the local broker, and the rate those costs allow on this
 *      machine's cores.
 *   2. In the same run, the raw onnxruntime-node throughput of the model the
 *      parts were routed to, at the same batch size, on ready tensors: the
 *      ratio pipeline / raw is the pipeline's efficiency (what decoding,
 *      resizing, joining, Kafka and transactions cost on top of the model).
 *   1b. The ceiling: the same backlog (same input topics, a group and output topics of its
 *      own) through null students, graphs with the shipped students' exact inputs, outputs,
 *      ids and thresholds that only average their inputs' channels
 *      (models/mmad_models/null_students.py, written to out/bench/null-students/ at start;
 *      skipped without models/.venv). What the service costs per part around the model, by
 *      thread role, and the parts/s one core sustains at that cost: the most a replica can
 *      feed to a model that costs it nothing (a GPU), side by side with the real students.
 *      The Kafka client's floor (bench/kafka-floor.ts), once on the last backlog: kafkajs and
 *      Avro alone reading the same frames and writing one event-sized record per part in
 *      transactions, beside the null students' cost: the share of the service's own cost per
 *      part that no change inside the service removes, short of another Kafka client.
 *      Then the peer (bench/peer-compare.ts, `--peer-runs` runs, 0 for none): the same job as a
 *      plain Python consumer, on the null students too, beside `mmad run` as a process of its own
 *      at both guarantees; each output checked, and what each spends around the model per part
 *      as parts/s per core, service over peer (rgb + ir PNG frames only).
 *   3. Latency, at the best batch size. A live line costs more per part than
 *      a backlog (its station and the broker's intake share these cores;
 *      requests and batches are smaller), so a probe run at half the backlog
 *      rate measures the CPU a live part costs (service, station, broker);
 *      the rate those costs allow on this machine's cores is the live line's
 *      sustained throughput. The line then publishes live at 70 % of it, once
 *      the service has its partitions; end-to-end latency of the provisional
 *      events (first frame's arrival to the event being produced) p50/p90/p99
 *      after a 3 s warm-up, against the model's own time for one batch, and
 *      where each part's time and CPU went.
 *   4. Exactly-once against at-least-once: the backlog again at the best batch
 *      size with processing.guarantee = at-least-once; and the same backlog with
 *      input.verifyImageData off (the read-time PNG data check's cost per part).
 *   5. Replay: the best batch size's backlog replayed (`replayRange`: offsets by
 *      timestamp, own group and topics, stops at the end) against its live rate.
 *   6. Peak RSS of the process (service, models, broker client).
 *
 * The broker is KAFKA_BROKERS, a container, or a local one started here.
 *
 *   node --import tsx bench/pipeline.bench.ts [--parts 240] [--batches 1,4,8,16] [--size 256] [--xyz] [--raw] [--latency-seconds 20] [--peer-runs 1]
 *
 * `--xyz` adds an xyz scan (TIFF) to every part, at its rgb + ir capture time, and has the join
 * wait for it as for ir (policy optional; by default xyz is late and refines a provisional rgb+ir
 * verdict), so each part is judged once, by the rgb+ir+xyz student; `--raw` has the station send raw
 * samples (`encoding: raw`, as a camera streaming uncompressed frames) instead of PNG and TIFF files,
 * so no part is decompressed or parsed; `--ceiling-only` runs parts 1 and 1b only (the backlog with the real and
 * the null students, the Kafka client's floor and the peer).
 * `--live-rate R` runs only the latency part, at R parts/s with max batch `--batches`' first
 * value (for investigating latency without the whole suite); `--commit-ms` sets
 * processing.commitIntervalMs, `--intra-op-threads` inference.intraOpThreads; `--timings-out FILE`
 * writes each live provisional event's timings (and when it was written) as JSON lines.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { AnomalyEvent, Modality } from '../src/codec/records.js';
import type { Config } from '../src/config/config-schema.js';
import { loadConfig } from '../src/config/load-config.js';
import { ModelRegistry } from '../src/inference/model-registry.js';
import { provideBroker } from '../src/kafka/provide-broker.js';
import { replayRange } from '../src/replay/replay.js';
import { StreamProcessor } from '../src/runtime/stream-processor.js';
import { SimulatedPartSource } from '../src/simulate/line-simulator.js';
import { createLogger } from '../src/base/logger.js';
import { at, present } from '../src/base/invariant.js';
import { benchTopics, createTopics as createBenchTopics, publishParts, steadyTiming } from './backlog.js';
import { busyThreads, cpuSince, processCpuMs, splitCpu, threadCpuMs, type CpuSplit } from './cpu.js';
import { percentile, printTable } from './harness.js';
import { writeNullStudents } from './null-students.js';
import { kafkaFloorRun, type FloorRun } from './kafka-floor.js';
import { rawThroughput, type RawThroughput } from './raw-ort.js';
import { PEER, comparePeer, serviceName, setUpPeer } from './peer-compare.js';

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: '240' },
    batches: { type: 'string', default: '1,4,8,16' },
    size: { type: 'string', default: '256' },
    'latency-seconds': { type: 'string', default: '20' },
    'live-rate': { type: 'string' },
    'commit-ms': { type: 'string' },
    'intra-op-threads': { type: 'string' },
    'timings-out': { type: 'string' },
    xyz: { type: 'boolean', default: false },
    raw: { type: 'boolean', default: false },
    'ceiling-only': { type: 'boolean', default: false },
    'peer-runs': { type: 'string', default: '1' },
  },
});
const PARTS = Number(values.parts);
const BATCHES = values.batches.split(',').map(Number);
const SIZE = Number(values.size);
const LATENCY_S = Number(values['latency-seconds']);
/** Live events in the first seconds are not counted in the latency figures (warm-up). */
const WARM_UP_S = 3;
/** Length of the live run that measures what a part costs on a live line. */
const PROBE_S = 10;
const LIVE_ONLY = values['live-rate'] === undefined ? undefined : Number(values['live-rate']);
const CEILING_ONLY = values['ceiling-only'];
/** Runs of the peer comparison on the null students after the ceiling (0: none). */
const PEER_RUNS = Number(values['peer-runs']);
/** What every part carries (the station announces it, so the join waits for no other). */
const MODALITIES: Modality[] = values.xyz ? ['rgb', 'ir', 'xyz'] : ['rgb', 'ir'];
const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '-');

const quiet = createLogger({}, 'error');
const runId = Date.now().toString(36);
const base = loadConfig({ env: {} });
const broker = await provideBroker(base, { logger: quiet });
const source = await SimulatedPartSource.create({ product: 'battery_lid', width: SIZE, height: SIZE, seed: 1, defectRate: 0.2, defects: [], poolSize: 16, rawFrames: values.raw });

const TIMING = steadyTiming({ xyzFraction: values.xyz ? 1 : 0 });

function configFor(tag: string, batch: number, guarantee: Config['processing']['guarantee'], verifyImageData = true): Config {
  const p = `bench-${runId}-${tag}`;
  return loadConfig({
    env: {},
    overrides: {
      kafka: { brokers: broker.brokers },
      topics: benchTopics(p),
      input: { groupId: `${p}.service`, verifyImageData },
      ...(values.xyz ? { join: { modalities: { xyz: { policy: 'optional', timeoutMs: 2_000 } } } } : {}),
      processing: { guarantee, ...(values['commit-ms'] === undefined ? {} : { commitIntervalMs: Number(values['commit-ms']) }) },
      inference: { maxBatchSize: batch, ...(values['intra-op-threads'] === undefined ? {} : { intraOpThreads: Number(values['intra-op-threads']) }) },
    },
  });
}

async function publish(config: Config, count: number, pace: boolean, rate: number): Promise<void> {
  await publishParts(config, { source, count, pace, timing: { ...TIMING, ratePerSecond: rate }, logger: quiet });
}

/** A backlog of PARTS parts published to the config's topics, then judged by a processor with that config. */
async function backlogRun(config: Config): Promise<PipelineRun> {
  await createTopics(config);
  await publish(config, PARTS, false, 50);
  const registry = await ModelRegistry.open(config, quiet);
  try {
    return await runPipeline(config, registry, PARTS);
  } finally {
    await registry.close();
  }
}

async function createTopics(config: Config): Promise<void> {
  await createBenchTopics(config, quiet);
}

interface PipelineRun {
  partsPerS: number;
  meanBatch: number;
  model: string;
  /** Provisional events with verdict NOK (each also wrote an alert). */
  nok: number;
  e2e: number[];
  /** Per provisional event: its timings (join wait, preprocess, inference share). */
  timings: AnomalyEvent['timings'][];
  /** Per provisional event: when it was acknowledged, ms since the first frame was read, and its batch size. */
  writtenAt: { ms: number; batch: number }[];
  /** The local broker's CPU time per part while the run lasted, ms (NaN when not measurable). */
  brokerCpuMsPerPart: number;
  /** CPU time per thread of this process while the run lasted, ms (thread id → ms). */
  threadMs: Map<string, number>;
  /** Main-thread event-loop delay while the run lasted, ms (p50, p99, max). */
  loopDelay: { p50: number; p99: number; max: number };
}

/** Runs the processor until `count` provisional events were written; `during` runs alongside (a live publisher). */
async function runPipeline(config: Config, registry: ModelRegistry, count: number, during?: () => Promise<void>): Promise<PipelineRun> {
  const times: number[] = [];
  const e2e: number[] = [];
  const timings: AnomalyEvent['timings'][] = [];
  const writtenAt: PipelineRun['writtenAt'] = [];
  const loop = monitorEventLoopDelay({ resolution: 5 });
  let model = '';
  let nok = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  let firstRead: number | undefined;
  const processor = new StreamProcessor(config, registry, {
    logger: quiet,
    onDelivery: (d) => {
      if (d.records > 0) firstRead ??= performance.now();
    },
    onWritten: (j, outputs) => {
      const e: AnomalyEvent | null = outputs.event;
      if (e === null || e.revision !== 1) return;
      times.push(performance.now());
      writtenAt.push({ ms: performance.now() - (firstRead ?? 0), batch: j?.batchSize ?? 0 });
      e2e.push(e.timings.endToEndMs);
      timings.push(e.timings);
      model = e.model?.id ?? model;
      if (e.verdict === 'NOK') nok++;
      if (times.length === count) done();
    },
  });
  const before = registry.models.map((m) => ({ ...m.batcher.stats }));
  await processor.start();
  await processor.assigned; // tasks running: a live publisher started now meets a service that is reading, not joining its group
  const broker0 = brokerCpuMs();
  const threads0 = threadCpuMs();
  loop.enable();
  await during?.();
  await finished;
  loop.disable();
  const broker1 = brokerCpuMs();
  const threadMs = cpuSince(threads0);
  await processor.stop();
  const runs = registry.models.reduce((s, m, i) => s + m.batcher.stats.runs - at(before, i).runs, 0);
  const samples = registry.models.reduce((s, m, i) => s + m.batcher.stats.samples - at(before, i).samples, 0);
  // from the first frame read to the last event: a backlog's first events come out only after
  // many parts were read and decoded, so counting from the first event would flatter the rate
  const span = (at(times, times.length - 1) - present(firstRead, 'the time of the first frame read')) / 1000;
  return { partsPerS: times.length / span, meanBatch: samples / Math.max(1, runs), model, nok, e2e, timings, writtenAt, brokerCpuMsPerPart: (broker1 - broker0) / count, threadMs, loopDelay: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 } };
}

/** The best backlog run: its batch size, its figures and the model's alone at that size. */
interface Best {
  batch: number;
  run: PipelineRun;
  raw: RawThroughput;
}

/** `--live-rate`: the live part alone; the model's batch time is measured here instead of in the backlog runs. */
async function liveOnlyBaseline(batch: number): Promise<Best> {
  const registry = await ModelRegistry.open(configFor('raw', batch, 'exactly-once'), quiet);
  try {
    const model = present(registry.route(MODALITIES), `a model for ${MODALITIES.join('+')}`).model.spec.id; // where the line's parts go
    const raw = await rawThroughput(registry, model, batch, 1500);
    return { batch, raw, run: { partsPerS: NaN, meanBatch: 0, model, nok: 0, e2e: [], timings: [], writtenAt: [], brokerCpuMsPerPart: NaN, threadMs: new Map(), loopDelay: { p50: 0, p99: 0, max: 0 } } };
  } finally {
    await registry.close();
  }
}

/** `config`'s backlog through the null students of `manifest`: the same input topics, a group and output topics of its own. */
function withNullStudents(config: Config, manifest: string): Config {
  const p = `${config.input.groupId}.null`;
  return {
    ...config,
    input: { ...config.input, groupId: p },
    topics: { ...config.topics, events: `${p}.events`, alerts: `${p}.alerts`, deadLetters: `${p}.dlq` },
    inference: { ...config.inference, manifest },
  };
}

/** A backlog run and its CPU per part by thread role. */
interface CostedRun {
  run: PipelineRun;
  cpu: CpuSplit;
}

/** The backlog already published to `config`'s input topics, judged again by the null students. */
async function nullStudentsRun(config: Config, batch: number, manifest: string): Promise<CostedRun> {
  const nullConfig = withNullStudents(config, manifest);
  await createTopics(nullConfig);
  const registry = await ModelRegistry.open(nullConfig, quiet);
  try {
    const run = await runPipeline(nullConfig, registry, PARTS);
    const { cpu } = await modelAloneAndCost(registry, run, batch, PARTS, 1500);
    return { run, cpu };
  } finally {
    await registry.close();
  }
}

/** The real and the null students' runs of one backlog side by side, and null / real. */
function ceilingRows(batch: number, real: CostedRun, zero: CostedRun): Record<string, string | number>[] {
  const cores = availableParallelism();
  const service = (c: CostedRun): number => c.cpu.model + c.cpu.main + c.cpu.other;
  const figures: [string, (c: CostedRun) => number, number][] = [
    ['parts/s', (c) => c.run.partsPerS, 1],
    ['mean batch', (c) => c.run.meanBatch, 1],
    ['service CPU ms/part', service, 1],
    ['parts/s per core', (c) => 1000 / service(c), 1],
    ['model threads', (c) => c.cpu.model, 1],
    ['main thread', (c) => c.cpu.main, 1],
    ['other threads', (c) => c.cpu.other, 1],
    ['broker', (c) => c.run.brokerCpuMsPerPart, 1],
    [`CPU-bound parts/s on ${cores} cores with the broker`, (c) => (cores * 1000) / (service(c) + c.run.brokerCpuMsPerPart), 1],
  ];
  const row = (students: string, c: CostedRun): Record<string, string | number> => ({
    'max batch': batch,
    students,
    ...Object.fromEntries(figures.map(([name, f, d]) => [name, fmt(f(c), d)])),
    NOK: c.run.nok,
  });
  return [
    row('real', real),
    row('null', zero),
    { 'max batch': batch, students: 'null / real', ...Object.fromEntries(figures.map(([name, f]) => [name, fmt(f(zero) / f(real), 2)])) },
  ];
}

/** CPU time the local broker's JVM has used so far, ms (NaN for an external or container broker). */
const brokerCpuMs = (): number => processCpuMs(broker.local?.pid);

/**
 * The model alone after a run (on the run's registry, at `batch`), and the run's CPU per part split by thread
 * role: the model's threads are the ones busy while it runs alone. `total` adds the broker's share.
 */
async function modelAloneAndCost(registry: ModelRegistry, run: PipelineRun, batch: number, count: number, ms?: number): Promise<{ raw: RawThroughput; cpu: CpuSplit; total: number }> {
  const before = threadCpuMs();
  const raw = await rawThroughput(registry, run.model, batch, ms);
  const cpu = splitCpu(run.threadMs, busyThreads(cpuSince(before)), count);
  return { raw, cpu, total: cpu.model + cpu.main + cpu.other + run.brokerCpuMsPerPart };
}

/** A live line at `rate` parts/s for `seconds` through a fresh processor: its events, the model alone at batch 1, CPU per part. */
async function liveRun(batch: number, rate: number, seconds: number): Promise<{ rate: number; live: PipelineRun; one: RawThroughput; cpu: CpuSplit; totalCpuMs: number }> {
  const config = configFor(`live-${Math.round(rate * 10)}`, batch, 'exactly-once');
  await createTopics(config);
  const registry = await ModelRegistry.open(config, quiet);
  const parts = Math.max(20, Math.round(rate * seconds));
  try {
    const live = await runPipeline(config, registry, parts, async () => {
      void publish(config, parts, true, rate);
    });
    const { raw: one, cpu, total } = await modelAloneAndCost(registry, live, 1, parts, 1500);
    return { rate, live, one, cpu, totalCpuMs: total };
  } finally {
    await registry.close();
  }
}

/**
 * What the service spends around the model beside the peer's (bench/peer-compare.ts): the null students
 * in both, each a process of its own on a backlog of PARTS parts, and the ratio that sizes a GPU's feeders,
 * parts/s per core (1000 / CPU ms per part), service over peer. rgb + ir PNG only, as the peer reads.
 */
async function peerBeside(manifest: string): Promise<void> {
  if (values.xyz || values.raw) {
    console.log('(the peer is not run: it reads rgb + ir PNG frames, not xyz or raw ones)');
    return;
  }
  const notReady = setUpPeer();
  if (notReady !== undefined) {
    console.log(`(the peer is not run: ${notReady})`);
    return;
  }
  const figures = await comparePeer({ parts: PARTS, runs: PEER_RUNS, size: SIZE, manifest, nullStudents: true, broker });
  const mean = (name: string, f: (x: (typeof figures)[number]) => number): number => {
    const of = figures.filter((x) => x.name === name);
    return of.reduce((a, x) => a + f(x), 0) / of.length;
  };
  const peerCpu = mean(PEER, (x) => x.cpuMsPerPart);
  for (const name of [serviceName('at-least-once'), serviceName('exactly-once')]) {
    const cpu = mean(name, (x) => x.cpuMsPerPart);
    console.log(
      `around the model, ${name} (mmad run) beside the peer: ${fmt(cpu, 1)} against ${fmt(peerCpu, 1)} CPU ms per part, ` +
        `${fmt(1000 / cpu)} against ${fmt(1000 / peerCpu)} parts/s per core: ${fmt(peerCpu / cpu, 2)}× the peer's (mean of ${String(PEER_RUNS)} run${PEER_RUNS === 1 ? '' : 's'})`,
    );
  }
}

console.log(`pipeline benchmark — ${broker.kind} broker, battery_lid ${MODALITIES.join('+')} ${SIZE}×${SIZE} ${values.raw ? 'raw' : 'PNG/TIFF'} frames, ${PARTS} parts per run, node ${process.version}`);
const rows: Record<string, string | number>[] = [];
const cpuRows: Record<string, string | number>[] = [];
const ceiling: Record<string, string | number>[] = [];
const nullManifest = LIVE_ONLY === undefined ? writeNullStudents(base.inference.manifest) : undefined;
/** What publishing the backlog cost (the live runs pay it while the service runs): station CPU, broker CPU, per part. */
const publishing: { cpu: number; broker: number }[] = [];
/** The Kafka client's floor beside the null students' run of the same backlog. */
let floor: { batch: number; zero: CostedRun; run: FloorRun } | undefined;
/** About an event's size with its 64×64 heatmap. */
const FLOOR_EVENT_BYTES = 1536;
let best: Best | undefined;
try {
  for (const batch of LIVE_ONLY === undefined ? BATCHES : []) {
    const config = configFor(`b${batch}`, batch, 'exactly-once');
    await createTopics(config);
    const pub0 = { cpu: process.cpuUsage(), broker: brokerCpuMs() };
    await publish(config, PARTS, false, 50);
    const pubCpu = process.cpuUsage(pub0.cpu);
    const pubBroker = brokerCpuMs();
    publishing.push({ cpu: (pubCpu.user + pubCpu.system) / 1000 / PARTS, broker: (pubBroker - pub0.broker) / PARTS });
    const registry = await ModelRegistry.open(config, quiet);
    let real: CostedRun;
    try {
      const run = await runPipeline(config, registry, PARTS);
      const { raw, cpu, total } = await modelAloneAndCost(registry, run, batch, PARTS);
      real = { run, cpu };
      rows.push({
        'max batch': batch,
        model: run.model,
        'pipeline parts/s': fmt(run.partsPerS),
        'mean batch': fmt(run.meanBatch, 1),
        'raw ORT samples/s': fmt(raw.samplesPerS),
        'ORT ms/batch': fmt(raw.batchMs, 1),
        efficiency: fmt(run.partsPerS / raw.samplesPerS, 2),
      });
      cpuRows.push({
        'max batch': batch,
        'model threads': fmt(cpu.model, 1),
        'main thread': fmt(cpu.main, 1),
        'decode, GC (other threads)': fmt(cpu.other, 1),
        broker: fmt(run.brokerCpuMsPerPart, 1),
        total: fmt(total, 1),
        'model share': fmt(cpu.model / total, 2),
        'raw ORT alone': fmt(raw.cpuMsPerSample, 1),
        [`CPU-bound parts/s on ${availableParallelism()} cores`]: fmt((availableParallelism() * 1000) / total),
      });
      if (best === undefined || run.partsPerS > best.run.partsPerS) best = { batch, run, raw };
    } finally {
      await registry.close();
    }
    // the null students once the real ones' registry is closed, on the backlog published above
    if (nullManifest !== undefined) {
      const zero = await nullStudentsRun(config, batch, nullManifest);
      ceiling.push(...ceilingRows(batch, real, zero));
      // the Kafka client's floor, once, on the last backlog
      if (batch === at(BATCHES, BATCHES.length - 1)) floor = { batch, zero, run: await kafkaFloorRun(config, PARTS, MODALITIES.length, FLOOR_EVENT_BYTES, quiet) };
    }
  }
  if (LIVE_ONLY === undefined) {
    printTable('sustained throughput (backlog, exactly-once) vs raw onnxruntime-node at the same batch size', rows);
    printTable('where the CPU goes, ms per part (the model\'s threads are those busy while it ran alone; the broker shares these cores)', cpuRows);
    const mean = (f: (p: { cpu: number; broker: number }) => number): number => publishing.reduce((a, p) => a + f(p), 0) / publishing.length;
    console.log(`publishing the backlog (the simulated station, in this process): ${fmt(mean((p) => p.cpu))} ms CPU per part, broker ${fmt(mean((p) => p.broker))} ms CPU per part`);
  }
  if (ceiling.length > 0) {
    printTable(
      'the ceiling: the same backlog through null students (same ids, inputs, outputs, thresholds; the graph only averages channels), CPU ms per part by thread role; ' +
        'parts/s per core = 1000 / service CPU ms per part (the broker elsewhere)',
      ceiling,
    );
    console.log('(null students call every part OK, so their runs write no alerts; NOK counts the real ones\' provisional NOK verdicts)');
  }
  if (floor !== undefined) {
    const { zero, run } = floor;
    console.log(
      `the Kafka client's floor (kafkajs and Avro alone on the same backlog: every frame read read_committed and decoded, one ${FLOOR_EVENT_BYTES}-byte record per part written ` +
        `in a transaction with the offsets of each fetched batch; nothing else): ${fmt(run.main, 1)} ms main thread + ${fmt(run.other, 1)} ms other threads per part ` +
        `(${fmt(run.partsPerS)} parts/s), against the null students' ${fmt(zero.cpu.main, 1)} + ${fmt(zero.cpu.other, 1)} at max batch ${floor.batch}: ` +
        `${fmt((run.main + run.other) / (zero.cpu.main + zero.cpu.other + zero.cpu.model), 2)} of the service's own cost per part`,
    );
  }
  if (nullManifest !== undefined && PEER_RUNS > 0) await peerBeside(nullManifest);

  if (!CEILING_ONLY) {
    // the live line, the guarantees, the PNG check and replay, at the best batch size
    const b = best ?? (await liveOnlyBaseline(at(BATCHES, 0)));
    let rate: number;
    if (LIVE_ONLY === undefined) {
      // a live line costs more per part than a backlog (its station and the broker's intake share these cores, and
      // requests and batches are smaller): measure that cost at half the backlog rate, take the rate those costs
      // allow on these cores as the line's sustained throughput, and run the latency test at 70 % of it
      const probe = await liveRun(b.batch, 0.5 * b.run.partsPerS, PROBE_S);
      const capacity = (availableParallelism() * 1000) / probe.totalCpuMs;
      rate = 0.7 * capacity;
      printTable('sustained throughput of a live line (the station publishing from this process, the broker, the service: all on these cores)', [
        { '': `probe at half the backlog rate (${fmt(probe.rate)} parts/s, ${PROBE_S} s): CPU ms per part`, value: fmt(probe.totalCpuMs) },
        { '': `sustained parts/s on ${availableParallelism()} cores at that cost`, value: fmt(capacity) },
        { '': '70 %: the latency test\'s rate', value: fmt(rate) },
      ]);
    } else rate = LIVE_ONLY;
    const { live, one, cpu: liveCpu, totalCpuMs: liveTotal } = await liveRun(b.batch, rate, LATENCY_S + WARM_UP_S);
    if (values['timings-out'] !== undefined) {
      writeFileSync(values['timings-out'], live.timings.map((t, i) => JSON.stringify({ ...t, ...live.writtenAt[i] })).join('\n') + '\n');
    }
    // steady state: the events after the first WARM_UP_S seconds (first batches of each size, producers' first
    // transactions, the station catching up with its schedule after connecting)
    const warm = live.writtenAt.findIndex((w) => w.ms >= WARM_UP_S * 1000);
    const from = warm < 0 ? live.e2e.length : warm;
    const steady = live.e2e.slice(from);
    printTable(`live at ${fmt(rate)} parts/s (max batch ${b.batch}, ${steady.length} parts after ${WARM_UP_S} s): first frame → provisional event`, [
      { '': 'p50 ms', value: fmt(percentile(steady, 0.5), 0) },
      { '': 'p90 ms', value: fmt(percentile(steady, 0.9), 0) },
      { '': 'p99 ms', value: fmt(percentile(steady, 0.99), 0) },
      { '': 'model ms (batch 1 / batch max)', value: `${fmt(one.batchMs, 1)} / ${fmt(b.raw.batchMs, 1)}` },
      { '': 'target p99 ≤ model (batch max) + 100 ms', value: percentile(steady, 0.99) <= b.raw.batchMs + 100 ? 'met' : 'missed' },
    ]);
    console.log(
      `CPU per part while live: model threads ${fmt(liveCpu.model)}, main thread (service and station) ${fmt(liveCpu.main)}, ` +
        `other threads ${fmt(liveCpu.other)}, broker ${fmt(live.brokerCpuMsPerPart)}; total ${fmt(liveTotal)} ms = ${fmt((liveTotal * rate) / 10 / availableParallelism(), 0)} % of ${availableParallelism()} cores`,
    );
    const parts = live.timings.slice(from);
    const split = (name: string, of: (t: AnomalyEvent['timings']) => number): Record<string, string> => {
      const xs = parts.map(of);
      return { 'share of end-to-end': name, 'p50 ms': fmt(percentile(xs, 0.5), 1), 'p99 ms': fmt(percentile(xs, 0.99), 1) };
    };
    printTable('where the live latency goes (per event; "rest" = queueing for the judge, micro-batch wait, output building)', [
      split('join wait (first frame → released)', (t) => t.joinWaitMs),
      split('decode + preprocess', (t) => t.preprocessMs),
      split('inference (share of its batch)', (t) => t.inferenceMs),
      split('rest', (t) => t.endToEndMs - t.joinWaitMs - t.preprocessMs - t.inferenceMs),
      { 'share of end-to-end': 'event-loop delay while live', 'p50 ms': fmt(live.loopDelay.p50, 1), 'p99 ms': fmt(live.loopDelay.p99, 1) },
    ]);

    if (LIVE_ONLY === undefined) {
      const alo = await backlogRun(configFor('alo', b.batch, 'at-least-once'));
      const plain = await backlogRun(configFor('noverify', b.batch, 'exactly-once', false));
      const cpuPerPart = (r: PipelineRun): number => [...r.threadMs.values()].reduce((a, v) => a + v, 0) / PARTS;
      printTable(`read-time PNG image-data check (input.verifyImageData), max batch ${b.batch}, exactly-once`, [
        { verifyImageData: 'true (default)', 'parts/s': fmt(b.run.partsPerS), 'process CPU ms/part': fmt(cpuPerPart(b.run)), ratio: '1.00' },
        { verifyImageData: 'false', 'parts/s': fmt(plain.partsPerS), 'process CPU ms/part': fmt(cpuPerPart(plain)), ratio: fmt(plain.partsPerS / b.run.partsPerS, 2) },
      ]);
      printTable(`delivery guarantee, max batch ${b.batch}`, [
        { guarantee: 'exactly-once', 'parts/s': fmt(b.run.partsPerS), ratio: '1.00' },
        { guarantee: 'at-least-once', 'parts/s': fmt(alo.partsPerS), ratio: fmt(alo.partsPerS / b.run.partsPerS, 2) },
      ]);
      const replayOf = configFor(`b${b.batch}`, b.batch, 'exactly-once');
      const replayTopic = `${replayOf.topics.events}.replay`;
      const replayConfig: Config = {
        ...replayOf,
        input: { ...replayOf.input, groupId: `${replayOf.input.groupId}.replay` },
        topics: { ...replayOf.topics, events: replayTopic, alerts: `${replayTopic}.alerts`, deadLetters: `${replayTopic}.deadletters` },
      };
      const replayRegistry = await ModelRegistry.open(replayConfig, quiet);
      try {
        const r = await replayRange(replayConfig, replayRegistry, { from: Number.NEGATIVE_INFINITY, to: Number.POSITIVE_INFINITY, logger: quiet });
        const partsPerS = r.eventsOut.length / (r.elapsedMs / 1000);
        printTable(`replay of the max-batch-${b.batch} backlog (own group and topics, stops at the end; elapsed includes start-up and the final flush)`, [
          { run: 'live (backlog), first to last event', 'parts/s': fmt(b.run.partsPerS), ratio: '1.00' },
          { run: `replay, ${r.records} frames in ${fmt(r.elapsedMs / 1000)} s`, 'parts/s': fmt(partsPerS), ratio: fmt(partsPerS / b.run.partsPerS, 2) },
        ]);
      } finally {
        await replayRegistry.close();
      }
    }
  }
  console.log(`\npeak RSS ${fmt(process.resourceUsage().maxRSS / 1024, 0)} MiB (this process: all the manifest's students loaded per run, processor, clients, simulator pool)`);
} finally {
  await broker.stop();
}
