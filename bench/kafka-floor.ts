/**
 * The Kafka client's floor: what reading the backlog and writing one event per part
 * cost with the service's Kafka client (kafkajs) and Avro codec and nothing else. The
 * same input topics are read read_committed with the service's consumer settings, every
 * frame is Avro-decoded, and per fetched batch one event-sized record per part is
 * produced in a transaction that also carries the batch's input offsets (the service's
 * exactly-once sink commits per task every processing.commitIntervalMs instead). No
 * checks, join, image decoding, model or outputs: the part of the service's CPU per part
 * that no change inside the service removes, short of another Kafka client.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../src/config/config-schema.js';
import { AvroCodec } from '../src/codec/avro-codec.js';
import { SchemaCatalog } from '../src/codec/schema-catalog.js';
import { createKafka, createConsumer, frameConsumerConfig, producerConfig } from '../src/kafka/kafka-client.js';
import type { Logger } from '../src/base/logger.js';
import { cpuSince, threadCpuMs } from './cpu.js';

export interface FloorRun {
  partsPerS: number;
  /** CPU per part, ms: the main thread, every other thread of this process. */
  main: number;
  other: number;
}

/**
 * Reads `parts` × `framesPerPart` frames from `config`'s input topics (a group of its own)
 * and writes `parts` records of `eventBytes` each to a topic of its own, transactionally.
 */
export async function kafkaFloorRun(config: Config, parts: number, framesPerPart: number, eventBytes: number, logger: Logger): Promise<FloorRun> {
  const kafka = createKafka(config, config.kafka.brokers, logger);
  const groupId = `${config.input.groupId}.floor`;
  const out = `${groupId}.events`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: out, numPartitions: config.topics.partitions, replicationFactor: 1 }], waitForLeaders: true });
  const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
  const producer = kafka.producer({ ...producerConfig(config), transactionalId: `${groupId}-txn`, transactionTimeout: 60_000 });
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, groupId), readUncommitted: false });
  await producer.connect();
  await consumer.connect();
  const inputs = Object.values(config.topics.inputs).filter((t): t is string => t !== null);
  await consumer.subscribe({ topics: inputs, fromBeginning: true });
  const event = randomBytes(eventBytes);
  const wanted = parts * framesPerPart;
  let read = 0;
  let first: number | undefined;
  let last = 0;
  let threads0 = new Map<string, number>();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (first === undefined) {
        first = performance.now();
        threads0 = threadCpuMs();
      }
      let decoded = 0;
      for (const m of batch.messages) {
        if (m.value !== null) {
          await frames.decode(m.value);
          decoded++;
        }
      }
      const records = Math.round(decoded / framesPerPart);
      const txn = await producer.transaction();
      if (records > 0) await txn.send({ topic: out, messages: Array.from({ length: records }, (_, i) => ({ key: `${batch.partition}-${batch.lastOffset()}-${i}`, value: event })), acks: -1 });
      await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }] }] });
      await txn.commit();
      read += decoded;
      if (read >= wanted) {
        last = performance.now();
        done();
      }
    },
  });
  await finished;
  const cpu = cpuSince(threads0);
  await consumer.disconnect();
  await producer.disconnect();
  await admin.deleteTopics({ topics: [out] }).catch(() => undefined);
  await admin.disconnect();
  let main = 0;
  let other = 0;
  for (const [tid, ms] of cpu) {
    if (tid === String(process.pid)) main += ms;
    else other += ms;
  }
  return { partsPerS: parts / ((last - (first ?? last)) / 1000), main: main / parts, other: other / parts };
}
