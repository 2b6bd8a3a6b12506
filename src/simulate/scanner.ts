/**
 * The 3D sensor: turns the elevation map into an organized point cloud in the
 * MVTec 3D-AD convention — H×W×3 float32, metres in the sensor frame (x right,
 * y down, z away from the sensor), missing points exactly (0, 0, 0).
 *
 * Points go missing where real structured-light/laser sensors lose them:
 * occlusion shadows behind steps (the projector and camera look from
 * different angles), steep walls that reflect nothing back, materials with a
 * poor return, stray speckle, and the fading border of the projected field.
 */
import { fieldAt, smoothstep } from './fields.js';
import type { Rng } from '../base/prng.js';
import type { Scene } from './scene.js';

export function scanXyz(scene: Scene, rng: Rng): Float32Array {
  const { width: w, height: h, elevation: e, pitch, scanner } = scene;
  const out = new Float32Array(w * h * 3);
  // a pinhole whose field of view at the working distance is the scene's
  const f = scanner.workingDistanceM / pitch;
  const run = pitch / Math.tan(scanner.triangulationRad); // height a ray drops per pixel travelled
  let eMin = Infinity;
  let eMax = -Infinity;
  for (const v of e) {
    if (v < eMin) eMin = v;
    if (v > eMax) eMax = v;
  }
  const reach = Math.min(32, Math.ceil((eMax - eMin) / run) + 1);
  const band = Math.max(1, scanner.borderBand * Math.min(w, h));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      // draw the same numbers for every pixel, visible or not, so the stream never depends on the scene
      const noise = rng.fastNormal();
      const u = rng.next();
      const ez = fieldAt(e, p);
      const x0 = x > 0 ? x - 1 : x;
      const x1 = x < w - 1 ? x + 1 : x;
      const y0 = y > 0 ? y - 1 : y;
      const y1 = y < h - 1 ? y + 1 : y;
      const gx = (fieldAt(e, y * w + x1) - fieldAt(e, y * w + x0)) / ((x1 - x0) * pitch);
      const gy = (fieldAt(e, y1 * w + x) - fieldAt(e, y0 * w + x)) / ((y1 - y0) * pitch);
      let lost = gx * gx + gy * gy > scanner.maxSlope * scanner.maxSlope;
      for (let j = 1; !lost && j <= reach && x - j >= 0; j++) {
        if (fieldAt(e, p - j) - ez > j * run) lost = true;
      }
      if (!lost) {
        const edge = Math.min(x + 0.5, w - x - 0.5, y + 0.5, h - y - 0.5);
        const pLoss = scanner.speckleLoss + fieldAt(scene.scanLoss, p) + 0.5 * (1 - smoothstep(0, band, edge));
        lost = u < pLoss;
      }
      if (lost) continue; // stays 0, 0, 0
      const z = scanner.workingDistanceM - ez + scanner.noiseM * noise;
      out[3 * p] = ((x + 0.5 - w / 2) * z) / f;
      out[3 * p + 1] = ((y + 0.5 - h / 2) * z) / f;
      out[3 * p + 2] = z;
    }
  }
  return out;
}
