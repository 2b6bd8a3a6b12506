/**
 * Fault injection, the way Kafka's own system tests check exactly-once: a
 * simulated line (duplicates, reordering, drops) published into a real
 * broker, N service instances (`mmad run` processes) in one consumer group,
 * instances killed with SIGKILL and restarted at random, the broker itself
 * restarted once; then a verifier reads the outputs read_committed and checks
 * every sample against a clean run of the same input:
 *   - every part in the input has exactly one event per revision (lost = 0, doubled = 0);
 *   - verdicts, scores, models and modalities equal those of the clean run;
 *   - no dead letter for a valid frame.
 *
 * Used by test/faults/fault-injection.test.ts (a size that fits CI) and by
 * `npm run faults` (repeated runs with different seeds, larger sizes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kafka } from 'kafkajs';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import type { Config } from '../../src/config/config-schema.js';
import { loadConfig } from '../../src/config/load-config.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { sameDecision } from '../../src/replay/diff.js';
import { summarise } from '../../src/replay/event-summary.js';
import { createKafka, createConsumer, frameConsumerConfig } from '../../src/kafka/kafka-client.js';
import { LocalKraftBroker } from '../../src/kafka/local-kraft.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { StreamProcessor } from '../../src/runtime/stream-processor.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopics } from '../../src/simulate/kafka-sink.js';
import { SimulatedPartSource } from '../../src/simulate/line-simulator.js';
import { runStation } from '../../src/simulate/station-publisher.js';
import { createLogger } from '../../src/base/logger.js';
import { present } from '../../src/base/invariant.js';
import { consumedAll, serviceEnv } from '../helpers/kafka.js';
import { TEST_MANIFEST } from '../helpers/models.js';
import { xorshift } from '../helpers/random.js';

const BIN = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');

export interface FaultSuiteOptions {
  seed: number;
  parts: number;
  instances: number;
  partitions: number;
  kills: number;
  /** Instances frozen (SIGSTOP) for longer than the session timeout, then woken (SIGCONT): zombies to fence. */
  pauses?: number;
  brokerRestart: boolean;
  guarantee: 'exactly-once' | 'at-least-once';
  log?: (line: string) => void;
}

export interface FaultSuiteResult {
  samples: number;
  revisions: number;
  kills: number;
  restarts: number;
  pauses: number;
  brokerRestarts: number;
  duplicatesSent: number;
  /** Duplicate frames the clean run's join recognised and kept out of the output. */
  duplicatesSuppressed: number;
  lost: number;
  doubled: number;
  mismatched: number;
  /** Dead letters of the faulty run beyond those of the clean run (the same input gives the same dead letters). */
  extraDeadLetters: number;
  elapsedMs: number;
  problems: string[];
}

const SESSION_MS = 10_000;

function suiteConfig(brokers: string[], o: FaultSuiteOptions, tag: string): Config {
  const p = `faults-${tag}`;
  return loadConfig({
    env: {},
    overrides: {
      topics: {
        inputs: { rgb: `${p}.rgb`, ir: `${p}.ir`, xyz: `${p}.xyz` },
        events: `${p}.events`,
        alerts: `${p}.alerts`,
        deadLetters: `${p}.dlq`,
        labels: `${p}.labels`,
        partitions: o.partitions,
      },
      input: { groupId: `${p}.service` },
      // short sessions, so a frozen instance loses its tasks within the suite's time
      kafka: { brokers, sessionTimeoutMs: SESSION_MS },
      processing: { guarantee: o.guarantee, commitIntervalMs: 100 },
      join: { modalities: { rgb: { policy: 'required', timeoutMs: 3000 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 8000 } }, idleAdvanceMs: 1000 },
      inference: { manifest: TEST_MANIFEST, maxBatchWaitMs: 2 },
    },
  });
}

function envOf(c: Config): NodeJS.ProcessEnv {
  return {
    ...process.env,
    MMAD_LOG_LEVEL: 'error',
    ...serviceEnv(c),
    MMAD_PROCESSING: JSON.stringify(c.processing),
    MMAD_KAFKA__SESSION_TIMEOUT_MS: String(c.kafka.sessionTimeoutMs),
    MMAD_JOIN: JSON.stringify(c.join),
    MMAD_INFERENCE__MANIFEST: c.inference.manifest,
    MMAD_INFERENCE__MAX_BATCH_WAIT_MS: String(c.inference.maxBatchWaitMs),
  };
}

/** Publishes the simulated line (as fast as the broker takes it); returns the sample ids and duplicates sent. */
async function publishLine(kafka: Kafka, config: Config, o: FaultSuiteOptions): Promise<{ duplicated: number; prefix: string }> {
  const admin = kafka.admin();
  await admin.connect();
  const producer = stationProducer(kafka, config);
  await producer.connect();
  try {
    const topics = await stationTopics(admin, config);
    const source = await SimulatedPartSource.create({ product: 'battery_lid', width: 32, height: 32, seed: o.seed, defectRate: 0.2, defects: [], poolSize: 16 });
    const prefix = `F${o.seed}-`;
    const report = await runStation({
      source,
      topics,
      sink: new KafkaRecordSink(producer),
      codecs: await stationCodecs(config, topics),
      identity: { line: 'line-f', station: 'st-f' },
      timing: {
        ratePerSecond: 20,
        rgbIrJitterMs: 3,
        xyzFraction: 0.4,
        xyzDelayMinMs: 500,
        xyzDelayMaxMs: 4000,
        dropRate: 0.01,
        duplicateRate: 0.03,
        reorderRate: 0.05,
        reorderMaxMs: 500,
        clockSkewMs: 10,
        burstRate: 0.05,
        burstSize: 5,
        burstFactor: 4,
      },
      scheduleSeed: o.seed,
      count: o.parts,
      pace: false,
      idPrefix: prefix,
      announceModalities: false,
      labels: false,
      startTime: Date.now(),
    });
    return { duplicated: report.duplicated, prefix };
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
}

/** Every event on the topic (read committed), until nothing new for idleMs. */
async function readEvents(kafka: Kafka, config: Config, topic: string, idleMs: number): Promise<AnomalyEvent[]> {
  const codec = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, `verify-${Date.now()}-${Math.random()}`), readUncommitted: false });
  const out: AnomalyEvent[] = [];
  let last = performance.now();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      out.push(await codec.decode(present(message.value, `the value of ${topic} offset ${message.offset}`)));
      last = performance.now();
    },
  });
  await new Promise((r) => setTimeout(r, 1500));
  while (performance.now() - last < idleMs) await new Promise((r) => setTimeout(r, 200));
  await consumer.disconnect();
  return out;
}

async function deadLetterReasons(kafka: Kafka, config: Config, topic: string): Promise<Record<string, number>> {
  const codec = AvroCodec.local(SchemaCatalog.load(), 'DeadLetter');
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, `verify-dl-${Date.now()}-${Math.random()}`), readUncommitted: false });
  const out: Record<string, number> = {};
  let last = performance.now();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const d = await codec.decode(present(message.value, `a dead letter's value`));
      const k = `${d.reasonCode}:${d.message.slice(0, 60)}`;
      out[k] = (out[k] ?? 0) + 1;
      last = performance.now();
    },
  });
  await new Promise((r) => setTimeout(r, 1500));
  while (performance.now() - last < 2000) await new Promise((r) => setTimeout(r, 200));
  await consumer.disconnect();
  return out;
}

async function countRecords(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((s, o) => s + Number(o.high) - Number(o.low), 0);
  } finally {
    await admin.disconnect();
  }
}

export async function runFaultSuite(o: FaultSuiteOptions): Promise<FaultSuiteResult> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const random = xorshift(o.seed);
  const dataDir = mkdtempSync(join(tmpdir(), 'mmad-faults-broker-'));
  const quiet = createLogger({}, 'silent');
  const brokerOptions = { kafkaVersion: '4.1.1', cacheDir: '.cache/kafka', heapMb: 512, maxMessageBytes: 33_554_432, startTimeoutMs: 120_000, dataDir, logger: quiet };
  let broker = new LocalKraftBroker(brokerOptions);
  const bootstrap = await broker.start();
  const port = broker.port;
  const problems: string[] = [];
  const children = new Map<number, ChildProcess>();
  let kills = 0;
  let restarts = 0;
  let pauses = 0;
  let brokerRestarts = 0;
  try {
    const faulty = suiteConfig([bootstrap], o, `${o.seed}-f`);
    const clean = { ...faulty, topics: { ...faulty.topics, events: `${faulty.topics.events}.clean`, alerts: `${faulty.topics.alerts}.clean`, deadLetters: `${faulty.topics.deadLetters}.clean` }, input: { ...faulty.input, groupId: `${faulty.input.groupId}.clean` } };
    const kafka = createKafka(faulty, [bootstrap], quiet);
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, planTopics(faulty));
    await ensureTopics(admin, planTopics(clean));
    await admin.disconnect();
    const { duplicated, prefix } = await publishLine(kafka, faulty, o);
    log(`published ${o.parts} parts (${duplicated} duplicate frames)`);

    // the clean run: one in-process instance, no faults
    const registry = await ModelRegistry.open(clean, quiet);
    const cleanRun = new StreamProcessor(clean, registry, { logger: quiet });
    await cleanRun.start();

    // the faulty run: N processes, killed and restarted at random, the broker restarted once
    const start = (i: number): void => {
      const child = spawn(process.execPath, [BIN, 'run'], { env: envOf(faulty), stdio: ['ignore', 'ignore', 'ignore'] });
      children.set(i, child);
    };
    for (let i = 0; i < o.instances; i++) start(i);
    const chaosMs = 20_000 + o.parts * 40;
    const brokerAt = o.brokerRestart ? chaosMs * (0.3 + 0.4 * random()) : Number.POSITIVE_INFINITY;
    const killTimes = Array.from({ length: o.kills }, () => chaosMs * (0.1 + 0.8 * random())).sort((a, b) => a - b);
    const pauseTimes = new Set(Array.from({ length: o.pauses ?? 0 }, () => chaosMs * (0.1 + 0.6 * random())));
    const chaosStart = performance.now();
    const wokeAt = new Map<number, number>();
    for (const at of [...killTimes, ...pauseTimes, brokerAt].sort((a, b) => a - b)) {
      if (!Number.isFinite(at)) continue;
      await new Promise((r) => setTimeout(r, Math.max(0, chaosStart + at - performance.now())));
      if (pauseTimes.has(at)) {
        // a zombie: frozen past its session, its tasks move on; woken, nothing it writes may land
        const victim = Math.floor(random() * o.instances);
        const child = children.get(victim);
        child?.kill('SIGSTOP');
        log(`froze instance ${victim} (SIGSTOP) at ${Math.round(at / 1000)} s for ${(SESSION_MS + 4000) / 1000} s`);
        await new Promise((r) => setTimeout(r, SESSION_MS + 4000));
        child?.kill('SIGCONT');
        wokeAt.set(victim, performance.now());
        pauses++;
      } else if (at === brokerAt) {
        log(`restarting the broker at ${Math.round(at / 1000)} s`);
        await broker.stop(30_000);
        broker = new LocalKraftBroker({ ...brokerOptions, port });
        await broker.start();
        brokerRestarts++;
      } else {
        let victim = Math.floor(random() * o.instances);
        // a zombie just woken is left to live a while: its writes must be fenced, not cut short by a kill
        if (performance.now() - (wokeAt.get(victim) ?? Number.NEGATIVE_INFINITY) < 10_000 && o.instances > 1) victim = (victim + 1) % o.instances;
        children.get(victim)?.kill('SIGKILL');
        kills++;
        log(`killed instance ${victim} (SIGKILL) at ${Math.round(at / 1000)} s`);
        await new Promise((r) => setTimeout(r, 500 + random() * 2500));
        start(victim);
        restarts++;
      }
    }
    // let everything settle: all input consumed, waits expired, transactions committed
    const settleDeadline = performance.now() + 180_000;
    let faultyEvents: AnomalyEvent[] = [];
    let cleanEvents: AnomalyEvent[] = [];
    // done = both groups committed every input offset: an offset commits only with the outputs it
    // caused and once its part is closed, so every revision is then committed
    const inputs = Object.values(faulty.topics.inputs).filter((t): t is string => t !== null);
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      const [f, c] = await Promise.all([consumedAll(kafka, faulty.input.groupId, inputs), consumedAll(kafka, clean.input.groupId, inputs)]);
      if (f && c) break;
      if (performance.now() > settleDeadline) {
        problems.push(`not settled after 180 s: faulty group ${f ? 'done' : 'behind'}, clean group ${c ? 'done' : 'behind'}`);
        break;
      }
    }
    [faultyEvents, cleanEvents] = await Promise.all([readEvents(kafka, faulty, faulty.topics.events, 3000), readEvents(kafka, faulty, clean.topics.events, 3000)]);
    const duplicatesSuppressed = cleanRun.stats().duplicates;
    await cleanRun.stop();
    await registry.close();

    // verify
    const key = (e: AnomalyEvent): string => `${e.sampleId}#${e.revision}`;
    const count = new Map<string, number>();
    for (const e of faultyEvents) count.set(key(e), (count.get(key(e)) ?? 0) + 1);
    const cleanBy = new Map(cleanEvents.map((e) => [key(e), e]));
    const faultyBy = new Map(faultyEvents.map((e) => [key(e), e]));
    const doubledKeys = [...count].filter(([, n]) => n > 1).map(([k, n]) => `${k}: published ${n} times`);
    const lostKeys = [...cleanBy.keys()].filter((k) => !faultyBy.has(k)).map((k) => `${k}: lost`);
    problems.push(...[...doubledKeys, ...lostKeys].slice(0, 10));
    const doubled = doubledKeys.length;
    const lost = lostKeys.length;
    let mismatched = 0;
    if (process.env.FAULT_DEBUG) {
      const [rf, rc] = await Promise.all([deadLetterReasons(kafka, faulty, faulty.topics.deadLetters), deadLetterReasons(kafka, faulty, clean.topics.deadLetters)]);
      log(`dead letters faulty ${JSON.stringify(rf)} clean ${JSON.stringify(rc)}`);
    }
    for (const [k, c] of cleanBy) {
      const f = faultyBy.get(k);
      if (f === undefined) continue;
      if (!sameDecision(summarise(c), summarise(f)) || f.final !== c.final) {
        mismatched++;
        if (problems.length < 10) problems.push(`${k}: faulty ${f.verdict}/${f.model?.id ?? 'none'}/${f.score ?? 'none'}/${f.modalitiesUsed.join('+')} vs clean ${c.verdict}/${c.model?.id ?? 'none'}/${c.score ?? 'none'}/${c.modalitiesUsed.join('+')}`);
      }
    }
    for (const k of faultyBy.keys()) if (!cleanBy.has(k) && problems.length < 10) problems.push(`${k}: only in the faulty run`);
    const extra = [...faultyBy.keys()].filter((k) => !cleanBy.has(k)).length;
    const expectedParts = new Set(faultyEvents.concat(cleanEvents).map((e) => e.sampleId).filter((s) => s.startsWith(prefix)));
    const [dlqFaulty, dlqClean] = await Promise.all([countRecords(kafka, faulty.topics.deadLetters), countRecords(kafka, clean.topics.deadLetters)]);
    if (dlqFaulty !== dlqClean) {
      const [rf, rc] = await Promise.all([deadLetterReasons(kafka, faulty, faulty.topics.deadLetters), deadLetterReasons(kafka, faulty, clean.topics.deadLetters)]);
      problems.push(`dead letters: ${dlqFaulty} in the faulty run ${JSON.stringify(rf)}, ${dlqClean} in the clean run ${JSON.stringify(rc)}`);
    }
    return {
      samples: expectedParts.size,
      revisions: cleanBy.size,
      kills,
      restarts,
      pauses,
      brokerRestarts,
      duplicatesSent: duplicated,
      duplicatesSuppressed,
      lost,
      doubled,
      mismatched: mismatched + extra,
      extraDeadLetters: dlqFaulty - dlqClean,
      elapsedMs: Math.round(performance.now() - t0),
      problems,
    };
  } finally {
    for (const c of children.values()) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
