/**
 * Top lid of a prismatic lithium-ion cell, seen from above in its nest after
 * formation: a brushed-aluminium plate laser-welded to the can, two terminals
 * (aluminium +, copper −) on black insulators, a bursting vent with score
 * lines, a sealed electrolyte fill port, a laser-marked 2D code (the serial,
 * different on every part) and polarity marks. The cell is still warm from
 * formation and the terminals warmer from the test contacts.
 */
import { addAt, blendAt, coverage, ellipseSdf, fieldAt, noiseField, roundedRectSdf, segmentDistance } from '../fields.js';
import type { Rng } from '../../base/prng.js';
import { Pose, emptyScene, stationCamera, type Scene } from '../scene.js';
import { paint, tinted, type Material, type ProductType } from './product-type.js';

const ALUMINIUM: Material = { albedo: [0.6, 0.61, 0.63], specular: 0.35, shininess: 40, emissivity: 0.09, scanLoss: 0.01 };
const COPPER: Material = { albedo: [0.7, 0.42, 0.28], specular: 0.4, shininess: 50, emissivity: 0.05, scanLoss: 0.015 };
const INSULATOR: Material = { albedo: [0.05, 0.05, 0.055], specular: 0.08, shininess: 12, emissivity: 0.95, scanLoss: 0.04 };
const LASER_MARK: Material = { albedo: [0.1, 0.1, 0.11], specular: 0.04, shininess: 8, emissivity: 0.7, scanLoss: 0.01 };
const VENT_FOIL: Material = { albedo: [0.55, 0.56, 0.58], specular: 0.5, shininess: 90, emissivity: 0.07, scanLoss: 0.03 };
const WELD: Material = { albedo: [0.48, 0.48, 0.5], specular: 0.25, shininess: 20, emissivity: 0.16, scanLoss: 0.01 };
const FIXTURE: Material = { albedo: [0.09, 0.09, 0.1], specular: 0.1, shininess: 10, emissivity: 0.85, scanLoss: 0.01 };

const MM = 1e-3;
const LENGTH = 94 * MM;
const WIDTH = 40 * MM;
const PLATE_TOP = 4 * MM; // above the nest
const PLATE_THICKNESS = 1.5 * MM;
const TERMINAL_RISE = 2.2 * MM;
const MODULES = 10; // 2D code modules per side
const MODULE = 0.85 * MM;

export const batteryLid: ProductType = {
  name: 'battery_lid',
  title: 'prismatic cell lid (aluminium, terminals, vent, laser-marked code)',
  defects: ['contamination', 'scratch', 'dent', 'bulge', 'crack', 'missing_material', 'extra_material', 'hot_spot'],
  interiorDefects: ['void', 'porosity', 'inclusion'],
  fieldOfViewM: 110 * MM,
  build(rng: Rng, width: number, height: number): Scene {
    const pitch = this.fieldOfViewM / width;
    const scene = emptyScene(
      width,
      height,
      pitch,
      // exposed so bare aluminium does not clip, or a bright scratch could not show
      stationCamera(rng.fork('lights'), { exposure: 0.85, noiseLevels: 1.6 }),
      {
        ambientK: 296.15 + rng.range(-0.5, 0.5),
        diffusionPx: [(5 * MM) / pitch, (5 * MM) / pitch], // aluminium spreads heat far
        gain: 55,
        offset: 8000,
        netdK: 0.04,
        opticsBlurPx: 0.8 * (width / 256),
      },
      { workingDistanceM: 0.3, noiseM: 12e-6, maxSlope: 3, triangulationRad: 0.45, speckleLoss: 0.002, borderBand: 0.03 },
    );
    // an aluminium lid plate 1.5 mm thick; the reconstruction reaches over the terminals
    scene.ct = { bottomM: PLATE_TOP - PLATE_THICKNESS, topM: PLATE_TOP + TERMINAL_RISE + 0.5 * MM, densityGcm3: 2.7 };
    const pose = Pose.jittered(rng.fork('pose'), 2.5 * MM, 0.035, 0.004);
    const finish = rng.fork('finish');
    const alu = tinted(ALUMINIUM, finish.range(0.94, 1.06));
    const markDarkness = finish.range(0.8, 1.25);
    const mark = tinted(LASER_MARK, markDarkness);
    const warm = finish.gauss(8, 1.2); // K above ambient after formation
    const terminalHeat = finish.gauss(4, 0.8);
    const nestTilt = [finish.range(-0.002, 0.002), finish.range(-0.002, 0.002)] as const;

    // brushed finish: streaks along the lid's length; mottling of the nest
    const texSeed = rng.fork('texture');
    const streaks = noiseField(width, height, texSeed.uint32(), { scaleX: 60 * (width / 256), scaleY: 0.7 * (width / 256), angle: pose.angle, octaves: 3 });
    const mottle = noiseField(width, height, texSeed.uint32(), { scaleX: 40 * (width / 256), scaleY: 40 * (width / 256), octaves: 4 });
    const bits = rng.fork('serial');
    const code: boolean[] = [];
    for (let r = 0; r < MODULES; r++) {
      for (let c = 0; c < MODULES; c++) {
        // Data Matrix-like finder: solid left and bottom edges, alternating top and right
        const finder = c === 0 || r === MODULES - 1 ? true : r === 0 ? c % 2 === 0 : c === MODULES - 1 ? r % 2 === 1 : null;
        code.push(finder ?? bits.chance(0.5));
      }
    }

    const px = (m: number): number => m / pitch;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        const [u, v] = pose.toPart(scene, x, y);
        // the nest
        const mottled = fieldAt(mottle, i);
        scene.elevation[i] = nestTilt[0] * u + nestTilt[1] * v + 0.02 * MM * mottled;
        paint(scene, i, tinted(FIXTURE, 1 + 0.08 * mottled), 1);

        const dLid = roundedRectSdf(u, v, LENGTH / 2, WIDTH / 2, 3 * MM);
        const onLid = coverage(px(dLid));
        if (onLid <= 0) continue;
        const streak = fieldAt(streaks, i);
        let top = PLATE_TOP + pose.tiltAt(u, v) + 2e-6 * streak;
        paint(scene, i, tinted(alu, 1 + 0.05 * streak + 0.02 * mottled), onLid);
        scene.heat[i] = warm * onLid;
        if (onLid > 0.5) scene.partMask[i] = 1;

        // laser weld seam around the edge: a rippled bead
        if (dLid > -1.4 * MM) {
          const t = Math.min(1, Math.max(0, -dLid / (1.4 * MM)));
          const bead = Math.sin(Math.PI * t);
          top += bead * (0.12 * MM + 0.03 * MM * Math.sin(((u + v) / (0.8 * MM)) * 2 * Math.PI));
          paint(scene, i, WELD, bead * 0.8);
          blendAt(scene.emissivity, i, WELD.emissivity, bead);
        }

        // terminals on insulators: − at −u (copper), + at +u (aluminium)
        for (const side of [-1, 1]) {
          const tu = u - side * 33 * MM;
          const dIns = roundedRectSdf(tu, v, 8.5 * MM, 10.5 * MM, 2 * MM);
          const ins = coverage(px(dIns));
          if (ins > 0) {
            top += 0.6 * MM * ins;
            paint(scene, i, INSULATOR, ins);
          }
          const dTerm = roundedRectSdf(tu, v, 6 * MM, 8 * MM, 1.5 * MM);
          if (dTerm < 0.6 * MM) {
            // 0.3 mm chamfer: a slope instead of a cliff at the top edge
            const rise = Math.min(1, Math.max(0, (-dTerm + 0.3 * MM) / (0.6 * MM)));
            top += TERMINAL_RISE * rise;
            paint(scene, i, side < 0 ? COPPER : alu, coverage(px(dTerm)));
            addAt(scene.heat, i, terminalHeat * coverage(px(dTerm)));
          }
        }

        // bursting vent: a recessed foil with a cross of score lines
        const vu = u - 5 * MM;
        const dVent = ellipseSdf(vu, v, 6.5 * MM, 4.2 * MM);
        const vent = coverage(px(dVent));
        if (vent > 0) {
          const score = Math.min(segmentDistance(vu, v, -5 * MM, -3 * MM, 5 * MM, 3 * MM), segmentDistance(vu, v, -5 * MM, 3 * MM, 5 * MM, -3 * MM));
          const groove = Math.max(0, 1 - score / (0.25 * MM));
          top -= (0.25 * MM + 0.05 * MM * groove) * vent;
          paint(scene, i, VENT_FOIL, vent);
        }

        // electrolyte fill port: a ring and a raised seal pin
        const fu = u - 18 * MM;
        const fv = v - 8 * MM;
        const rFill = Math.sqrt(fu * fu + fv * fv);
        const ring = coverage(px(rFill - 2.4 * MM)) - coverage(px(rFill - 1.9 * MM));
        const pin = coverage(px(rFill - 1.4 * MM));
        top += 0.1 * MM * ring + 0.35 * MM * pin;
        paint(scene, i, WELD, ring * 0.7);

        // laser-marked 2D code (the serial) and polarity marks, engraved a few µm
        const cu = u + 15 * MM;
        const cv = v;
        const half = (MODULES * MODULE) / 2;
        if (Math.abs(cu) < half && Math.abs(cv) < half) {
          const c = Math.floor((cu + half) / MODULE);
          const r = Math.floor((cv + half) / MODULE);
          if (code[r * MODULES + c] === true) {
            paint(scene, i, mark, 1);
            top -= 4e-6;
          }
        }
        const plus = Math.min(segmentDistance(u, v, 22.5 * MM, -14 * MM, 27.5 * MM, -14 * MM), segmentDistance(u, v, 25 * MM, -16.5 * MM, 25 * MM, -11.5 * MM));
        const minus = segmentDistance(u, v, -27.5 * MM, -14 * MM, -22.5 * MM, -14 * MM);
        const sign = coverage(px(Math.min(plus, minus) - 0.45 * MM));
        if (sign > 0) {
          paint(scene, i, mark, sign);
          top -= 4e-6 * sign;
        }
        blendAt(scene.elevation, i, top, onLid);
      }
    }
    return scene;
  },
};
