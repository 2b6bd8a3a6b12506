/**
 * What an event says about where a part is anomalous: a small heatmap PNG
 * (fits in a Kafka record) and the connected regions of the anomaly map at or
 * above the model's threshold, in source-image pixels.
 */
import { encodeGreyPng } from '../codec/png.js';
import type { Heatmap, Region } from '../codec/records.js';
import { outOfRange } from '../base/invariant.js';

/**
 * 8-connected components of map ≥ threshold (map is height × width, row
 * major). Boxes and areas are scaled to the source image (sourceW × sourceH);
 * largest first, at most `max`. With `depthAt` (a model that took ct), each
 * region's depthMm is what it gives for the region's peak cell (the lowest index
 * among equal peaks); else null.
 */
export function anomalousRegions(
  map: Float32Array,
  height: number,
  width: number,
  threshold: number,
  sourceW: number,
  sourceH: number,
  max: number,
  depthAt?: (cell: number) => number | null,
): Region[] {
  // most parts have no cell at the threshold: nothing to label, nothing to allocate
  let first = 0;
  while (first < map.length && !((map[first] ?? outOfRange(map, first)) >= threshold)) first++;
  if (first === map.length) return [];
  const label = new Int32Array(height * width).fill(-1);
  const regions: { x0: number; y0: number; x1: number; y1: number; area: number; peak: number; peakAt: number }[] = [];
  const stack: number[] = [];
  for (let start = first; start < map.length; start++) {
    if (label[start] !== -1 || !((map[start] ?? outOfRange(map, start)) >= threshold)) continue;
    const id = regions.length;
    const r = { x0: width, y0: height, x1: -1, y1: -1, area: 0, peak: Number.NEGATIVE_INFINITY, peakAt: -1 };
    regions.push(r);
    label[start] = id;
    stack.push(start);
    for (let p = stack.pop(); p !== undefined; p = stack.pop()) {
      const y = (p / width) | 0;
      const x = p - y * width;
      r.area++;
      const v = map[p] ?? outOfRange(map, p);
      if (v > r.peak || (v === r.peak && p < r.peakAt)) {
        r.peak = v;
        r.peakAt = p;
      }
      if (x < r.x0) r.x0 = x;
      if (x > r.x1) r.x1 = x;
      if (y < r.y0) r.y0 = y;
      if (y > r.y1) r.y1 = y;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width || (dx === 0 && dy === 0)) continue;
          const q = yy * width + xx;
          if (label[q] === -1 && (map[q] ?? outOfRange(map, q)) >= threshold) {
            label[q] = id;
            stack.push(q);
          }
        }
      }
    }
  }
  const sx = sourceW / width;
  const sy = sourceH / height;
  return regions
    .sort((a, b) => b.area - a.area || b.peak - a.peak)
    .slice(0, max)
    .map((r) => ({
      x: Math.floor(r.x0 * sx),
      y: Math.floor(r.y0 * sy),
      width: Math.max(1, Math.round((r.x1 + 1) * sx) - Math.floor(r.x0 * sx)),
      height: Math.max(1, Math.round((r.y1 + 1) * sy) - Math.floor(r.y0 * sy)),
      area: Math.round(r.area * sx * sy),
      peak: r.peak,
      depthMm: depthAt === undefined ? null : depthAt(r.peakAt),
    }));
}

/**
 * The map as an 8-bit greyscale PNG whose longer side is `size` and whose other side
 * keeps the map's aspect (a 160 × 352 map gives 29 × 64 at size 64; a square map
 * size × size), so a non-square part is not distorted; grey g stands for
 * (g / 255) × scale, where scale is the larger of the map's maximum and the
 * threshold (so the threshold always falls inside the grey range). Each
 * heatmap pixel is the largest map value among the cells it covers (the
 * nearest cell when the heatmap is larger than the map), so a defect a few
 * cells wide is not averaged away and grey 255 is the map's peak.
 *
 * Also `peak`, the map's largest value (0 when no cell is above 0), found in the
 * same pass: a peak under the threshold means no region (anomalousRegions) to
 * look for.
 */
export function heatmapPng(map: Float32Array, height: number, width: number, size: number, threshold: number): { heatmap: Heatmap; peak: number } {
  const outW = width >= height ? size : Math.max(1, Math.round((size * width) / height));
  const outH = height >= width ? size : Math.max(1, Math.round((size * height) / width));
  // pixel ox covers the cells from xs[ox] up to (not including) xs[ox + 1], at least one
  const xs = new Int32Array(outW + 1);
  for (let ox = 0; ox < outW; ox++) xs[ox] = Math.floor((ox * width) / outW);
  xs[outW] = width;
  const block = new Float32Array(outW * outH); // each pixel's maximum; 0 stays 0 (grey 0)
  let peak = 0; // every cell is some pixel's (a pixel smaller than a cell takes the nearest)
  for (let oy = 0; oy < outH; oy++) {
    const y0 = Math.floor((oy * height) / outH);
    const y1 = Math.max(y0 + 1, Math.floor(((oy + 1) * height) / outH));
    for (let y = y0; y < y1; y++) {
      const row = y * width;
      for (let ox = 0; ox < outW; ox++) {
        const x0 = xs[ox] ?? outOfRange(xs, ox);
        const x1 = Math.max(x0 + 1, xs[ox + 1] ?? outOfRange(xs, ox + 1));
        const k = oy * outW + ox;
        let v = block[k] ?? outOfRange(block, k);
        for (let x = x0; x < x1; x++) {
          const m = map[row + x] ?? outOfRange(map, row + x);
          if (m > v) v = m;
        }
        block[k] = v;
        if (v > peak) peak = v;
      }
    }
  }
  const scale = Math.max(peak, threshold, Number.EPSILON);
  const grey = new Uint8Array(outW * outH);
  for (let k = 0; k < grey.length; k++) {
    const v = block[k] ?? outOfRange(block, k);
    grey[k] = v > 0 ? Math.min(255, Math.round((v / scale) * 255)) : 0;
  }
  return { heatmap: { png: encodeGreyPng(grey, outW, outH), width: outW, height: outH, scale }, peak };
}
