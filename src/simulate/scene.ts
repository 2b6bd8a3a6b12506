/**
 * The physical description of one part under the station, per pixel of the
 * common (registered) sensor grid. Products build it, defects edit it, and
 * each renderer reads only the fields its sensor responds to:
 *
 *   scanner (xyz)  ← elevation, scanLoss
 *   camera  (rgb)  ← elevation (normals), albedo, specular, shininess, fibre
 *   thermal (ir)   ← temperature sources (heat, defectHeat), emissivity
 *   CT      (ct)   ← elevation and partMask (the material's extent), ct (its
 *                    underside and density), interior (voids, inclusions, gaps)
 *
 * That separation is what makes a defect's modality visibility hold by
 * construction: a stain that edits only albedo cannot move a 3D point.
 */
import type { Rng } from '../base/prng.js';

export interface Light {
  /** Unit vector from the surface toward the light. */
  dir: [number, number, number];
  /** Linear RGB intensity. */
  colour: [number, number, number];
}

export interface CameraSetup {
  lights: Light[];
  /** Diffuse dome/ambient term, linear RGB. */
  ambient: [number, number, number];
  /** Scales linear radiance before the sRGB transfer. */
  exposure: number;
  /** Read + shot noise of the colour camera, in 8-bit levels at mid grey. */
  noiseLevels: number;
  /** Relative brightness fall-off at the image corners. */
  vignetting: number;
}

export interface ThermalSetup {
  /** Ambient (and background) temperature, kelvin. */
  ambientK: number;
  /** Lateral diffusion length of the part material, in pixels along x and y. */
  diffusionPx: [number, number];
  /** Counts per W·m⁻² of radiance difference. */
  gain: number;
  /** Counts at ambient radiance of a black body. */
  offset: number;
  /** Noise-equivalent temperature difference, kelvin. */
  netdK: number;
  /** Optical blur of the thermal lens, pixels. */
  opticsBlurPx: number;
}

export interface ScannerSetup {
  /** Distance from the sensor to the reference plane (elevation 0), metres. */
  workingDistanceM: number;
  /** Depth noise (1σ), metres. */
  noiseM: number;
  /** Surface slope (rise/run) beyond which no return comes back. */
  maxSlope: number;
  /** Triangulation angle between projector and camera, radians: casts occlusion shadows behind steps (toward −x). */
  triangulationRad: number;
  /** Probability of a stray missing point anywhere. */
  speckleLoss: number;
  /** Width of the band at the image border where returns fade, as a fraction of the image. */
  borderBand: number;
}

/**
 * What the occasional CT scan of a part sees: the part's material as a slab from its underside
 * up to its top surface (the elevation) wherever partMask is set, of one density, minus or plus
 * the interior features defects add. The part is scanned off its nest, so outside partMask is air.
 */
export interface CtSetup {
  /** Height of the part's underside above the fixture plane, metres. */
  bottomM: number;
  /** Highest point of the part that the reconstruction must hold, metres. */
  topM: number;
  /** Density of the part's material, g/cm³. */
  densityGcm3: number;
}

/** A volumetric change inside the part that only a CT sees (pixel coordinates in the plane, metres in height). */
export type InteriorFeature =
  /** An ellipsoid of another density (0: a gas pore; higher: a dense inclusion), round in the plane, `halfHeightM` high. */
  | { kind: 'pore'; cx: number; cy: number; z: number; radiusM: number; halfHeightM: number; densityGcm3: number }
  /** A thin gap between z0 and z1 under the pixels of `area` (pixel → coverage 0..1): a disbond between plies. */
  | { kind: 'gap'; area: Map<number, number>; z0: number; z1: number };

export interface Scene {
  width: number;
  height: number;
  /** Metres per pixel on the reference plane (field of view / width). */
  pitch: number;
  /** Height above the fixture plane, metres. */
  elevation: Float32Array;
  /** Linear diffuse reflectance, 3 per pixel. */
  albedo: Float32Array;
  /** Specular reflectance, 0..1. */
  specular: Float32Array;
  /** Blinn–Phong exponent. */
  shininess: Float32Array;
  /** Fibre direction (radians) where the surface is anisotropic, with `fibreAmount` its strength 0..1. */
  fibreAngle: Float32Array;
  fibreAmount: Float32Array;
  /** Thermal emissivity, 0..1. */
  emissivity: Float32Array;
  /** Steady temperature rise sources of the good part (kelvin before diffusion). */
  heat: Float32Array;
  /** Temperature rise sources added by a defect, diffused separately so the defect's thermal footprint is known. */
  defectHeat: Float32Array;
  /** Extra probability that the scanner gets no return here (dark, glossy or transparent material). */
  scanLoss: Float32Array;
  /** 1 where the part is (not the fixture), for placing defects. */
  partMask: Uint8Array;
  camera: CameraSetup;
  thermal: ThermalSetup;
  scanner: ScannerSetup;
  /** The part's material for the CT (products set it; the default is a 5 mm aluminium slab). */
  ct: CtSetup;
  /** Interior features (defects a CT sees inside the material); empty on a good part. */
  interior: InteriorFeature[];
}

export function emptyScene(width: number, height: number, pitch: number, camera: CameraSetup, thermal: ThermalSetup, scanner: ScannerSetup): Scene {
  const n = width * height;
  return {
    width,
    height,
    pitch,
    elevation: new Float32Array(n),
    albedo: new Float32Array(n * 3),
    specular: new Float32Array(n),
    shininess: new Float32Array(n).fill(8),
    fibreAngle: new Float32Array(n),
    fibreAmount: new Float32Array(n),
    emissivity: new Float32Array(n).fill(0.9),
    heat: new Float32Array(n),
    defectHeat: new Float32Array(n),
    scanLoss: new Float32Array(n),
    partMask: new Uint8Array(n),
    camera,
    thermal,
    scanner,
    ct: { bottomM: 0, topM: 0.005, densityGcm3: 2.7 },
    interior: [],
  };
}

/**
 * Where the part lies on the grid: centre (metres from the image centre),
 * rotation, and a small tilt of its top plane. Pixel ↔ part coordinates go
 * through here so every feature moves together with the pose jitter.
 */
export class Pose {
  private readonly c: number;
  private readonly s: number;

  constructor(
    readonly cx: number,
    readonly cy: number,
    readonly angle: number,
    /** Tilt of the part's top plane, rise per metre along part x and y. */
    readonly tiltX: number,
    readonly tiltY: number,
  ) {
    this.c = Math.cos(angle);
    this.s = Math.sin(angle);
  }

  static jittered(rng: Rng, shiftM: number, angleRad: number, tilt: number): Pose {
    return new Pose(rng.range(-shiftM, shiftM), rng.range(-shiftM, shiftM), rng.range(-angleRad, angleRad), rng.range(-tilt, tilt), rng.range(-tilt, tilt));
  }

  /** Part coordinates (metres) of the centre of pixel (x, y). */
  toPart(scene: { width: number; height: number; pitch: number }, x: number, y: number): [number, number] {
    const wx = (x + 0.5 - scene.width / 2) * scene.pitch - this.cx;
    const wy = (y + 0.5 - scene.height / 2) * scene.pitch - this.cy;
    return [wx * this.c + wy * this.s, -wx * this.s + wy * this.c];
  }

  /** Pixel position of a point given in part coordinates. */
  toPixel(scene: { width: number; height: number; pitch: number }, u: number, v: number): [number, number] {
    const wx = u * this.c - v * this.s + this.cx;
    const wy = u * this.s + v * this.c + this.cy;
    return [wx / scene.pitch + scene.width / 2 - 0.5, wy / scene.pitch + scene.height / 2 - 0.5];
  }

  /** Elevation offset of the tilted top plane at part coordinates (u, v). */
  tiltAt(u: number, v: number): number {
    return this.tiltX * u + this.tiltY * v;
  }
}

export function setRgb(a: Float32Array, i: number, r: number, g: number, b: number): void {
  a[3 * i] = r;
  a[3 * i + 1] = g;
  a[3 * i + 2] = b;
}

/** Station lighting with per-part jitter (lamp ageing, ambient light through the hall). */
export function stationCamera(rng: Rng, base: { exposure: number; noiseLevels: number }): CameraSetup {
  const k = rng.range(0.95, 1.05);
  const warm = rng.range(-0.03, 0.03);
  const light = (az: number, el: number, intensity: number): Light => {
    const a = az + rng.range(-0.05, 0.05);
    const e = el + rng.range(-0.03, 0.03);
    return {
      dir: [Math.cos(e) * Math.cos(a), Math.cos(e) * Math.sin(a), Math.sin(e)],
      colour: [intensity * k * (1 + warm), intensity * k, intensity * k * (1 - warm)],
    };
  };
  return {
    // two low-angle bar lights make relief visible; a top light fills
    lights: [light(Math.PI * 0.25, 0.6, 0.55), light(Math.PI * 1.1, 0.75, 0.35), light(0, Math.PI / 2 - 0.15, 0.35)],
    ambient: [0.18 * k, 0.18 * k, 0.19 * k],
    exposure: base.exposure,
    noiseLevels: base.noiseLevels,
    vignetting: 0.12,
  };
}
