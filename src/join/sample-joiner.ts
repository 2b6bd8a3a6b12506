/**
 * The join of one task: frames of the same sample ID, from every input topic's
 * partition with this task's number, gathered until the sample can be judged.
 *
 * Pure and deterministic: no I/O, no clock of its own. Time comes in two ways,
 * as in Kafka Streams: *stream time* is the largest capture time seen (event
 * time, so a replay of history joins exactly as the live run did), and
 * `tick(wallNow)` lets stream time follow the wall clock once input has been
 * idle for `idleAdvanceMs`, so the last parts before a line stop are released.
 * Tested like Kafka Streams' TopologyTestDriver: frames with explicit
 * timestamps, a fake clock, assertions on what was released (test/join).
 *
 * Per modality the policy (config `join.modalities`) says what a sample waits
 * for:
 *   required  — wait up to timeoutMs; without it the sample is UNKNOWN;
 *   optional  — wait up to timeoutMs, then judge without it;
 *   late      — never wait; judge without it and again (a new revision) if it
 *               arrives within windowMs.
 * The station's expected-modalities hint, when present, removes modalities the
 * sample will never get, so nothing waits for them.
 */
import type { ModalityPolicy } from '../config/config-schema.js';
import { MODALITIES, type Modality } from '../codec/records.js';
import { ErrorCode } from '../base/errors.js';
import { present } from '../base/invariant.js';
import { MinHeap } from '../base/min-heap.js';

/** Where a frame came from in Kafka. */
export interface FrameSource {
  topic: string;
  partition: number;
  offset: string;
}

/** A decoded frame entering the join; `payload` is opaque here. */
export interface JoinInput<P> {
  sampleId: string;
  modality: Modality;
  /** Capture time, epoch ms (event time). */
  captureTime: number;
  /** Wall-clock arrival, epoch ms (for latency figures only; never for decisions). */
  arrivedAt: number;
  /** Bytes this frame holds in memory (payload), for the memory bound. */
  bytes: number;
  expectedModalities: Modality[] | null;
  source: FrameSource;
  payload: P;
}

export type ReleaseKind =
  /** Every modality the sample can get is in. */
  | 'complete'
  /** Required and optional modalities are in; a late one may still refine it. */
  | 'provisional'
  /** Released without an optional modality whose timeout expired. */
  | 'timeout'
  /** A late modality arrived within its window: a refined revision. */
  | 'refine';

export type JoinOutput<P> =
  | {
      type: 'release';
      kind: ReleaseKind;
      sampleId: string;
      revision: number;
      /** All frames of the sample so far, one per modality, in modality order. */
      frames: JoinInput<P>[];
      /** Modalities configured for the line that this revision is made without. */
      missing: Modality[];
      /** True when no later revision can follow. */
      final: boolean;
      /** Capture time of the sample's first frame. */
      firstCapture: number;
      /** Wall-clock arrival of the sample's first frame. */
      firstArrival: number;
    }
  | {
      type: 'unknown';
      sampleId: string;
      revision: number;
      frames: JoinInput<P>[];
      missing: Modality[];
      /** The required modalities that never arrived. */
      reason: string;
      final: true;
      firstCapture: number;
      firstArrival: number;
    }
  | {
      type: 'rejected';
      frame: JoinInput<P>;
      code: typeof ErrorCode.JOIN_TOO_LATE;
      message: string;
    };

export interface JoinPolicy {
  /** Policies of the modalities this line joins (those with an input topic). */
  modalities: Partial<Record<Modality, ModalityPolicy>>;
  graceMs: number;
  idleAdvanceMs: number;
  maxPendingSamples: number;
  maxPendingBytes: number;
  closedRetentionMs: number;
  /** Closed samples remembered at most (the oldest forgotten first), whatever their age. */
  maxClosedSamples: number;
  /** Bytes the closed samples' memory may take at most (ids plus a fixed cost each, CLOSED_ENTRY_BYTES). */
  maxClosedBytes: number;
}

/** What one remembered closed sample costs besides its id (map entry, record, modality set), bytes: about 255 measured on V8 (286 with a 12-character id). */
export const CLOSED_ENTRY_BYTES = 256;

/** Notifications for the owner of the frames (to release their input offsets). */
export interface JoinListener<P> {
  /** A sample closed: no output will involve these frames any more. */
  closed?(sampleId: string, frames: JoinInput<P>[], info: { revision: number; firstCapture: number; closedAt: number; modalities: Modality[] }): void;
  /** A frame was a duplicate of one already joined (or of a closed sample's): it is not kept. */
  duplicate?(frame: JoinInput<P>): void;
  /**
   * A closed sample was forgotten (`closedRetentionMs` of stream time after it
   * closed): a frame of it from now on is judged as a stranger's would be.
   */
  forgotten?(sampleId: string): void;
}

export interface JoinStats {
  framesIn: Record<string, number>;
  released: Record<ReleaseKind, number>;
  unknown: number;
  duplicates: number;
  tooLate: number;
  /** Releases (and unknowns) that went without a modality because its wait expired, per modality. */
  timedOut: Record<string, number>;
  /** Closed samples forgotten before closedRetentionMs because the memory bound was reached. */
  forgottenEarly: number;
}

/** Empty join statistics (to sum tasks' statistics into). */
export function emptyJoinStats(): JoinStats {
  return { framesIn: {}, released: { complete: 0, provisional: 0, timeout: 0, refine: 0 }, unknown: 0, duplicates: 0, tooLate: 0, timedOut: {}, forgottenEarly: 0 };
}

/** Adds `from` into `into` (statistics of several tasks, or of tasks that moved away). */
export function addJoinStats(into: JoinStats, from: JoinStats): JoinStats {
  for (const [m, n] of Object.entries(from.framesIn)) into.framesIn[m] = (into.framesIn[m] ?? 0) + n;
  for (const k of Object.keys(from.released) as ReleaseKind[]) into.released[k] += from.released[k];
  into.unknown += from.unknown;
  into.duplicates += from.duplicates;
  into.tooLate += from.tooLate;
  into.forgottenEarly += from.forgottenEarly;
  for (const [m, n] of Object.entries(from.timedOut)) into.timedOut[m] = (into.timedOut[m] ?? 0) + n;
  return into;
}

interface ClosedSample {
  at: number;
  modalities: Set<Modality>;
  expected: Set<Modality> | null;
}

interface PendingSample<P> {
  sampleId: string;
  firstCapture: number;
  firstArrival: number;
  frames: Map<Modality, JoinInput<P>>;
  expected: Set<Modality> | null;
  /** Revisions published so far (0 = none yet). */
  revision: number;
  bytes: number;
  /** Modalities of the last published revision, when restored (their re-read frames refine nothing). */
  released?: Set<Modality>;
}

export class SampleJoiner<P> {
  private readonly pending = new Map<string, PendingSample<P>>();
  /** Closed samples in closing order (stream time never decreases), for duplicates and too-late frames. */
  private readonly closed = new Map<string, ClosedSample>();
  /** Deadlines of pending samples, earliest first. */
  private readonly deadlines = new MinHeap(deadlineFirst);
  private streamTime = Number.NEGATIVE_INFINITY;
  private lastInputWall = Number.NEGATIVE_INFINITY;
  /** Where the idle timer moves stream time from: the stream time of the last frame (or, before any, what was restored). */
  private streamTimeAtLastInput = Number.NEGATIVE_INFINITY;
  private pendingBytes = 0;
  private closedBytes = 0;
  private readonly joined: Modality[];
  /** The longest a sample can stay open, from its first capture. */
  private readonly horizonMs: number;
  readonly stats: JoinStats = {
    framesIn: {},
    released: { complete: 0, provisional: 0, timeout: 0, refine: 0 },
    unknown: 0,
    duplicates: 0,
    tooLate: 0,
    timedOut: {},
    forgottenEarly: 0,
  };

  constructor(
    private readonly policy: JoinPolicy,
    private readonly listener: JoinListener<P> = {},
  ) {
    this.joined = MODALITIES.filter((m) => policy.modalities[m] !== undefined);
    if (this.joined.length === 0) throw new Error('the join needs at least one modality');
    this.horizonMs = Math.max(...this.joined.map((m) => waitOf(this.policyOf(m))));
  }

  /** Stream time (event time), epoch ms; -Infinity before the first frame. */
  get now(): number {
    return this.streamTime;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get bytesHeld(): number {
    return this.pendingBytes;
  }

  /** The sample is pending or remembered as closed. */
  knows(sampleId: string): boolean {
    return this.pending.has(sampleId) || this.closed.has(sampleId);
  }

  /** At a memory bound: the caller pauses consumption until releases make room. */
  get full(): boolean {
    return this.pending.size >= this.policy.maxPendingSamples || this.pendingBytes >= this.policy.maxPendingBytes;
  }

  /**
   * Seeds the join with what was already published for a sample before a
   * restart (the changelog), before any input is read again: a closed sample
   * makes its re-read frames duplicates; an open one (judged, waiting for a
   * late modality) takes its re-read frames without publishing the revision
   * again, and a frame of a modality it was not judged with refines it.
   */
  restore(state: { sampleId: string; revision: number; modalities: Modality[]; firstCapture: number; closed: boolean; closedAt: number | null }): void {
    if (state.closed) {
      const at = state.closedAt ?? state.firstCapture;
      this.remember(state.sampleId, { at, modalities: new Set(state.modalities), expected: null });
      // with nothing to read again, the idle timer still moves on from here, so restored parts are forgotten in time
      this.streamTimeAtLastInput = Math.max(this.streamTimeAtLastInput, at);
      return;
    }
    if (state.revision === 0) return;
    this.pending.set(state.sampleId, {
      sampleId: state.sampleId,
      firstCapture: state.firstCapture,
      firstArrival: Number.POSITIVE_INFINITY,
      frames: new Map(),
      expected: null,
      revision: state.revision,
      bytes: 0,
      released: new Set(state.modalities),
    });
    for (const m of this.joined) this.deadlines.push({ deadline: state.firstCapture + waitOf(this.policyOf(m)), firstCapture: state.firstCapture, sampleId: state.sampleId });
  }

  /** Adds a frame; returns what it (and the stream time it brings) releases. */
  add(frame: JoinInput<P>): JoinOutput<P>[] {
    const out: JoinOutput<P>[] = [];
    this.stats.framesIn[frame.modality] = (this.stats.framesIn[frame.modality] ?? 0) + 1;
    this.lastInputWall = Math.max(this.lastInputWall, frame.arrivedAt);

    let sample = this.pending.get(frame.sampleId);
    if (sample === undefined) {
      const closed = this.closed.get(frame.sampleId);
      if (closed !== undefined) {
        if (closed.modalities.has(frame.modality)) this.duplicate(frame);
        else out.push(this.rejectClosed(frame, closed));
      } else if (frame.captureTime + this.horizonMs + this.policy.graceMs < this.streamTime) {
        this.stats.tooLate++;
        out.push({
          type: 'rejected',
          frame,
          code: ErrorCode.JOIN_TOO_LATE,
          message: `frame captured at ${iso(frame.captureTime)} arrived when stream time was ${iso(this.streamTime)}, beyond the longest wait (${this.horizonMs} ms) plus grace (${this.policy.graceMs} ms)`,
        });
      } else {
        sample = {
          sampleId: frame.sampleId,
          firstCapture: frame.captureTime,
          firstArrival: frame.arrivedAt,
          frames: new Map(),
          expected: null,
          revision: 0,
          bytes: 0,
        };
        this.pending.set(frame.sampleId, sample);
      }
    }
    if (sample !== undefined) {
      if (sample.frames.has(frame.modality)) {
        this.duplicate(frame);
      } else {
        this.accept(sample, frame, out);
      }
    }
    this.advanceTo(frame.captureTime, out);
    this.streamTimeAtLastInput = this.streamTime;
    return out;
  }

  /**
   * Wall-clock tick: once input has been idle for idleAdvanceMs, stream time
   * moves with the wall clock, releasing samples whose waits have expired.
   */
  tick(wallNow: number): JoinOutput<P>[] {
    const out: JoinOutput<P>[] = [];
    const idle = wallNow - this.lastInputWall;
    if (idle >= this.policy.idleAdvanceMs && Number.isFinite(this.streamTimeAtLastInput)) {
      this.advanceTo(this.streamTimeAtLastInput + idle, out);
    }
    return out;
  }

  /**
   * More input is buffered or known to be unread (a backlog, a slow judge):
   * the input is not idle, so the idle timer restarts from now. Without this a
   * backlog read faster than it is judged would look idle (its frames arrived
   * long ago) and stream time would race ahead of the frames still queued.
   */
  busy(wallNow: number): void {
    this.lastInputWall = Math.max(this.lastInputWall, wallNow);
  }

  /** End of input (a replay's range, shutdown of a finite run): every wait expires now. */
  flush(): JoinOutput<P>[] {
    const out: JoinOutput<P>[] = [];
    this.advanceTo(Number.POSITIVE_INFINITY, out);
    return out;
  }

  private accept(sample: PendingSample<P>, frame: JoinInput<P>, out: JoinOutput<P>[]): void {
    sample.frames.set(frame.modality, frame);
    sample.bytes += frame.bytes;
    this.pendingBytes += frame.bytes;
    if (frame.captureTime < sample.firstCapture || sample.frames.size === 1) {
      sample.firstCapture = Math.min(sample.firstCapture, frame.captureTime);
      // deadlines count from the first capture: (re)schedule them
      for (const m of this.joined) this.deadlines.push({ deadline: this.deadline(sample, m), firstCapture: sample.firstCapture, sampleId: sample.sampleId });
    }
    if (frame.arrivedAt < sample.firstArrival) sample.firstArrival = frame.arrivedAt;
    if (frame.expectedModalities !== null && sample.expected === null) {
      sample.expected = new Set(frame.expectedModalities.filter((m) => this.joined.includes(m)));
    }
    if (sample.revision > 0) {
      // already judged: a late modality inside its window refines the verdict
      // (a restored sample's re-read frames were part of its last revision)
      if (sample.released?.has(frame.modality) !== true) out.push(this.release(sample, 'refine'));
    } else {
      this.evaluate(sample, out);
    }
  }

  private duplicate(frame: JoinInput<P>): void {
    this.stats.duplicates++;
    this.listener.duplicate?.(frame);
  }

  private rejectClosed(frame: JoinInput<P>, closed: ClosedSample): JoinOutput<P> {
    this.stats.tooLate++;
    const hint =
      closed.expected !== null && !closed.expected.has(frame.modality)
        ? ` (its expected-modalities hint did not include ${frame.modality})`
        : '';
    return {
      type: 'rejected',
      frame,
      code: ErrorCode.JOIN_TOO_LATE,
      message: `sample ${frame.sampleId} was already closed when its ${frame.modality} frame (captured ${iso(frame.captureTime)}) arrived${hint}`,
    };
  }

  private advanceTo(time: number, out: JoinOutput<P>[]): void {
    if (time > this.streamTime) this.streamTime = time;
    for (;;) {
      const next = this.deadlines.peek();
      if (next === undefined || next.deadline > this.streamTime) break;
      this.deadlines.pop();
      const sample = this.pending.get(next.sampleId);
      if (sample !== undefined) this.evaluate(sample, out);
    }
    for (const [id, c] of this.closed) {
      if (c.at + this.policy.closedRetentionMs >= this.streamTime) break;
      this.forget(id);
    }
  }

  /** Remembers a closed sample; beyond the count or byte bound the oldest are forgotten early. */
  private remember(sampleId: string, c: ClosedSample): void {
    if (this.closed.has(sampleId)) this.forget(sampleId, false);
    this.closed.set(sampleId, c);
    this.closedBytes += closedCost(sampleId);
    while (this.closed.size > this.policy.maxClosedSamples || this.closedBytes > this.policy.maxClosedBytes) {
      const oldest = this.closed.keys().next();
      if (oldest.done || oldest.value === sampleId) break;
      this.forget(oldest.value);
      this.stats.forgottenEarly++;
    }
  }

  private forget(sampleId: string, notify = true): void {
    if (!this.closed.delete(sampleId)) return;
    this.closedBytes -= closedCost(sampleId);
    if (notify) this.listener.forgotten?.(sampleId);
  }

  /** Closed samples remembered, and their estimated bytes. */
  get closedMemory(): { samples: number; bytes: number } {
    return { samples: this.closed.size, bytes: this.closedBytes };
  }

  /** Modalities this sample can still get. */
  private wanted(sample: PendingSample<P>): Modality[] {
    return this.joined.filter((m) => sample.expected === null || sample.expected.has(m));
  }

  private deadline(sample: PendingSample<P>, m: Modality): number {
    return sample.firstCapture + waitOf(this.policyOf(m));
  }

  /** The policy of a joined modality (`this.joined`: those with one). */
  private policyOf(m: Modality): ModalityPolicy {
    return present(this.policy.modalities[m], `the join policy of ${m}`);
  }

  /** Decides, for the sample's current frames and the stream time, whether it is released or closed. */
  private evaluate(sample: PendingSample<P>, out: JoinOutput<P>[]): void {
    const wanted = this.wanted(sample);
    const missing = wanted.filter((m) => !sample.frames.has(m));
    if (sample.revision > 0) {
      // judged; open only for late modalities inside their windows
      if (missing.every((m) => this.streamTime >= this.deadline(sample, m))) this.close(sample);
      return;
    }
    if (missing.length === 0) {
      out.push(this.release(sample, 'complete'));
      return;
    }
    const expired = (m: Modality): boolean => this.streamTime >= this.deadline(sample, m);
    const policyOf = (m: Modality): ModalityPolicy['policy'] => this.policyOf(m).policy;
    const requiredMissing = missing.filter((m) => policyOf(m) === 'required');
    if (requiredMissing.length > 0) {
      // without a required modality the sample cannot be judged: no point waiting for others
      const gone = requiredMissing.filter(expired);
      if (gone.length > 0) out.push(this.unknown(sample, gone));
      return;
    }
    // all required present: wait only for optional modalities still inside their timeout
    if (missing.every((m) => policyOf(m) === 'late' || expired(m))) {
      out.push(this.release(sample, missing.some((m) => policyOf(m) === 'optional') ? 'timeout' : 'provisional'));
    }
  }

  private release(sample: PendingSample<P>, kind: ReleaseKind): JoinOutput<P> {
    sample.revision++;
    const wanted = this.wanted(sample);
    const missingNow = wanted.filter((m) => !sample.frames.has(m));
    if (kind !== 'refine') {
      for (const m of missingNow) {
        if (this.policyOf(m).policy !== 'late') this.stats.timedOut[m] = (this.stats.timedOut[m] ?? 0) + 1;
      }
    }
    this.stats.released[kind]++;
    // Only late modalities inside their window can still come.
    const stillPossible = missingNow.filter(
      (m) => this.policyOf(m).policy === 'late' && this.streamTime < this.deadline(sample, m),
    );
    const final = stillPossible.length === 0;
    const output: JoinOutput<P> = {
      type: 'release',
      kind,
      sampleId: sample.sampleId,
      revision: sample.revision,
      frames: this.framesOf(sample),
      missing: this.joined.filter((m) => !sample.frames.has(m)),
      final,
      firstCapture: sample.firstCapture,
      firstArrival: sample.firstArrival,
    };
    if (final) this.close(sample);
    return output;
  }

  private unknown(sample: PendingSample<P>, absent: Modality[]): JoinOutput<P> {
    sample.revision++;
    this.stats.unknown++;
    for (const m of absent) this.stats.timedOut[m] = (this.stats.timedOut[m] ?? 0) + 1;
    const output: JoinOutput<P> = {
      type: 'unknown',
      sampleId: sample.sampleId,
      revision: sample.revision,
      frames: this.framesOf(sample),
      missing: this.joined.filter((m) => !sample.frames.has(m)),
      reason: `required modality ${absent.join(', ')} did not arrive within ${absent.map((m) => `${waitOf(this.policyOf(m))} ms`).join(', ')} of the sample's first capture`,
      final: true,
      firstCapture: sample.firstCapture,
      firstArrival: sample.firstArrival,
    };
    this.close(sample);
    return output;
  }

  private framesOf(sample: PendingSample<P>): JoinInput<P>[] {
    return MODALITIES.flatMap((m) => {
      const f = sample.frames.get(m);
      return f === undefined ? [] : [f];
    });
  }

  private close(sample: PendingSample<P>): void {
    if (!this.pending.delete(sample.sampleId)) return;
    this.pendingBytes -= sample.bytes;
    // a sample can close on the frame that brings stream time (before it moves): it closes no
    // earlier than its own frames, so the first sample of a task is not forgotten at once
    const at = Math.max(this.streamTime, sample.firstCapture, ...[...sample.frames.values()].map((f) => f.captureTime));
    this.remember(sample.sampleId, { at, modalities: new Set(sample.frames.keys()), expected: sample.expected });
    const frames = this.framesOf(sample);
    const modalities = new Set<Modality>([...frames.map((f) => f.modality), ...(sample.released ?? [])]);
    this.listener.closed?.(sample.sampleId, frames, {
      revision: sample.revision,
      firstCapture: sample.firstCapture,
      closedAt: at,
      modalities: MODALITIES.filter((m) => modalities.has(m)),
    });
  }
}

interface DeadlineEntry {
  deadline: number;
  firstCapture: number;
  sampleId: string;
}

/** Deadlines in the order (deadline, first capture, sample id), so releases are deterministic. */
function deadlineFirst(a: DeadlineEntry, b: DeadlineEntry): boolean {
  if (a.deadline !== b.deadline) return a.deadline < b.deadline;
  if (a.firstCapture !== b.firstCapture) return a.firstCapture < b.firstCapture;
  return a.sampleId < b.sampleId;
}

function waitOf(p: ModalityPolicy): number {
  return p.policy === 'late' ? p.windowMs : p.timeoutMs;
}

function closedCost(sampleId: string): number {
  return CLOSED_ENTRY_BYTES + 2 * sampleId.length;
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}
