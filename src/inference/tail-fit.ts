/**
 * Peaks over threshold, as the export fits them (models/mmad_models/metrics.py fit_tail): the
 * generalized Pareto distribution of the excesses of the highest `fraction` of a sample of good
 * parts' scores over the next lower score. `mmad calibrate` fits it to a line's own good parts;
 * the result is a ParetoTailDistribution whose quantile (threshold.ts tailQuantile) is the
 * threshold for a stated false-alarm rate.
 *
 * The maximum-likelihood fit with the location fixed runs on Grimshaw's profile: with
 * θ = shape / scale, the shape that maximises the likelihood for a given θ is the mean of
 * ln(1 + θ·y) and the scale that shape / θ, so the likelihood is a function of θ alone,
 *   ℓ(θ) = −k·ln(ξ(θ) / θ) − k·(1 + ξ(θ)),   ξ(θ) = mean ln(1 + θ·y),
 * and ξ(θ) rises with θ. It is maximised over the θ whose shape lies within SHAPE_BOUNDS;
 * a maximum on a bound means the unbounded fit lies beyond it, and then, as the export does,
 * the shape is held at the bound and the scale refitted alone. No spread: a point mass
 * ("degenerate").
 */
import type { ParetoTailDistribution } from './model-manifest.js';

/** The share of the highest scores fitted (the export's TAIL_FRACTION). */
export const TAIL_FRACTION = 0.2;
/** Fewest excesses fitted (the export's MIN_EXCESSES). */
export const MIN_EXCESSES = 10;
/** The shape a tail of a few dozen excesses may take (the export's TAIL_SHAPE_BOUNDS). */
export const SHAPE_BOUNDS: readonly [number, number] = [-0.5, 0.5];

export type FittedTail = Required<ParetoTailDistribution>;

/** The log-likelihood of excesses y under a generalized Pareto of this shape and scale (−∞ outside its support). */
export function tailLogLikelihood(y: readonly number[], shape: number, scale: number): number {
  if (!(scale > 0)) return Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const v of y) {
    const t = 1 + (shape * v) / scale;
    if (!(t > 0)) return Number.NEGATIVE_INFINITY;
    sum += Math.abs(shape) < 1e-12 ? v / scale : (1 / shape + 1) * Math.log(t);
  }
  return -y.length * Math.log(scale) - sum;
}

/** Golden-section search for the maximum of a unimodal f on [a, b]. */
function maximise(f: (x: number) => number, a: number, b: number, iterations = 200): number {
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < iterations && Math.abs(b - a) > 1e-14 * (Math.abs(a) + Math.abs(b) + 1e-300); i++) {
    if (fc >= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return (a + b) / 2;
}

/** ξ(θ) = mean ln(1 + θ·y), the shape that maximises the likelihood at θ (0 at θ = 0). */
function profileShape(y: readonly number[], theta: number): number {
  let s = 0;
  for (const v of y) s += Math.log1p(theta * v);
  return s / y.length;
}

/** The θ at which ξ(θ) = target, by bisection (ξ rises with θ). */
function thetaForShape(y: readonly number[], target: number, yMax: number): number {
  let lo = target < 0 ? -1 / yMax : 0;
  let hi = target < 0 ? 0 : 1 / yMax;
  if (target > 0) while (profileShape(y, hi) < target) hi *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (mid === lo || mid === hi) break;
    if (profileShape(y, mid) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The maximum-likelihood (shape, scale) of excesses y (ascending, all ≥ 0, the last > 0), the shape within SHAPE_BOUNDS. */
function fitExcesses(y: readonly number[]): { shape: number; scale: number; fit: FittedTail['fit'] } {
  const yMax = y[y.length - 1] as number;
  const mean = y.reduce((a, b) => a + b, 0) / y.length;
  const [lo, hi] = SHAPE_BOUNDS;
  const profile = (theta: number): number => {
    if (theta === 0) return -y.length * (Math.log(mean) + 1);
    const xi = profileShape(y, theta);
    return -y.length * Math.log(xi / theta) - y.length * (1 + xi);
  };
  const a = thetaForShape(y, lo, yMax);
  const b = thetaForShape(y, hi, yMax);
  const theta = maximise(profile, a, b);
  const xi = theta === 0 ? 0 : profileShape(y, theta);
  const atBound = Math.abs(theta - a) <= 1e-9 * Math.abs(a) || Math.abs(theta - b) <= 1e-9 * Math.abs(b);
  if (!atBound && Number.isFinite(xi)) {
    const scale = Math.abs(theta) < 1e-300 ? mean : xi / theta;
    if (Number.isFinite(scale) && scale > 0) return { shape: xi, scale, fit: 'maximum-likelihood' };
  }
  // beyond a bound: hold the shape there and refit the scale (a shape < 0 needs scale > −shape·yMax)
  const shape = Math.abs(theta - a) < Math.abs(theta - b) ? lo : hi;
  const minLog = shape < 0 ? Math.log(-shape * yMax) : Math.log(mean) - 10;
  const logScale = maximise((s) => tailLogLikelihood(y, shape, Math.exp(s)), minLog, Math.log(mean) + 10);
  const scale = Math.exp(logScale);
  if (Number.isFinite(scale) && scale > 0 && Number.isFinite(tailLogLikelihood(y, shape, scale))) return { shape, scale, fit: 'bounded-shape' };
  return { shape: 0, scale: mean, fit: 'exponential' };
}

/**
 * The tail of good scores, as the export's fit_tail: k = the highest `fraction` of them
 * (MIN_EXCESSES at least, all but one at most), the location the next lower score, the
 * excesses over it fitted. Throws a RangeError with fewer than MIN_EXCESSES + 1 scores or a
 * score that is not finite.
 */
export function fitTail(scores: readonly number[], fraction = TAIL_FRACTION): FittedTail {
  const n = scores.length;
  if (n < MIN_EXCESSES + 1) throw new RangeError(`a tail fit needs ${MIN_EXCESSES + 1} or more scores, got ${n}`);
  if (!scores.every(Number.isFinite)) throw new RangeError('a tail fit needs finite scores');
  const s = [...scores].sort((x, y) => x - y);
  const k = Math.min(n - 1, Math.max(MIN_EXCESSES, Math.round(fraction * n)));
  const location = s[n - k - 1] as number;
  const y = s.slice(n - k).map((v) => v - location);
  const base = { kind: 'pareto-tail' as const, location, tailFraction: k / n };
  // the excesses ascend: the last is the largest (no spread of thousands of arguments into Math.max)
  if ((y[k - 1] as number) <= 0) return { ...base, scale: 0, shape: 0, fit: 'degenerate' };
  return { ...base, ...fitExcesses(y) };
}
