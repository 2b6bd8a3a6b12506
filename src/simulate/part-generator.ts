/**
 * One inspected part, all three modalities pixel-aligned (and, when asked, its
 * CT volume on a grid of its own), plus its ground truth — pure: a seed in, typed arrays out, no I/O, so the same seed gives
 * the same bytes anywhere.
 *
 * The good part, the defect placement and each sensor's noise come from
 * separate forks of the seed, so the same seed with and without a defect
 * renders the same part: the difference between the two is the defect alone.
 */
import { ErrorCode, MmadError } from '../base/errors.js';
import { DEFAULT_DEFECT_PARAMS, DEFECTS, THERMAL_MASK_FRACTION, type DefectName, type DefectParams, type VisibilityLevel, type VisibilityModality } from './defects.js';
import { DEFAULT_CT_GRID, scanCt, type CtGrid, type CtScan } from './ct-scanner.js';
import { productByName, visibilityOf, type ProductType } from './products/index.js';
import { fieldAt } from './fields.js';
import { Rng } from '../base/prng.js';
import { renderRgb } from './render-rgb.js';
import { scanXyz } from './scanner.js';
import type { Scene } from './scene.js';
import { renderThermal, temperatureField } from './thermal.js';

export const DEFAULT_RESOLUTION = 256;

export interface PartSpec {
  product: ProductType | string;
  seed: number | string;
  /** null for a good part. */
  defect: DefectName | null;
  width?: number;
  height?: number;
  defectParams?: Partial<DefectParams>;
  /** Also scan the part with the CT (true: the default grid). Off by default: a volume costs more than the other modalities together. */
  ct?: boolean | CtGrid;
}

export interface GeneratedPart {
  product: string;
  /** 'good' or the defect's name. */
  defect: DefectName | 'good';
  width: number;
  height: number;
  /** 8-bit sRGB, interleaved RGB, row-major. */
  rgb: Uint8Array;
  /** 16-bit thermal counts, row-major. */
  ir: Uint16Array;
  /** Organized point cloud, x,y,z metres per pixel; missing = 0,0,0. */
  xyz: Float32Array;
  /** Ground truth: 255 on the defect, 0 elsewhere (all 0 for a good part). */
  mask: Uint8Array;
  /** How each modality sees this part's defect (all 'none' for a good part). */
  visibility: Record<VisibilityModality, VisibilityLevel>;
  /** Pixels set in the mask. */
  defectPixels: number;
  /** The CT scan with its 3D ground truth, when asked for (`PartSpec.ct`). */
  ct?: CtScan;
}

const NO_DEFECT: Record<VisibilityModality, VisibilityLevel> = { rgb: 'none', ir: 'none', xyz: 'none', ct: 'none' };

/** The scene of the part (good, or with its defect applied) and the defect's mask — the pure physics step, exposed for tests. */
export function buildScene(spec: PartSpec): { product: ProductType; scene: Scene; mask: Uint8Array | null; rng: Rng; goodElevation: Float32Array } {
  const product = typeof spec.product === 'string' ? productByName(spec.product) : spec.product;
  const width = spec.width ?? DEFAULT_RESOLUTION;
  const height = spec.height ?? width;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16 || width > 4096 || height > 4096) {
    throw new MmadError(ErrorCode.USAGE, `resolution ${width}x${height} is out of range (16..4096 pixels per side)`);
  }
  if (spec.defect !== null && !product.defects.includes(spec.defect) && !product.interiorDefects.includes(spec.defect)) {
    throw new MmadError(ErrorCode.USAGE, `product ${product.name} has no defect '${spec.defect}' (it has ${[...product.defects, ...product.interiorDefects].join(', ')})`);
  }
  const rng = Rng.fromSeed(`${product.name}/${String(spec.seed)}`);
  const scene = product.build(rng.fork('part'), width, height);
  // the good twin's surface, for the CT's ground truth (what the defect moved)
  const goodElevation = scene.elevation.slice();
  let mask: Uint8Array | null = null;
  if (spec.defect !== null) {
    const params = { ...DEFAULT_DEFECT_PARAMS, ...spec.defectParams };
    mask = DEFECTS[spec.defect].apply(scene, rng.fork(`defect/${spec.defect}`), params);
  }
  return { product, scene, mask, rng, goodElevation };
}

export function generatePart(spec: PartSpec): GeneratedPart {
  const { product, scene, mask: footprint, rng, goodElevation } = buildScene(spec);
  const { width, height } = scene;
  const fields = temperatureField(scene);
  const xyz = scanXyz(scene, rng.fork('scanner'));
  const rgb = renderRgb(scene, rng.fork('camera'));
  const ir = renderThermal(scene, rng.fork('thermal'), fields);
  const mask = new Uint8Array(width * height);
  if (spec.defect !== null) {
    if (footprint !== null) {
      for (let i = 0; i < mask.length; i++) if (footprint[i] !== 0) mask[i] = 255;
    } else {
      // a thermal defect is where its diffused rise stands out
      let peak = 0;
      for (const v of fields.defectRise) peak = Math.max(peak, v);
      for (let i = 0; i < mask.length; i++) if (peak > 0 && fieldAt(fields.defectRise, i) >= THERMAL_MASK_FRACTION * peak) mask[i] = 255;
    }
  }
  let defectPixels = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) defectPixels++;
  return {
    product: product.name,
    defect: spec.defect ?? 'good',
    width,
    height,
    rgb,
    ir,
    xyz,
    mask,
    visibility: spec.defect === null ? { ...NO_DEFECT } : visibilityOf(product, spec.defect),
    defectPixels,
    ...(spec.ct === undefined || spec.ct === false ? {} : { ct: scanCt(scene, goodElevation, rng.fork('ct'), spec.ct === true ? DEFAULT_CT_GRID : spec.ct) }),
  };
}
