/**
 * The timing of an inspection station, as a pure plan: when each part passes,
 * when each of its frames is captured (by the sensor's own, possibly skewed,
 * clock) and when it is sent — with the faults a real line has: lost frames,
 * producer retries that duplicate a frame, frames held back so they arrive out
 * of order, and bursts when a buffer upstream releases parts.
 *
 * The plan is drawn from a seeded generator and knows nothing of Kafka, so the
 * live simulator and the dataset publisher share it and tests check it without
 * a broker. Times are milliseconds from the start of the line.
 */
import { SENSOR_MODALITIES, VISIBILITY_MODALITIES, type SensorModality, type VisibilityModality } from './defects.js';
import { Rng } from '../base/prng.js';
import { MinHeap } from '../base/min-heap.js';


export interface TimingOptions {
  /** Parts per second passing the station (mean, outside bursts). */
  ratePerSecond: number;
  /** The IR frame is captured up to this many ms after the RGB frame. */
  rgbIrJitterMs: number;
  /** Share of parts that also get the slow 3D measurement. */
  xyzFraction: number;
  /** The 3D measurement happens this long after the part passed (uniform between min and max). */
  xyzDelayMinMs: number;
  xyzDelayMaxMs: number;
  /** Probability that a frame is lost and never sent. */
  dropRate: number;
  /** Probability that a sent frame is sent a second time (a producer retry). */
  duplicateRate: number;
  /** Probability that a frame is held back, so that it arrives after frames of later parts. */
  reorderRate: number;
  /** How long a held-back frame waits at most. */
  reorderMaxMs: number;
  /** Each sensor's clock is off by a constant drawn from ±clockSkewMs. */
  clockSkewMs: number;
  /** Probability, per part outside a burst, that a burst starts. */
  burstRate: number;
  /** Parts in a burst. */
  burstSize: number;
  /** A burst's parts come this many times faster than the mean rate. */
  burstFactor: number;
  /**
   * Share of parts the station sends to the CT (0 when absent: no CT). Their volume comes
   * `ctDelayMinMs..ctDelayMaxMs` after the part passed (minutes: scanning and reconstruction),
   * and for `ctMissRate` of them never (the scan was skipped or failed), though announced.
   */
  ctFraction?: number;
  ctDelayMinMs?: number;
  ctDelayMaxMs?: number;
  ctMissRate?: number;
}

/** What a line without a CT has. */
const NO_CT = { ctFraction: 0, ctDelayMinMs: 60_000, ctDelayMaxMs: 300_000, ctMissRate: 0 };

export interface PlannedFrame {
  /** A sensor of the station, or the CT. */
  modality: VisibilityModality;
  /** True capture time. */
  captureMs: number;
  /** Capture time as the sensor's clock stamps it (true time + that sensor's skew). */
  stampedMs: number;
  /** When the station sends it. */
  sendMs: number;
  /** This emission is the second copy of a frame. */
  duplicate: boolean;
  /** This emission was held back (sent out of order). */
  delayed: boolean;
}

export interface PartPlan {
  index: number;
  /** When the part passed the fast sensors. */
  timeMs: number;
  /** The station routes this part to the 3D measurement. */
  getsXyz: boolean;
  /** The station routes this part to the CT (its volume may still never come: `dropped`). */
  getsCt: boolean;
  /** What the station announces the part will get (the frames' expectedModalities hint). */
  expected: VisibilityModality[];
  /** Every emission of the part's frames, duplicates included, drops excluded. */
  frames: PlannedFrame[];
  /** Modalities with at least one emission. */
  sent: VisibilityModality[];
  /** Modalities whose frame was lost (a CT scan that never came among them). */
  dropped: VisibilityModality[];
}

export function validateTiming(t: TimingOptions): void {
  const prob = (name: keyof TimingOptions): void => {
    const v = t[name] ?? 0;
    if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${v}`);
  };
  for (const k of ['xyzFraction', 'dropRate', 'duplicateRate', 'reorderRate', 'burstRate', 'ctFraction', 'ctMissRate'] as const) {
    if (t[k] !== undefined) prob(k);
  }
  if (!(t.ratePerSecond > 0)) throw new RangeError(`ratePerSecond must be positive, got ${t.ratePerSecond}`);
  for (const k of ['rgbIrJitterMs', 'xyzDelayMinMs', 'xyzDelayMaxMs', 'reorderMaxMs', 'clockSkewMs'] as const) {
    if (!(t[k] >= 0)) throw new RangeError(`${k} must be zero or positive, got ${t[k]}`);
  }
  if (t.xyzDelayMaxMs < t.xyzDelayMinMs) throw new RangeError(`xyzDelayMaxMs (${t.xyzDelayMaxMs}) is below xyzDelayMinMs (${t.xyzDelayMinMs})`);
  const ct = { ...NO_CT, ...t };
  if (!(ct.ctDelayMinMs >= 0) || ct.ctDelayMaxMs < ct.ctDelayMinMs) throw new RangeError(`the CT delay ${ct.ctDelayMinMs}..${ct.ctDelayMaxMs} ms is not a range of zero or more`);
  if (!(t.burstSize >= 1) || !(t.burstFactor >= 1)) throw new RangeError('burstSize and burstFactor must be at least 1');
}

/** Plans parts one after the other. */
export class LineSchedule {
  /** Constant clock offset of each sensor (and the CT's). */
  readonly skewMs: Record<VisibilityModality, number>;
  private readonly rng: Rng;
  private nextIndex = 0;
  private nextTime = 0;
  private burstLeft = 0;

  constructor(
    readonly timing: TimingOptions,
    seed: number | string,
    /** The modalities this station has (a recorded dataset may lack ir; 'ct' is planned by ctFraction alone). */
    readonly modalities: readonly VisibilityModality[] = SENSOR_MODALITIES,
  ) {
    validateTiming(timing);
    this.rng = Rng.fromSeed(`schedule/${String(seed)}`);
    const skew = this.rng.fork('skew');
    this.skewMs = {
      rgb: Math.round(skew.range(-timing.clockSkewMs, timing.clockSkewMs)),
      ir: Math.round(skew.range(-timing.clockSkewMs, timing.clockSkewMs)),
      xyz: Math.round(skew.range(-timing.clockSkewMs, timing.clockSkewMs)),
      ct: Math.round(skew.range(-timing.clockSkewMs, timing.clockSkewMs)),
    };
  }

  /** When the next part will pass (without planning it). */
  peekTime(): number {
    return this.nextTime;
  }

  nextPart(): PartPlan {
    const t = this.timing;
    const index = this.nextIndex++;
    const timeMs = this.nextTime;
    // one generator per part: the plan of part i does not depend on how many draws earlier parts made
    const r = this.rng.fork(index);
    if (this.burstLeft === 0 && r.chance(t.burstRate)) this.burstLeft = t.burstSize;
    const inBurst = this.burstLeft > 0;
    if (inBurst) this.burstLeft--;
    const period = (1000 / t.ratePerSecond) * (inBurst ? 1 / t.burstFactor : 1);
    this.nextTime = timeMs + period * r.range(0.9, 1.1); // conveyor jitter

    const has = (m: SensorModality): boolean => this.modalities.includes(m);
    const getsXyz = has('xyz') && r.chance(t.xyzFraction);
    const capture: Partial<Record<VisibilityModality, number>> = {};
    if (has('rgb')) capture.rgb = timeMs;
    if (has('ir')) capture.ir = timeMs + r.range(0, t.rgbIrJitterMs);
    if (getsXyz) capture.xyz = timeMs + r.range(t.xyzDelayMinMs, t.xyzDelayMaxMs);
    // the CT's draws come from a generator of their own: a line without one plans exactly as before
    const c = { ...NO_CT, ...t };
    const rc = this.rng.fork(`ct/${index}`);
    const getsCt = rc.chance(c.ctFraction);
    const ctDelay = rc.range(c.ctDelayMinMs, c.ctDelayMaxMs);
    const ctMissed = rc.chance(c.ctMissRate);
    if (getsCt) capture.ct = timeMs + ctDelay;
    const expected = VISIBILITY_MODALITIES.filter((m) => capture[m] !== undefined);

    const frames: PlannedFrame[] = [];
    const sent: VisibilityModality[] = [];
    const dropped: VisibilityModality[] = [];
    for (const m of VISIBILITY_MODALITIES) {
      const captureMs = capture[m];
      if (captureMs === undefined) continue; // not expected
      // draws happen whether or not they are used, so one option does not shift another's outcomes
      const g = m === 'ct' ? rc : r;
      const lost = g.chance(t.dropRate) || (m === 'ct' && ctMissed);
      const latency = m === 'xyz' || m === 'ct' ? g.range(20, 80) : g.range(2, 8); // readout and transfer
      const held = g.chance(t.reorderRate);
      const hold = g.range(0, t.reorderMaxMs);
      const twice = g.chance(t.duplicateRate);
      const retryAfter = g.range(5, 500);
      if (lost) {
        dropped.push(m);
        continue;
      }
      const stampedMs = Math.round(captureMs) + this.skewMs[m];
      const sendMs = captureMs + latency + (held ? hold : 0);
      frames.push({ modality: m, captureMs, stampedMs, sendMs, duplicate: false, delayed: held });
      if (twice) frames.push({ modality: m, captureMs, stampedMs, sendMs: sendMs + retryAfter, duplicate: true, delayed: held });
      sent.push(m);
    }
    return { index, timeMs, getsXyz, getsCt, expected, frames, sent, dropped };
  }
}

export type Emission =
  | { kind: 'label'; part: PartPlan; sendMs: number }
  | { kind: 'frame'; part: PartPlan; frame: PlannedFrame; sendMs: number };

/**
 * Merges the plans of consecutive parts into one stream in send order, planning
 * parts lazily: a part is planned only when the next emission could be one of
 * its own (every emission of a part is sent at or after the part passes), so an
 * endless line needs memory only for the frames still waiting, e.g. the 3D ones.
 */
export class EmissionStream {
  /** Planned emissions, earliest send first, ties in planning order (seq). */
  private readonly heap = new MinHeap<{ e: Emission; seq: number }>(
    (a, b) => a.e.sendMs < b.e.sendMs || (a.e.sendMs === b.e.sendMs && a.seq < b.seq),
  );
  private seq = 0;
  private planned = 0;
  private closed = false;

  constructor(
    private readonly schedule: LineSchedule,
    /** Parts to plan at most (Infinity for an endless line). */
    private readonly maxParts = Infinity,
    /** Plan no part that passes at or after this line time. */
    private readonly untilMs = Infinity,
  ) {}

  /** Plans no more parts; what is planned still drains. */
  close(): void {
    this.closed = true;
  }

  get partsPlanned(): number {
    return this.planned;
  }

  /** Emissions planned and not yet taken. */
  get pending(): number {
    return this.heap.size;
  }

  /** Send time of the next emission (planning a part if needed), or undefined when drained. */
  peekTime(): number | undefined {
    this.fill();
    return this.heap.peek()?.e.sendMs;
  }

  /** The next emission in send order (ties in planning order), or undefined when drained. */
  next(): Emission | undefined {
    this.fill();
    return this.heap.pop()?.e;
  }

  private fill(): void {
    while (
      !this.closed &&
      this.planned < this.maxParts &&
      this.schedule.peekTime() < this.untilMs &&
      this.schedule.peekTime() <= (this.heap.peek()?.e.sendMs ?? Number.POSITIVE_INFINITY) // an empty heap takes the next part
    ) {
      const part = this.schedule.nextPart();
      this.planned++;
      this.push({ kind: 'label', part, sendMs: part.timeMs });
      for (const frame of part.frames) this.push({ kind: 'frame', part, frame, sendMs: frame.sendMs });
    }
  }

  private push(e: Emission): void {
    this.heap.push({ e, seq: this.seq++ });
  }
}
