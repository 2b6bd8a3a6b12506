/**
 * The join's changelog: a compacted internal topic, `<groupId>-join-changelog`,
 * co-partitioned with the inputs (task p writes partition p), holding per
 * sample what has been published (JoinState). Written in the same Kafka
 * transaction as the sample's events (exactly-once), read back when a task
 * starts on an instance, so a task that moved or crashed resumes without
 * publishing any revision twice. Pending frames themselves are not copied
 * here: the input offsets committed never pass a frame still needed, so they
 * are read again from the input topics.
 */
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { JoinState, Modality } from '../codec/records.js';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { createConsumer, frameConsumerConfig } from '../kafka/kafka-client.js';
import type { Logger } from '../base/logger.js';

export function changelogTopic(config: Config): string {
  return `${config.input.groupId}-join-changelog`;
}

export interface RestoredState {
  sampleId: string;
  revision: number;
  modalities: Modality[];
  firstCapture: number;
  closed: boolean;
  closedAt: number | null;
}

export function toRestored(s: JoinState): RestoredState {
  return {
    sampleId: s.sampleId,
    revision: s.revision,
    modalities: s.modalities as Modality[],
    firstCapture: s.firstCapture.getTime(),
    closed: s.closed,
    closedAt: s.closedAt,
  };
}

/**
 * Reads partitions of the changelog from the beginning to their end (read
 * committed), keeping the latest state per sample (tombstones delete). kafkajs
 * has no manual assignment, so a throwaway consumer group reads the topic and
 * keeps the wanted partitions; the changelog is small (no payloads, compacted).
 */
export async function readChangelog(
  kafka: Kafka,
  config: Config,
  codec: AvroCodec<'JoinState'>,
  partitions: number[],
  log: Logger,
  timeoutMs = 60_000,
): Promise<Map<number, RestoredState[]>> {
  const topic = changelogTopic(config);
  const states = new Map<number, Map<string, RestoredState>>(partitions.map((p) => [p, new Map()]));
  const admin = kafka.admin();
  await admin.connect();
  let offsets;
  try {
    offsets = await admin.fetchTopicOffsets(topic);
  } finally {
    await admin.disconnect();
  }
  const remaining = new Set(partitions.filter((p) => {
    const o = offsets.find((x) => x.partition === p);
    return o !== undefined && o.high !== o.low;
  }));
  if (remaining.size === 0) return new Map(partitions.map((p) => [p, []]));
  const groupId = `${config.input.groupId}-restore-${randomBytes(6).toString('hex')}`;
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, groupId), readUncommitted: false });
  const t0 = performance.now();
  await consumer.connect();
  try {
    let decodeError: unknown;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new MmadError(ErrorCode.BROKER_UNAVAILABLE, `restoring ${topic} partitions ${[...remaining].join(',')} did not finish in ${timeoutMs} ms`)), timeoutMs);
      consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
        const { partition, offsetLag } = e.payload as { partition: number; offsetLag: string };
        if (remaining.has(partition) && BigInt(offsetLag) <= 0n) remaining.delete(partition);
        if (remaining.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const into = states.get(batch.partition);
        if (into === undefined) return;
        for (const m of batch.messages) {
          const key = m.key?.toString('utf8');
          if (key === undefined) continue;
          if (m.value === null) {
            into.delete(key);
            continue;
          }
          try {
            into.set(key, toRestored(await codec.decode(m.value)));
          } catch (err) {
            decodeError = err;
          }
        }
      },
    });
    await done;
    if (decodeError !== undefined) {
      throw new MmadError(ErrorCode.CODEC_INVALID, `the join changelog ${topic} holds an undecodable record: ${messageOf(decodeError)}`, { cause: decodeError });
    }
  } finally {
    await consumer.disconnect();
    const cleanup = kafka.admin();
    await cleanup.connect();
    await cleanup.deleteGroups([groupId]).catch(() => undefined);
    await cleanup.disconnect();
  }
  const out = new Map<number, RestoredState[]>();
  for (const [p, m] of states) out.set(p, [...m.values()]);
  log.info('join state restored', { partitions, samples: [...out.values()].reduce((s, v) => s + v.length, 0), ms: Math.round(performance.now() - t0) });
  return out;
}
