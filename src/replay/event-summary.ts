/**
 * What a replay and a diff compare about an event: the decision, not its
 * timings. One line of JSON per event in replay files (`--out`), and the shape
 * both sides of a diff are read into, whether from a topic or a file.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Kafka } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { AnomalyEvent } from '../codec/records.js';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError } from '../base/errors.js';
import { createConsumer, frameConsumerConfig, onFatalCrash } from '../kafka/kafka-client.js';

export interface EventSummary {
  sampleId: string;
  revision: number;
  final: boolean;
  verdict: string;
  reason: string | null;
  score: number | null;
  threshold: number | null;
  model: string | null;
  modalitiesUsed: string[];
  captureTime: string;
}

export function summarise(e: AnomalyEvent): EventSummary {
  return {
    sampleId: e.sampleId,
    revision: e.revision,
    final: e.final,
    verdict: e.verdict,
    reason: e.reason,
    score: e.score,
    threshold: e.threshold,
    model: e.model === null ? null : `${e.model.id}@${e.model.version}`,
    modalitiesUsed: [...e.modalitiesUsed],
    captureTime: e.captureTime.toISOString(),
  };
}

/** Every committed event on `topic`, read to the end offsets it had when reading began. */
export async function readEventTopic(kafka: Kafka, config: Config, topic: string, codec: AvroCodec<'AnomalyEvent'>): Promise<EventSummary[]> {
  const out: EventSummary[] = [];
  await readTopicToEnd(kafka, config, topic, async (value) => {
    out.push(summarise(await codec.decode(value)));
  });
  return out;
}

/** Every committed record's value on `topic` (tombstones skipped), in order per partition, to the end offsets it had when reading began. */
export async function readTopicToEnd(kafka: Kafka, config: Config, topic: string, each: (value: Buffer) => Promise<void>): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: { partition: number; high: string; low: string }[];
  try {
    if (!(await admin.listTopics()).includes(topic)) throw new MmadError(ErrorCode.TOPIC_MISSING, `topic ${topic} does not exist`);
    ends = (await admin.fetchTopicOffsets(topic)).map((o) => ({ partition: o.partition, high: o.high, low: o.low }));
  } finally {
    await admin.disconnect();
  }
  const remaining = new Map(ends.filter((e) => BigInt(e.high) > BigInt(e.low)).map((e) => [e.partition, BigInt(e.high)]));
  if (remaining.size === 0) return;
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, `mmad-read-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`), readUncommitted: false });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      onFatalCrash(consumer, reject);
      // a read_committed fetch skips aborted records and transaction markers: the end is reached
      // when a partition's position passes its end offset, whether or not a record sits there
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const end = remaining.get(payload.partition);
        if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) remaining.delete(payload.partition);
        if (remaining.size === 0) resolve();
      });
      consumer
        .run({
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) if (m.value !== null) await each(m.value);
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}

/** Events from a JSON-lines file written by `replay --out`. */
export async function readEventFile(path: string): Promise<EventSummary[]> {
  const out: EventSummary[] = [];
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as EventSummary);
    } catch (err) {
      throw new MmadError(ErrorCode.USAGE, `${path}:${n} is not a JSON line of an event summary`, { cause: err });
    }
  }
  return out;
}
