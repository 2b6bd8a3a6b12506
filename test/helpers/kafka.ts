/**
 * Integration-test helpers: the broker the test runner provides
 * (KAFKA_BROKERS), unique topic and group names per test, and cleanup.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka, KafkaMessage } from 'kafkajs';
import type { Config } from '../../src/config/config-schema.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createKafka, createConsumer, frameConsumerConfig } from '../../src/kafka/kafka-client.js';
import { present } from '../../src/base/invariant.js';
import { createLogger } from '../../src/base/logger.js';
import { until } from './wait.js';

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
  const consumer = createConsumer(kafka, frameConsumerConfig(config, uniqueName('g')));
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

/** A record read back by a test: the message with the topic and partition it was read from. */
export type Consumed = KafkaMessage & { topic: string; partition: number };

/**
 * Every record on `topics` as a read-committed consumer sees it at the call, each once
 * (a group's first rebalance can deliver a record twice). Where each partition ends is
 * fetched first: its last stable offset (ListOffsets is read committed: past the last
 * committed transaction, before any open one). Reading a partition ends when the
 * consumer's position reaches it, which on a transactional topic is past the commit
 * marker that follows the last record, so nothing waits for quiet; records written after
 * the call are left out. An absence check on the result is exact for what was written
 * before the call: wait for what must be there first (consumeN, consumeUntil).
 */
export async function consumeAll(kafka: Kafka, config: Config, topics: string | string[], timeoutMs = 30_000): Promise<Consumed[]> {
  const list = typeof topics === 'string' ? [topics] : topics;
  const ends = new Map<string, bigint>();
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of list) {
      for (const p of await admin.fetchTopicOffsets(topic)) if (BigInt(p.high) > BigInt(p.low)) ends.set(`${topic}/${p.partition}`, BigInt(p.high));
    }
  } finally {
    await admin.disconnect();
  }
  const got: Consumed[] = [];
  if (ends.size === 0) return got;
  const unread = new Set(ends.keys());
  const seen = new Set<string>();
  const consumer = createConsumer(kafka, frameConsumerConfig(config, uniqueName('g')));
  let timer: NodeJS.Timeout | undefined;
  await consumer.connect();
  try {
    const reached = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`consumeAll: ${[...unread].join(', ')} not read to the end in ${timeoutMs} ms (${got.length} records)`)), timeoutMs);
      // after each fetched batch, records or only control records (a marker), the position is past its last offset
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const at = `${payload.topic}/${payload.partition}`;
        const end = ends.get(at);
        if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) unread.delete(at);
        if (unread.size === 0) resolve();
      });
    });
    await consumer.subscribe({ topics: list, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const at = `${topic}/${partition}/${message.offset}`;
        if (seen.has(at) || BigInt(message.offset) >= (ends.get(`${topic}/${partition}`) ?? 0n)) return;
        seen.add(at);
        got.push({ ...message, topic, partition });
      },
    });
    await reached;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return got;
}

/** Reads `topics` to their end (consumeAll) until `done` holds for what was read, and returns that; fails after `timeoutMs`, naming `what` it waited for. */
export async function consumeUntil(
  kafka: Kafka,
  config: Config,
  topics: string | string[],
  done: (records: Consumed[]) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<Consumed[]> {
  let got: Consumed[] = [];
  await until(what, async () => done((got = await consumeAll(kafka, config, topics))), timeoutMs, { everyMs: 200, detail: () => `${got.length} records on ${String(topics)}` });
  return got;
}

/** A record that has a key and a value (what stations write), its key as text. */
export interface KeyedRecord {
  topic: string;
  partition: number;
  offset: string;
  timestamp: number;
  key: string;
  value: Buffer;
}

export function keyed(r: Consumed): KeyedRecord {
  const at = `${r.topic}/${r.partition}/${r.offset}`;
  return { topic: r.topic, partition: r.partition, offset: r.offset, timestamp: Number(r.timestamp), key: present(r.key, `the key of ${at}`).toString(), value: present(r.value, `the value of ${at}`) };
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
