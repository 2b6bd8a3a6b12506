import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { at } from '../../src/base/invariant.js';
import { resizeOrganized } from '../../src/inference/point-cloud.js';

const dir = new URL('../fixtures/point-cloud/', import.meta.url);
const f32 = (name: string): Float32Array => {
  const b = readFileSync(new URL(name, dir));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
};
const cases = JSON.parse(readFileSync(new URL('index.json', dir), 'utf8')) as { name: string; in: [number, number]; out: [number, number] }[];

test('organized point-cloud resize matches the training side bit for bit (down, up, odd ratios)', () => {
  assert.ok(cases.length >= 4);
  for (const c of cases) {
    const got = resizeOrganized(f32(`${c.name}.in.f32`), c.in[0], c.in[1], c.out[0], c.out[1]);
    const want = f32(`${c.name}.out.f32`);
    assert.equal(got.length, want.length, c.name);
    let diff = 0;
    for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) diff++;
    assert.equal(diff, 0, `${c.name}: ${diff} values differ`);
  }
});

test('resizing never invents a point: every output point is a source point or missing', () => {
  const c = at(cases, 0);
  const src = f32(`${c.name}.in.f32`);
  const points = new Set<string>();
  for (let i = 0; i < src.length; i += 3) points.add(`${at(src, i)},${at(src, i + 1)},${at(src, i + 2)}`);
  const out = resizeOrganized(src, c.in[0], c.in[1], c.out[0], c.out[1]);
  let missing = 0;
  for (let i = 0; i < out.length; i += 3) {
    const key = `${at(out, i)},${at(out, i + 1)},${at(out, i + 2)}`;
    if (key === '0,0,0') missing++;
    else assert.ok(points.has(key), `invented point ${key}`);
  }
  assert.ok(missing > 0 && missing < out.length / 3, 'the missing region stays missing, the rest is filled');
});
