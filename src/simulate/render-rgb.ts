/**
 * The colour camera: shades the scene from its surface normals under the
 * station's lights (Lambert + Blinn–Phong, Kajiya–Kay highlights along carbon
 * fibres), darkens cavities, then applies exposure, vignetting, the sRGB
 * transfer and sensor noise. Because shading comes from the geometry, a dent
 * or a bulge leaves a faint cue in RGB exactly where its slopes are.
 */
import { fieldAt, gaussianBlur } from './fields.js';
import type { Rng } from '../base/prng.js';
import type { Scene } from './scene.js';

/** Surface normals (unit, 3 per pixel) from the elevation map by central differences. */
export function surfaceNormals(scene: Scene): Float32Array {
  const { width: w, height: h, elevation: e, pitch } = scene;
  const n = new Float32Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const y0 = y > 0 ? y - 1 : y;
    const y1 = y < h - 1 ? y + 1 : y;
    for (let x = 0; x < w; x++) {
      const x0 = x > 0 ? x - 1 : x;
      const x1 = x < w - 1 ? x + 1 : x;
      const dzdx = (fieldAt(e, y * w + x1) - fieldAt(e, y * w + x0)) / ((x1 - x0) * pitch);
      const dzdy = (fieldAt(e, y1 * w + x) - fieldAt(e, y0 * w + x)) / ((y1 - y0) * pitch);
      const inv = 1 / Math.sqrt(dzdx * dzdx + dzdy * dzdy + 1);
      const i = 3 * (y * w + x);
      n[i] = -dzdx * inv;
      n[i + 1] = -dzdy * inv;
      n[i + 2] = inv;
    }
  }
  return n;
}

function srgbEncode(linear: number): number {
  const v = linear <= 0 ? 0 : linear >= 1 ? 1 : linear;
  return v <= 0.0031308 ? 12.92 * v : 1.055 * Math.pow(v, 1 / 2.4) - 0.055;
}

/** sRGB transfer by table (16 bits of linear input: under 0.2 of an 8-bit level of error, much cheaper than pow per sample). */
const SRGB_STEPS = 65535;
const SRGB_TABLE = (() => {
  const t = new Float32Array(SRGB_STEPS + 1);
  for (let k = 0; k <= SRGB_STEPS; k++) t[k] = srgbEncode(k / SRGB_STEPS);
  return t;
})();

/** Linear radiance → sRGB level with shot noise (grows with signal) over read noise (the floor). */
function expose(linear: number, noiseLevels: number, rng: Rng): number {
  const v = fieldAt(SRGB_TABLE, linear <= 0 ? 0 : linear >= 1 ? SRGB_STEPS : Math.round(linear * SRGB_STEPS));
  const level = Math.round(v * 255 + noiseLevels * Math.sqrt(0.15 + v) * rng.fastNormal());
  return level < 0 ? 0 : level > 255 ? 255 : level;
}

/** Renders the 8-bit RGB image (interleaved, row-major). */
export function renderRgb(scene: Scene, rng: Rng): Uint8Array {
  const { width: w, height: h, camera } = scene;
  const normals = surfaceNormals(scene);
  // cavity darkening: how far a pixel lies below its neighbourhood (ambient occlusion, cheaply)
  const local = gaussianBlur(scene.elevation, w, h, 2.5);
  const aoScale = 0.35e-3; // 0.35 mm below the surroundings halves the ambient light
  const lights = camera.lights.map((l) => {
    const hx = l.dir[0];
    const hy = l.dir[1];
    const hz = l.dir[2] + 1;
    const hn = Math.sqrt(hx * hx + hy * hy + hz * hz);
    return { l: l.dir, c: l.colour, h: [hx / hn, hy / hn, hz / hn] as const };
  });
  const out = new Uint8Array(w * h * 3);
  const cx = w / 2;
  const cy = h / 2;
  const rmax2 = cx * cx + cy * cy;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = y * w + x;
      const nx = fieldAt(normals, 3 * p);
      const ny = fieldAt(normals, 3 * p + 1);
      const nz = fieldAt(normals, 3 * p + 2);
      const depthBelow = fieldAt(local, p) - fieldAt(scene.elevation, p);
      const ao = depthBelow > 0 ? 1 / (1 + depthBelow / aoScale) : 1;
      const spec = fieldAt(scene.specular, p);
      const shin = fieldAt(scene.shininess, p);
      const fib = fieldAt(scene.fibreAmount, p);
      const tx = fib > 0 ? Math.cos(fieldAt(scene.fibreAngle, p)) : 0;
      const ty = fib > 0 ? Math.sin(fieldAt(scene.fibreAngle, p)) : 0;
      let dr = camera.ambient[0] * ao;
      let dg = camera.ambient[1] * ao;
      let db = camera.ambient[2] * ao;
      let sr = 0;
      let sg = 0;
      let sb = 0;
      for (const L of lights) {
        const ndl = nx * L.l[0] + ny * L.l[1] + nz * L.l[2];
        if (ndl <= 0) continue;
        dr += L.c[0] * ndl;
        dg += L.c[1] * ndl;
        db += L.c[2] * ndl;
        if (spec > 0) {
          const ndh = nx * L.h[0] + ny * L.h[1] + nz * L.h[2];
          let s = ndh > 0 ? Math.exp(shin * Math.log(ndh)) : 0;
          if (fib > 0) {
            // fibres reflect in a cone around their axis: the highlight depends on the tangent, not the normal
            const th = tx * L.h[0] + ty * L.h[1];
            const sin2 = Math.max(1e-12, 1 - th * th);
            s = s * (1 - fib) + fib * Math.exp(shin * 0.5 * Math.log(sin2)) * ndl;
          }
          const k2 = spec * s;
          sr += L.c[0] * k2;
          sg += L.c[1] * k2;
          sb += L.c[2] * k2;
        }
      }
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const e = camera.exposure * (1 - camera.vignetting * ((dx * dx + dy * dy) / rmax2));
      out[3 * p] = expose((fieldAt(scene.albedo, 3 * p) * dr + sr) * e, camera.noiseLevels, rng);
      out[3 * p + 1] = expose((fieldAt(scene.albedo, 3 * p + 1) * dg + sg) * e, camera.noiseLevels, rng);
      out[3 * p + 2] = expose((fieldAt(scene.albedo, 3 * p + 2) * db + sb) * e, camera.noiseLevels, rng);
    }
  }
  return out;
}
