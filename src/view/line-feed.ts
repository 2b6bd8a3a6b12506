/**
 * The view's reading of the service's outputs: the events, alerts and
 * dead-letter topics, read committed, by a consumer group of the view's own
 * (never the service's) that commits nothing. At start every partition is
 * sought to `history` records before its end, so the pages open with the
 * latest parts instead of the topics' whole history or nothing.
 */
import type { Consumer, Kafka } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { Logger } from '../base/logger.js';
import { messageOf } from '../base/errors.js';
import type { Config } from '../config/config-schema.js';
import { createConsumer, frameConsumerConfig, onGroupJoin } from '../kafka/kafka-client.js';
import type { LineStore } from './line-store.js';

export interface FeedCodecs {
  events: AvroCodec<'AnomalyEvent'>;
  alerts: AvroCodec<'Alert'>;
  deadLetters: AvroCodec<'DeadLetter'>;
}

export class LineFeed {
  private readonly consumer: Consumer;
  /** Ends the join handling (before the consumer stops: a late join must not seek). */
  private endJoins = (): void => undefined;
  private readonly topics: { events: string; alerts: string; deadLetters: string };
  /** Records that did not decode (counted, logged once per topic). */
  undecodable = 0;
  /** Resolves when the group has been joined and the start offsets are set. */
  readonly ready: Promise<void>;
  private joined!: () => void;

  constructor(
    private readonly kafka: Kafka,
    config: Config,
    private readonly store: LineStore,
    private readonly codecs: FeedCodecs,
    readonly groupId: string,
    private readonly history: number,
    private readonly log: Logger,
  ) {
    if (groupId === config.input.groupId) throw new Error(`the view's group must not be the service's (${groupId})`);
    this.topics = { events: config.topics.events, alerts: config.topics.alerts, deadLetters: config.topics.deadLetters };
    this.consumer = createConsumer(kafka, { ...frameConsumerConfig(config, groupId), readUncommitted: false });
    this.ready = new Promise((resolve) => (this.joined = resolve));
  }

  async start(): Promise<void> {
    const topics = [this.topics.events, this.topics.alerts, this.topics.deadLetters];
    const starts = new Map<string, string>();
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      for (const topic of topics) {
        for (const o of await admin.fetchTopicOffsets(topic)) {
          const low = BigInt(o.low);
          const back = BigInt(o.high) - BigInt(this.history);
          starts.set(`${topic}/${o.partition}`, (back > low ? back : low).toString());
        }
      }
    } finally {
      await admin.disconnect();
    }
    await this.consumer.connect();
    this.endJoins = onGroupJoin(this.consumer, (assignment) => {
      for (const [topic, partitions] of Object.entries(assignment)) {
        for (const partition of partitions) {
          const offset = starts.get(`${topic}/${partition}`);
          // a partition seen before (a later rebalance) goes on from where it is
          if (offset !== undefined) this.consumer.seek({ topic, partition, offset });
          starts.delete(`${topic}/${partition}`);
        }
      }
      this.joined();
    });
    await this.consumer.subscribe({ topics, fromBeginning: true });
    const warned = new Set<string>();
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, message }) => {
        if (message.value === null) return;
        try {
          if (topic === this.topics.events) this.store.addEvent(await this.codecs.events.decode(message.value));
          else if (topic === this.topics.alerts) this.store.addAlert(await this.codecs.alerts.decode(message.value));
          else if (topic === this.topics.deadLetters) this.store.addDeadLetter(await this.codecs.deadLetters.decode(message.value));
        } catch (err) {
          this.undecodable++;
          if (!warned.has(topic)) {
            warned.add(topic);
            this.log.warn('a record the view cannot decode (further ones on this topic are only counted)', { topic, offset: message.offset, error: messageOf(err) });
          }
        }
      },
    });
  }

  async stop(): Promise<void> {
    this.endJoins();
    await this.consumer.disconnect().catch(() => undefined);
  }
}
