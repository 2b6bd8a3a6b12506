/**
 * The contract of a product type: a name (the dataset category folder), the
 * defects it can have, and build(), which returns the scene of one *good*
 * part — its natural variation (pose, texture, print, lighting) drawn from the
 * generator handed in. To add a product, copy products/composite-coupon.ts and
 * register it in products/index.ts.
 */
import { DEFECTS, type DefectName, type VisibilityLevel, type VisibilityModality } from '../defects.js';
import { blendAt } from '../fields.js';
import type { Rng } from '../../base/prng.js';
import type { Scene } from '../scene.js';

export interface ProductType {
  /** snake_case; also the category folder of a dataset. */
  readonly name: string;
  readonly title: string;
  /** Defects this product can show, in the order datasets list them (what a simulated line draws from). */
  readonly defects: readonly DefectName[];
  /**
   * Defects inside the material that only a CT sees (void, porosity, inclusion): a part can
   * have one, but a simulated line draws them only when asked (`simulate.defects`), and a
   * dataset lists them only with its CT volumes, since no other sensor could find them.
   */
  readonly interiorDefects: readonly DefectName[];
  /** Field of view across the image width, metres. */
  readonly fieldOfViewM: number;
  /**
   * Where this product's materials change how visible a defect is (e.g. a
   * crack's emissivity contrast is large on bare metal, small on composite
   * that already emits well). Measured like the catalogue's table.
   */
  readonly visibility?: Partial<Record<DefectName, Partial<Record<VisibilityModality, VisibilityLevel>>>>;
  build(rng: Rng, width: number, height: number): Scene;
}

/** A surface material: what each sensor responds to. */
export interface Material {
  albedo: [number, number, number];
  specular: number;
  shininess: number;
  emissivity: number;
  /** Extra probability of a missing 3D point on this material. */
  scanLoss: number;
}

/** Blends pixel i of the scene toward material m by t (0..1): anti-aliased feature edges. */
export function paint(scene: Scene, i: number, m: Material, t: number): void {
  if (t <= 0) return;
  const a = scene.albedo;
  if (t >= 1) {
    a[3 * i] = m.albedo[0];
    a[3 * i + 1] = m.albedo[1];
    a[3 * i + 2] = m.albedo[2];
    scene.specular[i] = m.specular;
    scene.shininess[i] = m.shininess;
    scene.emissivity[i] = m.emissivity;
    scene.scanLoss[i] = m.scanLoss;
    return;
  }
  blendAt(a, 3 * i, m.albedo[0], t);
  blendAt(a, 3 * i + 1, m.albedo[1], t);
  blendAt(a, 3 * i + 2, m.albedo[2], t);
  blendAt(scene.specular, i, m.specular, t);
  blendAt(scene.shininess, i, m.shininess, t);
  blendAt(scene.emissivity, i, m.emissivity, t);
  blendAt(scene.scanLoss, i, m.scanLoss, t);
}

/** A material with its colour scaled (per-part batch variation of a finish). */
export function tinted(m: Material, k: number): Material {
  return { ...m, albedo: [m.albedo[0] * k, m.albedo[1] * k, m.albedo[2] * k] };
}

/** How each modality sees `defect` on `product`: the catalogue's table with the product's exceptions. */
export function visibilityOf(product: ProductType, defect: DefectName): Record<VisibilityModality, VisibilityLevel> {
  return { ...DEFECTS[defect].visibility, ...product.visibility?.[defect] };
}
