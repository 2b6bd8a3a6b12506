/**
 * A woven carbon-fibre composite coupon (2×2 twill, cured) lying on the
 * inspection table, with two drilled bolt holes and an ink-stamped ID, under
 * flash thermography (the station heats the surface and the IR camera watches
 * it cool, so what lies beneath shows as warm or cold patches).
 *
 * This is the file to copy for a new product type: build the scene of a good
 * part in part coordinates (metres) through a jittered Pose, paint materials,
 * set elevation, heat and partMask, then register it in products/index.ts.
 */
import { blendAt, coverage, fieldAt, noiseField, roundedRectSdf, valueNoise } from '../fields.js';
import type { Rng } from '../../base/prng.js';
import { Pose, emptyScene, stationCamera, type Scene } from '../scene.js';
import { paint, tinted, type Material, type ProductType } from './product-type.js';

const CARBON: Material = { albedo: [0.045, 0.045, 0.05], specular: 0.28, shininess: 30, emissivity: 0.92, scanLoss: 0.012 };
const RESIN: Material = { albedo: [0.035, 0.033, 0.03], specular: 0.5, shininess: 70, emissivity: 0.93, scanLoss: 0.02 };
const INK: Material = { albedo: [0.78, 0.78, 0.76], specular: 0.04, shininess: 6, emissivity: 0.9, scanLoss: 0.005 };
const TABLE: Material = { albedo: [0.42, 0.42, 0.41], specular: 0.05, shininess: 8, emissivity: 0.9, scanLoss: 0.005 };

const MM = 1e-3;
const LENGTH = 90 * MM;
const WIDTH = 60 * MM;
const THICKNESS = 3 * MM;
const TOW = 2.4 * MM;
const CRIMP = 0.06 * MM;
const HOLE_R = 3 * MM;
const STAMP_MODULES = 6;
const STAMP_MODULE = 1 * MM;

export const compositeCoupon: ProductType = {
  name: 'composite_coupon',
  title: 'woven carbon-fibre coupon (2×2 twill, bolt holes, ink stamp)',
  defects: ['contamination', 'scratch', 'dent', 'crack', 'missing_material', 'extra_material', 'delamination'],
  interiorDefects: ['void', 'porosity', 'inclusion'],
  fieldOfViewM: 110 * MM,
  // composite already emits like a black body (ε ≈ 0.92), so a crack's cavity adds little in IR
  visibility: { crack: { ir: 'faint' } },
  build(rng: Rng, width: number, height: number): Scene {
    const pitch = this.fieldOfViewM / width;
    const scene = emptyScene(
      width,
      height,
      pitch,
      stationCamera(rng.fork('lights'), { exposure: 1.3, noiseLevels: 1.6 }),
      {
        ambientK: 295.15 + rng.range(-0.5, 0.5),
        // heat runs along the fibres faster than across them
        diffusionPx: [(1.6 * MM) / pitch, (1.1 * MM) / pitch],
        gain: 55,
        offset: 8000,
        netdK: 0.04,
        opticsBlurPx: 0.8 * (width / 256),
      },
      { workingDistanceM: 0.3, noiseM: 15e-6, maxSlope: 3, triangulationRad: 0.45, speckleLoss: 0.002, borderBand: 0.03 },
    );
    // a carbon-fibre laminate (about 1.55 g/cm³) resting on the fixture plane
    scene.ct = { bottomM: 0, topM: THICKNESS + 0.5 * MM, densityGcm3: 1.55 };
    const pose = Pose.jittered(rng.fork('pose'), 3 * MM, 0.04, 0.003);
    const finish = rng.fork('finish');
    const carbon = tinted(CARBON, finish.range(0.9, 1.1));
    const flash = finish.gauss(5, 0.5); // K the flash lamp adds to the surface
    const weaveShift = [finish.range(0, TOW * 4), finish.range(0, TOW * 4)] as const; // where the cutter hit the weave
    const inkDensity = finish.range(0.85, 1.05);

    const texSeed = rng.fork('texture');
    const s = width / 256;
    const fibreAlong = noiseField(width, height, texSeed.uint32(), { scaleX: 30 * s, scaleY: 0.6 * s, angle: pose.angle, octaves: 3 });
    const fibreAcross = noiseField(width, height, texSeed.uint32(), { scaleX: 0.6 * s, scaleY: 30 * s, angle: pose.angle, octaves: 3 });
    const tableTex = noiseField(width, height, texSeed.uint32(), { scaleX: 8 * s, scaleY: 8 * s, octaves: 4 });
    const edgeSeed = texSeed.uint32();
    const bits = rng.fork('serial');
    const stamp: boolean[] = [];
    for (let k = 0; k < STAMP_MODULES * STAMP_MODULES; k++) stamp.push(bits.chance(0.5));
    const px = (m: number): number => m / pitch;

    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        const [u, v] = pose.toPart(scene, x, y);
        const texture = fieldAt(tableTex, i);
        scene.elevation[i] = 0.01 * MM * texture;
        paint(scene, i, tinted(TABLE, 1 + 0.06 * texture), 1);

        // cut edges are not perfectly straight: a little fraying noise
        const fray = 0.12 * MM * (valueNoise(u / (0.7 * MM), v / (0.7 * MM), edgeSeed) - 0.5);
        let d = roundedRectSdf(u, v, LENGTH / 2, WIDTH / 2, 0.6 * MM) + fray;
        for (const hu of [-34 * MM, 34 * MM]) d = Math.max(d, HOLE_R - Math.hypot(u - hu, v));
        const on = coverage(px(d));
        if (on <= 0) continue;
        if (on > 0.5) scene.partMask[i] = 1;

        // 2×2 twill: which tow is on top alternates in a diagonal pattern
        const wu = (u + weaveShift[0]) / TOW;
        const wv = (v + weaveShift[1]) / TOW;
        const iu = Math.floor(wu);
        const iv = Math.floor(wv);
        const warpOnTop = (((iu + iv) % 4) + 4) % 4 < 2;
        const across = warpOnTop ? wv - iv : wu - iu; // position across the visible tow
        const along = warpOnTop ? wu - iu : wv - iv;
        const lens = Math.sin(Math.PI * across); // tow cross-section
        const crimp = 0.3 * Math.sin(Math.PI * along);
        const gap = Math.max(0, 1 - lens / 0.25); // resin-rich seam between tows
        const fibre = fieldAt(warpOnTop ? fibreAlong : fibreAcross, i);
        const top = THICKNESS + pose.tiltAt(u, v) + CRIMP * (lens + crimp) + 3e-6 * fibre;
        paint(scene, i, tinted(carbon, 1 + 0.25 * fibre), on);
        paint(scene, i, RESIN, gap * 0.6 * on);
        scene.fibreAngle[i] = pose.angle + (warpOnTop ? 0 : Math.PI / 2);
        scene.fibreAmount[i] = 0.85 * on * (1 - gap);
        scene.heat[i] = flash * on;

        // ink-stamped ID in one corner
        const su = u - 33 * MM;
        const sv = v + 20 * MM;
        const half = (STAMP_MODULES * STAMP_MODULE) / 2;
        if (Math.abs(su) < half && Math.abs(sv) < half) {
          const c = Math.floor((su + half) / STAMP_MODULE);
          const r = Math.floor((sv + half) / STAMP_MODULE);
          if (stamp[r * STAMP_MODULES + c] === true) {
            paint(scene, i, tinted(INK, inkDensity), on * 0.95);
            scene.fibreAmount[i] = 0;
          }
        }
        blendAt(scene.elevation, i, top, on);
      }
    }
    return scene;
  },
};
