import assert from 'node:assert/strict';
import { test } from 'node:test';
import { depthMm, resampleVolume } from '../../src/inference/volume.js';

const grid = (depth: number, height: number, width: number): { depth: number; height: number; width: number } => ({ depth, height, width });

test('resampling to the same grid is a copy in raw counts, at an offset of a batch when given', () => {
  const data = Uint16Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 2731);
  assert.deepEqual([...resampleVolume(data, grid(2, 3, 4), grid(2, 3, 4))], [...data]);
  const out = new Float32Array(5 + data.length).fill(-1);
  resampleVolume(data, grid(2, 3, 4), grid(2, 3, 4), out, 5);
  assert.deepEqual([...out.subarray(0, 5)], [-1, -1, -1, -1, -1]);
  assert.deepEqual([...out.subarray(5)], [...data]);
  assert.equal(resampleVolume(Uint16Array.of(65535), grid(1, 1, 1), grid(1, 1, 1))[0], 65535);
});

test('2× down on every axis: each output voxel is the mean of its 2 × 2 × 2 source block (voxel centres aligned)', () => {
  const [d, h, w] = [4, 6, 8];
  const data = Uint16Array.from({ length: d * h * w }, (_, i) => (i * 7919) % 60000);
  const out = resampleVolume(data, grid(d, h, w), grid(2, 3, 4));
  assert.equal(out.length, 2 * 3 * 4);
  for (let k = 0; k < 2; k++) {
    for (let j = 0; j < 3; j++) {
      for (let i = 0; i < 4; i++) {
        let sum = 0;
        for (const dz of [0, 1]) for (const dy of [0, 1]) for (const dx of [0, 1]) sum += data[((2 * k + dz) * h + 2 * j + dy) * w + 2 * i + dx] ?? NaN;
        assert.ok(Math.abs((out[(k * 3 + j) * 4 + i] ?? NaN) - sum / 8) < 1e-2, `voxel ${k},${j},${i}`);
      }
    }
  }
});

test('a linear ramp stays a linear ramp: exact down, and up inside the end voxels (clamped at the edges, as the same field of view wants)', () => {
  // value = 1000 z + 100 y + 10 x on an 8 × 8 × 8 grid
  const n = 8;
  const ramp = (z: number, y: number, x: number): number => 1000 * z + 100 * y + 10 * x;
  const data = Uint16Array.from({ length: n * n * n }, (_, i) => ramp(Math.floor(i / 64), Math.floor(i / 8) % 8, i % 8));
  // down to 4 × 2 × 8: output voxel i of m samples source position (i + 0.5) · n/m − 0.5
  const down = resampleVolume(data, grid(n, n, n), grid(4, 2, 8));
  for (let k = 0; k < 4; k++) for (let j = 0; j < 2; j++) for (let i = 0; i < 8; i++) {
    const want = ramp((k + 0.5) * 2 - 0.5, (j + 0.5) * 4 - 0.5, i);
    assert.ok(Math.abs((down[(k * 2 + j) * 8 + i] ?? NaN) - want) < 1e-2, `down ${k},${j},${i}: ${String(down[(k * 2 + j) * 8 + i])} vs ${want}`);
  }
  // up to 16 slices along z: linear inside, the end voxels' value beyond their centres
  const up = resampleVolume(data, grid(n, n, n), grid(16, n, n));
  for (let k = 0; k < 16; k++) {
    const z = Math.min(Math.max((k + 0.5) / 2 - 0.5, 0), n - 1);
    assert.ok(Math.abs((up[(k * n + 3) * n + 5] ?? NaN) - ramp(z, 3, 5)) < 1e-2, `up slice ${k}`);
  }
  assert.equal(up[(0 * n + 3) * n + 5], ramp(0, 3, 5));
  assert.equal(up[(15 * n + 3) * n + 5], ramp(7, 3, 5));
});

test('resampling refuses a volume whose samples do not fill its grid, or an output without room', () => {
  assert.throws(() => resampleVolume(new Uint16Array(7), grid(2, 2, 2), grid(1, 1, 1)), /7 samples for a 2×2×2 volume/);
  assert.throws(() => resampleVolume(new Uint16Array(8), grid(2, 2, 2), grid(2, 2, 2), new Float32Array(8), 1), /7 values of room for a 2×2×2 grid/);
});

test('depthMm: (slice + 0.5) × source slices per model slice × voxel z; not finite or negative (no ct depth) → null', () => {
  assert.equal(depthMm(0, 32, 32, 0.5), 0.25, 'the centre of the lowest slice');
  assert.equal(depthMm(3, 64, 32, 0.25), 3.5 * 2 * 0.25);
  assert.equal(depthMm(Number.NaN, 32, 32, 0.5), null);
  assert.equal(depthMm(-1, 32, 32, 0.5), null, 'another modality leads the map there');
});
