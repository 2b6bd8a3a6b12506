/**
 * Per-pixel field helpers shared by the products, the defects and the
 * renderers: seeded value noise, separable blurs, morphology and shape
 * distance functions. All operate on row-major Float32Array/Uint8Array
 * images of width × height, allocate their output, and never touch I/O.
 */
import { latticeHash } from '../base/prng.js';
import { outOfRange } from '../base/invariant.js';

export const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/*
 * Pixel i of a field, read and edited where i is the loop's own index. Every caller passes a
 * Float32Array, so the element read in here stays as fast as one written in the loop.
 */

/** field[i]; a RangeError for a pixel outside the field. */
export function fieldAt(field: Float32Array, i: number): number {
  return field[i] ?? outOfRange(field, i);
}

/** field[i] += d */
export function addAt(field: Float32Array, i: number, d: number): void {
  field[i] = fieldAt(field, i) + d;
}

/** field[i] *= k */
export function scaleAt(field: Float32Array, i: number, k: number): void {
  field[i] = fieldAt(field, i) * k;
}

/** field[i] moved toward `target` by t (0..1). */
export function blendAt(field: Float32Array, i: number, target: number, t: number): void {
  const v = fieldAt(field, i);
  field[i] = v + (target - v) * t;
}

export function smoothstep(e0: number, e1: number, x: number): number {
  const t = clamp((x - e0) / (e1 - e0), 0, 1);
  return t * t * (3 - 2 * t);
}

/** Smooth value noise in [0, 1) at a continuous point, seeded. */
export function valueNoise(x: number, y: number, seed: number): number {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  const fx = x - ix;
  const fy = y - iy;
  const sx = fx * fx * (3 - 2 * fx);
  const sy = fy * fy * (3 - 2 * fy);
  const a = latticeHash(ix, iy, seed);
  const b = latticeHash(ix + 1, iy, seed);
  const c = latticeHash(ix, iy + 1, seed);
  const d = latticeHash(ix + 1, iy + 1, seed);
  return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy;
}

/** Fractal sum of value noise, roughly in [-1, 1]. */
export function fbm(x: number, y: number, seed: number, octaves: number, gain = 0.5, lacunarity = 2): number {
  let sum = 0;
  let amp = 1;
  let norm = 0;
  let fx = x;
  let fy = y;
  for (let o = 0; o < octaves; o++) {
    sum += amp * (valueNoise(fx, fy, seed + o * 1013) * 2 - 1);
    norm += amp;
    amp *= gain;
    fx *= lacunarity;
    fy *= lacunarity;
  }
  return sum / norm;
}

export interface NoiseFieldOptions {
  /** Feature size in pixels along the (rotated) x and y axes. */
  scaleX: number;
  scaleY: number;
  /** Rotation of the noise axes, radians (brushing direction, fibre direction). */
  angle?: number;
  octaves?: number;
  gain?: number;
}

/** A whole image of fBm noise (about [-1, 1]), anisotropic and rotated when asked. */
export function noiseField(width: number, height: number, seed: number, o: NoiseFieldOptions): Float32Array {
  const out = new Float32Array(width * height);
  const ca = Math.cos(o.angle ?? 0);
  const sa = Math.sin(o.angle ?? 0);
  const octaves = o.octaves ?? 4;
  const gain = o.gain ?? 0.5;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = (x * ca + y * sa) / o.scaleX;
      const v = (-x * sa + y * ca) / o.scaleY;
      out[y * width + x] = fbm(u, v, seed, octaves, gain);
    }
  }
  return out;
}

function gaussianKernel(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(sigma * 3));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp((-i * i) / (2 * sigma * sigma));
    k[i + r] = v;
    sum += v;
  }
  return k.map((v) => v / sum);
}

/** One-dimensional convolution along rows (axis 0) or columns (axis 1), clamped edges. */
function convolve1d(src: Float32Array, width: number, height: number, k: Float32Array, alongX: boolean): Float32Array {
  const out = new Float32Array(src.length);
  const r = (k.length - 1) >> 1;
  if (alongX) {
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const xx = x + i < 0 ? 0 : x + i >= width ? width - 1 : x + i;
          acc += fieldAt(src, row + xx) * fieldAt(k, i + r);
        }
        out[row + x] = acc;
      }
    }
  } else {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const yy = y + i < 0 ? 0 : y + i >= height ? height - 1 : y + i;
          acc += fieldAt(src, yy * width + x) * fieldAt(k, i + r);
        }
        out[y * width + x] = acc;
      }
    }
  }
  return out;
}

/** Running-mean box blur of radius r along one axis (clamped edges): cost independent of r. */
function boxBlur1d(src: Float32Array, width: number, height: number, r: number, alongX: boolean): Float32Array {
  const out = new Float32Array(src.length);
  const n = alongX ? width : height;
  const lines = alongX ? height : width;
  const stride = alongX ? 1 : width;
  const norm = 1 / (2 * r + 1);
  for (let l = 0; l < lines; l++) {
    const base = alongX ? l * width : l;
    const at = (i: number): number => fieldAt(src, base + (i < 0 ? 0 : i >= n ? n - 1 : i) * stride);
    let acc = 0;
    for (let i = -r; i <= r; i++) acc += at(i);
    for (let i = 0; i < n; i++) {
      out[base + i * stride] = acc * norm;
      acc += at(i + r + 1) - at(i - r);
    }
  }
  return out;
}

/**
 * Gaussian blur with separate sigmas along x and y (pixels). Small sigmas use
 * an exact kernel; large ones three box passes (within a few percent of a
 * Gaussian, and linear time) — thermal diffusion needs sigmas of tens of pixels.
 */
export function gaussianBlur(src: Float32Array, width: number, height: number, sigmaX: number, sigmaY = sigmaX): Float32Array {
  let out = src;
  const axis = (sigma: number, alongX: boolean): void => {
    if (sigma <= 0.2) return;
    if (sigma <= 6) {
      out = convolve1d(out, width, height, gaussianKernel(sigma), alongX);
      return;
    }
    // three boxes of radius r have variance 3·((2r+1)²−1)/12 = r(r+1)
    const r = Math.max(1, Math.round((Math.sqrt(1 + 4 * sigma * sigma) - 1) / 2));
    for (let p = 0; p < 3; p++) out = boxBlur1d(out, width, height, r, alongX);
  };
  axis(sigmaX, true);
  axis(sigmaY, false);
  return out === src ? Float32Array.from(src) : out;
}

/** Binary dilation by a disc of radius r pixels. */
export function dilate(mask: Uint8Array, width: number, height: number, r: number): Uint8Array {
  if (r <= 0) return Uint8Array.from(mask);
  const out = new Uint8Array(mask.length);
  const ri = Math.ceil(r);
  const offsets: [number, number][] = [];
  for (let dy = -ri; dy <= ri; dy++) for (let dx = -ri; dx <= ri; dx++) if (dx * dx + dy * dy <= r * r) offsets.push([dx, dy]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x] === 0) continue;
      for (const [dx, dy] of offsets) {
        const xx = x + dx;
        const yy = y + dy;
        if (xx >= 0 && yy >= 0 && xx < width && yy < height) out[yy * width + xx] = 1;
      }
    }
  }
  return out;
}

/** Binary erosion by a disc of radius r pixels (complement of the dilated complement). */
export function erode(mask: Uint8Array, width: number, height: number, r: number): Uint8Array {
  const inv = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) inv[i] = mask[i] === 0 ? 1 : 0;
  const d = dilate(inv, width, height, r);
  for (let i = 0; i < d.length; i++) d[i] = d[i] === 0 ? 1 : 0;
  return d;
}

/** Signed distance to a rectangle of half sizes (hx, hy) with corner radius r, centred at the origin. */
export function roundedRectSdf(x: number, y: number, hx: number, hy: number, r: number): number {
  const qx = Math.abs(x) - hx + r;
  const qy = Math.abs(y) - hy + r;
  const ox = Math.max(qx, 0);
  const oy = Math.max(qy, 0);
  return Math.sqrt(ox * ox + oy * oy) + Math.min(Math.max(qx, qy), 0) - r;
}

/** Approximate signed distance to an axis-aligned ellipse (scaled circle; exact on the axes). */
export function ellipseSdf(x: number, y: number, rx: number, ry: number): number {
  const k = Math.sqrt((x * x) / (rx * rx) + (y * y) / (ry * ry));
  return (k - 1) * Math.min(rx, ry);
}

/** Distance from a point to a segment. */
export function segmentDistance(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : clamp(((px - ax) * dx + (py - ay) * dy) / len2, 0, 1);
  const cx = ax + t * dx - px;
  const cy = ay + t * dy - py;
  return Math.sqrt(cx * cx + cy * cy);
}

/** Pixel coverage of a shape from its signed distance (pixels): anti-aliased edges, so sub-pixel pose jitter shows. */
export function coverage(sdfPx: number): number {
  return clamp(0.5 - sdfPx, 0, 1);
}

export function countSet(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) n++;
  return n;
}
