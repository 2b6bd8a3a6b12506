/**
 * The defect catalogue. Each defect edits only the scene fields of the
 * physics it stands for, which fixes which sensor can see it:
 *
 *   albedo / specular      → the colour camera only
 *   elevation              → the 3D scanner, and the colour camera through shading
 *   emissivity             → the thermal camera
 *   defectHeat             → the thermal camera only
 *   interior               → the CT only (pores, inclusions, disbond gaps)
 *
 * The CT also sees every change of the material's extent (elevation), so
 * relief defects are in its column too.
 *
 * `visibility` states the result at the default size and contrast; the tests
 * measure it on rendered parts (none = bit-identical to the good twin, faint =
 * changed but under the strong contrast-to-noise level, strong = above it).
 * To add a defect, copy an entry below (dent is the simplest), add its name to
 * DEFECT_NAMES and to the products that can show it.
 */
import { addAt, blendAt, clamp, coverage, dilate, fbm, fieldAt, scaleAt, segmentDistance } from './fields.js';
import type { Rng } from '../base/prng.js';
import type { Scene } from './scene.js';

export const DEFECT_NAMES = [
  'contamination',
  'scratch',
  'dent',
  'bulge',
  'crack',
  'missing_material',
  'extra_material',
  'hot_spot',
  'delamination',
  'void',
  'porosity',
  'inclusion',
] as const;
export type DefectName = (typeof DEFECT_NAMES)[number];

/** The modalities a simulated station's sensors produce (the one list: line schedule, records, datasets). */
export const SENSOR_MODALITIES = ['rgb', 'ir', 'xyz'] as const;
export type SensorModality = (typeof SENSOR_MODALITIES)[number];
/** The station's sensors and the occasional CT scan (src/simulate/ct-scanner.ts): the columns of the visibility table. */
export const VISIBILITY_MODALITIES = [...SENSOR_MODALITIES, 'ct'] as const;
export type VisibilityModality = (typeof VISIBILITY_MODALITIES)[number];
export type VisibilityLevel = 'none' | 'faint' | 'strong';

export interface DefectParams {
  /** Scale of the defect's footprint; 1 is the catalogue size. */
  size: number;
  /** Scale of its physical magnitude (depth, stain density, heat); 1 is the catalogue value. */
  contrast: number;
}

export const DEFAULT_DEFECT_PARAMS: DefectParams = { size: 1, contrast: 1 };

export interface DefectSpec {
  name: DefectName;
  description: string;
  visibility: Record<VisibilityModality, VisibilityLevel>;
  /**
   * Edits the scene; returns the ground-truth mask (1 = defect) for defects
   * with a footprint, or null for purely thermal ones, whose mask is where the
   * diffused temperature rise is large enough to see (computed after rendering).
   */
  apply(scene: Scene, rng: Rng, p: DefectParams): Uint8Array | null;
}

const MM = 1e-3;
/** Share of a thermal defect's peak rise that still counts as part of it. */
export const THERMAL_MASK_FRACTION = 0.3;

/** A random point on the part at least `marginPx` inside its outline. */
function pickSite(scene: Scene, rng: Rng, marginPx: number): [number, number] {
  const { width: w, height: h, partMask } = scene;
  const inside = (x: number, y: number): boolean => {
    const xi = Math.round(x);
    const yi = Math.round(y);
    return xi >= 0 && yi >= 0 && xi < w && yi < h && partMask[yi * w + xi] === 1;
  };
  let fallback: [number, number] | undefined;
  for (let attempt = 0; attempt < 400; attempt++) {
    const x = rng.range(0, w);
    const y = rng.range(0, h);
    if (!inside(x, y)) continue;
    fallback ??= [x, y];
    let ok = true;
    for (let k = 0; k < 12 && ok; k++) {
      const a = (k / 12) * 2 * Math.PI;
      ok = inside(x + marginPx * Math.cos(a), y + marginPx * Math.sin(a));
    }
    if (ok) return [x, y];
  }
  if (fallback !== undefined) return fallback;
  return [w / 2, h / 2];
}

/** Iterates the pixels of a square window around (cx, cy), clipped to the image. */
function forWindow(scene: Scene, cx: number, cy: number, r: number, fn: (i: number, dx: number, dy: number) => void): void {
  const x0 = Math.max(0, Math.floor(cx - r));
  const x1 = Math.min(scene.width - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r));
  const y1 = Math.min(scene.height - 1, Math.ceil(cy + r));
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) fn(y * scene.width + x, x + 0.5 - cx, y + 0.5 - cy);
}

/** An irregular blob: ellipse whose radius is modulated by noise along the angle. Returns signed distance in pixels. */
function blobSdf(rng: Rng, rx: number, ry: number, roughness: number): (dx: number, dy: number) => number {
  const seed = rng.uint32();
  const rot = rng.range(0, Math.PI);
  const c = Math.cos(rot);
  const s = Math.sin(rot);
  return (dx, dy) => {
    const u = dx * c + dy * s;
    const v = -dx * s + dy * c;
    const a = Math.atan2(v / ry, u / rx);
    const k = 1 + roughness * fbm(Math.cos(a) * 1.5 + 7, Math.sin(a) * 1.5 + 7, seed, 3);
    const r = Math.sqrt((u * u) / (rx * rx) + (v * v) / (ry * ry));
    return (r - k) * Math.min(rx, ry);
  };
}

/** A wandering polyline (scratches are nearly straight, cracks meander). */
function polyline(rng: Rng, x: number, y: number, lengthPx: number, stepPx: number, wander: number): [number, number][] {
  const pts: [number, number][] = [[x, y]];
  let a = rng.range(0, 2 * Math.PI);
  let cx = x;
  let cy = y;
  for (let d = 0; d < lengthPx; d += stepPx) {
    a += wander * rng.normal();
    cx += stepPx * Math.cos(a);
    cy += stepPx * Math.sin(a);
    pts.push([cx, cy]);
  }
  return pts;
}

function distanceToPolyline(pts: [number, number][], x: number, y: number): number {
  let best = Infinity;
  let a: [number, number] | undefined;
  for (const b of pts) {
    if (a !== undefined) best = Math.min(best, segmentDistance(x, y, a[0], a[1], b[0], b[1]));
    a = b;
  }
  return best;
}

function bounds(pts: [number, number][]): { cx: number; cy: number; r: number } {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const [x, y] of pts) {
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
  }
  return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, r: Math.max(x1 - x0, y1 - y0) / 2 + 4 };
}

function blendAlbedo(scene: Scene, i: number, target: readonly [number, number, number], t: number): void {
  blendAt(scene.albedo, 3 * i, target[0], t);
  blendAt(scene.albedo, 3 * i + 1, target[1], t);
  blendAt(scene.albedo, 3 * i + 2, target[2], t);
}

/** Mask of a relief defect: where the surface moved by more than a tenth of its peak. */
function reliefMask(scene: Scene, delta: Map<number, number>): Uint8Array {
  const mask = new Uint8Array(scene.width * scene.height);
  let peak = 0;
  for (const d of delta.values()) peak = Math.max(peak, Math.abs(d));
  for (const [i, d] of delta) if (Math.abs(d) > 0.1 * peak) mask[i] = 1;
  return mask;
}

/**
 * A Gaussian heat source scaled so that, after the material's lateral diffusion,
 * the surface peak rise is `riseK` (a 2-D Gaussian convolved with a Gaussian
 * keeps its volume, so the peak falls by the ratio of the variances).
 */
function addHeatSpot(scene: Scene, cx: number, cy: number, sigmaPx: number, riseK: number): void {
  const [dx, dy] = scene.thermal.diffusionPx;
  const s2 = sigmaPx * sigmaPx;
  const amp = riseK * Math.sqrt((s2 + dx * dx) / s2) * Math.sqrt((s2 + dy * dy) / s2);
  forWindow(scene, cx, cy, 4 * sigmaPx, (i, ddx, ddy) => {
    addAt(scene.defectHeat, i, amp * Math.exp(-(ddx * ddx + ddy * ddy) / (2 * s2)));
  });
}

export const DEFECTS: Record<DefectName, DefectSpec> = {
  contamination: {
    name: 'contamination',
    description: 'a dried stain (pigment or dust film) on the surface: too thin to measure, same emissivity',
    visibility: { rgb: 'strong', ir: 'none', xyz: 'none', ct: 'none' },
    apply(scene, rng, p) {
      const r = (3.2 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, r);
      const sdf = blobSdf(rng, r, r * rng.range(0.55, 1), 0.35);
      const tone = rng.range(0.8, 1.2);
      const stain: [number, number, number] = [0.3 * tone, 0.22 * tone, 0.13 * tone];
      const density = clamp(0.75 * p.contrast, 0, 1);
      const mask = new Uint8Array(scene.width * scene.height);
      forWindow(scene, cx, cy, 1.6 * r, (i, dx, dy) => {
        const t = coverage(sdf(dx, dy) / 1.5); // films have soft edges
        if (t <= 0) return;
        blendAlbedo(scene, i, stain, density * t);
        scaleAt(scene.specular, i, 1 - 0.7 * density * t);
        if (t >= 0.25) mask[i] = 1;
      });
      return mask;
    },
  },

  scratch: {
    name: 'scratch',
    description: 'a fine scratch: bright in RGB where it cuts the finish, a groove of a few tens of µm in 3D',
    visibility: { rgb: 'strong', ir: 'none', xyz: 'faint', ct: 'faint' },
    apply(scene, rng, p) {
      const len = (12 * MM * p.size) / scene.pitch;
      const [sx, sy] = pickSite(scene, rng, len / 2);
      const pts = polyline(rng, sx, sy, len, 2, 0.04);
      const halfWidth = Math.max(0.5, (0.25 * MM) / scene.pitch);
      const depth = 20e-6 * p.contrast;
      // the cut scatters light in all directions: bright under diffuse light, whatever the finish
      const bright: [number, number, number] = [0.95, 0.95, 0.97];
      const alpha = clamp(0.8 * p.contrast, 0, 1);
      const core = new Uint8Array(scene.width * scene.height);
      const b = bounds(pts);
      forWindow(scene, b.cx, b.cy, b.r, (i, dx, dy) => {
        const d = distanceToPolyline(pts, b.cx + dx, b.cy + dy);
        const t = coverage(d - halfWidth);
        if (t <= 0 || scene.partMask[i] === 0) return;
        blendAlbedo(scene, i, bright, alpha * t);
        scaleAt(scene.specular, i, 1 - 0.5 * t);
        scaleAt(scene.fibreAmount, i, 1 - t);
        addAt(scene.elevation, i, -depth * t);
        core[i] = 1;
      });
      return dilate(core, scene.width, scene.height, 1);
    },
  },

  dent: {
    name: 'dent',
    description: 'a smooth depression from an impact: measured in 3D, a faint shading cue in RGB',
    visibility: { rgb: 'faint', ir: 'none', xyz: 'strong', ct: 'strong' },
    apply(scene, rng, p) {
      const r = (3.5 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, r);
      const sdf = blobSdf(rng, r, r * rng.range(0.6, 1), 0.1);
      const depth = 0.25 * MM * p.contrast * rng.range(0.85, 1.15);
      const delta = new Map<number, number>();
      forWindow(scene, cx, cy, 1.3 * r, (i, dx, dy) => {
        const s = -sdf(dx, dy) / r; // 0 at the rim, toward 1 at the centre
        if (s <= 0) return;
        // a cosine bowl: slopes stay gentle, which is why a dent is hard to see in colour
        const dz = -depth * 0.5 * (1 - Math.cos(Math.PI * Math.min(1, s)));
        addAt(scene.elevation, i, dz);
        delta.set(i, dz);
      });
      return reliefMask(scene, delta);
    },
  },

  bulge: {
    name: 'bulge',
    description: 'a wide swelling of the surface (gas build-up in a cell): measured in 3D, a faint shading cue in RGB',
    visibility: { rgb: 'faint', ir: 'none', xyz: 'strong', ct: 'strong' },
    apply(scene, rng, p) {
      const r = (8 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, r * 0.8);
      const rise = 0.35 * MM * p.contrast * rng.range(0.85, 1.15);
      const delta = new Map<number, number>();
      forWindow(scene, cx, cy, r, (i, dx, dy) => {
        if (scene.partMask[i] === 0) return;
        const q = Math.sqrt(dx * dx + dy * dy) / r;
        if (q >= 1) return;
        const dz = rise * 0.5 * (1 + Math.cos(Math.PI * q));
        addAt(scene.elevation, i, dz);
        delta.set(i, dz);
      });
      return reliefMask(scene, delta);
    },
  },

  crack: {
    name: 'crack',
    description: 'a meandering crack: a deep narrow cavity — missing and displaced 3D points, dark in RGB, bright in IR (a cavity emits like a black body)',
    visibility: { rgb: 'strong', ir: 'strong', xyz: 'strong', ct: 'strong' },
    apply(scene, rng, p) {
      const len = (11 * MM * p.size) / scene.pitch;
      const [sx, sy] = pickSite(scene, rng, len / 2);
      const pts = polyline(rng, sx, sy, len, 1.5, 0.35);
      const halfWidth = Math.max(0.6, (0.25 * MM) / scene.pitch);
      const depth = 0.6 * MM * p.contrast;
      const dark: [number, number, number] = [0.02, 0.02, 0.02];
      const core = new Uint8Array(scene.width * scene.height);
      const b = bounds(pts);
      forWindow(scene, b.cx, b.cy, b.r, (i, dx, dy) => {
        const d = distanceToPolyline(pts, b.cx + dx, b.cy + dy);
        const t = coverage(d - halfWidth);
        if (t <= 0 || scene.partMask[i] === 0) return;
        addAt(scene.elevation, i, -depth * t);
        blendAlbedo(scene, i, dark, clamp(0.9 * p.contrast, 0, 1) * t);
        scaleAt(scene.specular, i, 1 - t);
        scaleAt(scene.fibreAmount, i, 1 - t);
        const e = fieldAt(scene.emissivity, i);
        scene.emissivity[i] = e + (0.97 - e) * clamp(p.contrast, 0, 1) * t;
        core[i] = 1;
      });
      return dilate(core, scene.width, scene.height, 1);
    },
  },

  missing_material: {
    name: 'missing_material',
    description: 'a pocket where material was torn out or never deposited: a step down in 3D, walls and a freshly cut floor in RGB',
    visibility: { rgb: 'strong', ir: 'none', xyz: 'strong', ct: 'strong' },
    apply(scene, rng, p) {
      const r = (3 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, r);
      const sdf = blobSdf(rng, r, r * rng.range(0.6, 1), 0.3);
      const depth = 0.45 * MM * p.contrast;
      const wall = Math.max(0.8, (0.3 * MM) / scene.pitch);
      const mask = new Uint8Array(scene.width * scene.height);
      forWindow(scene, cx, cy, 1.6 * r, (i, dx, dy) => {
        const d = sdf(dx, dy);
        const t = clamp(-d / wall + 0.5, 0, 1);
        if (t <= 0) return;
        addAt(scene.elevation, i, -depth * t);
        // the floor is freshly cut: brighter and matt compared with the finished surface
        for (let c = 3 * i; c < 3 * i + 3; c++) scene.albedo[c] = fieldAt(scene.albedo, c) * (1 - 0.5 * t) + 0.16 * t;
        scaleAt(scene.specular, i, 1 - 0.6 * t);
        scaleAt(scene.fibreAmount, i, 1 - t);
        if (t >= 0.5) mask[i] = 1;
      });
      return dilate(mask, scene.width, scene.height, 1);
    },
  },

  extra_material: {
    name: 'extra_material',
    description: 'a foreign lump on the surface (weld spatter, resin drop): a bump in 3D, a darker glossy spot in RGB',
    visibility: { rgb: 'strong', ir: 'none', xyz: 'strong', ct: 'strong' },
    apply(scene, rng, p) {
      const r = (2.2 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, r);
      const sdf = blobSdf(rng, r, r * rng.range(0.7, 1), 0.2);
      const rise = 0.5 * MM * p.contrast;
      const tone: [number, number, number] = [0.2, 0.19, 0.17];
      const delta = new Map<number, number>();
      forWindow(scene, cx, cy, 1.5 * r, (i, dx, dy) => {
        const s = -sdf(dx, dy) / r;
        const t = coverage(sdf(dx, dy));
        if (t <= 0) return;
        const dz = rise * Math.sqrt(Math.max(0, s * (2 - s))) * t; // a droplet's cap profile
        addAt(scene.elevation, i, dz);
        blendAlbedo(scene, i, tone, 0.85 * t);
        blendAt(scene.specular, i, 0.6, t);
        scene.shininess[i] = 60;
        scaleAt(scene.fibreAmount, i, 1 - t);
        delta.set(i, dz === 0 ? rise * 0.2 : dz);
      });
      return dilate(reliefMask(scene, delta), scene.width, scene.height, 1);
    },
  },

  hot_spot: {
    name: 'hot_spot',
    description: 'an internal short under the surface: heat that only the thermal camera sees',
    visibility: { rgb: 'none', ir: 'strong', xyz: 'none', ct: 'none' },
    apply(scene, rng, p) {
      const sigma = (1.5 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, 3 * sigma);
      addHeatSpot(scene, cx, cy, sigma, 6 * p.contrast);
      return null;
    },
  },

  delamination: {
    name: 'delamination',
    description: 'a disbond between plies: it blocks the flash heat from flowing inward, so the surface above stays warmer; only IR sees it',
    visibility: { rgb: 'none', ir: 'strong', xyz: 'none', ct: 'strong' },
    apply(scene, rng, p) {
      const r = (5 * MM * p.size) / scene.pitch;
      const [cx, cy] = pickSite(scene, rng, r);
      const sdf = blobSdf(rng, r, r * rng.range(0.5, 0.9), 0.25);
      const rise = 1.2 * p.contrast;
      const area = new Map<number, number>();
      forWindow(scene, cx, cy, 1.6 * r, (i, dx, dy) => {
        const t = coverage(sdf(dx, dy) / 2);
        if (t > 0 && scene.partMask[i] === 1) {
          addAt(scene.defectHeat, i, rise * t);
          area.set(i, t);
        }
      });
      // the disbond is a gap between two plies: air a CT sees, 0.12 mm thick at the catalogue's contrast
      const { bottomM } = scene.ct;
      const top = fieldAt(scene.elevation, Math.round(cy) * scene.width + Math.round(cx));
      const z0 = bottomM + (top - bottomM) * rng.range(0.3, 0.7);
      scene.interior.push({ kind: 'gap', area, z0, z1: z0 + 0.12 * MM * p.contrast });
      return null;
    },
  },

  void: {
    name: 'void',
    description: 'a gas pore inside the material (casting, weld or resin cure): no trace on the surface; only a CT sees it',
    visibility: { rgb: 'none', ir: 'none', xyz: 'none', ct: 'strong' },
    apply(scene, rng, p) {
      // flattened by the plate it grew in: wide, at most a third of the material high
      return lensInside(scene, rng, 1.5 * MM * p.size, 0.17, scene.ct.densityGcm3 * (1 - clamp(p.contrast, 0, 1)));
    },
  },

  porosity: {
    name: 'porosity',
    description: 'a cluster of small pores inside the material: no trace on the surface; only a CT sees it',
    visibility: { rgb: 'none', ir: 'none', xyz: 'none', ct: 'strong' },
    apply(scene, rng, p) {
      const spread = 3 * MM * p.size;
      const [cx, cy, top] = interiorSite(scene, rng, spread + MM);
      const thickness = top - scene.ct.bottomM;
      const pores: [number, number, number][] = [];
      for (let k = 0; k < 24; k++) {
        const a = rng.range(0, 2 * Math.PI);
        const d = spread * Math.sqrt(rng.next());
        const px = cx + (d * Math.cos(a)) / scene.pitch;
        const py = cy + (d * Math.sin(a)) / scene.pitch;
        const r = rng.range(0.25, 0.45) * MM;
        const z = scene.ct.bottomM + thickness * rng.range(0.3, 0.7);
        scene.interior.push({ kind: 'pore', cx: px, cy: py, z, radiusM: r, halfHeightM: Math.min(r, 0.2 * thickness), densityGcm3: scene.ct.densityGcm3 * (1 - clamp(p.contrast, 0, 1)) });
        pores.push([px, py, r]);
      }
      return discMask(scene, pores);
    },
  },

  inclusion: {
    name: 'inclusion',
    description: 'a dense foreign particle inside the material (a steel chip, tool debris): no trace on the surface; only a CT sees it',
    visibility: { rgb: 'none', ir: 'none', xyz: 'none', ct: 'strong' },
    apply(scene, rng, p) {
      const rho = scene.ct.densityGcm3;
      // a flat chip, a fifth of the material thick
      return lensInside(scene, rng, 1.2 * MM * p.size, 0.1, rho + (7.8 - rho) * clamp(p.contrast, 0, 2));
    },
  },
};

/** A site for an interior defect, at least `marginM` inside the part, on its flat material (not a terminal or a hole): x, y (pixels) and the top there (metres). */
function interiorSite(scene: Scene, rng: Rng, marginM: number): [number, number, number] {
  const margin = marginM / scene.pitch;
  let best: [number, number, number] | undefined;
  for (let attempt = 0; attempt < 20; attempt++) {
    const [x, y] = pickSite(scene, rng, margin);
    const top = fieldAt(scene.elevation, Math.round(y) * scene.width + Math.round(x));
    // the material's most common thickness: a site no thicker than the plate, and not below it
    if (best === undefined || Math.abs(top - scene.ct.topM + 2 * MM) < Math.abs(best[2] - scene.ct.topM + 2 * MM)) best = [x, y, top];
    if (top - scene.ct.bottomM > 1 * MM && top < scene.ct.topM - 1 * MM) return [x, y, top];
  }
  return best ?? [scene.width / 2, scene.height / 2, scene.ct.topM - MM];
}

/**
 * One lens-shaped region of another density inside the material (a pore, a chip), `radiusM`
 * wide in the plane and at most `heightShare` of the material high, halfway through it;
 * returns its footprint on the image.
 */
function lensInside(scene: Scene, rng: Rng, radiusM: number, heightShare: number, densityGcm3: number): Uint8Array {
  const [cx, cy, top] = interiorSite(scene, rng, 3 * MM);
  const thickness = top - scene.ct.bottomM;
  const z = scene.ct.bottomM + thickness * rng.range(0.4, 0.6);
  scene.interior.push({ kind: 'pore', cx, cy, z, radiusM, halfHeightM: Math.min(radiusM, heightShare * thickness), densityGcm3 });
  return discMask(scene, [[cx, cy, radiusM]]);
}

/** The pixels under the given discs (x, y in pixels, radius in metres): an interior defect's footprint on the image. */
function discMask(scene: Scene, discs: readonly [number, number, number][]): Uint8Array {
  const mask = new Uint8Array(scene.width * scene.height);
  for (const [cx, cy, rM] of discs) {
    const r = Math.max(0.75, rM / scene.pitch);
    forWindow(scene, cx, cy, r, (i, dx, dy) => {
      if (dx * dx + dy * dy <= r * r) mask[i] = 1;
    });
  }
  return mask;
}

export function isDefectName(s: string): s is DefectName {
  return (DEFECT_NAMES as readonly string[]).includes(s);
}
