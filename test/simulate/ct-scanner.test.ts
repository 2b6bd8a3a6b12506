import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { generatePart } from '../../src/simulate/part-generator.js';

test('a good part\'s CT: half the 2D resolution in the plane, 32 slices (1 MiB at 256²), material where the part is and air around it, empty masks; the same seed gives the same bytes', () => {
  const part = generatePart({ product: 'battery_lid', seed: 3, defect: null, ct: true });
  const ct = present(part.ct, 'the CT');
  assert.deepEqual([ct.width, ct.height, ct.depth, ct.volume.byteLength], [128, 128, 32, 1_048_576]);
  assert.deepEqual(ct.voxelSizeMm, { x: 0.859, y: 0.859, z: 0.163 });
  assert.deepEqual([ct.defectVoxels, ct.mask.some((v) => v !== 0), ct.projection.some((v) => v !== 0)], [0, false, false]);
  // the middle of the lid at mid-plate height is aluminium (1000 + 6000 × 2.7), a corner of the top slice air
  const plane = ct.width * ct.height;
  const midPlate = Math.floor(((2.5 + 0.75 - 2.0) / (7.2 - 2.0)) * ct.depth);
  const centre = at(ct.volume, midPlate * plane + 64 * ct.width + 64);
  const air = at(ct.volume, (ct.depth - 1) * plane);
  assert.ok(Math.abs(centre - 17_200) < 2_500, `aluminium reads ${centre}`);
  assert.ok(air < 3_000, `air reads ${air}`);
  const again = present(generatePart({ product: 'battery_lid', seed: 3, defect: null, ct: true }).ct, 'the CT again');
  assert.deepEqual(Buffer.from(again.volume.buffer), Buffer.from(ct.volume.buffer));
  assert.equal(generatePart({ product: 'battery_lid', seed: 3, defect: null }).ct, undefined, 'no CT unless asked for');
});

test('defects inside the material lie between the underside and the top surface, leave the other sensors untouched, and their projection covers their 2D mask', () => {
  for (const product of ['battery_lid', 'composite_coupon'] as const) {
    for (const defect of ['void', 'porosity', 'inclusion'] as const) {
      const good = generatePart({ product, seed: 4, defect: null, ct: true });
      const bad = generatePart({ product, seed: 4, defect, ct: true });
      const where = `${product}/${defect}`;
      assert.deepEqual([Buffer.compare(Buffer.from(good.rgb), Buffer.from(bad.rgb)), Buffer.compare(Buffer.from(good.ir.buffer), Buffer.from(bad.ir.buffer)), Buffer.compare(Buffer.from(good.xyz.buffer), Buffer.from(bad.xyz.buffer))], [0, 0, 0], `${where}: rgb, ir, xyz bit-identical`);
      const ct = present(bad.ct, 'the CT');
      assert.ok(ct.defectVoxels > 0, `${where}: in the 3D mask`);
      const plane = ct.width * ct.height;
      // every column the mask reaches has material above the defect's highest voxel: it does not break the surface
      for (let i = 0; i < plane; i++) {
        let highest = -1;
        for (let z = 0; z < ct.depth; z++) if (ct.mask[z * plane + i] !== 0) highest = z;
        if (highest < 0) continue;
        const above = at(ct.volume, Math.min(ct.depth - 1, highest + 1) * plane + i);
        assert.ok(above > 4_000 || highest + 1 >= ct.depth, `${where}: material above the defect at column ${i} (${above})`);
      }
      let covered = 0;
      for (let i = 0; i < bad.mask.length; i++) if (bad.mask[i] !== 0 && ct.projection[i] !== 0) covered++;
      assert.ok(covered >= 0.8 * bad.defectPixels, `${where}: the projection covers ${covered} of ${bad.defectPixels} pixels of the 2D mask`);
    }
  }
});
