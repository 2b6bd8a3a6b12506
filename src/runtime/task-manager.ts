/**
 * The tasks this member runs, from assignment to retirement: an assignment
 * starts the new task numbers and retires those that moved away; a task whose
 * write or commit failed is dropped and rebuilt from Kafka (changelog and
 * committed offsets), with backoff while the broker is away.
 *
 * A task starts in this order, which exactly-once rests on: its sink is opened
 * (under exactly-once, initialising its transactional producer fences the
 * previous owner and aborts its open transaction), then the changelog is read
 * to its end and the committed offsets are read, then the consumer is seeked
 * there and input flows. Until then its partitions are paused and whatever the
 * consumer delivers for it is dropped, to be read again from those offsets.
 */
import type { Consumer, Kafka } from 'kafkajs';
import type { Modality } from '../codec/records.js';
import type { Config } from '../config/config-schema.js';
import { backoffMs } from '../base/backoff.js';
import { messageOf } from '../base/errors.js';
import { present } from '../base/invariant.js';
import type { Logger } from '../base/logger.js';
import type { Judgement, SampleJudge } from '../inference/judge.js';
import type { JoinPolicy } from '../join/sample-joiner.js';
import { inputTopics } from '../kafka/topics.js';
import type { Outputs } from '../output/event-builder.js';
import type { BoundedRange } from './bounded-range.js';
import { readChangelog } from './join-changelog.js';
import type { PartitionPauses } from './partition-pauses.js';
import type { RecordEncoder } from './record-encoder.js';
import type { StatsRollup } from './stats-rollup.js';
import type { TaskSink } from './task-sink.js';
import { Task, type TaskOptions } from './task.js';

/** Retrying a task's start or its committed offsets while the broker or the group coordinator is away. */
const TASK_RETRY = { initialMs: 500, maxMs: 30_000 };

function joinPolicyOf(config: Config): JoinPolicy {
  const modalities: JoinPolicy['modalities'] = {};
  for (const { modality } of inputTopics(config)) modalities[modality] = config.join.modalities[modality];
  return { ...config.join, modalities };
}

/** The joined modalities whose policy is `required`. */
export function requiredModalities(config: Config): Modality[] {
  return inputTopics(config).map((i) => i.modality).filter((m) => config.join.modalities[m].policy === 'required');
}

/** What every task of this configuration is built with; the caller adds its partition, sink, judge, clock and hooks. */
export function taskOptionsOf(config: Config, encoder: RecordEncoder): Pick<TaskOptions, 'inputs' | 'joinPolicy' | 'output' | 'encoder' | 'maxIdleMs' | 'maxInFlight' | 'maxBufferedBytes'> {
  return {
    inputs: inputTopics(config),
    joinPolicy: joinPolicyOf(config),
    output: config.output,
    encoder,
    maxIdleMs: config.processing.maxTaskIdleMs,
    maxInFlight: config.processing.maxInFlightPerTask,
    maxBufferedBytes: config.processing.maxBufferedBytesPerTask,
  };
}

export interface TaskManagerOptions {
  config: Config;
  kafka: Kafka;
  consumer: Consumer;
  judge: SampleJudge;
  pauses: PartitionPauses;
  stats: StatsRollup;
  range: BoundedRange | undefined;
  log: Logger;
  now: () => number;
  onWritten?: (j: Judgement | null, outputs: Outputs) => void;
  /** Called after each assignment's tasks have started. */
  onAssigned: () => void;
  /** The processor is stopping: nothing more starts. */
  stopping: () => boolean;
}

type StartPositions = Map<string, { offset: bigint; caughtUp: boolean }>;

export class TaskManager {
  private readonly tasks = new Map<number, Task>();
  /** Task numbers being (re)started: the consumer's deliveries for them are dropped until they run. */
  private readonly starting = new Set<number>();
  private readonly topics: string[];
  private readonly log: Logger;
  private encoder!: RecordEncoder;
  private openSink!: (partition: number) => Promise<TaskSink>;
  private keyProblemLogged = 0;

  constructor(private readonly o: TaskManagerOptions) {
    this.topics = inputTopics(o.config).map((i) => i.topic);
    this.log = o.log;
  }

  /** Before the first assignment: how the tasks encode their records and where they write them (the delivery guarantee). */
  open(encoder: RecordEncoder, openSink: (partition: number) => Promise<TaskSink>): void {
    this.encoder = encoder;
    this.openSink = openSink;
  }

  get(partition: number): Task | undefined {
    return this.tasks.get(partition);
  }

  running(): Task[] {
    return [...this.tasks.values()];
  }

  /** Task numbers being started (fencing, restoring the changelog), in order. */
  startingNumbers(): number[] {
    return [...this.starting].sort((a, b) => a - b);
  }

  isStarting(partition: number): boolean {
    return this.starting.has(partition);
  }

  /** The consumer group's assignment (per input topic, its partitions) to this member. */
  onAssignment(assignment: Record<string, number[]>): void {
    const numbers = new Set<number>();
    for (const topic of this.topics) for (const p of assignment[topic] ?? []) numbers.add(p);
    for (const [p, task] of this.tasks) {
      if (!numbers.has(p)) {
        this.tasks.delete(p);
        this.o.pauses.resumeTask(p);
        this.o.stats.retire(task);
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
    void this.startTasks(fresh).then(() => this.o.onAssigned());
  }

  /** Seeks task `partition`'s input partitions to the group's committed offsets (retried until it works or the processor stops). */
  async seekToCommitted(partition: number): Promise<void> {
    for (let attempt = 0; !this.o.stopping(); attempt++) {
      try {
        const admin = this.o.kafka.admin();
        await admin.connect();
        try {
          const committed = await admin.fetchOffsets({ groupId: this.o.config.input.groupId, topics: this.topics });
          for (const t of committed) {
            const p = t.partitions.find((x) => x.partition === partition);
            // no commit yet: the group's start position (earliest) — nothing was committed past any frame
            const offset = p === undefined || p.offset === '-1' ? '0' : p.offset;
            this.o.consumer.seek({ topic: t.topic, partition, offset });
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

  /** Starts tasks in the order the header describes; on any failure (client errors carry no `retriable` mark to ask), retries those still assigned after a backoff. */
  private async startTasks(partitions: number[], attempt = 0): Promise<void> {
    if (partitions.length === 0 || this.o.stopping()) return;
    for (const p of partitions) {
      this.starting.add(p);
      this.o.pauses.pauseTask(p);
    }
    try {
      const sinks: [number, TaskSink][] = [];
      for (const p of partitions) sinks.push([p, await this.openSink(p)]);
      const restored = await readChangelog(this.o.kafka, this.o.config, this.encoder.codecs.joinState, partitions, this.log);
      const starts = await this.startPositions(partitions);
      for (const [p, sink] of sinks) {
        if (!this.starting.has(p)) {
          await sink.close();
          continue; // revoked meanwhile
        }
        const task = this.newTask(p, sink);
        task.startAt(starts.get(p) ?? new Map<string, { offset: bigint; caughtUp: boolean }>());
        task.restore(restored.get(p) ?? [], { now: this.o.now(), maxLeadMs: this.o.config.input.maxClockLeadMs });
        // the consumer's own position may predate the previous owner's last commit
        this.seekTo(p, task.positions());
        this.tasks.set(p, task);
        this.starting.delete(p);
        this.o.pauses.resumeTask(p);
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
    if (this.o.stopping() || this.tasks.get(task.partition) !== task) return;
    this.o.stats.restarted();
    this.log.error('task failed; rebuilding it from Kafka', { task: task.partition, error: messageOf(err) });
    this.tasks.delete(task.partition);
    this.o.stats.retire(task);
    void (async () => {
      await task.stop();
      this.o.pauses.pauseTask(task.partition);
      await this.seekToCommitted(task.partition);
      await this.startTasks([task.partition]);
    })();
  }

  /** Per task, per input topic: the committed offset (where the task starts), and is it already at the partition's end? */
  private async startPositions(partitions: number[]): Promise<Map<number, StartPositions>> {
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const committed = await admin.fetchOffsets({ groupId: this.o.config.input.groupId, topics: this.topics });
      const out = new Map<number, StartPositions>(partitions.map((p) => [p, new Map()]));
      for (const topic of this.topics) {
        const ends = await admin.fetchTopicOffsets(topic);
        const c = committed.find((t) => t.topic === topic);
        for (const p of partitions) {
          const end = ends.find((e) => e.partition === p);
          const at = c?.partitions.find((x) => x.partition === p)?.offset ?? '-1';
          const from = at === '-1' ? end?.low : at;
          if (from === undefined) continue;
          const stop = this.o.range?.end(topic, p) ?? (end === undefined ? undefined : BigInt(end.high));
          const atEnd = stop !== undefined && BigInt(from) >= stop;
          this.o.range?.startAt(topic, p, BigInt(from), atEnd);
          present(out.get(p), `the start positions of task ${p}`).set(topic, { offset: BigInt(from), caughtUp: atEnd });
        }
      }
      return out;
    } finally {
      await admin.disconnect();
    }
  }

  /** Sets where the consumer fetches task `p`'s input partitions next. */
  private seekTo(p: number, positions: Map<string, bigint>): void {
    for (const [topic, offset] of positions) this.o.consumer.seek({ topic, partition: p, offset: offset.toString() });
  }

  private newTask(partition: number, sink: TaskSink): Task {
    return new Task({
      ...taskOptionsOf(this.o.config, this.encoder),
      partition,
      judge: this.o.judge,
      sink,
      log: this.log.child({ task: partition }),
      now: this.o.now,
      ...(this.o.onWritten ? { onWritten: this.o.onWritten } : {}),
      onFailure: (task, err) => this.onTaskFailure(task, err),
      onKeyProblem: (problem) => {
        // counted always; logged at most once a minute
        const now = this.o.now();
        if (now - this.keyProblemLogged > 60_000) {
          this.keyProblemLogged = now;
          this.log.warn('frames are not partitioned by the default key partitioner', { code: problem.code, problem: problem.message });
        }
      },
    });
  }
}
