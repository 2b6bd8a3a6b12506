/**
 * The thermal camera: temperature from heat sources spread by lateral
 * diffusion in the part, radiance from temperature and emissivity
 * (Stefan–Boltzmann, plus the ambient radiance the surface reflects), then
 * lens blur, detector noise (NETD) and 16-bit counts. Emissivity is why bare
 * aluminium looks dark and printed marks look bright at the same temperature.
 */
import { fieldAt, gaussianBlur } from './fields.js';
import type { Rng } from '../base/prng.js';
import type { Scene } from './scene.js';

const SIGMA_SB = 5.670374419e-8;

export interface ThermalFields {
  /** Temperature of the good part, kelvin. */
  temperature: Float32Array;
  /** Temperature rise caused by the defect's heat sources, kelvin (zeros without one). */
  defectRise: Float32Array;
}

/** Steady-state temperature: ambient + diffused sources. Diffusion is linear, so the defect's share is computed on its own. */
export function temperatureField(scene: Scene): ThermalFields {
  const { width: w, height: h, thermal } = scene;
  const [sx, sy] = thermal.diffusionPx;
  const base = gaussianBlur(scene.heat, w, h, sx, sy);
  let any = false;
  for (let i = 0; i < scene.defectHeat.length; i++) {
    if (scene.defectHeat[i] !== 0) {
      any = true;
      break;
    }
  }
  const defectRise = any ? gaussianBlur(scene.defectHeat, w, h, sx, sy) : new Float32Array(w * h);
  const temperature = new Float32Array(w * h);
  for (let i = 0; i < temperature.length; i++) temperature[i] = thermal.ambientK + fieldAt(base, i) + fieldAt(defectRise, i);
  return { temperature, defectRise };
}

/** Renders the 16-bit thermal image (row-major counts). */
export function renderThermal(scene: Scene, rng: Rng, fields: ThermalFields = temperatureField(scene)): Uint16Array {
  const { width: w, height: h, thermal } = scene;
  const tA = thermal.ambientK;
  const lAmb = SIGMA_SB * tA ** 4;
  const signal = new Float32Array(w * h);
  for (let i = 0; i < signal.length; i++) {
    const t = fieldAt(fields.temperature, i);
    const eps = fieldAt(scene.emissivity, i);
    const m = eps * SIGMA_SB * t ** 4 + (1 - eps) * lAmb;
    signal[i] = thermal.offset + thermal.gain * (m - lAmb);
  }
  const blurred = gaussianBlur(signal, w, h, thermal.opticsBlurPx);
  const noiseCounts = thermal.netdK * 4 * SIGMA_SB * tA ** 3 * thermal.gain;
  const out = new Uint16Array(w * h);
  for (let i = 0; i < out.length; i++) {
    const v = Math.round(fieldAt(blurred, i) + noiseCounts * rng.fastNormal());
    out[i] = v < 0 ? 0 : v > 65535 ? 65535 : v;
  }
  return out;
}

/** Counts of detector noise (1σ), what a test calls the thermal noise floor. */
export function thermalNoiseCounts(scene: Scene): number {
  const t = scene.thermal;
  return t.netdK * 4 * SIGMA_SB * t.ambientK ** 3 * t.gain;
}
