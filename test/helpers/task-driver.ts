/**
 * Drives one Task the way the processor does, without a broker, and crashes it
 * at chosen points — the idea of Kafka Streams' TopologyTestDriver applied to
 * restarts — or makes its consumer go back to the committed offsets, as a
 * rebalance that keeps the task here does. Frames are real (PNG/TIFF through the real FrameReader), the judge
 * is the real SampleJudge on the test students, the records are encoded by the
 * processor's own RecordEncoder; the sink is a `CommitLog`
 * that keeps what a transaction would commit (records and input offsets
 * together) and drops the rest when the task dies. A restart builds a new task
 * from that log as the processor does from Kafka: changelog restored, input
 * read again from the committed offsets.
 */
import type { KafkaMessage } from 'kafkajs';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent, JoinState, Modality } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import type { Config } from '../../src/config/config-schema.js';
import { SampleJudge } from '../../src/inference/judge.js';
import { decodeLimitsOf } from '../../src/inference/preprocess.js';
import type { ModelRegistry } from '../../src/inference/model-registry.js';
import { FrameReader, frameReaderOptions, type ReadResult } from '../../src/input/frame-reader.js';
import { inputTopics } from '../../src/kafka/topics.js';
import { changelogTopic, toRestored, type RestoredState } from '../../src/runtime/join-changelog.js';
import type { Queued } from '../../src/runtime/partition-group.js';
import { RecordEncoder } from '../../src/runtime/record-encoder.js';
import { requiredModalities, taskOptionsOf } from '../../src/runtime/task-manager.js';
import { Task } from '../../src/runtime/task.js';
import type { OffsetCommit, OutRecord, TaskSink } from '../../src/runtime/task-sink.js';
import type { SensorModality } from '../../src/simulate/defects.js';
import { createLogger } from '../../src/base/logger.js';
import { makeFrame } from './frames.js';

/** One record of an input topic: a frame of a part, with an anomaly square or not. */
export interface InputFrame {
  sampleId: string;
  modality: SensorModality;
  captureTime: number;
  anomalous?: boolean;
  /** The station's expected-modalities hint. */
  expected?: Modality[];
}

/** What a transactional producer would have made durable: records in order, and the input offsets. */
class CommitLog {
  readonly records: OutRecord[] = [];
  readonly offsets = new Map<string, string>();

  sink(): TaskSink {
    let pending: OutRecord[] = [];
    let open = true;
    return {
      write: async (records) => {
        if (!open) throw new Error('the producer is closed');
        pending.push(...records);
      },
      commit: async (offsets: OffsetCommit[]) => {
        if (!open) throw new Error('the producer is closed');
        this.records.push(...pending);
        pending = [];
        for (const o of offsets) this.offsets.set(o.topic, o.offset);
      },
      abort: async () => {
        pending = [];
      },
      close: async () => {
        pending = [];
        open = false;
      },
    };
  }
}

export interface DriverRun {
  /** Every event committed, in order. */
  events: AnomalyEvent[];
  /** Dead letters committed, by reason. */
  deadLetters: Map<string, number>;
  /** Restarts that happened (crash points inside the run). */
  restarts: number;
  /** Records dropped as delivered again, over all the run's tasks. */
  redelivered: number;
  /** Samples the changelog still holds at the end (compacted: tombstones deleted them). */
  changelog: Set<string>;
}

/** The driver's wall clock when it reads the frames (and starts a run): after every capture time, as when a backlog is read. */
const READ_AT = 4_000_000_000_000;

export class TaskDriver {
  /** The topics the encoder writes that the driver reads back. */
  private readonly outputs: { events: string; deadLetters: string; changelog: string };

  private constructor(
    private readonly config: Config,
    private readonly judge: SampleJudge,
    private readonly reader: FrameReader,
    private readonly frames: AvroCodec<'Frame'>,
    /** The processor's own encoding of the outputs. */
    private readonly encoder: RecordEncoder,
  ) {
    this.outputs = { events: config.topics.events, deadLetters: config.topics.deadLetters, changelog: changelogTopic(config) };
  }

  static create(config: Config, registry: ModelRegistry): TaskDriver {
    const catalog = SchemaCatalog.load();
    const encoder = new RecordEncoder(config, {
      event: AvroCodec.local(catalog, 'AnomalyEvent'),
      alert: AvroCodec.local(catalog, 'Alert'),
      deadLetter: AvroCodec.local(catalog, 'DeadLetter'),
      joinState: AvroCodec.local(catalog, 'JoinState'),
    });
    const frames = AvroCodec.local(catalog, 'Frame');
    const inputs = inputTopics(config);
    const judge = new SampleJudge(registry, decodeLimitsOf(config), inputs.map((i) => i.modality), () => 0, config.inference.maxBatchSize, requiredModalities(config));
    const reader = new FrameReader(frames, frameReaderOptions(config, new Map(inputs.map((i) => [i.topic, i.modality])), 1));
    return new TaskDriver(config, judge, reader, frames, encoder);
  }

  /** Encodes and reads the frames once (the topic's records, per modality in this order). */
  async topics(frames: InputFrame[]): Promise<Map<string, Queued<ReadResult>[]>> {
    const inputs = inputTopics(this.config);
    const out = new Map<string, Queued<ReadResult>[]>(inputs.map((i) => [i.topic, []]));
    for (const f of frames) {
      const topic = present(inputs.find((i) => i.modality === f.modality), `the input topic of ${f.modality}`).topic;
      const list = present(out.get(topic), `the records of ${topic}`);
      const frame = await makeFrame(f.sampleId, f.modality, { captureTime: f.captureTime, expected: f.expected ?? null, ...(f.anomalous === true && f.modality === 'rgb' ? { square: [8, 8, 10] as [number, number, number] } : {}) });
      const offset = String(list.length);
      const value = this.frames.encode(frame);
      const message = { key: Buffer.from(f.sampleId), value, timestamp: String(f.captureTime), offset, headers: {}, attributes: 0 } as KafkaMessage;
      const item = await this.reader.read(topic, 0, message, READ_AT);
      list.push({ topic, offset, time: item.ok ? item.input.captureTime : Number.NEGATIVE_INFINITY, bytes: value.length, item });
    }
    return out;
  }

  /**
   * Runs the task over the topics: deliveries of 1..maxBatch records from a
   * topic chosen by `random`, a commit every `commitEvery` steps, then the idle
   * timer closes what is left. At each step number in `crashAt` the task dies
   * (what it did not commit is lost) and a new one starts from the log; at
   * each in `rebalanceAt` the task stays and is delivered again what follows
   * the committed offsets.
   */
  async run(
    topics: Map<string, Queued<ReadResult>[]>,
    o: { random: () => number; crashAt?: number[]; rebalanceAt?: number[]; commitEvery?: number; maxBatch?: number; idleSteps?: number },
  ): Promise<DriverRun> {
    const log = new CommitLog();
    const crashAt = new Set(o.crashAt ?? []);
    const rebalanceAt = new Set(o.rebalanceAt ?? []);
    const commitEvery = o.commitEvery ?? 5;
    const maxBatch = o.maxBatch ?? 8;
    const idleSteps = o.idleSteps ?? 60;
    let clock = READ_AT;
    let step = 0;
    let restarts = 0;
    let redelivered = 0;
    for (;;) {
      const task = this.newTask(log, () => clock);
      const position = new Map([...topics.keys()].map((t) => [t, Number(log.offsets.get(t) ?? 0)]));
      const positionIn = (t: string): number => present(position.get(t), `the position in ${t}`);
      task.startAt(new Map([...topics].map(([t, items]) => [t, { offset: BigInt(positionIn(t)), caughtUp: positionIn(t) >= items.length }])));
      task.restore(this.restored(log));
      let crashed = false;
      // the input, in deliveries of the consumer's rhythm
      while (!crashed && [...topics].some(([t, items]) => positionIn(t) < items.length)) {
        step++;
        const open = [...topics].filter(([t, items]) => positionIn(t) < items.length);
        const [topic, items] = at(open, Math.floor(o.random() * open.length));
        const from = positionIn(topic);
        const batch = items.slice(from, from + 1 + Math.floor(o.random() * maxBatch));
        position.set(topic, from + batch.length);
        task.accept(topic, batch, from + batch.length >= items.length);
        task.pump();
        clock += 1;
        await new Promise((r) => setImmediate(r));
        if (step % commitEvery === 0) await task.commit();
        crashed = crashAt.has(step);
        // a rebalance that keeps the task here: the consumer starts again from the committed offsets
        if (rebalanceAt.has(step)) for (const t of topics.keys()) position.set(t, Number(log.offsets.get(t) ?? 0));
      }
      // the line stopped: the idle timer moves stream time and closes the last parts
      for (let i = 0; !crashed && i < idleSteps; i++) {
        step++;
        clock += 500;
        task.pump();
        await task.idle();
        if (step % 2 === 0) await task.commit();
        crashed = crashAt.has(step);
      }
      redelivered += task.stats.redelivered;
      if (crashed) {
        // what the task did not commit is lost with it
        await task.stop();
        restarts++;
        continue;
      }
      await task.commit();
      await task.idle();
      await task.stop();
      break;
    }
    return this.outcome(log, restarts, redelivered);
  }

  /**
   * A task whose judge never answers (a model run that hangs), fed `topics`, with
   * the clock in the caller's hands: for what liveness sees of a stalled task.
   */
  stalledTask(topics: Map<string, Queued<ReadResult>[]>, now: () => number): Task {
    const hanging = { judge: () => new Promise<never>(() => undefined), failed: this.judge.failed.bind(this.judge) } as unknown as SampleJudge;
    const task = this.newTask(new CommitLog(), now, hanging);
    task.startAt(new Map([...topics.keys()].map((t) => [t, { offset: 0n, caughtUp: true }])));
    task.restore([]);
    for (const [topic, items] of topics) task.accept(topic, items, true);
    task.pump();
    return task;
  }

  private newTask(log: CommitLog, now: () => number, judge: SampleJudge = this.judge): Task {
    return new Task({
      ...taskOptionsOf(this.config, this.encoder),
      partition: 0,
      judge,
      sink: log.sink(),
      maxIdleMs: 0,
      log: createLogger({}, 'silent'),
      now,
      onFailure: (_task, err) => {
        throw err;
      },
    });
  }

  /** The changelog as a compacted topic reads: the last state per sample, tombstones deleting. */
  private restored(log: CommitLog): RestoredState[] {
    const states = new Map<string, JoinState>();
    for (const r of log.records) {
      if (r.topic !== this.outputs.changelog) continue;
      const key = String(r.key);
      if (r.value === null) states.delete(key);
      else states.set(key, this.encoder.codecs.joinState.decodeSync(r.value));
    }
    return [...states.values()].map(toRestored);
  }

  private outcome(log: CommitLog, restarts: number, redelivered: number): DriverRun {
    const codecs = this.encoder.codecs;
    const events = log.records.filter((r) => r.topic === this.outputs.events).map((r) => codecs.event.decodeSync(present(r.value, 'the value of an event record')));
    const deadLetters = new Map<string, number>();
    for (const r of log.records.filter((x) => x.topic === this.outputs.deadLetters)) {
      const d = codecs.deadLetter.decodeSync(present(r.value, 'the value of a dead-letter record'));
      deadLetters.set(d.reasonCode, (deadLetters.get(d.reasonCode) ?? 0) + 1);
    }
    return { events, deadLetters, restarts, redelivered, changelog: new Set(this.restored(log).map((s) => s.sampleId)) };
  }
}
