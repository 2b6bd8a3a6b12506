/**
 * The one configuration schema of the service. Every default is written here
 * and nowhere else; README.md's configuration table is generated from the same
 * shape (`mmad config --defaults`). Objects are strict: an unknown key (a typo)
 * is an error naming its path, not silently ignored.
 */
import { z } from 'zod';

const topicName = z
  .string()
  .min(1)
  .max(249)
  .regex(/^[a-zA-Z0-9._-]+$/, 'a Kafka topic name uses only letters, digits, ".", "_" and "-"');

export const KafkaSchema = z
  .strictObject({
    /** Bootstrap servers. Empty: the service provides a broker itself (see `broker`). */
    brokers: z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port')).default([]),
    clientId: z.string().min(1).default('mmad'),
    connectionTimeoutMs: z.number().int().positive().default(10_000),
    requestTimeoutMs: z.number().int().positive().default(30_000),
    /** Retries with exponential backoff for a broker that is unreachable or restarting. */
    retry: z
      .strictObject({
        initialRetryTimeMs: z.number().int().positive().default(300),
        maxRetryTimeMs: z.number().int().positive().default(30_000),
        retries: z.number().int().min(0).default(8),
      })
      .prefault({}),
    /** Largest record the service produces or accepts; image frames need megabytes. */
    maxMessageBytes: z.number().int().min(1_048_576).default(33_554_432),
  })
  .prefault({});

export const BrokerSchema = z
  .strictObject({
    /** auto: a container runtime if one is reachable, else a local KRaft broker. */
    provider: z.enum(['auto', 'container', 'local']).default('auto'),
    /** Apache Kafka version of the local broker (jars from Maven Central). */
    kafkaVersion: z.string().regex(/^\d+\.\d+\.\d+$/).default('4.1.1'),
    /** Where the local broker's jars, data and logs live (git-ignored). */
    cacheDir: z.string().min(1).default('.cache/kafka'),
    heapMb: z.number().int().min(128).default(512),
    containerImage: z.string().min(1).default('confluentinc/cp-kafka:7.9.0'),
    startTimeoutMs: z.number().int().positive().default(120_000),
  })
  .prefault({});

export const SchemaRegistrySchema = z
  .strictObject({
    /** Confluent-compatible registry; null: Avro single-object encoding, no registry needed. */
    url: z.url().nullable().default(null),
  })
  .prefault({});

export const TopicsSchema = z
  .strictObject({
    inputs: z
      .strictObject({
        rgb: topicName.default('mmad.frames.rgb'),
        ir: topicName.default('mmad.frames.ir'),
        xyz: topicName.default('mmad.frames.xyz'),
        ct: topicName.nullable().default(null),
      })
      .prefault({}),
    events: topicName.default('mmad.events'),
    alerts: topicName.default('mmad.alerts'),
    deadLetters: topicName.default('mmad.deadletters'),
    /** Ground truth of simulated parts, for evaluation only; the service never reads it. */
    labels: topicName.default('mmad.labels'),
    /** Partition count of every input topic (they must share it) and of the outputs. */
    partitions: z.number().int().min(1).max(10_000).default(6),
    replicationFactor: z.number().int().min(1).max(32).default(1),
  })
  .prefault({});

const durationMs = z.number().int().min(0).max(7 * 24 * 3600 * 1000);

/**
 * How the join treats one modality. Times count in event time (capture time)
 * from the capture of the sample's first frame.
 *  - required: the sample is not judged without it; after timeoutMs it gets an
 *    UNKNOWN verdict naming the missing modality;
 *  - optional: waited for up to timeoutMs, then the sample is judged without it;
 *  - late: never waited for; the sample is judged without it and, when it
 *    arrives within windowMs, judged again (a refined revision).
 */
export const ModalityPolicySchema = z.discriminatedUnion('policy', [
  z.strictObject({ policy: z.literal('required'), timeoutMs: durationMs }),
  z.strictObject({ policy: z.literal('optional'), timeoutMs: durationMs }),
  z.strictObject({ policy: z.literal('late'), windowMs: durationMs }),
]);
export type ModalityPolicy = z.infer<typeof ModalityPolicySchema>;

export const JoinSchema = z
  .strictObject({
    /** Policy per modality; a modality whose input topic is null is not joined. */
    modalities: z
      .strictObject({
        rgb: ModalityPolicySchema.default({ policy: 'required', timeoutMs: 10_000 }),
        ir: ModalityPolicySchema.default({ policy: 'optional', timeoutMs: 2_000 }),
        xyz: ModalityPolicySchema.default({ policy: 'late', windowMs: 120_000 }),
        ct: ModalityPolicySchema.default({ policy: 'late', windowMs: 600_000 }),
      })
      .prefault({}),
    /** A frame whose sample was already closed, or is older than the longest wait plus this, is too late (dead letter). */
    graceMs: durationMs.default(5_000),
    /** When no frame has arrived for this long (wall clock), stream time follows the wall clock, so the last parts before a stop are not stranded. */
    idleAdvanceMs: durationMs.min(1).default(2_000),
    /** Per task: pending samples and their payload bytes; at either limit consumption pauses (nothing is dropped). */
    maxPendingSamples: z.number().int().min(1).default(5_000),
    maxPendingBytes: z.number().int().min(1_048_576).default(536_870_912),
    /** How long (event time) closed sample ids are remembered, to recognise duplicates and too-late frames. */
    closedRetentionMs: durationMs.default(600_000),
  })
  .prefault({});

export const ConfigSchema = z.strictObject({
  kafka: KafkaSchema,
  broker: BrokerSchema,
  schemaRegistry: SchemaRegistrySchema,
  topics: TopicsSchema,
  join: JoinSchema,
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
