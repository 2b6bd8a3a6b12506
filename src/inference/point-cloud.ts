/**
 * Organized point clouds (H × W × 3 float32, missing point = 0,0,0).
 *
 * Resizing must not invent points: bilinear interpolation between the part
 * and the background creates points floating in mid-air. Each output pixel
 * takes the valid source point of its footprint closest to the footprint
 * centre, else stays missing — the same rule, with the same tie-breaking, as
 * models/mmad_models/data/pointcloud.py (`resize_organized`), so the service
 * feeds the students what they were trained on.
 */
import { outOfRange } from '../base/invariant.js';

/** Round half to even, as numpy's rint. */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function resizeOrganized(pc: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(outH * outW * 3);
  if (h === outH && w === outW) {
    out.set(pc);
    return out;
  }
  const sy = h / outH;
  const sx = w / outW;
  const ry = Math.max(sy / 2, 0.5);
  const rx = Math.max(sx / 2, 0.5);
  const ky = Math.ceil(ry);
  const kx = Math.ceil(rx);
  const valid = (y: number, x: number): boolean => {
    const i = (y * w + x) * 3;
    return pc[i] !== 0 || pc[i + 1] !== 0 || pc[i + 2] !== 0;
  };
  for (let oy = 0; oy < outH; oy++) {
    const cy = (oy + 0.5) * sy - 0.5;
    const by = rint(cy);
    for (let ox = 0; ox < outW; ox++) {
      const cx = (ox + 0.5) * sx - 0.5;
      const bx = rint(cx);
      let bestD = Number.POSITIVE_INFINITY;
      let bestY = -1;
      let bestX = -1;
      // same visiting order as the reference: offsets in y, then x, ascending; strict < keeps the first
      for (let dyOff = -ky; dyOff <= ky; dyOff++) {
        const yy = by + dyOff;
        const dy = yy - cy;
        if (Math.abs(dy) > ry || yy < 0 || yy >= h) continue;
        for (let dxOff = -kx; dxOff <= kx; dxOff++) {
          const xx = bx + dxOff;
          const dx = xx - cx;
          if (Math.abs(dx) > rx || xx < 0 || xx >= w || !valid(yy, xx)) continue;
          const d = dy * dy + dx * dx;
          if (d < bestD) {
            bestD = d;
            bestY = yy;
            bestX = xx;
          }
        }
      }
      if (bestY >= 0) {
        const src = (bestY * w + bestX) * 3;
        const dst = (oy * outW + ox) * 3;
        out[dst] = pc[src] ?? outOfRange(pc, src);
        out[dst + 1] = pc[src + 1] ?? outOfRange(pc, src + 1);
        out[dst + 2] = pc[src + 2] ?? outOfRange(pc, src + 2);
      }
    }
  }
  return out;
}
