/**
 * The stream processor: one member of the consumer group that reads the
 * input topics, runs a Task per assigned partition number, publishes events,
 * alerts and dead letters, and commits what is safe to commit.
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
import { backoffMs } from '../base/backoff.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import type { StationSkew } from '../input/clock-skew.js';
import { FrameReader, frameReaderOptions, type ReadResult } from '../input/frame-reader.js';
import { SampleJudge, type Judgement } from '../inference/judge.js';
import { decodeLimitsOf } from '../inference/preprocess.js';
import type { ModelRegistry } from '../inference/model-registry.js';
import type { JoinPolicy } from '../join/sample-joiner.js';
import { addJoinStats, emptyJoinStats } from '../join/sample-joiner.js';
import { createKafka, frameConsumerConfig, producerConfig } from '../kafka/kafka-client.js';
import type { RequestQueue } from '../kafka/request-queue.js';
import { inputTopics } from '../kafka/topics.js';
import type { Outputs } from '../output/event-builder.js';
import { rootLogger, type Logger } from '../base/logger.js';
import { coPartitionedAssignor } from './co-partition-assignor.js';
import { changelogTopic, readChangelog } from './join-changelog.js';
import type { Queued } from './partition-group.js';
import type { Delivery, JoinSnapshot, ProcessorStatus } from './processor-status.js';
import { RecordEncoder } from './record-encoder.js';
import { AtLeastOnceSink, TransactionalSink, type OutRecord, type TaskSink } from './task-sink.js';
import { Task } from './task.js';

/** Retrying a task's start or its committed offsets while the broker or the group coordinator is away. */
const TASK_RETRY = { initialMs: 500, maxMs: 30_000 };

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

export interface InputRange {
  /** Where the range starts (the group's committed offsets must be set there), keyed `${topic}:${partition}`. */
  start: Map<string, bigint>;
  /** The first offset past the range, same keys. */
  end: Map<string, bigint>;
}

export interface ProcessorStats {
  tasks: number[];
  framesRead: number;
  /** Records a kept task was delivered again after a rebalance and dropped. */
  redelivered: number;
  judged: number;
  deadLetters: number;
  keyProblems: number;
  duplicates: number;
  pendingSamples: number;
  paused: number[];
  commits: number;
  taskRestarts: number;
  /** The last capture-time skew seen per station (input/clock-skew.ts). */
  clockSkew: StationSkew[];
  /** Claim-check reads past their deadline that have not returned. */
  stuckClaimReads: number;
}

export function joinPolicyOf(config: Config): JoinPolicy {
  const modalities: JoinPolicy['modalities'] = {};
  for (const { modality } of inputTopics(config)) modalities[modality] = config.join.modalities[modality];
  return { ...config.join, modalities };
}

/** The joined modalities whose policy is `required`. */
export function requiredModalities(config: Config): Modality[] {
  return inputTopics(config).map((i) => i.modality).filter((m) => config.join.modalities[m].policy === 'required');
}

export class StreamProcessor {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly inputs: { topic: string; modality: Modality }[];
  private readonly tasks = new Map<number, Task>();
  /** Task numbers being (re)started: input for them is buffered by their Task, which waits for its restore. */
  private readonly starting = new Set<number>();
  private taskRestarts = 0;
  /** Counters of tasks no longer running here (moved or rebuilt), so stats() covers the whole run. */
  private readonly retired = { framesRead: 0, redelivered: 0, judged: 0, deadLetters: 0, keyProblems: 0, duplicates: 0, commits: 0 };
  /** Join statistics of tasks no longer running here, so joinSnapshot() covers the whole run. */
  private readonly retiredJoin = emptyJoinStats();
  /** When the broker last answered the consumer (heartbeat, group join), for health checks. */
  private brokerSeenAt: number | undefined;
  /** Per input partition ("topic:partition"): bytes of the claim check that did not fit, the record to read once they do. */
  private readonly deferredClaims = new Map<string, number>();
  /** Per input partition: when to read again a record deferred for the schema registry (epoch ms). */
  private readonly waitingFor = new Map<string, number>();
  private registryWarned = 0;
  /** When the delivery being read started (null between deliveries): a read that never ends shows here. */
  private batchStartedAt: number | null = null;
  private hasAssignment = false;
  private readonly eos: boolean;
  /** at-least-once: the request queue of the shared producer, one sink per task over it. */
  private sharedQueue: RequestQueue<OutRecord> | undefined;
  /** Paused input topics per task number. */
  private readonly paused = new Map<number, Set<string>>();
  /** When each task's merge was last reported as waiting for unread records (stall warnings). */
  private readonly blockedReported = new Map<number, number>();
  private readonly judge: SampleJudge;
  private encoder!: RecordEncoder;
  private reader!: FrameReader;
  private partitions = 0;
  private ticker: NodeJS.Timeout | undefined;
  private lastCommit = 0;
  private stopping = false;
  private assignedOnce!: () => void;
  /** Resolves once the member has its first assignment. */
  readonly assigned: Promise<void>;
  private keyProblemLogged = 0;
  private lastTopicCheck = 0;
  private checkingTopics = false;
  private reportFatal!: (err: MmadError) => void;
  /**
   * Resolves with the reason when the processor cannot go on (a topic it needs was
   * deleted); its owner then calls abort(). Nothing past the last commit is lost.
   */
  readonly fatal: Promise<MmadError>;
  /** Bounded run: input partitions (`${topic}:${partition}`) that reached the end of the range. */
  private readonly rangeDone = new Set<string>();
  /** Bounded run: the next offset to read, per input partition. */
  private readonly positions = new Map<string, bigint>();
  private finishing = false;
  private reportFinished!: () => void;
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
    this.consumer = this.kafka.consumer({
      ...frameConsumerConfig(config, config.input.groupId),
      partitionAssigners: [coPartitionedAssignor],
      readUncommitted: false,
    });
    // at-least-once: one producer for all tasks; idempotent, one request in flight keeps a sample's revisions in order
    this.producer = this.kafka.producer(producerConfig(config));
    this.eos = config.processing.guarantee === 'exactly-once';
    this.judge = new SampleJudge(registry, decodeLimitsOf(config), this.inputs.map((i) => i.modality), this.now, config.inference.maxBatchSize, requiredModalities(config));
    this.assigned = new Promise((r) => (this.assignedOnce = r));
    void this.assigned.then(() => (this.hasAssignment = true));
    this.fatal = new Promise((r) => (this.reportFatal = r));
    this.finished = new Promise((r) => (this.reportFinished = r));
  }

  async start(): Promise<void> {
    const registry = this.config.schemaRegistry.url === null ? undefined : new SchemaRegistryClient(this.config.schemaRegistry.url);
    const catalog = SchemaCatalog.load();
    const frameCodec = await AvroCodec.create(catalog, 'Frame', { ...(registry ? { registry } : {}), subject: `${this.inputs[0]!.topic}-value` });
    this.encoder = await RecordEncoder.open(this.config, catalog, registry);
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: this.inputs.map((i) => i.topic) });
      this.partitions = meta.topics[0]!.partitions.length;
    } finally {
      await admin.disconnect();
    }
    this.reader = new FrameReader(frameCodec, frameReaderOptions(this.config, new Map(this.inputs.map((i) => [i.topic, i.modality])), this.partitions));
    if (!this.eos) {
      await this.producer.connect();
      this.sharedQueue = AtLeastOnceSink.queueFor(this.producer);
    }
    await this.consumer.connect();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => this.onAssignment(e.payload.memberAssignment));
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
    await this.consumer.stop();
    const tasks = [...this.tasks.values()];
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
    await Promise.all([...this.tasks.values()].map((t) => bounded(t.stop())));
    await bounded(this.consumer.disconnect());
    if (!this.eos) await bounded(this.producer.disconnect());
    this.log.warn('stream processor aborted', this.stats() as unknown as Record<string, unknown>);
  }

  stats(): ProcessorStats {
    const tasks = [...this.tasks.values()];
    const sum = (f: (t: Task) => number): number => tasks.reduce((s, t) => s + f(t), 0);
    const r = this.retired;
    return {
      tasks: tasks.map((t) => t.partition).sort((a, b) => a - b),
      framesRead: r.framesRead + sum((t) => t.stats.framesRead),
      redelivered: r.redelivered + sum((t) => t.stats.redelivered),
      judged: r.judged + sum((t) => t.stats.judged),
      deadLetters: r.deadLetters + sum((t) => t.stats.deadLetters),
      keyProblems: r.keyProblems + sum((t) => t.stats.keyProblems),
      duplicates: r.duplicates + sum((t) => t.joiner.stats.duplicates),
      pendingSamples: sum((t) => t.joiner.pendingCount),
      paused: [...this.paused.keys()].sort((a, b) => a - b),
      commits: r.commits + sum((t) => t.stats.commits),
      taskRestarts: this.taskRestarts,
      clockSkew: this.reader?.clocks.snapshot() ?? [],
      stuckClaimReads: this.reader?.stuckClaimReads ?? 0,
    };
  }

  /** For health checks (read-only): running, assignment, tasks, and when the broker last answered. */
  status(): ProcessorStatus {
    return {
      running: this.ticker !== undefined && !this.stopping,
      assigned: this.hasAssignment,
      tasks: [...this.tasks.keys()].sort((a, b) => a - b),
      starting: [...this.starting].sort((a, b) => a - b),
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
    if (this.batchStartedAt !== null && now - this.batchStartedAt > limit) {
      out.push({ task: null, forMs: now - this.batchStartedAt, what: 'reading one delivery of input records has not finished' });
    }
    const brokerAnswers = this.brokerSeenAt !== undefined && now - this.brokerSeenAt <= limit;
    for (const t of this.tasks.values()) {
      const forMs = t.stalledFor(now);
      if (forMs > limit && brokerAnswers) out.push({ task: t.partition, forMs, what: `input or judging waiting (${t.buffered} records buffered), nothing taken or finished` });
    }
    return out;
  }

  /** The join of every task this member ran (read-only; metrics). */
  joinSnapshot(): JoinSnapshot {
    const stats = addJoinStats(emptyJoinStats(), this.retiredJoin);
    let pendingSamples = 0;
    let pendingBytes = 0;
    let closedSamples = 0;
    let closedBytes = 0;
    for (const t of this.tasks.values()) {
      addJoinStats(stats, t.joiner.stats);
      pendingSamples += t.joiner.pendingCount;
      pendingBytes += t.joiner.bytesHeld;
      closedSamples += t.joiner.closedMemory.samples;
      closedBytes += t.joiner.closedMemory.bytes;
    }
    return { stats, pendingSamples, pendingBytes, closedSamples, closedBytes };
  }

  private retire(task: Task): void {
    const r = this.retired;
    r.framesRead += task.stats.framesRead;
    r.redelivered += task.stats.redelivered;
    r.judged += task.stats.judged;
    r.deadLetters += task.stats.deadLetters;
    r.keyProblems += task.stats.keyProblems;
    r.duplicates += task.joiner.stats.duplicates;
    r.commits += task.stats.commits;
    addJoinStats(this.retiredJoin, task.joiner.stats);
  }

  private onAssignment(assignment: Record<string, number[]>): void {
    const numbers = new Set<number>();
    for (const { topic } of this.inputs) for (const p of assignment[topic] ?? []) numbers.add(p);
    for (const [p, task] of this.tasks) {
      if (!numbers.has(p)) {
        this.tasks.delete(p);
        this.resumeTask(p);
        this.retire(task);
        void task.stop();
      } else {
        // the consumer restarts a rebalanced partition from its committed offset: a kept task goes on from where it is
        this.seekTo(p, task.positions());
      }
    }
    // a task still starting (fencing, restoring) that moved away must not be installed when its start completes
    for (const p of this.starting) if (!numbers.has(p)) this.starting.delete(p);
    const fresh = [...numbers].filter((p) => !this.tasks.has(p) && !this.starting.has(p));
    this.log.info('tasks assigned', { tasks: [...numbers].sort((a, b) => a - b), starting: fresh });
    void this.startTasks(fresh).then(() => this.assignedOnce());
  }

  /**
   * Starts tasks: under exactly-once, each task's transactional producer is
   * initialised first (fencing a previous owner and aborting its open
   * transaction), then the changelog is read to its end, then input flows.
   * Until then the consumer's deliveries for the task are buffered.
   */
  private async startTasks(partitions: number[], attempt = 0): Promise<void> {
    if (partitions.length === 0 || this.stopping) return;
    for (const p of partitions) {
      this.starting.add(p);
      this.pauseTask(p);
    }
    try {
      const sinks = new Map<number, TaskSink>();
      for (const p of partitions) sinks.set(p, this.eos ? await TransactionalSink.open(this.kafka, this.config, p) : new AtLeastOnceSink(this.sharedQueue!, this.consumer));
      const restored = await readChangelog(this.kafka, this.config, this.encoder.codecs.joinState, partitions, this.log);
      const starts = await this.startPositions(partitions);
      for (const p of partitions) {
        if (!this.starting.has(p)) {
          await sinks.get(p)!.close();
          continue; // revoked meanwhile
        }
        const task = this.newTask(p, sinks.get(p)!);
        task.startAt(starts.get(p) ?? new Map());
        task.restore(restored.get(p) ?? [], { now: this.now(), maxLeadMs: this.config.input.maxClockLeadMs });
        // the consumer's own position may predate the previous owner's last commit
        this.seekTo(p, task.positions());
        this.tasks.set(p, task);
        this.starting.delete(p);
        this.resumeTask(p);
      }
    } catch (err) {
      const wait = backoffMs(attempt, TASK_RETRY);
      this.log.error('task start failed; retrying', { tasks: partitions, attempt, waitMs: wait, error: messageOf(err) });
      await new Promise((r) => setTimeout(r, wait));
      const still = partitions.filter((p) => this.starting.has(p));
      for (const p of still) this.starting.delete(p);
      await this.startTasks(still, attempt + 1);
    }
  }

  /** A task failed (write or commit): drop it and rebuild it from the changelog and the committed offsets. */
  private onTaskFailure(task: Task, err: unknown): void {
    if (this.stopping || this.tasks.get(task.partition) !== task) return;
    this.taskRestarts++;
    this.log.error('task failed; rebuilding it from Kafka', { task: task.partition, error: messageOf(err) });
    this.tasks.delete(task.partition);
    this.retire(task);
    void (async () => {
      await task.stop();
      this.pauseTask(task.partition);
      await this.seekToCommitted(task.partition);
      await this.startTasks([task.partition]);
    })();
  }

  /** Per task, per input topic: the committed offset (where the task starts), and is it already at the partition's end? */
  private async startPositions(partitions: number[]): Promise<Map<number, Map<string, { offset: bigint; caughtUp: boolean }>>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const topics = this.inputs.map((i) => i.topic);
      const committed = await admin.fetchOffsets({ groupId: this.config.input.groupId, topics });
      const out = new Map<number, Map<string, { offset: bigint; caughtUp: boolean }>>(partitions.map((p) => [p, new Map()]));
      for (const topic of topics) {
        const ends = await admin.fetchTopicOffsets(topic);
        const c = committed.find((t) => t.topic === topic);
        for (const p of partitions) {
          const end = ends.find((e) => e.partition === p);
          const at = c?.partitions.find((x) => x.partition === p)?.offset ?? '-1';
          const from = at === '-1' ? end?.low : at;
          const stop = this.rangeEnd(topic, p) ?? (end === undefined ? undefined : BigInt(end.high));
          const atEnd = stop !== undefined && from !== undefined && BigInt(from) >= stop;
          if (atEnd && this.options.range !== undefined) this.rangeDone.add(`${topic}:${p}`);
          if (from === undefined) continue;
          this.positions.set(`${topic}:${p}`, BigInt(from));
          out.get(p)!.set(topic, { offset: BigInt(from), caughtUp: atEnd });
        }
      }
      return out;
    } finally {
      await admin.disconnect();
    }
  }

  /** Sets where the consumer fetches task `p`'s input partitions next. */
  private seekTo(p: number, positions: Map<string, bigint>): void {
    for (const [topic, offset] of positions) this.consumer.seek({ topic, partition: p, offset: offset.toString() });
  }

  private async seekToCommitted(partition: number): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const admin = this.kafka.admin();
        await admin.connect();
        try {
          const committed = await admin.fetchOffsets({ groupId: this.config.input.groupId, topics: this.inputs.map((i) => i.topic) });
          for (const t of committed) {
            const p = t.partitions.find((x) => x.partition === partition);
            // no commit yet: the group's start position (earliest) — nothing was committed past any frame
            const offset = p === undefined || p.offset === '-1' ? '0' : p.offset;
            this.consumer.seek({ topic: t.topic, partition, offset });
          }
        } finally {
          await admin.disconnect();
        }
        return;
      } catch (err) {
        const wait = backoffMs(attempt, TASK_RETRY);
        this.log.warn('cannot read committed offsets yet; retrying', { task: partition, waitMs: wait, error: messageOf(err) });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private newTask(partition: number, sink: TaskSink): Task {
    return new Task({
      partition,
      inputs: this.inputs,
      joinPolicy: joinPolicyOf(this.config),
      judge: this.judge,
      output: this.config.output,
      sink,
      encoder: this.encoder,
      maxIdleMs: this.config.processing.maxTaskIdleMs,
      maxInFlight: this.config.processing.maxInFlightPerTask,
      maxBufferedBytes: this.config.processing.maxBufferedBytesPerTask,
      log: this.log.child({ task: partition }),
      now: this.now,
      ...(this.options.onWritten ? { onWritten: this.options.onWritten } : {}),
      onFailure: (task, err) => this.onTaskFailure(task, err),
      onKeyProblem: (problem) => {
        // counted always; logged at most once a minute
        const now = this.now();
        if (now - this.keyProblemLogged > 60_000) {
          this.keyProblemLogged = now;
          this.log.warn('frames are not partitioned by the default key partitioner', { problem });
        }
      },
    });
  }

  private async onBatch({ batch, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const task = this.tasks.get(batch.partition);
    if (task === undefined) {
      // starting (restoring) or revoked: this delivery is not kept (nor read); the task reads from its committed offsets
      this.pauseTask(batch.partition);
      if (this.starting.has(batch.partition)) await this.seekToCommitted(batch.partition);
      return;
    }
    this.batchStartedAt = this.now();
    try {
      await this.readBatch(task, batch, heartbeat, isRunning, isStale);
    } finally {
      this.batchStartedAt = null;
    }
  }

  private async readBatch(task: Task, batch: EachBatchPayload['batch'], heartbeat: () => Promise<void>, isRunning: () => boolean, isStale: () => boolean): Promise<void> {
    const items: Queued<ReadResult>[] = [];
    let n = 0;
    const stop = this.rangeEnd(batch.topic, batch.partition);
    let pastEnd = false;
    // what the task may still buffer: a claim check that does not fit is not read now (the
    // record is fetched again once the task has made room), so claimed bytes never exceed the bound
    let room = task.bufferRoom;
    let beat = this.now();
    let deferred = false;
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) return;
      if (stop !== undefined && BigInt(message.offset) >= stop) {
        pastEnd = true;
        break;
      }
      // the first record of a delivery to an empty task is always read (it could never fit otherwise)
      const budget = items.length === 0 && task.buffered === 0 ? Number.POSITIVE_INFINITY : room;
      const result = await this.reader.read(batch.topic, batch.partition, message, this.now(), budget);
      if ('deferred' in result) {
        this.consumer.seek({ topic: batch.topic, partition: batch.partition, offset: message.offset });
        const key = `${batch.topic}:${batch.partition}`;
        if (result.retryAfterMs === undefined) {
          this.deferredClaims.set(key, result.bytes);
        } else {
          this.waitingFor.set(key, this.now() + result.retryAfterMs);
          if (this.now() - this.registryWarned > 30_000) {
            this.registryWarned = this.now();
            this.log.warn('schema registry unavailable: input paused, read again after the backoff (nothing is dead-lettered for it)', { task: batch.partition, topic: batch.topic, error: result.reason });
          }
        }
        deferred = true;
        break;
      }
      const bytes = result.ok ? result.input.bytes : message.value?.length ?? 0;
      room -= bytes;
      items.push({ topic: batch.topic, offset: message.offset, time: result.ok ? result.input.captureTime : Number.NEGATIVE_INFINITY, bytes, item: result });
      // every 16 records, and after any read that took a while (a claim check, a registry look-up)
      if (++n % 16 === 0 || this.now() - beat > 1_000) {
        await heartbeat();
        beat = this.now();
      }
    }
    const next = items.length > 0 ? BigInt(items.at(-1)!.offset) + 1n : BigInt(batch.lastOffset()) + 1n;
    const limit = stop !== undefined && stop < BigInt(batch.highWatermark) ? stop : BigInt(batch.highWatermark);
    const caughtUp = pastEnd || next >= limit;
    if (stop !== undefined) {
      this.positions.set(`${batch.topic}:${batch.partition}`, pastEnd ? stop : next);
      if (pastEnd || next >= stop) this.rangeDone.add(`${batch.topic}:${batch.partition}`);
    }
    task.accept(batch.topic, items, caughtUp);
    this.options.onDelivery?.({ topic: batch.topic, partition: batch.partition, records: items.length, lag: Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(batch.lastOffset()) - 1n)) });
    task.pump();
    this.applyBackpressure(task);
    await heartbeat();
  }

  private pauseTask(p: number): void {
    this.setPaused(p, this.inputs.map((i) => i.topic));
  }

  private resumeTask(p: number): void {
    this.setPaused(p, []);
  }

  /** Pauses exactly `topics` of task `p` and resumes its others. */
  private setPaused(p: number, topics: string[]): void {
    const now = this.paused.get(p) ?? new Set<string>();
    const want = new Set(topics);
    for (const { topic } of this.inputs) if (this.rangeDone.has(`${topic}:${p}`)) want.add(topic);
    const pause = [...want].filter((t) => !now.has(t));
    const resume = [...now].filter((t) => !want.has(t));
    if (pause.length > 0) this.consumer.pause(pause.map((topic) => ({ topic, partitions: [p] })));
    if (resume.length > 0) this.consumer.resume(resume.map((topic) => ({ topic, partitions: [p] })));
    if (want.size > 0) this.paused.set(p, want);
    else this.paused.delete(p);
  }

  /** Pauses the task's partitions at its bounds, and a partition whose next claim check does not fit yet. */
  private applyBackpressure(task: Task): void {
    const pause = new Set(task.pausable());
    for (const { topic } of this.inputs) {
      const key = `${topic}:${task.partition}`;
      const need = this.deferredClaims.get(key);
      if (need !== undefined) {
        if (need > task.bufferRoom && task.buffered > 0) pause.add(topic);
        else this.deferredClaims.delete(key);
      }
      const until = this.waitingFor.get(key);
      if (until !== undefined) {
        if (this.now() < until) pause.add(topic);
        else this.waitingFor.delete(key);
      }
    }
    this.setPaused(task.partition, [...pause]);
  }

  /** A merge that waits a long time for records known to exist is worth a warning (every 30 s). */
  private reportBlocked(task: Task): void {
    const on = task.blockedOn;
    if (on.length === 0 || task.buffered === 0) {
      this.blockedReported.delete(task.partition);
      return;
    }
    const since = this.blockedReported.get(task.partition);
    const now = this.now();
    if (since === undefined) this.blockedReported.set(task.partition, now);
    else if (now - since >= 30_000) {
      this.blockedReported.set(task.partition, now);
      this.log.warn('task waits for input partitions with unread records before merging further', { task: task.partition, topics: on, buffered: task.buffered });
    }
  }

  /** Topics the processor reads or writes. */
  private requiredTopics(): string[] {
    const t = this.config.topics;
    return [...this.inputs.map((i) => i.topic), t.events, t.alerts, t.deadLetters, changelogTopic(this.config)];
  }

  /**
   * A topic deleted under the service cannot be worked around: its partitions, offsets
   * and co-partitioning are gone. Checked every few seconds; a missing one is fatal.
   */
  private async checkTopics(): Promise<void> {
    this.checkingTopics = true;
    this.lastTopicCheck = this.now();
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const have = new Set(await admin.listTopics());
      const missing = this.requiredTopics().filter((t) => !have.has(t));
      if (missing.length > 0 && !this.stopping) {
        const err = new MmadError(
          ErrorCode.TOPIC_MISSING,
          `topic(s) ${missing.join(', ')} no longer exist (deleted while the service ran); stopping. Nothing past the last commit is lost: ` +
            `recreate them ('mmad topics create') and restart, and the uncommitted input is read again`,
          { details: { missing } },
        );
        this.log.error('topics missing', { missing });
        this.reportFatal(err);
      }
    } catch (err) {
      this.log.debug('topic check skipped: broker not reachable', { error: messageOf(err) });
    } finally {
      await admin.disconnect().catch(() => undefined);
      this.checkingTopics = false;
    }
  }

  /** Bounded run: the end of the range for this input partition (undefined: unbounded). */
  private rangeEnd(topic: string, partition: number): bigint | undefined {
    return this.options.range?.end.get(`${topic}:${partition}`) ?? (this.options.range === undefined ? undefined : 0n);
  }

  /** Bounded run: how far the range is read (records), for progress reports. */
  rangeProgress(): { done: number; total: number; partitionsDone: number; partitions: number } | undefined {
    const r = this.options.range;
    if (r === undefined) return undefined;
    let done = 0;
    let total = 0;
    for (const [key, end] of r.end) {
      const start = r.start.get(key) ?? end;
      total += Number(end - start);
      const at = this.positions.get(key) ?? start;
      done += Number((at < end ? at : end) - start);
    }
    return { done: Math.max(0, done), total, partitionsDone: this.rangeDone.size, partitions: r.end.size };
  }

  /** Bounded run: once every partition reached its end and nothing is buffered, flush the joins and commit. */
  private async finishRange(): Promise<void> {
    if (this.finishing || this.options.range === undefined || this.starting.size > 0) return;
    for (const key of this.options.range.end.keys()) if (!this.rangeDone.has(key)) return;
    const tasks = [...this.tasks.values()];
    if (tasks.length * this.inputs.length < this.options.range.end.size || tasks.some((t) => t.buffered > 0)) return;
    this.finishing = true;
    for (const t of tasks) t.flush();
    await Promise.all(tasks.map((t) => t.commit()));
    await Promise.all(tasks.map((t) => t.idle()));
    if (tasks.some((t) => t.failed)) {
      this.finishing = false; // a task is being rebuilt: it reads its rest again
      return;
    }
    this.reportFinished();
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.options.range !== undefined) void this.finishRange();
    if (!this.checkingTopics && this.now() - this.lastTopicCheck >= this.config.processing.topicCheckMs) void this.checkTopics();
    const commitDue = this.now() - this.lastCommit >= this.config.processing.commitIntervalMs;
    if (commitDue) this.lastCommit = this.now();
    for (const task of this.tasks.values()) {
      task.pump();
      this.applyBackpressure(task);
      this.reportBlocked(task);
      if (commitDue && !task.committing) void task.commit();
    }
  }
}
