import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { checkPngChunks, pngHeader } from '../../src/codec/png.js';
import { anomalousRegions, heatmapPng } from '../../src/output/anomaly-map.js';

/** Decodes a heatmap with sharp (libspng), pinned to 8-bit grey. */
async function pixels(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

test('the heatmap is an 8-bit grey PNG that sharp decodes; each pixel is the largest map value it covers, grey 255 the peak', async () => {
  const h = 128;
  const w = 128;
  const map = new Float32Array(h * w).fill(0.1);
  map[37 * w + 90] = 2; // one hot cell: must survive the 2× reduction at full strength
  map[100 * w + 10] = 1;
  const { heatmap: hm, peak } = heatmapPng(map, h, w, 64, 0.5);
  assert.equal(peak, 2);
  assert.deepEqual([hm.width, hm.height, hm.scale], [64, 64, 2]);
  assert.deepEqual(pngHeader(hm.png), { width: 64, height: 64, bitDepth: 8, colourType: 0, channels: 1, interlaced: false });
  checkPngChunks(hm.png);
  const img = await pixels(hm.png);
  assert.deepEqual([img.width, img.height, img.channels], [64, 64, 1]);
  assert.equal(img.data[18 * 64 + 45], 255, 'the hot cell (37, 90) lands in heatmap pixel (18, 45) at full grey');
  assert.equal(img.data[50 * 64 + 5], Math.round((1 / 2) * 255));
  assert.equal(img.data[0], Math.round((0.1 / 2) * 255));
  const hottest = [...img.data].filter((g) => g === 255).length;
  assert.equal(hottest, 1);
});

test('scale is the threshold when the map stays below it; the longer side is the size and the aspect is kept; sizes that do not divide and larger heatmaps work', async () => {
  const map = new Float32Array(10 * 7).map((_, i) => (i % 7) / 10);
  const { heatmap: down, peak } = heatmapPng(map, 10, 7, 5, 2);
  assert.ok(Math.abs(peak - 0.6) < 1e-6, 'the peak, under the threshold');
  assert.equal(down.scale, 2);
  const d = await pixels(down.png);
  // the longer side (height 10) becomes 5, the width keeps the aspect: round(5 × 7 / 10) = 4
  assert.deepEqual([d.width, d.height, down.width, down.height], [4, 5, 4, 5]);
  // columns 0 | 1..2 | 3..4 | 5..6: their maxima 0.0, 0.2, 0.4, 0.6 of scale 2
  assert.deepEqual([...d.data.subarray(0, 4)], [0, 0.2, 0.4, 0.6].map((v) => Math.round((v / 2) * 255)));
  const up = await pixels(heatmapPng(map, 10, 7, 20, 0.5).heatmap.png);
  assert.deepEqual([up.width, up.height], [14, 20]);
  assert.equal(up.data[13], 255, 'the last column (value 0.6 ≥ threshold 0.5) is the peak');
  // a wide map: the width is the longer side
  const { heatmap: wide, peak: zero } = heatmapPng(new Float32Array(160 * 352), 160, 352, 64, 1);
  assert.equal(zero, 0);
  assert.deepEqual([wide.width, wide.height], [64, 29]);
  assert.deepEqual(pngHeader(wide.png), { width: 64, height: 29, bitDepth: 8, colourType: 0, channels: 1, interlaced: false });
});

test('regions: 8-connected components at or over the threshold, in source pixels, largest first', () => {
  const w = 16;
  const map = new Float32Array(16 * 16);
  for (const [y, x] of [[2, 2], [3, 3], [4, 4], [2, 3]] as const) map[y * w + x] = 1; // one diagonal-connected blob of 4
  map[10 * w + 12] = 3; // a single cell, higher peak
  const regions = anomalousRegions(map, 16, 16, 0.5, 64, 64, 10);
  assert.deepEqual(regions, [
    { x: 8, y: 8, width: 12, height: 12, area: 64, peak: 1, depthMm: null },
    { x: 48, y: 40, width: 4, height: 4, area: 16, peak: 3, depthMm: null },
  ]);
  assert.equal(anomalousRegions(map, 16, 16, 0.5, 64, 64, 1).length, 1, 'at most max');
  // nothing at the threshold (most parts): no region; a lone cell at the map's last index is one
  assert.deepEqual(anomalousRegions(map, 16, 16, 3.5, 64, 64, 10), []);
  const last = new Float32Array(16 * 16);
  last[last.length - 1] = 2;
  assert.deepEqual(anomalousRegions(last, 16, 16, 2, 64, 64, 10), [{ x: 60, y: 60, width: 4, height: 4, area: 16, peak: 2, depthMm: null }]);
});

test('regions of a model that took ct: depthMm is the depth at the region\'s peak cell, the lowest cell among equal peaks', () => {
  const w = 8;
  const map = new Float32Array(8 * 8);
  map[1 * w + 1] = 2;
  map[1 * w + 2] = 5; // the blob's peak
  map[2 * w + 2] = 1;
  map[6 * w + 5] = 3; // a second blob with two equal peaks: the lower index (6, 5) gives the depth
  map[6 * w + 6] = 3;
  const regions = anomalousRegions(map, 8, 8, 0.5, 8, 8, 10, (cell) => cell * 10);
  assert.deepEqual(regions.map((r) => [r.area, r.peak, r.depthMm]), [[3, 5, 100], [2, 3, 530]]);
});
