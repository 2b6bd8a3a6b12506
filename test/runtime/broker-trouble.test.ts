/**
 * Broker trouble as a plant sees it, with `mmad run` processes:
 *   - the broker is not there when the service starts: it retries with backoff,
 *     says so in its log, and works once a broker appears;
 *   - a topic it writes is deleted under it: it stops with TOPIC_MISSING naming
 *     the topic, and what it had consumed but not finished is judged after the
 *     topic is recreated and the service restarted (nothing lost).
 * A broker restart mid-stream is covered by the fault-injection suite.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import type { Config } from '../../src/config/config-schema.js';
import { LocalKraftBroker } from '../../src/kafka/local-kraft.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { makeFrame } from '../helpers/frames.js';
import { consumeN, consumeUntil, deleteTopics, quietLogger, serviceEnv, testConfig, testKafka, type Consumed } from '../helpers/kafka.js';
import { TEST_MANIFEST } from '../helpers/models.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/wait.js';

const bin = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');
const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
const events = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');

interface Service {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function startService(config: Config, extraEnv: Record<string, string> = {}): Service {
  const env = { ...process.env, MMAD_LOG_LEVEL: 'info', ...serviceEnv(config), ...extraEnv };
  const child = spawn(process.execPath, [bin, 'run', '--manifest', TEST_MANIFEST], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { child, out: () => out, err: () => err, exited: new Promise((r) => child.on('exit', (c) => r(c))) };
}

async function publish(config: Config, ids: string[], modalities: ('rgb' | 'ir')[], captureTime: number): Promise<void> {
  const producer = testKafka(config).producer();
  await producer.connect();
  try {
    for (const id of ids) {
      for (const m of modalities) {
        const value = frames.encode(await makeFrame(id, m, { captureTime, expected: ['rgb', 'ir'] }));
        await producer.send({ topic: config.topics.inputs[m], messages: [{ key: id, value, partition: partitionFor(id, config.topics.partitions) }] });
      }
    }
  } finally {
    await producer.disconnect();
  }
}

test('a broker that is not there at start-up is waited for with backoff and a clear log; then the service works', { timeout: 180_000 }, async () => {
  const port = await freePort();
  const config = { ...testConfig(), kafka: { ...testConfig().kafka, brokers: [`127.0.0.1:${port}`] } };
  const svc = startService(config, { MMAD_KAFKA__RETRY__INITIAL_RETRY_TIME_MS: '250', MMAD_KAFKA__RETRY__MAX_RETRY_TIME_MS: '2000' });
  const retries = (): { attempt: number; retryInMs: number }[] =>
    svc
      .err()
      .split('\n')
      .filter((l) => l.includes('Kafka unreachable at start-up; retrying'))
      .map((l) => JSON.parse(l) as { attempt: number; retryInMs: number });
  const dataDir = mkdtempSync(join(tmpdir(), 'mmad-late-broker-'));
  const broker = new LocalKraftBroker({ kafkaVersion: config.broker.kafkaVersion, cacheDir: '.cache/kafka', heapMb: 512, maxMessageBytes: config.kafka.maxMessageBytes, startTimeoutMs: 120_000, dataDir, port, logger: quietLogger });
  try {
    await until('three retries', () => retries().length >= 3, 30_000, { detail: svc.err });
    const r = retries();
    assert.deepEqual(r.slice(0, 3).map((x) => x.attempt), [1, 2, 3]);
    assert.ok(at(r, 1).retryInMs > at(r, 0).retryInMs && at(r, 2).retryInMs > at(r, 1).retryInMs, `backoff grows: ${r.map((x) => x.retryInMs).join(', ')}`);
    assert.equal(svc.child.exitCode, null, 'still running, still waiting');

    await broker.start();
    await until('the service running', () => svc.out().includes('running on'), 90_000, { detail: svc.err });
    assert.match(svc.err(), /"msg":"Kafka reachable".*"attempts":\d+/);
    await publish(config, ['LB-1', 'LB-2'], ['rgb', 'ir'], Date.now());
    const got = await consumeN(testKafka(config), config, config.topics.events, 2, 60_000);
    assert.deepEqual(got.map((m) => m.key?.toString()).sort(), ['LB-1', 'LB-2']);
    svc.child.kill('SIGTERM');
    assert.equal(await svc.exited, 0, svc.err());
  } finally {
    svc.child.kill('SIGKILL');
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a topic deleted under the service stops it with TOPIC_MISSING; after recreating it nothing consumed is lost', { timeout: 180_000 }, async () => {
  const config = testConfig();
  const kafka = testKafka(config);
  const admin = kafka.admin();
  await admin.connect();
  const plans = planTopics(config);
  await ensureTopics(admin, plans);
  // ir waited for up to a minute: samples with rgb alone stay pending (consumed, not committed)
  const env = { MMAD_PROCESSING__TOPIC_CHECK_MS: '500', MMAD_JOIN__MODALITIES__IR: JSON.stringify({ policy: 'optional', timeoutMs: 60_000 }) };
  let svc = startService(config, env);
  try {
    await until('the service running', () => svc.out().includes('running on'), 60_000, { detail: svc.err });
    const t0 = Date.now();
    await publish(config, ['TD-1', 'TD-2'], ['rgb', 'ir'], t0);
    await consumeN(kafka, config, config.topics.events, 2, 60_000);
    await publish(config, ['TD-3', 'TD-4'], ['rgb'], t0 + 10);
    await new Promise((r) => setTimeout(r, 1500)); // consumed, pending for ir

    await admin.deleteTopics({ topics: [config.topics.alerts], timeout: 30_000 });
    assert.notEqual(await svc.exited, 0, 'stops with an error');
    assert.match(svc.err(), new RegExp(`TOPIC_MISSING.*${config.topics.alerts.replace(/\./g, '\\.')}`));

    await ensureTopics(admin, plans);
    await publish(config, ['TD-3', 'TD-4'], ['ir'], t0 + 11);
    svc = startService(config, env);
    // events are keyed by sample id
    const pending = (got: Consumed[]): number => got.filter((m) => ['TD-3', 'TD-4'].includes(m.key?.toString() ?? '')).length;
    const records = await consumeUntil(kafka, config, config.topics.events, (got) => pending(got) >= 2, 'the events of TD-3 and TD-4');
    const all: AnomalyEvent[] = await Promise.all(records.map((m) => events.decode(present(m.value, 'the record value'))));
    const late = all.filter((e) => e.sampleId === 'TD-3' || e.sampleId === 'TD-4');
    assert.deepEqual(late.map((e) => e.sampleId).sort(), ['TD-3', 'TD-4'], 'the samples pending at the stop are judged after the restart');
    for (const e of late) assert.deepEqual([...e.modalitiesUsed].sort(), ['ir', 'rgb'], 'with the rgb frames read before the stop');
    assert.equal(all.filter((e) => e.sampleId === 'TD-1').length, 1, 'a sample committed before the stop is not judged again');
    svc.child.kill('SIGTERM');
    assert.equal(await svc.exited, 0, svc.err());
  } finally {
    svc.child.kill('SIGKILL');
    await deleteTopics(admin, plans.map((p) => p.name));
    await admin.disconnect();
  }
});
