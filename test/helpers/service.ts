/**
 * One stream processor on the test broker, as the runtime tests use it: its
 * topics created, a producer for the stations, the test students, and
 * everything stopped and deleted after the file's tests.
 */
import { after } from 'node:test';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { Config } from '../../src/config/config-schema.js';
import type { Modality } from '../../src/codec/records.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { StreamProcessor, type ProcessorOptions } from '../../src/runtime/stream-processor.js';
import { deleteTopics, quietLogger, testKafka } from './kafka.js';

export interface ServiceUnderTest {
  kafka: Kafka;
  admin: Admin;
  producer: Producer;
  registry: ModelRegistry;
  processor: StreamProcessor;
  /** Sends a record to a modality's input topic, on the partition its key hashes to (or `partition`). */
  send: (modality: Modality, key: string | Buffer, value: Buffer, partition?: number) => Promise<void>;
}

/** Creates the topics and the processor (not started); `beforeStop` runs first at the end (e.g. telemetry). */
export async function serviceUnderTest(config: Config, options: Partial<ProcessorOptions> = {}, hooks: { beforeStop?: () => void; afterStop?: () => Promise<void> } = {}): Promise<ServiceUnderTest> {
  const kafka = testKafka(config);
  const admin = kafka.admin();
  await admin.connect();
  const plans = planTopics(config);
  await ensureTopics(admin, plans);
  const producer = kafka.producer();
  await producer.connect();
  const registry = await ModelRegistry.open(config, quietLogger);
  const processor = new StreamProcessor(config, registry, { logger: quietLogger, ...options });
  after(async () => {
    hooks.beforeStop?.();
    await processor.stop();
    await hooks.afterStop?.();
    await registry.close();
    await producer.disconnect();
    await deleteTopics(admin, plans.map((p) => p.name));
    await admin.disconnect();
  });
  const send = async (modality: Modality, key: string | Buffer, value: Buffer, partition?: number): Promise<void> => {
    const p = partition ?? partitionFor(key.toString(), config.topics.partitions);
    const topic = config.topics.inputs[modality];
    if (topic === null) throw new Error(`the test config has no ${modality} input topic`);
    await producer.send({ topic, messages: [{ key, value, partition: p }] });
  };
  return { kafka, admin, producer, registry, processor, send };
}
