/**
 * Thresholds from a line's own good parts (`mmad calibrate`). A student's shipped threshold
 * was fitted to the 100-odd good parts it was trained and validated on; the quantile at 1 %
 * of so few is uncertain (the real rate of a stated 1 % lay between 0 and 2.5 % on the
 * simulator's students), while a line makes thousands of good parts a day. From the scores
 * the events of a period carry (a replay of it through the students, or the live events),
 * restricted to parts known to be good, each student's threshold is refitted as the export
 * fits it (the generalized Pareto tail of the highest 20 %, tail-fit.ts) at the stated rate,
 * with a bootstrap interval, and written as `inference.threshold.overrides`. Pure; the CLI
 * reads the events and the id lists.
 */
import type { EventSummary } from './event-summary.js';
import { Rng } from '../base/prng.js';
import { percentiles } from '../output/line-summary.js';
import { fitTail, type FittedTail } from '../inference/tail-fit.js';
import { tailQuantile } from '../inference/threshold.js';

/** Fewest good parts a student is calibrated on (the export's MIN_TAIL_COUNT). */
export const MIN_CALIBRATION_PARTS = 50;
/** Bootstrap resamples for a threshold's interval. */
export const BOOTSTRAP_RESAMPLES = 200;

export interface CalibrationOptions {
  falseAlarmRate: number;
  /** Only these parts (ids known to be good, e.g. passed by a later inspection); all when absent. */
  good?: ReadonlySet<string>;
  /** Never these parts (ids found defective). */
  exclude?: ReadonlySet<string>;
  resamples?: number;
  seed?: number;
}

export interface ModelCalibration {
  id: string;
  version: string;
  /** Good parts whose score by this model was used (each part once: its last revision by the model). */
  parts: number;
  /** The threshold the events carry (their last); null when none did. */
  current: number | null;
  /** The share of these parts at or above `current`. */
  overCurrent: number | null;
  tail: FittedTail | null;
  /** The quantile at 1 − rate of the tail; null with too few parts, or a rate beyond the tail. */
  threshold: number | null;
  /** The share of these parts at or above `threshold`. */
  overThreshold: number | null;
  /** The 5th and 95th percentiles of the threshold over bootstrap resamples of the parts. */
  interval: [number, number] | null;
  /** Why there is no threshold (too few parts, a rate the tail does not describe). */
  note: string | null;
}

export interface LineCalibration {
  falseAlarmRate: number;
  /** Parts (distinct sample ids) with a score in the events. */
  scoredParts: number;
  /** Of those, the parts used (in `good` when given, not in `exclude`). */
  usedParts: number;
  /** Ids listed in `good` that no scored event has. */
  goodNotFound: number;
  models: ModelCalibration[];
}

const share = (scores: readonly number[], t: number): number => scores.filter((s) => s >= t).length / scores.length;

/** One model's calibration from the scores of its good parts. */
export function calibrateScores(id: string, version: string, scores: readonly number[], current: number | null, o: CalibrationOptions): ModelCalibration {
  const base = { id, version, parts: scores.length, current, overCurrent: current === null || scores.length === 0 ? null : share(scores, current) };
  const none = (note: string, tail: FittedTail | null = null): ModelCalibration => ({ ...base, tail, threshold: null, overThreshold: null, interval: null, note });
  if (scores.length < MIN_CALIBRATION_PARTS) return none(`${scores.length} good parts: a threshold needs ${MIN_CALIBRATION_PARTS} at least`);
  const tail = fitTail(scores);
  if (o.falseAlarmRate > tail.tailFraction) return none(`a rate of ${o.falseAlarmRate} is beyond the fitted tail (${tail.tailFraction.toFixed(3)} of the parts)`, tail);
  const threshold = tailQuantile(tail, 1 - o.falseAlarmRate);
  // seeded: the same range on every run
  const rng = Rng.fromSeed(o.seed ?? 1);
  const boot: number[] = [];
  const sample = new Array<number>(scores.length);
  for (let b = 0; b < (o.resamples ?? BOOTSTRAP_RESAMPLES); b++) {
    for (let i = 0; i < scores.length; i++) sample[i] = scores[rng.int(scores.length)] as number;
    boot.push(tailQuantile(fitTail(sample), 1 - o.falseAlarmRate));
  }
  const [lo = threshold, hi = threshold] = percentiles(boot, [0.05, 0.95]);
  return {
    ...base,
    tail,
    threshold,
    overThreshold: share(scores, threshold),
    interval: [lo, hi],
    note: null,
  };
}

/**
 * Every model's calibration from the events of a period: per model, each part's score at its
 * last revision by that model (a part judged in line by one student and refined by another
 * counts for both: each verdict was acted on), parts filtered by `good` and `exclude`.
 */
export function calibrateLine(events: readonly EventSummary[], o: CalibrationOptions): LineCalibration {
  if (!(o.falseAlarmRate > 0 && o.falseAlarmRate < 1)) throw new RangeError(`the false-alarm rate is a probability strictly between 0 and 1, got ${o.falseAlarmRate}`);
  const byModel = new Map<string, Map<string, EventSummary>>();
  const scored = new Set<string>();
  for (const e of events) {
    if (e.score === null || e.model === null || !Number.isFinite(e.score)) continue;
    scored.add(e.sampleId);
    if (o.exclude?.has(e.sampleId) === true || (o.good !== undefined && !o.good.has(e.sampleId))) continue;
    const parts = byModel.get(e.model) ?? new Map<string, EventSummary>();
    byModel.set(e.model, parts);
    const have = parts.get(e.sampleId);
    if (have === undefined || e.revision >= have.revision) parts.set(e.sampleId, e);
  }
  const used = new Set<string>();
  const models = [...byModel.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([model, parts]) => {
      const at = model.lastIndexOf('@');
      const list = [...parts.values()];
      for (const e of list) used.add(e.sampleId);
      const last = list.reduce((a, b) => (b.captureTime > a.captureTime ? b : a));
      return calibrateScores(model.slice(0, at), model.slice(at + 1), list.map((e) => e.score as number), last.threshold, o);
    });
  return {
    falseAlarmRate: o.falseAlarmRate,
    scoredParts: scored.size,
    usedParts: used.size,
    goodNotFound: o.good === undefined ? 0 : [...o.good].filter((id) => !scored.has(id)).length,
    models,
  };
}

const pct = (v: number | null): string => (v === null ? '-' : `${(100 * v).toFixed(1)} %`);
const num = (v: number | null): string => (v === null ? '-' : v.toFixed(4));

/** The report: one row per model, then the notes. */
export function formatCalibration(c: LineCalibration, source: string): string {
  const lines = [
    `calibration for a false-alarm rate of ${c.falseAlarmRate} from ${source}: ${c.usedParts} good parts used of ${c.scoredParts} scored` +
      (c.goodNotFound > 0 ? ` (${c.goodNotFound} listed good parts have no scored event)` : ''),
    '',
  ];
  const rows = [['model', 'version', 'parts', 'threshold now', 'over it', 'new threshold', 'bootstrap 90 %', 'over it', 'tail (shape, scale, fit)']];
  for (const m of c.models) {
    rows.push([
      m.id,
      m.version,
      String(m.parts),
      num(m.current),
      pct(m.overCurrent),
      num(m.threshold),
      m.interval === null ? '-' : `${m.interval[0].toFixed(3)}-${m.interval[1].toFixed(3)}`,
      pct(m.overThreshold),
      m.tail === null ? '-' : `${m.tail.shape.toFixed(3)}, ${m.tail.scale.toFixed(3)}, ${m.tail.fit}`,
    ]);
  }
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  for (const r of rows) lines.push(r.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd());
  const notes = c.models.filter((m) => m.note !== null);
  if (notes.length > 0) lines.push('', ...notes.map((m) => `${m.id} v${m.version}: no threshold: ${m.note as string}`));
  const versions = duplicateIds(c);
  if (versions.length > 0) lines.push('', `several versions of ${versions.join(', ')}: no override is written for them (replay the period with one manifest)`);
  return lines.join('\n');
}

function duplicateIds(c: LineCalibration): string[] {
  const count = new Map<string, number>();
  for (const m of c.models) count.set(m.id, (count.get(m.id) ?? 0) + 1);
  return [...count].filter(([, n]) => n > 1).map(([id]) => id);
}

/**
 * The `inference.threshold.overrides` for the models with a new threshold (one version each),
 * as a configuration file to merge into the line's own.
 */
export function overridesYaml(c: LineCalibration, source: string, now: Date): string {
  const dup = new Set(duplicateIds(c));
  const chosen = c.models.filter((m) => m.threshold !== null && !dup.has(m.id));
  const lines = [
    `# mmad calibrate, ${now.toISOString()}: thresholds for a false-alarm rate of ${c.falseAlarmRate}`,
    `# from the scores of ${c.usedParts} good parts in ${source}`,
    ...chosen.map((m) => `#   ${m.id} v${m.version}: ${m.parts} parts, 90 % interval ${m.interval === null ? '-' : `${m.interval[0].toFixed(4)}-${m.interval[1].toFixed(4)}`}`),
    'inference:',
    '  threshold:',
  ];
  if (chosen.length === 0) lines.push('    overrides: {}');
  else lines.push('    overrides:', ...chosen.map((m) => `      ${m.id}: ${(m.threshold as number).toPrecision(6)}`));
  return `${lines.join('\n')}\n`;
}
