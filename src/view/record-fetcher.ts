/**
 * Reads single records back from the input topics at the coordinates an event
 * recorded (topic, partition, offset), for the part page's frames.
 *
 * kafkajs has no public fetch-at-offset call, so one consumer of its own group
 * (never committing) holds every partition of the input topics paused; a read
 * seeks one partition to the offset, resumes it, takes the record at that offset
 * from the first batch and pauses the partition again. Reads go one at a time.
 * An offset below the partition's log start (retention removed it) is answered
 * `gone` without fetching; one the fetch skips (compaction) too.
 */
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from '../base/logger.js';
import type { Config } from '../config/config-schema.js';
import { createConsumer, frameConsumerConfig, onGroupJoin } from '../kafka/kafka-client.js';

export type FetchResult = { found: true; message: KafkaMessage } | { found: false; why: string };

interface Pending {
  topic: string;
  partition: number;
  offset: bigint;
  resolve: (r: FetchResult) => void;
}

const STOPPED = 'the frame reader has stopped';

export class RecordFetcher {
  private readonly consumer: Consumer;
  /** Ends the join handling (before the consumer stops: a late join must not pause). */
  private endJoins = (): void => undefined;
  private pending: Pending | undefined;
  private stopped = false;
  private queue: Promise<unknown> = Promise.resolve();
  private joined: Promise<void> | undefined;

  constructor(
    private readonly kafka: Kafka,
    config: Config,
    private readonly topics: string[],
    groupId: string,
    private readonly log: Logger,
    private readonly timeoutMs = 15_000,
  ) {
    this.consumer = createConsumer(kafka, { ...frameConsumerConfig(config, groupId), readUncommitted: false });
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    this.joined = new Promise((resolve) => {
      this.endJoins = onGroupJoin(this.consumer, () => {
        // nothing is read until asked for
        this.consumer.pause(this.topics.map((topic) => ({ topic })));
        resolve();
      });
    });
    await this.consumer.subscribe({ topics: this.topics, fromBeginning: false });
    await this.consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const p = this.pending;
        if (p === undefined || batch.topic !== p.topic || batch.partition !== p.partition) return;
        for (const m of batch.messages) {
          const offset = BigInt(m.offset);
          if (offset < p.offset) continue;
          this.pending = undefined;
          this.consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
          p.resolve(offset === p.offset ? { found: true, message: m } : { found: false, why: `offset ${p.offset} is no longer in ${p.topic}/${p.partition} (the next record is at ${offset})` });
          return;
        }
      },
    });
  }

  /** Whether a read is waiting for its record. */
  get reading(): boolean {
    return this.pending !== undefined;
  }

  /** The record at topic/partition/offset, or why it cannot be had. */
  fetch(topic: string, partition: number, offset: number): Promise<FetchResult> {
    const run = this.queue.then(() => this.fetchOne(topic, partition, BigInt(offset)));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async fetchOne(topic: string, partition: number, offset: bigint): Promise<FetchResult> {
    if (!this.topics.includes(topic)) return { found: false, why: `${topic} is not an input topic of this line` };
    await this.joined;
    const admin = this.kafka.admin();
    await admin.connect();
    let low: bigint;
    let high: bigint;
    try {
      const offsets = (await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition);
      if (offsets === undefined) return { found: false, why: `${topic} has no partition ${partition}` };
      low = BigInt(offsets.low);
      high = BigInt(offsets.high);
    } finally {
      await admin.disconnect();
    }
    if (offset < low) return { found: false, why: `the frame at ${topic}/${partition}@${offset} is no longer in the topic (retention: the partition now starts at ${low})` };
    if (offset >= high) return { found: false, why: `${topic}/${partition} ends at ${high}, before ${offset}` };
    if (this.stopped) return { found: false, why: STOPPED };
    return await new Promise<FetchResult>((resolve) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        this.consumer.pause([{ topic, partitions: [partition] }]);
        this.log.warn('frame read timed out', { topic, partition, offset: offset.toString() });
        resolve({ found: false, why: `reading ${topic}/${partition}@${offset} took longer than ${this.timeoutMs} ms` });
      }, this.timeoutMs);
      this.pending = {
        topic,
        partition,
        offset,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      this.consumer.seek({ topic, partition, offset: offset.toString() });
      this.consumer.resume([{ topic, partitions: [partition] }]);
    });
  }

  /**
   * Ends reading: a read in flight is answered at once (its timer cleared, so nothing touches
   * the consumer once it is stopped, where kafkajs throws), later reads are refused.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const p = this.pending;
    this.pending = undefined;
    p?.resolve({ found: false, why: STOPPED });
    this.endJoins();
    await this.consumer.disconnect().catch(() => undefined);
  }
}
