/**
 * Seeded pseudo-random numbers for the generator. Everything the simulator
 * draws comes from here, never from Math.random, so a seed reproduces a part
 * bit for bit.
 *
 * Streams are *forked by label* (`rng.fork('scanner')`) from the seed, not from
 * the parent's position: adding a draw to the texture code does not shift the
 * scanner noise, and a part rendered with and without a defect shares every
 * stream except the defect's — which is what the visibility tests compare.
 */
import { at, outOfRange } from './invariant.js';

/** 32-bit string/number hash with full avalanche (FNV-1a over UTF-16 units, then a murmur3 finalizer). */
export function hash32(value: string | number, seed = 0x811c9dc5): number {
  const s = typeof value === 'number' ? `#${value}` : value;
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** murmur3's finalizer: every input bit affects every output bit. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of integer lattice coordinates, for noise: uniform in [0, 1). */
export function latticeHash(ix: number, iy: number, seed: number): number {
  let h = Math.imul(ix | 0, 0x27d4eb2d) ^ Math.imul(iy | 0, 0x165667b1) ^ seed;
  h = fmix32(h);
  return h / 4294967296;
}

/**
 * sfc32 (Chris Doty-Humphrey's small fast counting generator): 128-bit state,
 * passes PractRand to terabytes, and is plain 32-bit integer arithmetic, so
 * the sequence is identical on every platform and Node version.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  private constructor(
    /** Identity of this stream; forks derive from it. */
    readonly key: number,
  ) {
    // splitmix32 expands the 32-bit key into the 128-bit state
    let s = key >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = 1;
    for (let i = 0; i < 12; i++) this.uint32(); // discard the warm-up
  }

  static fromSeed(seed: number | string): Rng {
    return new Rng(hash32(seed));
  }

  /** An independent stream named `label`, the same whatever was drawn from this one. */
  fork(label: string | number): Rng {
    return new Rng(hash32(label, this.key));
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return at(items, this.int(items.length));
  }

  /** Standard normal (Marsaglia's polar method; the second value is kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = this.next() * 2 - 1;
      v = this.next() * 2 - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * f;
    return u * f;
  }

  /**
   * A standard normal deviate from one 32-bit draw, via a table of 4096
   * normal quantiles: plenty for sensor noise, and about five times cheaper
   * than normal() in the per-pixel loops of the renderers.
   */
  fastNormal(): number {
    const k = this.uint32() >>> 20;
    return NORMAL_QUANTILES[k] ?? outOfRange(NORMAL_QUANTILES, k);
  }

  /** Normal with mean and standard deviation. */
  gauss(mean: number, sd: number): number {
    return mean + sd * this.normal();
  }
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239] as const;
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1] as const;
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783] as const;
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416] as const;
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

const NORMAL_QUANTILES = (() => {
  const t = new Float64Array(4096);
  for (let k = 0; k < t.length; k++) t[k] = normalQuantile((k + 0.5) / t.length);
  return t;
})();
