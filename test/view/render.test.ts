/** How the view draws frames and the heatmap over them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { encodeGreyPng } from '../../src/codec/png.js';
import { heatPixels, toPng } from '../../src/view/frame-renderer.js';
import { MISSING_GREY, OVERLAY_ALPHA, colourAt, falseColour, heatmapImage, heightMap, overlayHeatmap, type RgbImage } from '../../src/view/render.js';

const grey = (w: number, h: number, v = 100): RgbImage => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(v) });
const px = (img: RgbImage, x: number, y: number): number[] => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

test('the heatmap is stretched over the whole frame: a hot quarter colours that quarter only', () => {
  // a 4 × 4 heatmap, hot (at the scale, twice the threshold) in its top-left 2 × 2 cells
  const heat = new Uint8Array(16);
  for (const i of [0, 1, 4, 5]) heat[i] = 255;
  const out = overlayHeatmap(grey(64, 64), { width: 4, height: 4, grey: heat, scale: 2 }, 1);
  assert.notDeepEqual(px(out, 5, 5), [100, 100, 100], 'inside the hot quarter');
  const [r, g, b] = px(out, 5, 5);
  assert.ok((r ?? 0) > 150 && (g ?? 255) < 100, `hot colour is red-ish, got ${String([r, g, b])}`);
  assert.deepEqual(px(out, 60, 60), [100, 100, 100], 'the cold corner is left as it is');
  assert.deepEqual(px(out, 60, 5), [100, 100, 100], 'so is the top-right quarter');
  // at twice the threshold: full overlay opacity, the frame still shows through
  const expected = Math.round(100 * (1 - OVERLAY_ALPHA));
  assert.ok((b ?? 0) >= expected, `blue ${String(b)} keeps ${1 - OVERLAY_ALPHA} of the frame`);
});

test('values below half the threshold leave the frame as it is; the colour fades in towards the threshold', () => {
  const scale = 4;
  const threshold = 2;
  const at = (g: number): number[] => px(overlayHeatmap(grey(8, 8), { width: 1, height: 1, grey: new Uint8Array([g]), scale }, threshold), 4, 4);
  assert.deepEqual(at(0), [100, 100, 100]);
  assert.deepEqual(at(60), [100, 100, 100], '60/255 × 4 = 0.94, below half the threshold');
  const quarter = at(96); // 1.5 = 0.75 × threshold
  const full = at(128); // 2.0 = the threshold
  const dist = (p: number[]): number => Math.abs((p[0] ?? 0) - 100) + Math.abs((p[1] ?? 0) - 100) + Math.abs((p[2] ?? 0) - 100);
  assert.ok(dist(quarter) > 0 && dist(full) > dist(quarter), `fades in: ${String(quarter)} then ${String(full)}`);
});

test('a heatmap PNG as the service encodes it, through sharp and over a frame, round trip to PNG', async () => {
  const g = new Uint8Array(64 * 32);
  g.fill(255, 0, 64); // the first row hot
  const pixels = await heatPixels(encodeGreyPng(g, 64, 32), 3);
  assert.deepEqual([pixels.width, pixels.height, pixels.grey[0], pixels.grey[64 * 31]], [64, 32, 255, 0]);
  const png = await toPng(overlayHeatmap(grey(128, 64), pixels, 3));
  const back = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([back.info.width, back.info.height, back.info.channels], [128, 64, 3]);
  assert.notEqual(back.data[0], 100, 'top row coloured');
  assert.equal(back.data[(60 * 128 + 5) * 3], 100, 'bottom rows not');
  const alone = heatmapImage(pixels, 3);
  assert.deepEqual(px(alone, 10, 20), [0, 0, 0]);
});

test('infrared false colour spans its own range, dark to bright; a flat frame does not divide by zero', () => {
  const ir = new Uint16Array([1000, 2000, 3000, 4000]);
  const fc = falseColour(ir, 2, 2);
  assert.deepEqual([fc.min, fc.max], [1000, 4000]);
  const lum = (p: number[]): number => (p[0] ?? 0) + (p[1] ?? 0) + (p[2] ?? 0);
  assert.ok(lum(px(fc, 0, 0)) < lum(px(fc, 1, 0)) && lum(px(fc, 1, 0)) < lum(px(fc, 0, 1)) && lum(px(fc, 0, 1)) < lum(px(fc, 1, 1)));
  assert.deepEqual(px(fc, 0, 0), [...colourAt([[0, 0, 4], [0, 0, 0]], 0)]);
  const flat = falseColour(new Uint16Array(4).fill(7), 2, 2);
  assert.deepEqual([flat.min, flat.max], [7, 7]);
  assert.ok(px(flat, 0, 0).every(Number.isFinite));
});

test('a point cloud becomes a height map: nearer the scanner (smaller z) is higher and yellower, missing points grey, range reported', () => {
  const w = 8;
  const h = 8;
  const xyz = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) xyz.set([x, y, x < 4 ? 1 : 2], (y * w + x) * 3);
  xyz.set([0, 0, 0], 0); // a missing point
  xyz.set([Number.NaN, 1, 1], 3);
  const hm = heightMap(xyz, w, h);
  assert.deepEqual([hm.min, hm.max, hm.missing], [1, 2, 2]);
  assert.deepEqual(px(hm, 0, 0), [MISSING_GREY, MISSING_GREY, MISSING_GREY]);
  const high = px(hm, 1, 4); // z = 1: near
  const low = px(hm, 6, 4); // z = 2: far
  assert.ok((high[1] ?? 0) > (low[1] ?? 0) && (high[0] ?? 0) > (low[0] ?? 0), `high ${String(high)} vs low ${String(low)}`);
});
