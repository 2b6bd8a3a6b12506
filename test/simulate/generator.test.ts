import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { CT_NOISE } from '../../src/simulate/ct-scanner.js';
import { DEFECTS, DEFECT_NAMES, VISIBILITY_MODALITIES, type DefectName, type SensorModality } from '../../src/simulate/defects.js';
import { dilate } from '../../src/simulate/fields.js';
import { encodePart } from '../../src/simulate/image-codec.js';
import { buildScene, generatePart, type GeneratedPart } from '../../src/simulate/part-generator.js';
import { Rng } from '../../src/base/prng.js';
import { PRODUCTS, visibilityOf } from '../../src/simulate/products/index.js';
import { thermalNoiseCounts } from '../../src/simulate/thermal.js';

/** Contrast-to-noise ratio at or above which a modality "clearly" shows a defect (the README's table uses it). */
const STRONG_CNR = 3;

function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

test('the same seed gives identical bytes in every modality, encoded files included; another seed does not', async () => {
  for (const product of PRODUCTS) {
    const defect = at(product.defects, 0);
    const a = generatePart({ product, seed: 42, defect, width: 64 });
    const b = generatePart({ product, seed: 42, defect, width: 64 });
    for (const k of ['rgb', 'ir', 'xyz', 'mask'] as const) assert.ok(bytesOf(a[k]).equals(bytesOf(b[k])), `${product.name} ${k}`);
    const [ea, eb] = await Promise.all([encodePart(a), encodePart(b)]);
    for (const k of ['rgb', 'ir', 'xyz', 'gt'] as const) assert.ok(ea[k].equals(eb[k]), `${product.name} encoded ${k}`);
    const c = generatePart({ product, seed: 43, defect, width: 64 });
    for (const k of ['rgb', 'ir', 'xyz'] as const) assert.ok(!bytesOf(a[k]).equals(bytesOf(c[k])), `${product.name} ${k} must vary with the seed`);
  }
});

test('forked random streams do not depend on what the parent drew', () => {
  const a = Rng.fromSeed(7);
  const b = Rng.fromSeed(7);
  for (let i = 0; i < 100; i++) b.next();
  assert.equal(a.fork('x').uint32(), b.fork('x').uint32());
  assert.notEqual(a.fork('x').uint32(), a.fork('y').uint32());
  // the table-based normal is a standard normal
  const r = Rng.fromSeed(1);
  let s = 0;
  let s2 = 0;
  const n = 50_000;
  for (let i = 0; i < n; i++) {
    const v = r.fastNormal();
    s += v;
    s2 += v * v;
  }
  assert.ok(Math.abs(s / n) < 0.02, `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.03, `variance ${s2 / n}`);
});

test('all modalities are pixel-aligned at the requested size, in their conventions', () => {
  for (const [w, h] of [
    [64, 64],
    [96, 48],
  ] as const) {
    const p = generatePart({ product: 'battery_lid', seed: 3, defect: 'dent', width: w, height: h });
    assert.equal(p.rgb.length, w * h * 3);
    assert.equal(p.ir.length, w * h);
    assert.equal(p.xyz.length, w * h * 3);
    assert.equal(p.mask.length, w * h);
    assert.ok(p.ir instanceof Uint16Array && p.xyz instanceof Float32Array);
    assert.ok(p.mask.every((v) => v === 0 || v === 255));
  }
  const p = generatePart({ product: 'battery_lid', seed: 3, defect: null, width: 128 });
  let missing = 0;
  let borderMissing = 0;
  let border = 0;
  for (let i = 0; i < 128 * 128; i++) {
    const [x, y, z] = [at(p.xyz, 3 * i), at(p.xyz, 3 * i + 1), at(p.xyz, 3 * i + 2)];
    const isMissing = z === 0;
    // MVTec 3D-AD: a missing point is exactly 0,0,0; a present one is metres in front of the sensor
    if (isMissing) assert.ok(x === 0 && y === 0, 'missing points are 0,0,0');
    else assert.ok(z > 0.28 && z < 0.31 && Math.abs(x) < 0.07 && Math.abs(y) < 0.07, `point ${x},${y},${z}`);
    const px = i % 128;
    const py = Math.floor(i / 128);
    const atBorder = px < 3 || py < 3 || px > 124 || py > 124;
    if (isMissing) missing++;
    if (atBorder) {
      border++;
      if (isMissing) borderMissing++;
    }
  }
  assert.ok(missing > 0 && missing < 0.2 * 128 * 128, `missing ${missing}`);
  assert.ok(borderMissing / border > (2 * missing) / (128 * 128), 'dropouts concentrate at the edges of the field');
  // the thermal image uses the 16-bit range (more than 8 bits of levels)
  let lo = 65535;
  let hi = 0;
  for (const v of p.ir) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  assert.ok(hi - lo > 1000 && hi > 255, `ir range ${lo}..${hi}`);
  assert.equal(p.defectPixels, 0);
  assert.ok(p.mask.every((v) => v === 0));
});

test('good parts vary naturally: pose, print and lighting differ between seeds', () => {
  for (const product of PRODUCTS) {
    const a = buildScene({ product, seed: 1, defect: null, width: 64 }).scene;
    const b = buildScene({ product, seed: 2, defect: null, width: 64 }).scene;
    let partDiff = 0;
    for (let i = 0; i < a.partMask.length; i++) if (a.partMask[i] !== b.partMask[i]) partDiff++;
    assert.ok(partDiff > 0, `${product.name}: pose jitter moves the outline`);
    assert.notDeepEqual(at(a.camera.lights, 0).colour, at(b.camera.lights, 0).colour, `${product.name}: lighting varies`);
    let albedoDiff = 0;
    for (let i = 0; i < a.albedo.length; i++) albedoDiff += Math.abs(at(a.albedo, i) - at(b.albedo, i));
    assert.ok(albedoDiff > 0, `${product.name}: texture and print vary`);
  }
});

interface Change {
  /** Mean contrast-to-noise ratio of the change inside the mask. */
  cnr: number;
  /** Share of the change's total that lies inside the mask dilated by `slack` pixels. */
  insideShare: number;
  total: number;
}

/** How a modality changed between a part and its defect-free twin (same seed). */
function change(m: SensorModality, good: GeneratedPart, bad: GeneratedPart, noise: Record<SensorModality, number>, slack: number): Change {
  const n = good.width * good.height;
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = bad.mask[i] === 0 ? 0 : 1;
  const near = dilate(mask, good.width, good.height, slack);
  let inside = 0;
  let insideNear = 0;
  let total = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    let d: number;
    if (m === 'rgb') d = (Math.abs(at(good.rgb, 3 * i) - at(bad.rgb, 3 * i)) + Math.abs(at(good.rgb, 3 * i + 1) - at(bad.rgb, 3 * i + 1)) + Math.abs(at(good.rgb, 3 * i + 2) - at(bad.rgb, 3 * i + 2))) / 3;
    else if (m === 'ir') d = Math.abs(at(good.ir, i) - at(bad.ir, i));
    else {
      const zg = at(good.xyz, 3 * i + 2);
      const zb = at(bad.xyz, 3 * i + 2);
      // a point that appears or disappears is a large change
      d = (zg === 0) !== (zb === 0) ? 10 * noise.xyz : Math.min(10 * noise.xyz, Math.abs(zg - zb));
    }
    const v = d / noise[m];
    total += v;
    if (near[i] === 1) insideNear += v;
    if (mask[i] === 1) {
      inside += v;
      count++;
    }
  }
  return { cnr: count === 0 ? 0 : inside / count, insideShare: total === 0 ? 1 : insideNear / total, total };
}

/**
 * How the CT volume changed between a part and its defect-free twin: the same measure on voxels,
 * inside the 3D mask (the share within the mask grown by a voxel in the plane and a slice).
 */
function ctChange(good: GeneratedPart, bad: GeneratedPart): Change {
  const g = present(good.ct, 'the good twin\'s CT');
  const b = present(bad.ct, 'the CT');
  const plane = b.width * b.height;
  const near = new Uint8Array(b.mask.length);
  for (let z = 0; z < b.depth; z++) {
    const grown = dilate(b.mask.subarray(z * plane, (z + 1) * plane).map((v) => (v === 0 ? 0 : 1)), b.width, b.height, 1);
    for (const dz of [-1, 0, 1]) {
      if (z + dz < 0 || z + dz >= b.depth) continue;
      for (let i = 0; i < plane; i++) if (grown[i] === 1) near[(z + dz) * plane + i] = 1;
    }
  }
  let inside = 0;
  let insideNear = 0;
  let total = 0;
  let count = 0;
  for (let v = 0; v < b.volume.length; v++) {
    const d = Math.abs(at(g.volume, v) - at(b.volume, v)) / CT_NOISE;
    total += d;
    if (near[v] === 1) insideNear += d;
    if (b.mask[v] !== 0) {
      inside += d;
      count++;
    }
  }
  return { cnr: count === 0 ? 0 : inside / count, insideShare: total === 0 ? 1 : insideNear / total, total };
}

test('the visibility table holds measurably at the default resolution: none = untouched, faint < strong (the ct column on the CT volume)', () => {
  const rows: string[] = [];
  for (const product of PRODUCTS) {
    for (const defect of [...product.defects, ...product.interiorDefects]) {
      for (const seed of [1, 2]) {
        const good = generatePart({ product, seed, defect: null, ct: true });
        const bad = generatePart({ product, seed, defect, ct: true });
        assert.ok(bad.defectPixels > 20, `${product.name}/${defect} has a mask`);
        const { scene } = buildScene({ product, seed, defect: null });
        const noise = { rgb: scene.camera.noiseLevels, ir: thermalNoiseCounts(scene), xyz: scene.scanner.noiseM };
        const table = visibilityOf(product, defect);
        for (const m of VISIBILITY_MODALITIES) {
          // IR changes spread by heat diffusion and lens blur; relief changes by a pixel of shading
          const c = m === 'ct' ? ctChange(good, bad) : change(m, good, bad, noise, DEFECTS[defect].visibility.ir === 'strong' && defect !== 'crack' ? 4 : 2);
          const where = `${product.name}/${defect} seed ${seed} ${m}: cnr ${c.cnr.toFixed(2)}`;
          rows.push(where);
          if (table[m] === 'none') assert.equal(c.total, 0, `${where} must be bit-identical to the good twin`);
          else {
            assert.ok(c.insideShare > 0.6, `${where}: only ${(100 * c.insideShare).toFixed(0)}% of the change lies at the mask`);
            if (table[m] === 'strong') assert.ok(c.cnr >= STRONG_CNR, `${where} is listed strong`);
            else assert.ok(c.cnr > 0.1 && c.cnr < STRONG_CNR, `${where} is listed faint`);
          }
        }
      }
    }
  }
  assert.ok(rows.length > 0);
});

test('an RGB-only defect changes rgb pixels inside its mask and not one xyz or ir value', () => {
  const good = generatePart({ product: 'composite_coupon', seed: 5, defect: null, width: 128 });
  const bad = generatePart({ product: 'composite_coupon', seed: 5, defect: 'contamination', width: 128 });
  assert.ok(bytesOf(good.xyz).equals(bytesOf(bad.xyz)));
  assert.ok(bytesOf(good.ir).equals(bytesOf(bad.ir)));
  let changedInside = 0;
  for (let i = 0; i < 128 * 128; i++) {
    if (bad.mask[i] !== 0 && (good.rgb[3 * i] !== bad.rgb[3 * i] || good.rgb[3 * i + 1] !== bad.rgb[3 * i + 1])) changedInside++;
  }
  assert.ok(changedInside > 0.8 * bad.defectPixels, `${changedInside} of ${bad.defectPixels} mask pixels changed in rgb`);
});

test('every defect of the catalogue belongs to a product, and products only list known defects', () => {
  const used = new Set<DefectName>(PRODUCTS.flatMap((p) => [...p.defects, ...p.interiorDefects]));
  assert.deepEqual([...used].sort(), [...DEFECT_NAMES].sort());
  assert.throws(() => generatePart({ product: 'composite_coupon', seed: 1, defect: 'hot_spot', width: 32 }), /no defect 'hot_spot'/);
  assert.throws(() => generatePart({ product: 'toaster', seed: 1, defect: null, width: 32 }), /unknown product type/);
  assert.throws(() => generatePart({ product: 'battery_lid', seed: 1, defect: null, width: 8 }), /out of range/);
});

test('defect size and contrast scale the defect', () => {
  const base = generatePart({ product: 'battery_lid', seed: 9, defect: 'bulge', width: 96 });
  const big = generatePart({ product: 'battery_lid', seed: 9, defect: 'bulge', width: 96, defectParams: { size: 1.6 } });
  assert.ok(big.defectPixels > 1.8 * base.defectPixels, `${big.defectPixels} vs ${base.defectPixels}`);
  const good = generatePart({ product: 'battery_lid', seed: 9, defect: null, width: 96 });
  const strong = generatePart({ product: 'battery_lid', seed: 9, defect: 'bulge', width: 96, defectParams: { contrast: 2 } });
  const rise = (p: GeneratedPart): number => {
    let s = 0;
    for (let i = 0; i < 96 * 96; i++) if (p.mask[i] !== 0 && p.xyz[3 * i + 2] !== 0 && good.xyz[3 * i + 2] !== 0) s += at(good.xyz, 3 * i + 2) - at(p.xyz, 3 * i + 2);
    return s;
  };
  assert.ok(rise(strong) > 1.7 * rise(base), `${rise(strong)} vs ${rise(base)}`);
});
