import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { defaultConfig } from '../../src/config/load-config.js';
import { createKafka } from '../../src/kafka/kafka-client.js';
import { LocalKraftBroker, findBrokerProcesses } from '../../src/kafka/local-kraft.js';
import { quietLogger } from '../helpers/kafka.js';

const config = defaultConfig();
const options = {
  kafkaVersion: config.broker.kafkaVersion,
  cacheDir: config.broker.cacheDir,
  heapMb: 384,
  maxMessageBytes: config.kafka.maxMessageBytes,
  startTimeoutMs: 120_000,
  logger: quietLogger,
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

test('a second local broker starts from the cached jars, serves requests, and stops cleanly', async () => {
  const broker = new LocalKraftBroker(options);
  const bootstrap = await broker.start();
  try {
    assert.equal(broker.timings.fetchMs, 0, 'jars come from the cache (the test runner fetched them)');
    assert.ok(broker.timings.formatMs > 0, 'a fresh run directory is formatted');
    assert.match(bootstrap, /^127\.0\.0\.1:\d+$/);
    const admin = createKafka({ ...config, kafka: { ...config.kafka, brokers: [bootstrap] } }, [bootstrap], quietLogger).admin();
    await admin.connect();
    const cluster = await admin.describeCluster();
    assert.equal(cluster.brokers.length, 1);
    await admin.createTopics({ topics: [{ topic: 'probe', numPartitions: 2 }] });
    assert.ok((await admin.listTopics()).includes('probe'));
    await admin.disconnect();
    assert.deepEqual(findBrokerProcesses({ id: broker.id }), [broker.pid]);
  } finally {
    const pid = present(broker.pid, 'the broker pid');
    const logFile = broker.logFile;
    await broker.stop();
    assert.ok(!alive(pid), 'JVM gone after stop()');
    assert.ok(!existsSync(logFile), 'temporary run directory removed');
    assert.deepEqual(findBrokerProcesses({ id: broker.id }), []);
  }
});

test('a broker whose owning process is SIGKILLed does not outlive it', async () => {
  const script = [
    "import { LocalKraftBroker } from './src/kafka/local-kraft.ts';",
    `const b = new LocalKraftBroker(${JSON.stringify({ ...options, logger: undefined })});`,
    'await b.start();',
    'console.log(JSON.stringify({ pid: b.pid }));',
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, MMAD_LOG_LEVEL: 'silent' },
  });
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /\{"pid":(\d+)\}/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.on('exit', (code, signal) => reject(new Error(`child exited early (${code ?? signal ?? 'unknown'})`)));
  });
  assert.ok(alive(pid));
  child.kill('SIGKILL');
  assert.ok(await waitGone(pid, 15_000), `broker JVM ${pid} outlived its SIGKILLed owner`);
});

test('start-up failure is a clear error, not a hang', async () => {
  const broker = new LocalKraftBroker({ ...options, kafkaVersion: '0.0.0' });
  await assert.rejects(broker.start(), /BROKER_START_FAILED|could not fetch Kafka 0\.0\.0 jars/);
});
