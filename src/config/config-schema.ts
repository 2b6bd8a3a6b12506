/**
 * The one configuration schema of the service. Every default is written here
 * and nowhere else (`mmad config --defaults` prints them); README.md's configuration
 * table is checked against it, key by key and default by default, by
 * test/config/readme-table.test.ts. Objects are strict: an unknown key (a typo)
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
    /** How long `run` waits for an unreachable broker at start-up, retrying with backoff; 0 = for ever. */
    startupTimeoutMs: z.number().int().min(0).default(0),
    /** Largest record the service produces or accepts; image frames need megabytes. */
    maxMessageBytes: z.number().int().min(1_048_576).default(33_554_432),
    /**
     * Consumer group session timeout: an instance silent this long (crashed, or paused: a long
     * GC, a frozen VM) loses its tasks to the others, whose transactions then fence its writes.
     * Within the broker's group.min/max.session.timeout.ms (6 s .. 30 min by default).
     */
    sessionTimeoutMs: z.number().int().min(6_000).max(1_800_000).default(30_000),
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
    /**
     * Per task: closed samples remembered at most, and their bytes (ids plus 256 bytes each);
     * beyond either the oldest are forgotten before closedRetentionMs (counted as forgotten early):
     * a later frame of one is then judged as a new sample's would be.
     */
    maxClosedSamples: z.number().int().min(1).default(50_000),
    maxClosedBytes: z.number().int().min(65_536).default(33_554_432),
  })
  .prefault({});

export const InputSchema = z
  .strictObject({
    /** Directories a claim-check payload reference (file:// URI) may point into; empty: references are refused. */
    claimCheckRoots: z.array(z.string().min(1)).default([]),
    /** Longest sample id accepted (bytes of UTF-8). */
    maxSampleIdBytes: z.number().int().min(1).max(65_536).default(256),
    /** Longest line, station and sensor name accepted (bytes of UTF-8); they are copied into events and alerts. */
    maxFieldBytes: z.number().int().min(1).max(65_536).default(256),
    /**
     * How far a frame's capture time may lead the time its record reached the broker (or this
     * service's clock, whichever is earlier) before the frame is a FRAME_CLOCK_SKEW dead letter:
     * a capture time from the future would move the join's stream time ahead of every station.
     * Pending parts can be released at most this much early by a frame within the bound.
     */
    maxClockLeadMs: durationMs.default(10_000),
    /** How far a capture time may lag its record's timestamp (a station that held frames back longer, or a clock set back). */
    maxClockLagMs: durationMs.default(86_400_000),
    /** Deadline of one claim-check read (resolve, open, read, hash); past it the frame is a dead letter and the partition moves on. */
    claimCheckTimeoutMs: z.number().int().min(1).max(600_000).default(5_000),
    /** Claim-check reads stuck past their deadline (each holds a file-system thread) beyond which references fail at once. */
    maxStuckClaimReads: z.number().int().min(1).max(64).default(2),
    /**
     * Inflate each PNG's image data (and decode each ct volume's TIFF) when the frame is read and check its scanlines, so a corrupt
     * frame is a dead letter before it joins a part and a station's retry of it is judged (it is
     * a new frame, not a duplicate). Costs 0.2-0.7 × a PNG decode per frame, in the thread pool
     * (about 2 ms of CPU per 256² rgb + ir part); false leaves corrupt data to the judge.
     */
    verifyImageData: z.boolean().default(true),
    /** Consumer group of the service (all instances of one line share it). */
    groupId: z.string().min(1).default('mmad-processor'),
    /** Where a new consumer group starts: earliest (nothing on the topics is skipped) or latest. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
  })
  .prefault({});

export const ProcessingSchema = z
  .strictObject({
    /**
     * exactly-once: events, alerts, dead letters, join changelog and input offsets commit in one
     * Kafka transaction per task; at-least-once: cheaper, a crash can publish a revision twice.
     */
    guarantee: z.enum(['exactly-once', 'at-least-once']).default('exactly-once'),
    /** How often a task commits (a transaction under exactly-once); consumers reading committed see events this much later at most. */
    commitIntervalMs: z.number().int().min(10).default(100),
    /**
     * A task waits this long for a caught-up partition with no buffered frames before merging
     * without it (Kafka Streams' max.task.idle.ms). A partition known to have unread records is
     * always waited for, so history merges the same however it is fetched.
     */
    maxTaskIdleMs: z.number().int().min(0).default(0),
    /** Frames buffered per task before its partitions are paused. */
    maxBufferedBytesPerTask: z.number().int().min(1_048_576).default(134_217_728),
    /** Samples being judged at once per task (more fill micro-batches; each holds its frames). */
    maxInFlightPerTask: z.number().int().min(1).default(64),
    /** How often the topics the service reads and writes are checked to exist (a deleted one stops it with TOPIC_MISSING). */
    topicCheckMs: z.number().int().min(100).default(5_000),
    /**
     * Liveness (/healthz) fails when a task has had input or judging waiting for this long
     * without taking or finishing anything, or one delivery's reading has not ended: an
     * orchestrator then restarts the instance (its tasks move on from the last commit).
     */
    stallTimeoutMs: z.number().int().min(1_000).default(120_000),
    /** How often idle tasks are driven (join idle timer, merge idle limit, resuming paused partitions, commits). */
    tickMs: z.number().int().min(5).default(20),
  })
  .prefault({});

export const InferenceSchema = z
  .strictObject({
    /** The model manifest (schemas/model-manifest.schema.json); relative paths resolve against the project root. */
    manifest: z.string().min(1).default('models/exported/manifest.json'),
    /** ONNX Runtime execution providers, in order of preference (cuda/tensorrt need a GPU install of onnxruntime-node). */
    executionProviders: z.array(z.enum(['cpu', 'cuda', 'tensorrt'])).min(1).default(['cpu']),
    /** When a GPU provider cannot start: fall back to CPU (logged) instead of refusing to start. */
    cpuFallback: z.boolean().default(true),
    /** Threads per inference run on CPU; 0 lets ONNX Runtime choose. */
    intraOpThreads: z.number().int().min(0).default(0),
    /**
     * Let ONNX Runtime's CPU threads spin between runs (its own default): a little lower
     * model latency on an idle machine, a core burnt that decoding and the broker client need.
     */
    spinWait: z.boolean().default(false),
    /** Micro-batching: at most this many samples per run... */
    maxBatchSize: z.number().int().min(1).max(1024).default(8),
    /** ...and a sample waits at most this long for others to join its batch. */
    maxBatchWaitMs: z.number().min(0).max(10_000).default(5),
    /** When several models fit a modality set, prefer methods in this order. */
    preferMethods: z.array(z.enum(['crd', 'mtfi'])).default(['mtfi', 'crd']),
    /** Largest frame (width × height) decoded; larger ones are dead-lettered before decoding. */
    maxPixels: z.number().int().min(1).default(16_777_216),
    /** Largest point cloud (xyz) accepted, width × height: a point takes 12 bytes, four times an rgb pixel. */
    maxXyzPixels: z.number().int().min(1).default(4_194_304),
    /**
     * Bounds of a ct frame's volume, checked from its header before any payload is read or
     * decoded; a frame outside them is a FRAME_SHAPE dead letter naming the bound. A slice is
     * also bounded by maxPixels. The default voxel limit (32 Mi voxels, 64 MiB of uint16, e.g.
     * 512 slices of 256²) fits a task's buffer (processing.maxBufferedBytesPerTask); larger
     * volumes travel by claim check and need that buffer raised.
     */
    ct: z
      .strictObject({
        /** Fewest and most slices. */
        minDepth: z.number().int().min(1).default(1),
        maxDepth: z.number().int().min(1).default(2_048),
        /** Largest depth × height × width. */
        maxVoxels: z.number().int().min(1).default(33_554_432),
        /** Smallest and largest voxel edge, mm (each of x, y, z). */
        minVoxelSizeMm: z.number().positive().default(0.001),
        maxVoxelSizeMm: z.number().positive().default(10),
      })
      .refine((c) => c.maxDepth >= c.minDepth, { error: 'maxDepth must not be below minDepth', path: ['maxDepth'] })
      .refine((c) => c.maxVoxelSizeMm >= c.minVoxelSizeMm, { error: 'maxVoxelSizeMm must not be below minVoxelSizeMm', path: ['maxVoxelSizeMm'] })
      .prefault({}),
    /**
     * The threshold each student decides with on this line (NOK when score ≥ threshold). By
     * default the manifest's; resolved once at start-up and logged per model with its source
     * (src/inference/threshold.ts). The value used is what events and alerts carry.
     */
    threshold: z
      .strictObject({
        /**
         * The share of good parts a student may call NOK: each student's threshold becomes the
         * quantile at 1 − rate of the distribution its manifest fitted to the calibration good
         * scores (threshold.distribution: a Gumbel, or a generalized Pareto tail, which describes
         * rates up to its tailFraction only). null: the manifest's threshold.value. A student
         * without a distribution in the manifest (schemaVersion 1), or whose tail stops below the
         * rate, and without an override stops start-up.
         */
        falseAlarmRate: z.number().gt(0).lt(1).nullable().default(null),
        /** An explicit threshold per model id; wins over falseAlarmRate and the manifest. An id that is not in the manifest stops start-up. */
        overrides: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'a model id of the manifest'), z.number()).default({}),
      })
      .prefault({}),
  })
  .prefault({});

export const OutputSchema = z
  .strictObject({
    /** Longer side of the heatmap PNG in each event; the other keeps the model input's aspect (0: no heatmap). */
    heatmapSize: z.number().int().min(0).max(512).default(64),
    /** Most anomalous regions listed per event (largest first). */
    maxRegions: z.number().int().min(0).max(1000).default(32),
  })
  .prefault({});

const probability = z.number().min(0).max(1);

/**
 * Defaults of the line simulator and the dataset tools (`mmad simulate`,
 * `mmad publish-dataset`, `mmad dataset`); their command-line flags override
 * these. The fault rates are small but not zero, so a default run already
 * exercises the service's handling of lost, repeated and late frames.
 */
export const SimulateSchema = z
  .strictObject({
    line: z.string().min(1).default('line-1'),
    station: z.string().min(1).default('station-1'),
    /** Product type of the simulated line (battery_lid, composite_coupon). */
    product: z.string().regex(/^[a-z][a-z0-9_]*$/, 'a product type name (snake_case)').default('battery_lid'),
    /** Pixels per side of every modality (all pixel-aligned). */
    width: z.number().int().min(16).max(4096).default(256),
    height: z.number().int().min(16).max(4096).default(256),
    seed: z.number().int().min(0).max(4_294_967_295).default(1),
    /** Share of defective parts on the simulated line. */
    defectRate: probability.default(0.1),
    /** Defects to draw from; empty: every defect the product can have. */
    defects: z.array(z.string().regex(/^[a-z][a-z0-9_]*$/)).default([]),
    /** Scale of defect footprints and of their physical magnitude (1 = the catalogue's). */
    defectSize: z.number().positive().max(10).default(1),
    defectContrast: z.number().positive().max(10).default(1),
    /** Parts passing the station per second. */
    ratePerSecond: z.number().positive().max(100_000).default(5),
    rgbIrJitterMs: z.number().min(0).max(1000).default(3),
    /** Share of parts that also get the slow 3D measurement, and its delay after the part passed. */
    xyzFraction: probability.default(0.3),
    xyzDelayMinMs: z.number().min(0).default(5_000),
    xyzDelayMaxMs: z.number().min(0).default(60_000),
    dropRate: probability.default(0.002),
    duplicateRate: probability.default(0.002),
    reorderRate: probability.default(0.01),
    reorderMaxMs: z.number().min(0).default(2_000),
    /** Each sensor's clock is off by a constant within ±clockSkewMs. */
    clockSkewMs: z.number().min(0).default(20),
    burstRate: probability.default(0),
    burstSize: z.number().int().min(1).default(10),
    burstFactor: z.number().min(1).default(5),
    /**
     * Share of parts the station also sends to the CT (0: no CT). Their volume comes minutes
     * later (ctDelayMinMs..ctDelayMaxMs after the part passed) and, for ctMissRate of them,
     * never, though announced. Needs topics.inputs.ct; every simulated part then gets a volume rendered.
     */
    ctFraction: probability.default(0),
    ctDelayMinMs: z.number().min(0).default(60_000),
    ctDelayMaxMs: z.number().min(0).default(300_000),
    ctMissRate: probability.default(0.05),
    /** Parts pre-rendered and re-published under fresh IDs (load tests); 0 renders every part. */
    poolSize: z.number().int().min(0).max(100_000).default(32),
    /** zlib level of the PNG payloads: lower is faster and larger. */
    pngCompressionLevel: z.number().int().min(0).max(9).default(6),
  })
  .refine((s) => s.xyzDelayMaxMs >= s.xyzDelayMinMs, { error: 'xyzDelayMaxMs must not be below xyzDelayMinMs', path: ['xyzDelayMaxMs'] })
  .refine((s) => s.ctDelayMaxMs >= s.ctDelayMinMs, { error: 'ctDelayMaxMs must not be below ctDelayMinMs', path: ['ctDelayMaxMs'] })
  .prefault({});

/**
 * Observability: the operations HTTP server (Prometheus /metrics, /healthz,
 * /readyz) and OpenTelemetry export over OTLP/HTTP (traces: a span per sample
 * and revision, linked to the producer spans of its frames; metrics).
 */
export const TelemetrySchema = z
  .strictObject({
    /** service.name of the OpenTelemetry resource (traces, OTLP metrics, Prometheus target_info). */
    serviceName: z.string().min(1).default('mmad'),
    prometheus: z
      .strictObject({
        /** Port of the operations server (/metrics, /healthz, /readyz); 0: no server. */
        port: z.number().int().min(0).max(65_535).default(9464),
        /** Interface it listens on. */
        host: z.string().min(1).default('0.0.0.0'),
      })
      .prefault({}),
    otlp: z
      .strictObject({
        /** OTLP/HTTP base URL of a collector (e.g. http://otel-collector:4318): traces go to <endpoint>/v1/traces, metrics to /v1/metrics; null: no OTLP export. */
        endpoint: z.url().nullable().default(null),
        /** How often metrics are pushed over OTLP; 0: traces only (Prometheus scrapes the metrics). */
        metricIntervalMs: z.number().int().min(0).default(15_000),
      })
      .prefault({}),
    /** Share of samples traced (by trace id), when traces are exported. */
    traceSampleRatio: probability.default(1),
  })
  .prefault({});

export const ConfigSchema = z.strictObject({
  kafka: KafkaSchema,
  broker: BrokerSchema,
  schemaRegistry: SchemaRegistrySchema,
  topics: TopicsSchema,
  input: InputSchema,
  processing: ProcessingSchema,
  join: JoinSchema,
  inference: InferenceSchema,
  output: OutputSchema,
  telemetry: TelemetrySchema,
  simulate: SimulateSchema,
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
