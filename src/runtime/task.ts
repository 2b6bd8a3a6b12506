/**
 * A task: partition number p of every input topic, with its join, its
 * event-time merge, its changelog and its outputs in order.
 *
 * Ordering: every output-producing step (a judged release, a dead letter, a
 * changelog update) gets a sequence number when it is decided; judging runs
 * concurrently (so micro-batches fill), but records are written strictly in
 * sequence order, so a sample's revision 1 always precedes its revision 2 and
 * a replay writes in the same order.
 *
 * Writing: a step's records are handed to the sink in sequence order, and the
 * next step does not wait for their ack (the sink coalesces what queues behind
 * the request in flight); `onWritten` runs when they are acknowledged. At most
 * `maxInFlight` steps wait for acks before the sequence waits too.
 *
 * Offsets: an input offset is released for commit only when the records it
 * caused are handed to the sink and its sample is closed (OffsetTracker). A
 * commit is a barrier in the sink: once the records handed in before it are
 * acknowledged, it makes them and those offsets durable together (TaskSink);
 * under exactly-once they are one transaction, with the join changelog, so a
 * crash at any point either publishes a step's records and advances past its
 * frames, or does neither. Judged steps keep flowing into the sink while a
 * commit is in flight; they go out in the next transaction.
 *
 * The join changelog mirrors what the join remembers: a sample's entry is
 * written with each of its steps and deleted only after the join forgot the
 * sample (closedRetentionMs of stream time after it closed) and the committed
 * offsets passed every frame read before that. A frame read again after a
 * restart, or read for the first time (a duplicate, a late modality of a
 * closed part), therefore meets the same knowledge of its part as it would
 * have without the restart.
 *
 * Failure: if a write or commit fails, the task stops (`failed`) and the
 * processor rebuilds it from Kafka — changelog and committed offsets.
 */
import type { JoinState, Modality } from '../codec/records.js';
import type { FramePayload } from '../codec/frame-payload.js';
import type { ReadResult } from '../input/frame-reader.js';
import type { Judgement, Released, SampleJudge } from '../inference/judge.js';
import { SampleJoiner, type JoinInput, type JoinOutput, type JoinPolicy } from '../join/sample-joiner.js';
import { buildOutputs, deadLetter, type OutputOptions, type Outputs } from '../output/event-builder.js';
import type { Logger } from '../base/logger.js';
import type { RestoredState } from './join-changelog.js';
import { OffsetTracker } from './offset-tracker.js';
import { PartitionGroup, type Queued } from './partition-group.js';
import type { RecordEncoder } from './record-encoder.js';
import type { OutRecord, TaskSink } from './task-sink.js';

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
  onKeyProblem?: (problem: string) => void;
  /** Called once when a write or commit fails; the task does nothing more. */
  onFailure: (task: Task, err: unknown) => void;
}

interface PendingRelease {
  afterSeq: number;
  offsets: { topic: string; offset: string }[];
}

/** A sample the join forgot, with how far each input had been read then (every frame of it lies at or before). */
interface ForgottenSample {
  sampleId: string;
  readTo: Map<string, bigint>;
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

const NO_OUTPUTS: Outputs = { event: null, alert: null, deadLetters: [] };

export class Task {
  readonly partition: number;
  readonly joiner: SampleJoiner<FramePayload>;
  private readonly group: PartitionGroup<ReadResult>;
  private readonly trackers = new Map<string, OffsetTracker>();
  private readonly lastSeq = new Map<string, number>();
  private pendingReleases: PendingRelease[] = [];
  /**
   * Samples the join forgot, whose changelog entry is deleted once the
   * committed offsets pass every frame read before (none of them can be read
   * again then). An input this task has read nothing from holds nothing back.
   */
  private awaitingTombstone: ForgottenSample[] = [];
  /** Per input topic, the offset of the last frame handed to the join. */
  private readonly readTo = new Map<string, bigint>();
  /** Per input topic, the offset after the last record accepted (or the start position). */
  private readonly next = new Map<string, bigint>();
  /** Samples that closed during the current pump, with their changelog state. */
  private justClosed: { sampleId: string; frames: JoinInput<FramePayload>[]; state: JoinState }[] = [];
  private finalReleased = new Set<string>();
  /** Offsets of the last successful commit, to skip commits that would change nothing. */
  private lastCommitted = '';
  private writtenSinceCommit = false;
  private nextSeq = 1;
  private producedSeq = 0;
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  /** When the task last took input or finished a step (wall clock). */
  private progressAt: number;
  /** Acks and commits the sink has not answered yet (idle() waits for them). */
  private readonly outstanding = new Set<Promise<unknown>>();
  private unacked = 0;
  private commitsInFlight = 0;
  private ready = false;
  private stopped = false;
  readonly stats: TaskStats = { framesRead: 0, redelivered: 0, deadLetters: 0, judged: 0, keyProblems: 0, commits: 0 };

  constructor(private readonly o: TaskOptions) {
    this.partition = o.partition;
    this.progressAt = o.now();
    this.group = new PartitionGroup(o.inputs.map((i) => i.topic), o.maxIdleMs);
    for (const i of o.inputs) this.trackers.set(i.topic, new OffsetTracker());
    this.joiner = new SampleJoiner<FramePayload>(o.joinPolicy, {
      closed: (sampleId, frames, info) => {
        this.justClosed.push({
          sampleId,
          frames,
          state: { sampleId, revision: info.revision, modalities: info.modalities, firstCapture: new Date(info.firstCapture), closed: true, closedAt: Number.isFinite(info.closedAt) ? info.closedAt : null },
        });
      },
      duplicate: (frame) => this.releaseAfter(0, [frame]),
      forgotten: (sampleId) => this.awaitingTombstone.push({ sampleId, readTo: new Map(this.readTo) }),
    });
  }

  /**
   * Where each input partition starts (the committed offset, read after the
   * task's producer fenced any previous owner) and whether it is already at
   * its end (nothing to wait for there).
   */
  startAt(start: Map<string, { offset: bigint; caughtUp: boolean }>): void {
    for (const [topic, { offset, caughtUp }] of start) {
      this.next.set(topic, offset);
      this.group.setCaughtUp(topic, caughtUp);
    }
  }

  /** Per input topic, the next offset the task expects (what it has not been handed yet). */
  positions(): Map<string, bigint> {
    return new Map(this.next);
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
    return this.stopped;
  }

  /**
   * How long the task has had work (buffered input, samples being judged) without
   * taking any of it or finishing any (0 when it has none): a stall liveness reports.
   */
  stalledFor(now: number): number {
    if (!this.ready || (this.group.size === 0 && this.inFlight === 0)) {
      this.progressAt = now;
      return 0;
    }
    return Math.max(0, now - this.progressAt);
  }

  /**
   * A delivery from one input partition, decoded; `caughtUp` when it reached
   * the high watermark. Records before the task's position were handed over
   * already (a consumer goes back to the committed offsets after a rebalance)
   * and are dropped: taken again, a copy would count as a duplicate of itself
   * and release its frame's offset while the part still needs it.
   */
  accept(topic: string, delivered: Queued<ReadResult>[], caughtUp: boolean): void {
    if (this.stopped) return;
    const from = this.next.get(topic);
    const items = from === undefined ? delivered : delivered.filter((it) => BigInt(it.offset) >= from);
    this.stats.redelivered += delivered.length - items.length;
    if (items.length > 0) this.next.set(topic, BigInt(items.at(-1)!.offset) + 1n);
    const tracker = this.trackers.get(topic)!;
    for (const it of items) tracker.hold(it.offset);
    this.stats.framesRead += items.length;
    this.group.add(topic, items, caughtUp);
  }

  /** Feeds the join as far as the merge and the bounds allow, and lets its idle timer run. */
  pump(): void {
    if (!this.ready || this.stopped) return;
    const now = this.o.now();
    while (!this.joiner.full && this.inFlight < this.o.maxInFlight) {
      const q = this.group.next(now);
      if (q === undefined) break;
      this.progressAt = now;
      this.readTo.set(q.topic, BigInt(q.offset));
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
    if (!this.ready || this.joiner.full || this.inFlight >= this.o.maxInFlight) return this.o.inputs.map((i) => i.topic);
    if (this.group.bufferedBytes >= this.o.maxBufferedBytes) return this.group.bufferedTopics();
    return [];
  }

  /** End of a bounded input (a replay's range): every wait expires now. */
  flush(): void {
    if (!this.ready || this.stopped) return;
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
  async commit(): Promise<void> {
    let done: Promise<void> | undefined;
    await this.step(async () => {
      done = this.startCommit();
    });
    await done;
  }

  /** A commit handed to the sink and not finished yet (the processor's timer skips a task that has one). */
  get committing(): boolean {
    return this.commitsInFlight > 0;
  }

  /** Resolves when every step decided so far has been written and acknowledged, and every commit finished. */
  async idle(): Promise<void> {
    for (;;) {
      const seen = this.chain;
      await seen;
      await Promise.allSettled([...this.outstanding]);
      if (seen === this.chain && this.outstanding.size === 0) return;
    }
  }

  /** The task moved away or failed: no more input; what is not committed is given up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.group.clear();
    await this.o.sink.close();
  }

  private committable(): { topic: string; partition: number; offset: string }[] {
    const out: { topic: string; partition: number; offset: string }[] = [];
    for (const [topic, t] of this.trackers) {
      const offset = t.committable();
      if (offset !== undefined) out.push({ topic, partition: this.partition, offset });
    }
    return out;
  }

  /** Forgotten samples none of whose frames can be read again once these offsets are committed. */
  private tombstonesFor(offsets: { topic: string; offset: string }[]): string[] {
    const committed = new Map(offsets.map((o) => [o.topic, BigInt(o.offset)]));
    const gone: string[] = [];
    this.awaitingTombstone = this.awaitingTombstone.filter((f) => {
      // the id came again (a new part under an old name): its newer entry must stay
      if (this.joiner.knows(f.sampleId)) return false;
      for (const [topic, last] of f.readTo) {
        const at = committed.get(topic);
        if (at === undefined || at <= last) return true;
      }
      gone.push(f.sampleId);
      return false;
    });
    return gone;
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
      const seq = this.finalReleased.delete(c.sampleId) ? afterSeq : this.enqueue(Promise.resolve({ j: null, outputs: NO_OUTPUTS }), [{ sampleId: c.sampleId, state: c.state }]);
      this.pendingReleases.push({ afterSeq: seq, offsets: c.frames.map((f) => ({ topic: f.source.topic, offset: f.source.offset })) });
    }
    this.justClosed = [];
    this.settle();
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
    const seq = this.enqueue(work, [{ sampleId: release.sampleId, state }]);
    this.lastSeq.set(release.sampleId, seq);
    if (release.final) this.finalReleased.add(release.sampleId);
    this.stats.judged++;
  }

  private deadLetterFrame(frame: JoinInput<FramePayload>, code: string, message: string): void {
    const p = frame.payload;
    const dl = deadLetter(code, message, { ...frame.source, timestamp: p.timestamp, key: p.key }, p.raw, frame.sampleId, frame.modality, this.o.now());
    const seq = this.enqueue(Promise.resolve({ j: null, outputs: { ...NO_OUTPUTS, deadLetters: [dl] } }), []);
    this.releaseAfter(seq, [frame]);
  }

  private deadLetterRecord(q: Queued<ReadResult>, r: Extract<ReadResult, { ok: false }>): void {
    const rec = r.record;
    const dl = deadLetter(r.code, r.message, { topic: q.topic, partition: this.partition, offset: q.offset, timestamp: rec.timestamp, key: rec.key }, rec.value, r.sampleId, r.modality, this.o.now());
    const seq = this.enqueue(Promise.resolve({ j: null, outputs: { ...NO_OUTPUTS, deadLetters: [dl] } }), []);
    this.pendingReleases.push({ afterSeq: seq, offsets: [{ topic: q.topic, offset: q.offset }] });
  }

  /** Hands a commit to the sink (a barrier behind the records handed in so far); undefined when there is nothing new. */
  private startCommit(): Promise<void> | undefined {
    const offsets = this.committable();
    const key = offsets.map((o) => `${o.topic}:${o.offset}`).join(',');
    const tombstones = this.tombstonesFor(offsets);
    if (!this.writtenSinceCommit && key === this.lastCommitted && tombstones.length === 0) return undefined;
    if (tombstones.length > 0) this.track(this.o.sink.write(this.o.encoder.encode(NO_OUTPUTS, tombstones.map((sampleId) => ({ sampleId, state: null })), this.partition)));
    this.lastCommitted = key;
    this.writtenSinceCommit = false;
    this.commitsInFlight++;
    const t0 = performance.now();
    const done = this.o.sink.commit(offsets).then(() => {
      this.stats.commits++;
      this.o.log.debug('committed', { offsets: key, ms: Math.round(performance.now() - t0) });
    });
    return this.track(done.finally(() => this.commitsInFlight--));
  }

  /** Follows a sink operation: a failure stops the task; idle() waits for it. Resolves either way. */
  private track(p: Promise<unknown>): Promise<void> {
    const settled = p.then(
      () => undefined,
      (err: unknown) => this.fail(err),
    );
    this.outstanding.add(settled);
    void settled.then(() => this.outstanding.delete(settled));
    return settled;
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.o.onFailure(this, err);
  }

  /** Runs `fn` after every step queued so far; a failure stops the task. */
  private step(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.stopped) return;
      try {
        await fn();
      } catch (err) {
        this.fail(err);
      }
    });
    this.chain = run;
    return run;
  }

  /** Queues a step's records for writing in sequence order; returns its sequence number. */
  private enqueue(work: Promise<{ j: Judgement | null; outputs: Outputs }>, changelog: { sampleId: string; state: JoinState | null }[]): number {
    const seq = this.nextSeq++;
    this.inFlight++;
    void this.step(async () => {
      let step: { j: Judgement | null; outputs: Outputs };
      let records: OutRecord[];
      try {
        step = await work;
        records = this.o.encoder.encode(step.outputs, changelog, this.partition);
      } finally {
        this.inFlight--;
      }
      const { j, outputs } = step;
      this.unacked++;
      const acked = this.track(
        this.o.sink.write(records).then(() => {
          this.unacked--;
          this.o.onWritten?.(j, outputs);
        }),
      );
      if (records.length > 0) this.writtenSinceCommit = true;
      this.stats.deadLetters += outputs.deadLetters.length;
      this.producedSeq = seq;
      this.progressAt = this.o.now();
      this.settle();
      // bound what waits for acks (memory; a broker that stopped answering): then the sequence waits too
      if (this.unacked >= this.o.maxInFlight) await acked;
    });
    return seq;
  }

  private releaseAfter(afterSeq: number, frames: JoinInput<FramePayload>[]): void {
    this.pendingReleases.push({ afterSeq, offsets: frames.map((f) => ({ topic: f.source.topic, offset: f.source.offset })) });
    this.settle();
  }

  private settle(): void {
    const keep: PendingRelease[] = [];
    for (const r of this.pendingReleases) {
      if (r.afterSeq <= this.producedSeq) {
        for (const { topic, offset } of r.offsets) this.trackers.get(topic)?.release(offset);
      } else {
        keep.push(r);
      }
    }
    this.pendingReleases = keep;
  }
}
