/**
 * Frames as a person sees them, in 8-bit RGB (HWC): rgb as it is, infrared in a
 * false-colour scale over its own range, a point cloud as a shaded height map;
 * and the event's anomaly heatmap laid over any of them. Pure functions on
 * pixel arrays (the server decodes and encodes PNG around them).
 */
import { outOfRange } from '../base/invariant.js';

export interface RgbImage {
  width: number;
  height: number;
  /** width × height × 3, row major. */
  data: Uint8Array;
}

type Rgb = readonly [number, number, number];

/** A perceptually ordered dark-to-bright scale (after matplotlib's "inferno"), for temperatures. */
const INFERNO: readonly Rgb[] = [
  [0, 0, 4],
  [40, 11, 84],
  [101, 21, 110],
  [159, 42, 99],
  [212, 72, 66],
  [245, 125, 21],
  [250, 193, 39],
  [252, 255, 164],
];

/** Blue-green-yellow (after "viridis"), for heights. */
const VIRIDIS: readonly Rgb[] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** From just below the threshold (yellow) to well above it (red, then magenta). */
const HEAT: readonly Rgb[] = [
  [255, 235, 0],
  [255, 120, 0],
  [255, 0, 0],
  [230, 0, 200],
];

/** The colour at t ∈ [0, 1] of a scale given by evenly spaced stops. */
export function colourAt(scale: readonly Rgb[], t: number): Rgb {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (scale.length - 1);
  const i = Math.min(scale.length - 2, Math.floor(x));
  const f = x - i;
  const a = scale[i] ?? outOfRange(scale, i);
  const b = scale[i + 1] ?? outOfRange(scale, i + 1);
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

/** Infrared (one channel, any unit) in false colour from its minimum (dark) to its maximum (bright); `min`/`max` are the range shown. */
export function falseColour(values: Uint16Array | Float32Array, width: number, height: number): RgbImage & { min: number; max: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max >= min)) {
    min = 0;
    max = 0;
  }
  const span = max - min;
  // a lookup of 256 colours: the scale is smooth enough, and a pixel costs one index
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(colourAt(INFERNO, i / 255), i * 3);
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    const v = values[p] ?? outOfRange(values, p);
    const k = span > 0 ? Math.round(((v - min) / span) * 255) : 128;
    data[p * 3] = lut[k * 3] ?? 0;
    data[p * 3 + 1] = lut[k * 3 + 1] ?? 0;
    data[p * 3 + 2] = lut[k * 3 + 2] ?? 0;
  }
  return { width, height, data, min, max };
}

/** Grey of a point the scanner did not see. */
export const MISSING_GREY = 40;

/**
 * A point cloud (x, y, z per pixel, organised, (0,0,0) or non-finite = missing)
 * as a height map. z is the distance from the scanner (MVTec 3D-AD's
 * convention), so height is −z: the nearest valid point is yellow, the farthest
 * blue, shaded by a light from the upper left so relief shows; missing points
 * dark grey. `min`/`max`: the z range shown.
 */
export function heightMap(xyz: Float32Array, width: number, height: number): RgbImage & { min: number; max: number; missing: number } {
  const n = width * height;
  const z = new Float32Array(n);
  const valid = new Uint8Array(n);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let missing = 0;
  for (let p = 0; p < n; p++) {
    const x = xyz[p * 3] ?? outOfRange(xyz, p * 3);
    const y = xyz[p * 3 + 1] ?? outOfRange(xyz, p * 3 + 1);
    const v = xyz[p * 3 + 2] ?? outOfRange(xyz, p * 3 + 2);
    if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(v) || (x === 0 && y === 0 && v === 0)) {
      missing++;
      continue;
    }
    valid[p] = 1;
    z[p] = -v; // height above the farthest point
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max >= min)) {
    min = 0;
    max = 0;
  }
  const span = max - min;
  const top = -min; // the largest height
  const data = new Uint8Array(n * 3).fill(MISSING_GREY);
  // relief relative to the part's own height range, so a shallow dent shows as well as a tall rib
  const relief = span > 0 ? 8 / span : 0;
  const zAt = (px: number, py: number, fallback: number): number => {
    if (px < 0 || py < 0 || px >= width || py >= height) return fallback;
    const q = py * width + px;
    return valid[q] === 1 ? (z[q] ?? fallback) : fallback;
  };
  for (let py = 0; py < height; py++) {
    for (let px = 0; px < width; px++) {
      const p = py * width + px;
      if (valid[p] !== 1) continue;
      const v = z[p] ?? outOfRange(z, p);
      const dx = (zAt(px + 1, py, v) - zAt(px - 1, py, v)) * relief;
      const dy = (zAt(px, py + 1, v) - zAt(px, py - 1, v)) * relief;
      // Lambert shading of the normal (-dx, -dy, 1) under a light from (-1, -1, 1.5)
      const shade = Math.max(0, (dx + dy + 1.5) / (Math.sqrt(dx * dx + dy * dy + 1) * Math.sqrt(4.25)));
      const c = colourAt(VIRIDIS, span > 0 ? 1 - (top - v) / span : 0.5);
      const k = 0.35 + 0.65 * shade;
      data[p * 3] = Math.min(255, Math.round(c[0] * k));
      data[p * 3 + 1] = Math.min(255, Math.round(c[1] * k));
      data[p * 3 + 2] = Math.min(255, Math.round(c[2] * k));
    }
  }
  return { width, height, data, min, max, missing };
}

export interface HeatmapPixels {
  width: number;
  height: number;
  /** 8-bit grey, width × height: grey g stands for g / 255 × scale. */
  grey: Uint8Array;
  scale: number;
}

/** Below this share of the threshold nothing is drawn; the colour ramps in from there to the threshold. */
export const OVERLAY_FLOOR = 0.5;
/** Opacity of the overlay at and above the threshold. */
export const OVERLAY_ALPHA = 0.6;

/**
 * The heatmap laid over an image. The heatmap covers the whole frame (the
 * model sees the frame resized to its input, and the heatmap keeps that
 * aspect), so it is stretched to the image, sampled bilinearly. A pixel whose
 * anomaly value v is below OVERLAY_FLOOR × threshold is left as it is; from
 * there the heat colour fades in, reaching OVERLAY_ALPHA at the threshold, and
 * its hue goes from yellow (just below) through red (at about 1.5 × threshold) to
 * magenta (2 × and more). Returns a new image.
 */
export function overlayHeatmap(base: RgbImage, heat: HeatmapPixels, threshold: number): RgbImage {
  const { width: w, height: h } = base;
  const out = new Uint8Array(base.data);
  const thr = threshold > 0 ? threshold : heat.scale;
  if (!(thr > 0) || heat.width < 1 || heat.height < 1) return { width: w, height: h, data: out };
  const g = heat.grey;
  const at = (x: number, y: number): number => {
    const i = y * heat.width + x;
    return g[i] ?? outOfRange(g, i);
  };
  for (let y = 0; y < h; y++) {
    const fy = Math.min(heat.height - 1, Math.max(0, ((y + 0.5) * heat.height) / h - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(heat.height - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = Math.min(heat.width - 1, Math.max(0, ((x + 0.5) * heat.width) / w - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(heat.width - 1, x0 + 1);
      const tx = fx - x0;
      const grey = (at(x0, y0) * (1 - tx) + at(x1, y0) * tx) * (1 - ty) + (at(x0, y1) * (1 - tx) + at(x1, y1) * tx) * ty;
      const t = ((grey / 255) * heat.scale) / thr;
      if (t < OVERLAY_FLOOR) continue;
      const alpha = OVERLAY_ALPHA * Math.min(1, (t - OVERLAY_FLOOR) / (1 - OVERLAY_FLOOR));
      const c = colourAt(HEAT, (t - OVERLAY_FLOOR) / 1.5);
      const p = (y * w + x) * 3;
      for (let k = 0; k < 3; k++) {
        const b = out[p + k] ?? outOfRange(out, p + k);
        out[p + k] = Math.round(b * (1 - alpha) + (c[k] ?? 0) * alpha);
      }
    }
  }
  return { width: w, height: h, data: out };
}

/** The heatmap alone in the heat colours over black (a frame no longer in its topic still shows where the anomaly was). */
export function heatmapImage(heat: HeatmapPixels, threshold: number): RgbImage {
  return overlayHeatmap({ width: heat.width, height: heat.height, data: new Uint8Array(heat.width * heat.height * 3) }, heat, threshold);
}
