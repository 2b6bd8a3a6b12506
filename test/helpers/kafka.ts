/**
 * Integration-test helpers: the broker the test runner provides
 * (KAFKA_BROKERS), unique topic and group names per test, and cleanup.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka, KafkaMessage } from 'kafkajs';
import type { Config } from '../../src/config/config-schema.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createKafka, frameConsumerConfig } from '../../src/kafka/kafka-client.js';
import { createLogger } from '../../src/base/logger.js';

export const quietLogger = createLogger({}, 'error');

export function brokersFromEnv(): string[] {
  const b = process.env.KAFKA_BROKERS;
  if (b === undefined || b === '') {
    throw new Error('KAFKA_BROKERS is not set: run the tests with `npm test`, which provides a broker');
  }
  return b.split(',');
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** A config on the test broker whose topics all carry a unique prefix. */
export function testConfig(overrides: Record<string, unknown> = {}): Config {
  const p = uniqueName('t');
  return loadConfig({
    env: { KAFKA_BROKERS: brokersFromEnv().join(',') },
    overrides: {
      topics: {
        inputs: { rgb: `${p}.rgb`, ir: `${p}.ir`, xyz: `${p}.xyz` },
        events: `${p}.events`,
        alerts: `${p}.alerts`,
        deadLetters: `${p}.dlq`,
        labels: `${p}.labels`,
        partitions: 3,
      },
      input: { groupId: `${p}.group` },
      ...overrides,
    },
  });
}

/** The environment that points a `mmad` process at this config's broker, topics and group. */
export function serviceEnv(config: Config): Record<string, string> {
  const t = config.topics;
  return {
    KAFKA_BROKERS: config.kafka.brokers.join(','),
    MMAD_TOPICS__INPUTS__RGB: t.inputs.rgb,
    MMAD_TOPICS__INPUTS__IR: t.inputs.ir,
    MMAD_TOPICS__INPUTS__XYZ: t.inputs.xyz,
    MMAD_TOPICS__EVENTS: t.events,
    MMAD_TOPICS__ALERTS: t.alerts,
    MMAD_TOPICS__DEAD_LETTERS: t.deadLetters,
    MMAD_TOPICS__LABELS: t.labels,
    MMAD_TOPICS__PARTITIONS: String(t.partitions),
    MMAD_INPUT__GROUP_ID: config.input.groupId,
    // several instances share one host in the tests: no operations server unless a test sets a port after this
    MMAD_TELEMETRY__PROMETHEUS__PORT: '0',
  };
}

export function testKafka(config: Config): Kafka {
  return createKafka(config, config.kafka.brokers, quietLogger);
}

export async function deleteTopics(admin: Admin, topics: string[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const present = topics.filter((t) => existing.has(t));
  if (present.length > 0) await admin.deleteTopics({ topics: present, timeout: 30_000 });
}

/** Reads `count` messages from the beginning of `topic` (any partition) with a fresh group. */
export async function consumeN(
  kafka: Kafka,
  config: Config,
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer(frameConsumerConfig(config, uniqueName('g')));
  const got: KafkaMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${count} messages from ${topic}`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message);
          if (got.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** Reads everything on `topic` from the beginning, until nothing new has arrived for `idleMs`. */
export async function consumeAll(kafka: Kafka, config: Config, topic: string, idleMs = 1500): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer(frameConsumerConfig(config, uniqueName('g')));
  const got: KafkaMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let last = Date.now();
    await consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message);
        last = Date.now();
      },
    });
    // wait for the assignment and the first fetch, then for quiet
    await new Promise((r) => setTimeout(r, 1000));
    while (Date.now() - last < idleMs) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** Has the group committed the end offset of every partition of these topics (everything consumed and finished)? */
export async function consumedAll(kafka: Kafka, groupId: string, topics: string[]): Promise<boolean> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId, topics });
    for (const t of committed) {
      const ends = await admin.fetchTopicOffsets(t.topic);
      for (const e of ends) {
        const at = t.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
        if (BigInt(e.high) > 0n && BigInt(at) < BigInt(e.high)) return false;
      }
    }
    return true;
  } catch {
    return false; // broker restarting
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
