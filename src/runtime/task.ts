/**
 * A task: partition number p of every input topic, with its join, its
 * event-time merge, its changelog and its outputs in order (the order and the
 * acks are the WriteSequencer's: write-sequencer.ts).
 *
 * Offsets: an input offset is released for commit only when the records it
 * caused are handed to the sink and its sample is closed (InputOffsets). A
 * commit is a barrier in the sink: once the records handed in before it are
 * acknowledged, it makes them and those offsets durable together (TaskSink);
 * under exactly-once they are one transaction, with the join changelog, so a
 * crash at any point either publishes a step's records and advances past its
 * frames, or does neither. Judged steps keep flowing into the sink while a
 * commit is in flight; they go out in the next transaction.
 *
 * The join changelog: a sample's entry is written with each of its steps and
 * deleted (a tombstone before a commit) only after the join forgot the sample
 * (closedRetentionMs of stream time after it closed) and the committed offsets
 * passed every frame read before that (input-offsets.ts says why).
 *
 * Failure: if a write or commit fails, the task stops (`failed`) and the
 * processor rebuilds it from Kafka — changelog and committed offsets.
 */
import type { DeadLetter, JoinState, Modality } from '../codec/records.js';
import type { FramePayload } from '../codec/frame-payload.js';
import type { ReadResult } from '../input/frame-reader.js';
import type { Judgement, Released, SampleJudge } from '../inference/judge.js';
import { SampleJoiner, type JoinInput, type JoinOutput, type JoinPolicy } from '../join/sample-joiner.js';
import { buildOutputs, deadLetter, type OutputOptions, type Outputs } from '../output/event-builder.js';
import type { Logger } from '../base/logger.js';
import type { ErrorCode, MmadError } from '../base/errors.js';
import { InputOffsets } from './input-offsets.js';
import type { RestoredState } from './join-changelog.js';
import { PartitionGroup, type Queued } from './partition-group.js';
import type { RecordEncoder } from './record-encoder.js';
import type { TaskSink } from './task-sink.js';
import { NO_OUTPUTS, WriteSequencer, type Commit } from './write-sequencer.js';

export interface TaskOptions {
  partition: number;
  inputs: { topic: string; modality: Modality }[];
  joinPolicy: JoinPolicy;
  judge: SampleJudge;
  output: OutputOptions;
  sink: TaskSink;
  /** A step's outputs and changelog entries as records. */
  encoder: RecordEncoder;
  maxIdleMs: number;
  maxInFlight: number;
  maxBufferedBytes: number;
  log: Logger;
  now: () => number;
  /** Called once per step, after its records were acknowledged (under exactly-once: before their transaction commits). */
  onWritten?: (j: Judgement | null, outputs: Outputs) => void;
  /** Called for a frame whose key does not match its partition. */
  onKeyProblem?: (problem: MmadError) => void;
  /** Called once when a write or commit fails; the task does nothing more. */
  onFailure: (task: Task, err: unknown) => void;
}

export interface TaskStats {
  framesRead: number;
  /** Records delivered again (before the task's position) and dropped. */
  redelivered: number;
  deadLetters: number;
  judged: number;
  keyProblems: number;
  commits: number;
}

export class Task {
  readonly partition: number;
  readonly joiner: SampleJoiner<FramePayload>;
  private readonly group: PartitionGroup<ReadResult>;
  private readonly offsets: InputOffsets;
  private readonly writes: WriteSequencer;
  /** Per sample, the sequence number of its last step (its frames are released after it). */
  private readonly lastSeq = new Map<string, number>();
  /** Samples that closed during the current pump, with their changelog state. */
  private justClosed: { sampleId: string; frames: JoinInput<FramePayload>[]; state: JoinState }[] = [];
  private finalReleased = new Set<string>();
  /** Offsets of the last commit, to skip commits that would change nothing. */
  private lastCommitted = '';
  /** When the task last took input or finished a step (wall clock). */
  private progressAt: number;
  private ready = false;
  readonly stats: TaskStats = { framesRead: 0, redelivered: 0, deadLetters: 0, judged: 0, keyProblems: 0, commits: 0 };

  constructor(private readonly o: TaskOptions) {
    this.partition = o.partition;
    this.progressAt = o.now();
    this.group = new PartitionGroup(o.inputs.map((i) => i.topic), o.maxIdleMs);
    this.offsets = new InputOffsets(o.partition, o.inputs.map((i) => i.topic));
    this.writes = new WriteSequencer({
      sink: o.sink,
      encode: (outputs, changelog) => o.encoder.encode(outputs, changelog, o.partition),
      maxInFlight: o.maxInFlight,
      onHandedIn: (outputs) => {
        this.stats.deadLetters += outputs.deadLetters.length;
        this.progressAt = o.now();
      },
      ...(o.onWritten ? { onWritten: o.onWritten } : {}),
      onFailure: (err) => o.onFailure(this, err),
    });
    this.joiner = new SampleJoiner<FramePayload>(o.joinPolicy, {
      closed: (sampleId, frames, info) => {
        this.justClosed.push({
          sampleId,
          frames,
          state: { sampleId, revision: info.revision, modalities: info.modalities, firstCapture: new Date(info.firstCapture), closed: true, closedAt: Number.isFinite(info.closedAt) ? info.closedAt : null },
        });
      },
      duplicate: (frame) => this.releaseAfter(0, offsetsOf([frame])),
      forgotten: (sampleId) => this.offsets.forgotten(sampleId),
    });
  }

  /**
   * Where each input partition starts (the committed offset, read after the
   * task's producer fenced any previous owner) and whether it is already at
   * its end (nothing to wait for there).
   */
  startAt(start: Map<string, { offset: bigint; caughtUp: boolean }>): void {
    for (const [topic, { offset, caughtUp }] of start) {
      this.offsets.startAt(topic, offset);
      this.group.setCaughtUp(topic, caughtUp);
    }
  }

  /** Per input topic, the next offset the task expects (what it has not been handed yet). */
  positions(): Map<string, bigint> {
    return this.offsets.positions();
  }

  /**
   * Seeds the join with the changelog's state; input is processed from here on.
   * An entry whose times lead `clock.now` by more than `clock.maxLeadMs` was
   * written from a frame whose clock was far ahead (before such frames were
   * refused): its times are brought back to now, or it would carry stream time
   * ahead on every restart and be remembered until that future time.
   */
  restore(states: RestoredState[], clock?: { now: number; maxLeadMs: number }): void {
    let clamped = 0;
    const fixed = states.map((s) => {
      if (clock === undefined || Math.max(s.firstCapture, s.closedAt ?? 0) <= clock.now + clock.maxLeadMs) return s;
      clamped++;
      return { ...s, firstCapture: Math.min(s.firstCapture, clock.now), closedAt: s.closedAt === null ? null : Math.min(s.closedAt, clock.now) };
    });
    if (clamped > 0) this.o.log.warn('join changelog entries from the future brought back to now', { samples: clamped });
    for (const s of fixed.sort((a, b) => (a.closedAt ?? 0) - (b.closedAt ?? 0))) this.joiner.restore(s);
    // the idle timer counts from the task's start
    this.joiner.busy(this.o.now());
    this.ready = true;
  }

  get failed(): boolean {
    return this.writes.stopped;
  }

  /**
   * How long the task has had work (buffered input, samples being judged) without
   * taking any of it or finishing any (0 when it has none): a stall liveness reports.
   */
  stalledFor(now: number): number {
    if (!this.ready || (this.group.size === 0 && this.writes.inFlight === 0)) {
      this.progressAt = now;
      return 0;
    }
    return Math.max(0, now - this.progressAt);
  }

  /**
   * A delivery from one input partition, decoded; `caughtUp` when it reached
   * the high watermark. Records before the task's position are dropped
   * (InputOffsets.accept says why).
   */
  accept(topic: string, delivered: Queued<ReadResult>[], caughtUp: boolean): void {
    if (this.writes.stopped) return;
    const items = this.offsets.accept(topic, delivered);
    this.stats.redelivered += delivered.length - items.length;
    this.stats.framesRead += items.length;
    this.group.add(topic, items, caughtUp);
  }

  /** Feeds the join as far as the merge and the bounds allow, and lets its idle timer run. */
  pump(): void {
    if (!this.ready || this.writes.stopped) return;
    const now = this.o.now();
    while (!this.joiner.full && this.writes.inFlight < this.o.maxInFlight) {
      const q = this.group.next(now);
      if (q === undefined) break;
      this.progressAt = now;
      this.offsets.taken(q.topic, q.offset);
      const r = q.item;
      if (!r.ok) {
        this.deadLetterRecord(q, r);
        continue;
      }
      if (r.keyProblem !== undefined) {
        this.stats.keyProblems++;
        this.o.onKeyProblem?.(r.keyProblem);
      }
      this.handle(this.joiner.add(r.input));
    }
    // stream time follows the wall clock only when the input has really stopped; a full join
    // (more parts pending than its bounds) is the exception: its timeouts must be able to fire
    if (this.group.drained || this.joiner.full) this.handle(this.joiner.tick(now));
    else this.joiner.busy(now);
  }

  /**
   * Input topics to pause now. At the join's or the judge's bounds, all of them.
   * At the buffer's bound only those with frames buffered: the merge may be
   * waiting for one that has none, and pausing it would stall the task.
   */
  pausable(): string[] {
    if (!this.ready || this.joiner.full || this.writes.inFlight >= this.o.maxInFlight) return this.o.inputs.map((i) => i.topic);
    if (this.group.bufferedBytes >= this.o.maxBufferedBytes) return this.group.bufferedTopics();
    return [];
  }

  /** End of a bounded input (a replay's range): every wait expires now. */
  flush(): void {
    if (!this.ready || this.writes.stopped) return;
    this.handle(this.joiner.flush());
  }

  /** A delivery without usable records (only transaction markers): where the partition stands. */
  position(topic: string, caughtUp: boolean): void {
    this.group.position(topic, caughtUp);
  }

  /** Input topics the merge waits for (unread records, nothing buffered). */
  get blockedOn(): string[] {
    return this.group.blockedOn;
  }

  get buffered(): number {
    return this.group.size;
  }

  /** Bytes the task may still buffer before its partitions pause. */
  get bufferRoom(): number {
    return Math.max(0, this.o.maxBufferedBytes - this.group.bufferedBytes);
  }

  /**
   * Commits everything decided so far (records and offsets become durable
   * together); resolves when that commit is done. The sequence of steps does
   * not wait for it: later steps queue in the sink behind it.
   */
  commit(): Promise<void> {
    return this.writes.commit(() => this.nextCommit());
  }

  /** A commit handed to the sink and not finished yet (the processor's timer skips a task that has one). */
  get committing(): boolean {
    return this.writes.committing;
  }

  /** Resolves when every step decided so far has been written and acknowledged, and every commit finished. */
  idle(): Promise<void> {
    return this.writes.idle();
  }

  /** The task moved away or failed: no more input; what is not committed is given up. */
  async stop(): Promise<void> {
    this.group.clear();
    await this.writes.close();
  }

  private handle(outputs: JoinOutput<FramePayload>[]): void {
    for (const out of outputs) {
      if (out.type === 'rejected') this.deadLetterFrame(out.frame, out.code, out.message);
      else this.judge(out);
    }
    // closes: a final release carries closed=true in its own changelog entry; a silent close gets one here
    for (const c of this.justClosed) {
      const afterSeq = this.lastSeq.get(c.sampleId) ?? 0;
      this.lastSeq.delete(c.sampleId);
      const seq = this.finalReleased.delete(c.sampleId) ? afterSeq : this.writes.enqueue(Promise.resolve({ j: null, outputs: NO_OUTPUTS }), [{ sampleId: c.sampleId, state: c.state }]);
      this.releaseAfter(seq, offsetsOf(c.frames));
    }
    this.justClosed = [];
  }

  private judge(release: Released): void {
    const work = this.o.judge
      .judge(release)
      .catch((err: unknown) => {
        this.o.log.error('judging failed; publishing UNKNOWN', { sample: release.sampleId, revision: release.revision, error: err });
        return this.o.judge.failed(release, err);
      })
      .then((j) => ({ j, outputs: buildOutputs(j, this.o.output, this.o.now) }));
    const state: JoinState = {
      sampleId: release.sampleId,
      revision: release.revision,
      modalities: release.frames.map((f) => f.modality),
      firstCapture: new Date(release.firstCapture),
      closed: release.final,
      closedAt: release.final && Number.isFinite(this.joiner.now) ? this.joiner.now : null,
    };
    const seq = this.writes.enqueue(work, [{ sampleId: release.sampleId, state }]);
    this.lastSeq.set(release.sampleId, seq);
    if (release.final) this.finalReleased.add(release.sampleId);
    this.stats.judged++;
  }

  private deadLetterFrame(frame: JoinInput<FramePayload>, code: ErrorCode, message: string): void {
    const p = frame.payload;
    this.deadLetterStep(deadLetter(code, message, { ...frame.source, timestamp: p.timestamp, key: p.key }, p.raw, frame.sampleId, frame.modality, this.o.now()), offsetsOf([frame]));
  }

  private deadLetterRecord(q: Queued<ReadResult>, r: Extract<ReadResult, { ok: false }>): void {
    const rec = r.record;
    const dl = deadLetter(r.code, r.message, { topic: q.topic, partition: this.partition, offset: q.offset, timestamp: rec.timestamp, key: rec.key }, rec.value, r.sampleId, r.modality, this.o.now());
    this.deadLetterStep(dl, [{ topic: q.topic, offset: q.offset }]);
  }

  /** A dead letter is a step of its own; the offset of what it stands for is released once it is handed in. */
  private deadLetterStep(dl: DeadLetter, offsets: { topic: string; offset: string }[]): void {
    this.releaseAfter(this.writes.enqueue(Promise.resolve({ j: null, outputs: { ...NO_OUTPUTS, deadLetters: [dl] } }), []), offsets);
  }

  /** What to commit now, in the write sequence's turn (a barrier behind the records handed in so far); undefined when nothing is new. */
  private nextCommit(): Commit | undefined {
    const offsets = this.offsets.committable();
    const key = offsets.map((o) => `${o.topic}:${o.offset}`).join(',');
    const tombstones = this.offsets.tombstonesFor(offsets, (sampleId) => this.joiner.knows(sampleId));
    if (!this.writes.wroteSinceCommit && key === this.lastCommitted && tombstones.length === 0) return undefined;
    this.lastCommitted = key;
    const t0 = performance.now();
    return {
      offsets,
      changelog: tombstones.map((sampleId) => ({ sampleId, state: null })),
      committed: () => {
        this.stats.commits++;
        this.o.log.debug('committed', { offsets: key, ms: Math.round(performance.now() - t0) });
      },
    };
  }

  /** Input offsets become committable once step `seq`'s records are handed to the sink. */
  private releaseAfter(seq: number, offsets: { topic: string; offset: string }[]): void {
    this.writes.whenHandedIn(seq, () => this.offsets.release(offsets));
  }
}

function offsetsOf(frames: JoinInput<FramePayload>[]): { topic: string; offset: string }[] {
  return frames.map((f) => ({ topic: f.source.topic, offset: f.source.offset }));
}
