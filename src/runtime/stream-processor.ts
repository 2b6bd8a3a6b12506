/**
 * The stream processor: one member of the consumer group that reads the
 * input topics, runs a Task per assigned partition number, publishes events,
 * alerts and dead letters, and commits what is safe to commit. It wires the
 * parts and runs the loop; each part is a module of its own (README.md):
 * the consumer's deliveries go to DeliveryReader, assignments to TaskManager,
 * and a timer (processing.tickMs) pumps the tasks, applies backpressure,
 * commits every processing.commitIntervalMs, checks the topics
 * (TopicWatchdog) and, in a bounded run, finishes the range (BoundedRange).
 *
 * Delivery (processing.guarantee): exactly-once by default — per task, the
 * records and the input offsets commit in one transaction (TaskSink), and
 * the join changelog lets a task that moved or crashed resume without
 * publishing a revision twice; at-least-once on request. In both, an input
 * offset is committed only after the outputs it caused and its sample is
 * closed (Task), so a crash or a rebalance re-reads uncommitted frames and
 * nothing is lost. A task whose write or commit fails is rebuilt from Kafka
 * (changelog + committed offsets), with backoff while the broker is away.
 *
 * kafkajs heartbeats only between messages: batches are decoded with a
 * heartbeat every few records, and judging runs outside the fetch loop, so a
 * slow inference never gets the member evicted. Memory is bounded per task
 * (join limits, buffered bytes, samples in flight): at a bound the task's
 * partitions are paused, never dropped, and resumed when it drains.
 */
import type { Consumer, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import { AvroCodec } from '../codec/avro-codec.js';
import type { Modality } from '../codec/records.js';
import { SchemaCatalog } from '../codec/schema-catalog.js';
import { SchemaRegistryClient } from '../codec/schema-registry.js';
import type { Config } from '../config/config-schema.js';
import type { MmadError } from '../base/errors.js';
import { FrameReader, frameReaderOptions } from '../input/frame-reader.js';
import { SampleJudge, type Judgement } from '../inference/judge.js';
import { decodeLimitsOf } from '../inference/preprocess.js';
import type { ModelRegistry } from '../inference/model-registry.js';
import { createKafka, createConsumer, frameConsumerConfig, onGroupJoin, producerConfig } from '../kafka/kafka-client.js';
import type { RequestQueue } from '../kafka/request-queue.js';
import { inputTopics } from '../kafka/topics.js';
import type { Outputs } from '../output/event-builder.js';
import { at, present } from '../base/invariant.js';
import { rootLogger, type Logger } from '../base/logger.js';
import { BoundedRange, type InputRange, type RangeProgress } from './bounded-range.js';
import { coPartitionedAssignor } from './co-partition-assignor.js';
import { DeliveryReader } from './delivery-reader.js';
import { PartitionPauses } from './partition-pauses.js';
import type { Delivery, JoinSnapshot, ProcessorStats, ProcessorStatus } from './processor-status.js';
import { RecordEncoder } from './record-encoder.js';
import { StatsRollup } from './stats-rollup.js';
import { TaskManager, requiredModalities } from './task-manager.js';
import { AtLeastOnceSink, TransactionalSink, type OutRecord, type TaskSink } from './task-sink.js';
import { TopicWatchdog } from './topic-watchdog.js';

export interface ProcessorOptions {
  logger?: Logger;
  now?: () => number;
  /** Called after each step's records are written (under exactly-once: before their transaction commits). */
  onWritten?: (j: Judgement | null, outputs: Outputs) => void;
  /** Called for each delivery a task takes from an input partition (metrics: records read, lag). */
  onDelivery?: (d: Delivery) => void;
  /**
   * A bounded run (replay): per input partition, the first offset past the range.
   * Records from there on are not processed; when every partition has reached its
   * end, every wait expires (the join is flushed), the outputs commit and
   * `finished` resolves. The start is the group's committed offsets.
   */
  range?: InputRange;
}

export class StreamProcessor {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  /** Ends the task assignment on group joins (in stop(): a join completing after it opens no task). */
  private endJoins = (): void => undefined;
  private readonly producer: Producer;
  private readonly inputs: { topic: string; modality: Modality }[];
  private readonly eos: boolean;
  private readonly range: BoundedRange | undefined;
  private readonly pauses: PartitionPauses;
  private readonly rollup = new StatsRollup();
  private readonly tasks: TaskManager;
  private readonly watchdog: TopicWatchdog;
  /** When the broker last answered the consumer (heartbeat, group join), for health checks. */
  private brokerSeenAt: number | undefined;
  private hasAssignment = false;
  /** at-least-once: the request queue of the shared producer, one sink per task over it. */
  private sharedQueue: RequestQueue<OutRecord> | undefined;
  private reader: FrameReader | undefined;
  private deliveries: DeliveryReader | undefined;
  private partitions = 0;
  private ticker: NodeJS.Timeout | undefined;
  private lastCommit = 0;
  private stopping = false;
  private assignedOnce!: () => void;
  /** Resolves once the member has its first assignment. */
  readonly assigned: Promise<void>;
  /**
   * Resolves with the reason when the processor cannot go on (a topic it needs was
   * deleted); its owner then calls abort(). Nothing past the last commit is lost.
   */
  readonly fatal: Promise<MmadError>;
  /** Bounded run: resolves once the whole range is judged and committed. */
  readonly finished: Promise<void>;

  constructor(
    private readonly config: Config,
    private readonly registry: ModelRegistry,
    private readonly options: ProcessorOptions = {},
  ) {
    this.log = (options.logger ?? rootLogger).child({ component: 'processor' });
    this.now = options.now ?? Date.now;
    this.kafka = createKafka(config, config.kafka.brokers, this.log);
    this.inputs = inputTopics(config);
    this.consumer = createConsumer(this.kafka, {
      ...frameConsumerConfig(config, config.input.groupId),
      partitionAssigners: [coPartitionedAssignor],
      readUncommitted: false,
    });
    // at-least-once: one producer for all tasks; idempotent, one request in flight keeps a sample's revisions in order
    this.producer = this.kafka.producer(producerConfig(config));
    this.eos = config.processing.guarantee === 'exactly-once';
    this.range = options.range === undefined ? undefined : new BoundedRange(options.range);
    this.pauses = new PartitionPauses(this.consumer, this.inputs.map((i) => i.topic), this.range);
    this.assigned = new Promise((r) => (this.assignedOnce = r));
    void this.assigned.then(() => (this.hasAssignment = true));
    this.tasks = new TaskManager({
      config,
      kafka: this.kafka,
      consumer: this.consumer,
      judge: new SampleJudge(registry, decodeLimitsOf(config), this.inputs.map((i) => i.modality), this.now, config.inference.maxBatchSize, requiredModalities(config)),
      pauses: this.pauses,
      stats: this.rollup,
      range: this.range,
      log: this.log,
      now: this.now,
      ...(options.onWritten ? { onWritten: options.onWritten } : {}),
      onAssigned: () => this.assignedOnce(),
      stopping: () => this.stopping,
    });
    this.watchdog = new TopicWatchdog(config, this.kafka, this.log, this.now, () => this.stopping);
    this.fatal = this.watchdog.fatal;
    this.finished = this.range?.finished ?? new Promise(() => undefined);
  }

  async start(): Promise<void> {
    const registry = this.config.schemaRegistry.url === null ? undefined : new SchemaRegistryClient(this.config.schemaRegistry.url);
    const catalog = SchemaCatalog.load();
    const frameCodec = await AvroCodec.create(catalog, 'Frame', { ...(registry ? { registry } : {}), subject: `${at(this.inputs, 0).topic}-value` });
    const encoder = await RecordEncoder.open(this.config, catalog, registry);
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: this.inputs.map((i) => i.topic) });
      this.partitions = at(meta.topics, 0).partitions.length;
    } finally {
      await admin.disconnect();
    }
    this.reader = new FrameReader(frameCodec, frameReaderOptions(this.config, new Map(this.inputs.map((i) => [i.topic, i.modality])), this.partitions));
    this.deliveries = new DeliveryReader({
      consumer: this.consumer,
      reader: this.reader,
      pauses: this.pauses,
      range: this.range,
      topics: this.inputs.map((i) => i.topic),
      log: this.log,
      now: this.now,
      ...(this.options.onDelivery ? { onDelivery: this.options.onDelivery } : {}),
    });
    if (!this.eos) {
      await this.producer.connect();
      this.sharedQueue = AtLeastOnceSink.queueFor(this.producer);
    }
    // the delivery guarantee is decided here: a transactional producer per task, or a share of the one idempotent producer
    this.tasks.open(encoder, (p): Promise<TaskSink> => (this.eos ? TransactionalSink.open(this.kafka, this.config, p) : Promise.resolve(new AtLeastOnceSink(present(this.sharedQueue, 'the shared producer queue'), this.consumer))));
    await this.consumer.connect();
    this.endJoins = onGroupJoin(this.consumer, (assignment) => this.tasks.onAssignment(assignment));
    // a fetch that returned only transaction markers never reaches eachBatch, yet it tells the merge the partition is at its end
    this.consumer.on(this.consumer.events.START_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize === 0) this.tasks.get(payload.partition)?.position(payload.topic, BigInt(payload.offsetLag) <= 0n);
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => this.log.error('consumer crashed', { error: e.payload.error, restart: e.payload.restart }));
    for (const e of [this.consumer.events.HEARTBEAT, this.consumer.events.GROUP_JOIN]) this.consumer.on(e, () => (this.brokerSeenAt = this.now()));
    await this.consumer.subscribe({ topics: this.inputs.map((i) => i.topic), fromBeginning: this.config.input.startFrom === 'earliest' });
    await this.consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.ticker = setInterval(() => void this.tick(), this.config.processing.tickMs);
    this.log.info('stream processor started', {
      group: this.config.input.groupId,
      guarantee: this.config.processing.guarantee,
      inputs: this.inputs.map((i) => i.topic),
      partitions: this.partitions,
      models: this.registry.models.map((m) => `${m.spec.id}@${m.spec.version}`),
    });
  }

  /** Graceful stop: no new input, in-flight samples published, offsets committed, group left. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.endJoins();
    await this.consumer.stop();
    const tasks = this.tasks.running();
    await Promise.all(tasks.map((t) => t.commit()));
    await Promise.all(tasks.map((t) => t.idle()));
    await Promise.all(tasks.map((t) => t.stop()));
    await this.consumer.disconnect();
    if (!this.eos) await this.producer.disconnect();
    this.log.info('stream processor stopped', this.stats() as unknown as Record<string, unknown>);
  }

  /**
   * Stop after a fatal error: no commit (the outputs may be what failed), open
   * transactions aborted, group left. Uncommitted input is read again by the next
   * owner of each task, so nothing is lost; every step is bounded in time.
   */
  async abort(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    const bounded = (p: Promise<unknown>): Promise<unknown> => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
    await bounded(this.consumer.stop());
    await Promise.all(this.tasks.running().map((t) => bounded(t.stop())));
    await bounded(this.consumer.disconnect());
    if (!this.eos) await bounded(this.producer.disconnect());
    this.log.warn('stream processor aborted', this.stats() as unknown as Record<string, unknown>);
  }

  stats(): ProcessorStats {
    return this.rollup.stats(this.tasks.running(), {
      paused: this.pauses.tasks(),
      clockSkew: this.reader?.clocks.snapshot() ?? [],
      stuckClaimReads: this.reader?.stuckClaimReads ?? 0,
    });
  }

  /** For health checks (read-only): running, assignment, tasks, and when the broker last answered. */
  status(): ProcessorStatus {
    return {
      running: this.ticker !== undefined && !this.stopping,
      assigned: this.hasAssignment,
      tasks: this.tasks.running().map((t) => t.partition).sort((a, b) => a - b),
      starting: this.tasks.startingNumbers(),
      brokerContactAgoMs: this.brokerSeenAt === undefined ? null : Math.max(0, this.now() - this.brokerSeenAt),
      stalled: this.stalls(),
    };
  }

  /**
   * What has not moved for processing.stallTimeoutMs. A task waiting on acknowledgements
   * while the broker is away is not a stall of this process (readiness reports the broker;
   * restarting would not help), so a task's stall counts only while the broker answers.
   */
  private stalls(): ProcessorStatus['stalled'] {
    const limit = this.config.processing.stallTimeoutMs;
    const now = this.now();
    const out: ProcessorStatus['stalled'] = [];
    const readingSince = this.deliveries?.readingSince ?? null;
    if (readingSince !== null && now - readingSince > limit) {
      out.push({ task: null, forMs: now - readingSince, what: 'reading one delivery of input records has not finished' });
    }
    const brokerAnswers = this.brokerSeenAt !== undefined && now - this.brokerSeenAt <= limit;
    for (const t of this.tasks.running()) {
      const forMs = t.stalledFor(now);
      if (forMs > limit && brokerAnswers) out.push({ task: t.partition, forMs, what: `input or judging waiting (${t.buffered} records buffered), nothing taken or finished` });
    }
    return out;
  }

  /** The join of every task this member ran (read-only; metrics). */
  joinSnapshot(): JoinSnapshot {
    return this.rollup.joinSnapshot(this.tasks.running());
  }

  /** Bounded run: how far the range is read (records), for progress reports. */
  rangeProgress(): RangeProgress | undefined {
    return this.range?.progress();
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const p = payload.batch.partition;
    const task = this.tasks.get(p);
    if (task === undefined) {
      // starting (restoring) or revoked: this delivery is not kept (nor read); the task reads from its committed offsets
      this.pauses.pauseTask(p);
      if (this.tasks.isStarting(p)) await this.tasks.seekToCommitted(p);
      return;
    }
    await present(this.deliveries, 'the delivery reader').read(task, payload);
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.range !== undefined && this.tasks.startingNumbers().length === 0) void this.range.finishIfDone(this.tasks.running(), this.inputs.length);
    this.watchdog.tick();
    const commitDue = this.now() - this.lastCommit >= this.config.processing.commitIntervalMs;
    if (commitDue) this.lastCommit = this.now();
    const deliveries = present(this.deliveries, 'the delivery reader');
    for (const task of this.tasks.running()) {
      task.pump();
      deliveries.applyBackpressure(task);
      deliveries.reportBlocked(task);
      if (commitDue && !task.committing) void task.commit();
    }
  }
}
