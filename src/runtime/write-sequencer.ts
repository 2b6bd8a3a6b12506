/**
 * A task's outputs in order: every output-producing step (a judged release, a
 * dead letter, a changelog update) gets a sequence number when it is decided;
 * its work (judging) runs concurrently, so micro-batches fill, but its records
 * are handed to the sink strictly in sequence order, so a sample's revision 1
 * always precedes its revision 2 and a replay writes in the same order.
 *
 * Handing in does not wait for acks: the sink coalesces what queues behind the
 * request in flight, and `onWritten` runs when a step's records are
 * acknowledged. At most `maxInFlight` steps wait for acks before the sequence
 * waits too (memory; a broker that stopped answering).
 *
 * A commit takes its place in the sequence: it covers the records handed in
 * before it, and steps keep being handed in while it is in flight (they go in
 * the next transaction). Whatever must wait for a step's records to be handed
 * in (an input offset's release) is queued with `whenHandedIn`.
 *
 * The first failed write or commit stops the sequence: nothing more is handed
 * in, and `onFailure` runs once.
 */
import type { Judgement } from '../inference/judge.js';
import type { Outputs } from '../output/event-builder.js';
import type { ChangelogEntry } from './record-encoder.js';
import type { OffsetCommit, OutRecord, TaskSink } from './task-sink.js';

export const NO_OUTPUTS: Outputs = { event: null, alert: null, deadLetters: [] };

/** What a step publishes: the judgement it came from (none for a dead letter or a changelog entry alone) and its outputs. */
export interface StepOutputs {
  j: Judgement | null;
  outputs: Outputs;
}

export interface WriteSequencerOptions {
  sink: TaskSink;
  /** A step's outputs and changelog entries as records. */
  encode: (outputs: Outputs, changelog: ChangelogEntry[]) => OutRecord[];
  /** Steps waiting for acks past which the sequence waits too. */
  maxInFlight: number;
  /** A step's records were handed to the sink (in sequence order). */
  onHandedIn?: (outputs: Outputs) => void;
  /** A step's records were acknowledged (under exactly-once: before their transaction commits). */
  onWritten?: (j: Judgement | null, outputs: Outputs) => void;
  /** The first write or commit that failed; the sequence does nothing more. */
  onFailure: (err: unknown) => void;
}

export interface Commit {
  offsets: OffsetCommit[];
  /** Changelog entries written just before the commit (tombstones). */
  changelog: ChangelogEntry[];
  /** Runs once the commit succeeded. */
  committed: () => void;
}

export class WriteSequencer {
  private nextSeq = 1;
  /** The last step whose records were handed to the sink. */
  private handedIn = 0;
  private chain: Promise<void> = Promise.resolve();
  private deciding = 0;
  private unacked = 0;
  private commitsInFlight = 0;
  private written = false;
  private halted = false;
  /** Acks and commits the sink has not answered yet (idle() waits for them). */
  private readonly outstanding = new Set<Promise<unknown>>();
  private waiting: { afterSeq: number; run: () => void }[] = [];

  constructor(private readonly o: WriteSequencerOptions) {}

  /** Steps decided whose work has not finished yet (judging): the task takes no more input past `maxInFlight`. */
  get inFlight(): number {
    return this.deciding;
  }

  /** A commit handed to the sink and not finished yet. */
  get committing(): boolean {
    return this.commitsInFlight > 0;
  }

  /** Records were handed in since the last commit started. */
  get wroteSinceCommit(): boolean {
    return this.written;
  }

  /** A write or commit failed, or the sequence was closed. */
  get stopped(): boolean {
    return this.halted;
  }

  /** Queues a step's records for writing in sequence order, once `work` resolves; returns its sequence number. */
  enqueue(work: Promise<StepOutputs>, changelog: ChangelogEntry[]): number {
    const seq = this.nextSeq++;
    this.deciding++;
    void this.step(async () => {
      let step: StepOutputs;
      let records: OutRecord[];
      try {
        step = await work;
        records = this.o.encode(step.outputs, changelog);
      } finally {
        this.deciding--;
      }
      const { j, outputs } = step;
      this.unacked++;
      const acked = this.track(
        this.o.sink.write(records).then(() => {
          this.unacked--;
          this.o.onWritten?.(j, outputs);
        }),
      );
      if (records.length > 0) this.written = true;
      this.o.onHandedIn?.(outputs);
      this.handedIn = seq;
      this.settle();
      // bound what waits for acks: then the sequence waits too
      if (this.unacked >= this.o.maxInFlight) await acked;
    });
    return seq;
  }

  /** Runs `fn` once step `seq`'s records are handed to the sink: now if they are (0: no step to wait for). */
  whenHandedIn(seq: number, fn: () => void): void {
    this.waiting.push({ afterSeq: seq, run: fn });
    this.settle();
  }

  /**
   * A commit in its place in the sequence: once every step queued so far is
   * handed in, `decide` says what to commit (undefined: nothing new) and the
   * sink commits it behind those records. Resolves when that commit is done, or
   * failed (the sequence stopped); the sequence does not wait for it.
   */
  async commit(decide: () => Commit | undefined): Promise<void> {
    let done: Promise<void> | undefined;
    await this.step(async () => {
      const c = decide();
      if (c !== undefined) done = this.startCommit(c);
    });
    await done;
  }

  /** Resolves when every step queued so far has been written and acknowledged, and every commit finished. */
  async idle(): Promise<void> {
    for (;;) {
      const seen = this.chain;
      await seen;
      await Promise.allSettled([...this.outstanding]);
      if (seen === this.chain && this.outstanding.size === 0) return;
    }
  }

  /** Nothing more is handed in or committed; the sink gives up what is not committed. */
  async close(): Promise<void> {
    this.halted = true;
    await this.o.sink.close();
  }

  private startCommit(c: Commit): Promise<void> {
    if (c.changelog.length > 0) void this.track(this.o.sink.write(this.o.encode(NO_OUTPUTS, c.changelog)));
    this.written = false;
    this.commitsInFlight++;
    const done = this.o.sink.commit(c.offsets).then(c.committed);
    return this.track(done.finally(() => this.commitsInFlight--));
  }

  /** Runs `fn` after every step queued so far; a failure stops the sequence. */
  private step(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.halted) return;
      try {
        await fn();
      } catch (err) {
        this.fail(err);
      }
    });
    this.chain = run;
    return run;
  }

  /** Follows a sink operation: a failure stops the sequence; idle() waits for it. Resolves either way. */
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
    if (this.halted) return;
    this.halted = true;
    this.o.onFailure(err);
  }

  private settle(): void {
    const all = this.waiting;
    this.waiting = [];
    for (const w of all) {
      if (w.afterSeq <= this.handedIn) w.run();
      else this.waiting.push(w);
    }
  }
}
