/**
 * The occasional CT scan: the part's material reconstructed as a volume of 16-bit grey
 * values, on a grid of its own (coarser than the cameras' pixels, slices through the part's
 * height), with the ground truth of where a defect changed it.
 *
 * The material is a slab from the part's underside (`scene.ct.bottomM`) up to its top
 * surface (the elevation) wherever `partMask` is set, of one density, with the interior
 * features defects add (pores, inclusions, disbond gaps). So a CT sees what removes or adds
 * material at the surface (a crack, a pocket, a dent, a lump: they edit the elevation) and
 * what lies inside (only it does), and nothing of what changes colour, emissivity or heat.
 *
 * Each voxel is the mean density over the in-plane pixels it covers and its slice's height
 * (the slab's share of the slice exactly; what an interior feature changes, at 4 heights a
 * slice), so thin features show by partial volume, times a gain, plus Gaussian noise: the noise of a
 * real reconstruction, 3 % of the aluminium signal (`CT_NOISE`). The same pass renders the good
 * twin's density without noise (the elevation before the defect, no interior features): voxels
 * where the defect moved the mean density by at least `MASK_FRACTION` of the material's are the
 * 3D mask, and its projection along the height is the mask on the image frame.
 */
import { fieldAt } from './fields.js';
import type { Rng } from '../base/prng.js';
import type { InteriorFeature, Scene } from './scene.js';

/** The CT grid: in-plane pixels of the 2D frame per voxel side, and slices. */
export interface CtGrid {
  /** 2: a voxel covers 2 × 2 pixels of the 2D frames. */
  downsample: number;
  depth: number;
}

/** 128 × 128 × 32 voxels at the default 256² frames: 1 MiB of uint16 per part. */
export const DEFAULT_CT_GRID: CtGrid = { downsample: 2, depth: 32 };

/** Grey value of air, and counts per g/cm³ (aluminium ≈ 17 200; a steel inclusion ≈ 47 800). */
const CT_AIR = 1000;
const CT_GAIN = 6000;
/** Reconstruction noise, 1σ in counts: 3 % of aluminium's signal. */
export const CT_NOISE = 0.03 * 2.7 * CT_GAIN;
/** A voxel is in the 3D mask when the defect moved its mean density by this share of the material's density. */
const MASK_FRACTION = 0.05;
const SUB_Z = 4;
/** Margin of the reconstruction below the underside and above `topM`. */
const MARGIN_M = 0.5e-3;

export interface CtScan {
  width: number;
  height: number;
  depth: number;
  /** Voxel edges, mm: x and y in the plane, z between slices. */
  voxelSizeMm: { x: number; y: number; z: number };
  /** depth × height × width grey values, slice after slice, the lowest slice first. */
  volume: Uint16Array;
  /** 255 where the defect changed the material (all 0 on a good part); the volume's layout. */
  mask: Uint8Array;
  /** The 3D mask projected along the height onto the 2D frames' pixels (255 where any voxel above is set). */
  projection: Uint8Array;
  /** Voxels set in the mask. */
  defectVoxels: number;
}

/**
 * Scans the part. `goodElevation`: the elevation before the defect was applied (the good
 * twin's), for the ground truth; the scene's own elevation and interior are the part's.
 */
export function scanCt(scene: Scene, goodElevation: Float32Array, rng: Rng, grid: CtGrid = DEFAULT_CT_GRID): CtScan {
  const { width: w, height: h, elevation, partMask, ct } = scene;
  const s = grid.downsample;
  const W = Math.ceil(w / s);
  const H = Math.ceil(h / s);
  const D = grid.depth;
  const z0 = ct.bottomM - MARGIN_M;
  const dz = (ct.topM + MARGIN_M - z0) / D;
  const rho = ct.densityGcm3;
  const features = featuresByPixel(scene.interior, scene);
  // material (g/cm³ × pixel-slices) per voxel, of the part and of its good twin
  const mass = new Float64Array(W * H * D);
  const goodMass = new Float64Array(W * H * D);
  /** Adds ρ × the share of each slice that [from, to] covers, to `into` along the column of voxel (X, Y). */
  const fill = (into: Float64Array, col: number, from: number, to: number, density: number): void => {
    if (to <= from) return;
    const zFirst = Math.max(0, Math.floor((from - z0) / dz));
    const zLast = Math.min(D - 1, Math.floor((to - z0) / dz));
    for (let Z = zFirst; Z <= zLast; Z++) {
      const lo = Math.max(from, z0 + Z * dz);
      const hi = Math.min(to, z0 + (Z + 1) * dz);
      if (hi > lo) into[Z * W * H + col] = (into[Z * W * H + col] ?? 0) + (density * (hi - lo)) / dz;
    }
  };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (partMask[i] !== 1) continue; // scanned off its nest: air
      const col = Math.floor(y / s) * W + Math.floor(x / s);
      fill(goodMass, col, ct.bottomM, fieldAt(goodElevation, i), rho);
      const top = fieldAt(elevation, i);
      fill(mass, col, ct.bottomM, top, rho);
      const here = features.get(i);
      if (here === undefined) continue;
      // a column an interior feature reaches: what it changes, sampled at SUB_Z heights per slice
      for (let Z = 0; Z < D; Z++) {
        for (let k = 0; k < SUB_Z; k++) {
          const z = z0 + (Z + (k + 0.5) / SUB_Z) * dz;
          if (z >= ct.bottomM && z <= top) mass[Z * W * H + col] = (mass[Z * W * H + col] ?? 0) + (densityAt(here, x, y, i, z, rho, scene.pitch) - rho) / SUB_Z;
        }
      }
    }
  }
  const volume = new Uint16Array(W * H * D);
  const mask = new Uint8Array(W * H * D);
  const projection = new Uint8Array(w * h);
  const noise = rng.fork('ct-noise');
  let defectVoxels = 0;
  for (let v = 0; v < volume.length; v++) {
    const X = v % W;
    const Y = Math.floor(v / W) % H;
    // pixels of the 2D frame this voxel covers (the last row and column of blocks may be partial)
    const pixels = (Math.min(w, (X + 1) * s) - X * s) * (Math.min(h, (Y + 1) * s) - Y * s);
    const mean = (mass[v] ?? 0) / pixels;
    // one draw for every voxel, so the good twin's noise is the defective part's
    volume[v] = Math.max(0, Math.min(65_535, Math.round(CT_AIR + CT_GAIN * mean + CT_NOISE * noise.fastNormal())));
    if (Math.abs(mean - (goodMass[v] ?? 0) / pixels) >= MASK_FRACTION * rho) {
      mask[v] = 255;
      defectVoxels++;
      for (let y = Y * s; y < Math.min(h, (Y + 1) * s); y++) projection.fill(255, y * w + X * s, y * w + Math.min(w, (X + 1) * s));
    }
  }
  const mm = (m: number): number => Math.round(m * 1e6) / 1e3; // µm precision
  return { width: W, height: H, depth: D, voxelSizeMm: { x: mm(scene.pitch * s), y: mm(scene.pitch * s), z: mm(dz) }, volume, mask, projection, defectVoxels };
}

/** The interior features that may reach each pixel (bounding boxes), so most pixels test none. */
function featuresByPixel(features: readonly InteriorFeature[], scene: Scene): Map<number, InteriorFeature[]> {
  const out = new Map<number, InteriorFeature[]>();
  const add = (i: number, f: InteriorFeature): void => {
    const list = out.get(i);
    if (list === undefined) out.set(i, [f]);
    else list.push(f);
  };
  for (const f of features) {
    if (f.kind === 'gap') {
      for (const i of f.area.keys()) add(i, f);
      continue;
    }
    const r = f.radiusM / scene.pitch + 1;
    for (let y = Math.max(0, Math.floor(f.cy - r)); y <= Math.min(scene.height - 1, Math.ceil(f.cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(f.cx - r)); x <= Math.min(scene.width - 1, Math.ceil(f.cx + r)); x++) add(y * scene.width + x, f);
    }
  }
  return out;
}

/** The material's density at pixel (x, y), height z, where interior features may change it. */
function densityAt(features: readonly InteriorFeature[], x: number, y: number, i: number, z: number, rho: number, pitch: number): number {
  let d = rho;
  for (const f of features) {
    if (f.kind === 'gap') {
      if (z >= f.z0 && z <= f.z1) d *= 1 - (f.area.get(i) ?? 0);
      continue;
    }
    const dx = (x + 0.5 - f.cx) * pitch;
    const dy = (y + 0.5 - f.cy) * pitch;
    const dzm = (z - f.z) / f.halfHeightM;
    if ((dx * dx + dy * dy) / (f.radiusM * f.radiusM) + dzm * dzm <= 1) d = f.densityGcm3;
  }
  return d;
}
