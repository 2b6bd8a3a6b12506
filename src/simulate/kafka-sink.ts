/**
 * Where a station's records go: a kafkajs producer, with the partition of
 * every record chosen by the project's partitioner (never by the client), and
 * the topics resolved with their real partition counts.
 */
import type { Admin, Kafka, Producer } from 'kafkajs';
import { AvroCodec } from '../codec/avro-codec.js';
import { SchemaCatalog } from '../codec/schema-catalog.js';
import { SchemaRegistryClient } from '../codec/schema-registry.js';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError } from '../base/errors.js';
import { producerConfig } from '../kafka/kafka-client.js';
import { RequestQueue } from '../kafka/request-queue.js';
import { ensureTopics, planTopics, type TopicPlan } from '../kafka/topics.js';
import type { SensorModality } from './defects.js';

export interface OutRecord {
  topic: string;
  partition: number;
  key: string;
  value: Buffer;
  /** Producer timestamp, epoch ms (the producing station's clock). */
  timestamp: number;
  /** Record headers (the W3C trace context of the frame's send span). */
  headers?: Record<string, string>;
}

export interface RecordSink {
  send(records: OutRecord[]): Promise<void>;
}

export interface TopicTarget {
  topic: string;
  partitions: number;
}

export interface StationTopics {
  /** The sensors' topics, and the CT's when the configuration has one (topics.inputs.ct). */
  inputs: Record<SensorModality, TopicTarget> & { ct?: TopicTarget };
  labels: TopicTarget;
}

/**
 * The station's producer. Idempotent, so that a retried request — kafkajs
 * re-sends a whole request when one partition in it fails, as every partition
 * does for a moment after a topic is created or a leader moves — cannot write
 * a record twice: the only duplicates on the topics are the simulated ones.
 * Idempotence needs acks from all replicas and one request in flight, and
 * kafkajs then retries until the broker answers (Ctrl-C ends a run that waits).
 */
/** The station's producer: the service's producer settings (idempotent, unlimited retries, default partitioner; every record names its partition anyway). */
export function stationProducer(kafka: Kafka, config: Config): Producer {
  return kafka.producer(producerConfig(config));
}

/**
 * Sends through one idempotent producer, one request at a time, in call order
 * (RequestQueue: callers may call send() concurrently; what they hand in while a
 * request is in flight goes out together in the next one, so a frame never waits
 * for more than the request ahead of it, however many callers queue behind one slow ack).
 */
export class KafkaRecordSink implements RecordSink {
  private readonly queue: RequestQueue<OutRecord>;

  constructor(producer: Producer, maxRequestBytes = 8 * 1024 * 1024) {
    this.queue = new RequestQueue((records) => write(producer, records), (r) => r.value.length, maxRequestBytes);
  }

  send(records: OutRecord[]): Promise<void> {
    return this.queue.send(records);
  }
}

async function write(producer: Producer, records: OutRecord[]): Promise<void> {
  const byTopic = new Map<string, { key: string; value: Buffer; partition: number; timestamp: string; headers?: Record<string, string> }[]>();
  for (const r of records) {
    let list = byTopic.get(r.topic);
    if (list === undefined) byTopic.set(r.topic, (list = []));
    list.push({ key: r.key, value: r.value, partition: r.partition, timestamp: String(r.timestamp), ...(r.headers ? { headers: r.headers } : {}) });
  }
  // acks from all in-sync replicas: a load test must measure durable writes, not fire-and-forget
  await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
}

/** The topics a station writes: the input topics and the labels topic (the service creates its own). */
export function stationTopicPlans(config: Config): TopicPlan[] {
  return planTopics(config).filter((p) => p.role === 'input' || p.role === 'labels');
}

/**
 * Creates the station's topics where missing (inputs co-partitioned, labels
 * beside them) and returns its targets with the partition counts found on the
 * broker.
 */
export async function stationTopics(admin: Admin, config: Config): Promise<StationTopics> {
  const states = await ensureTopics(admin, stationTopicPlans(config));
  const count = (name: string): number => {
    const s = states.find((x) => x.name === name);
    if (s === undefined || s.actualPartitions < 1) throw new MmadError(ErrorCode.TOPIC_ADMIN_FAILED, `topic ${name} has no partitions`);
    return s.actualPartitions;
  };
  const input = (m: SensorModality): TopicTarget => {
    const topic = config.topics.inputs[m];
    return { topic, partitions: count(topic) };
  };
  const ct = config.topics.inputs.ct;
  return {
    inputs: { rgb: input('rgb'), ir: input('ir'), xyz: input('xyz'), ...(ct === null ? {} : { ct: { topic: ct, partitions: count(ct) } }) },
    labels: { topic: config.topics.labels, partitions: count(config.topics.labels) },
  };
}

export interface StationCodecs {
  frame: Record<SensorModality, AvroCodec<'Frame'>> & { ct?: AvroCodec<'Frame'> };
  label: AvroCodec<'Label'>;
}

/**
 * Codecs for the station's topics: Avro single-object encoding, or with a
 * schema registry configured the Confluent framing, the writer schema
 * registered under each topic's `<topic>-value` subject.
 */
export async function stationCodecs(config: Config, topics: StationTopics, catalog = SchemaCatalog.load()): Promise<StationCodecs> {
  const registry = config.schemaRegistry.url === null ? undefined : new SchemaRegistryClient(config.schemaRegistry.url);
  const make = async <N extends 'Frame' | 'Label'>(name: N, topic: string): Promise<AvroCodec<N>> =>
    registry === undefined ? AvroCodec.local(catalog, name) : AvroCodec.create(catalog, name, { registry, subject: `${topic}-value` });
  return {
    frame: {
      rgb: await make('Frame', topics.inputs.rgb.topic),
      ir: await make('Frame', topics.inputs.ir.topic),
      xyz: await make('Frame', topics.inputs.xyz.topic),
      ...(topics.inputs.ct === undefined ? {} : { ct: await make('Frame', topics.inputs.ct.topic) }),
    },
    label: await make('Label', topics.labels.topic),
  };
}
