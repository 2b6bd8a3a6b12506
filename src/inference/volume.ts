/**
 * CT volume frames: the checks of a ct frame's declared geometry against the line's bounds
 * (`inference.ct`), the shape of a multi-page TIFF read from its IFDs alone, and the decoding
 * of a volume (multi-page 16-bit greyscale TIFF, or raw little-endian uint16) to one
 * slice-major Uint16Array: depth × height × width.
 *
 * Every problem is a FRAME_SHAPE (the declared geometry is out of bounds or disagrees with
 * the payload) or a FRAME_CORRUPT (the TIFF cannot be read), with a reason naming the bound
 * or the disagreement, as for the other modalities (preprocess.ts).
 *
 * A volume is decoded at its own grid, which need not be the 2D frames' (the simulator's is
 * coarser); for a student that takes ct, resampleVolume brings it to the student's input grid
 * (trilinear, same field of view), and depthMm turns the student's anomaly_depth into millimetres.
 */
import { decodeTiffStack, tiffPages, verifyTiffStrips, type TiffPageLayout } from '../codec/tiff-reader.js';
import { HOST_LITTLE_ENDIAN } from '../codec/tiff-writer.js';
import type { Frame, Volume } from '../codec/records.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { outOfRange } from '../base/invariant.js';

/** The bounds a ct frame's volume must keep (config `inference.ct`). */
export interface CtLimits {
  minDepth: number;
  maxDepth: number;
  maxVoxels: number;
  minVoxelSizeMm: number;
  maxVoxelSizeMm: number;
}

/** The configuration's defaults, for callers without a configuration (tools, tests). */
export const DEFAULT_CT_LIMITS: CtLimits = { minDepth: 1, maxDepth: 2_048, maxVoxels: 33_554_432, minVoxelSizeMm: 0.001, maxVoxelSizeMm: 10 };

type VolumeHeader = Pick<Frame, 'modality' | 'encoding' | 'width' | 'height' | 'volume'>;

function shape(message: string): MmadError {
  return new MmadError(ErrorCode.FRAME_SHAPE, `ct frame: ${message}`);
}

/**
 * The volume a ct frame declares, checked against the bounds: present, a depth within
 * minDepth..maxDepth, depth × height × width within maxVoxels, every voxel edge finite and
 * within minVoxelSizeMm..maxVoxelSizeMm.
 */
export function checkVolume(frame: VolumeHeader, limits: CtLimits): Volume {
  const v = frame.volume;
  if (v === null) throw shape('declares no volume (Frame.volume: depth and voxel size; a ct frame needs Frame version 2)');
  if (!Number.isInteger(v.depth) || v.depth < limits.minDepth || v.depth > limits.maxDepth) {
    throw shape(`depth of ${v.depth} slices is outside ${limits.minDepth}..${limits.maxDepth} (inference.ct.minDepth/maxDepth)`);
  }
  const voxels = v.depth * frame.width * frame.height;
  if (voxels > limits.maxVoxels) {
    throw shape(`declared volume ${v.depth}×${frame.height}×${frame.width} has ${voxels} voxels, over the limit of ${limits.maxVoxels} (inference.ct.maxVoxels)`);
  }
  for (const axis of ['x', 'y', 'z'] as const) {
    const mm = v.voxelSizeMm[axis];
    if (!(Number.isFinite(mm) && mm >= limits.minVoxelSizeMm && mm <= limits.maxVoxelSizeMm)) {
      throw shape(`voxel size ${axis} of ${mm} mm is outside ${limits.minVoxelSizeMm}..${limits.maxVoxelSizeMm} mm (inference.ct.minVoxelSizeMm/maxVoxelSizeMm)`);
    }
  }
  return v;
}

/** Bytes a raw ct payload of this geometry must have: depth × height × width × 2. */
export function rawVolumeBytes(frame: Pick<Frame, 'width' | 'height'>, volume: Volume): number {
  return volume.depth * frame.height * frame.width * 2;
}

/** A raw ct payload's length against the declared geometry: FRAME_SHAPE naming both when they disagree. */
export function checkRawVolume(frame: Pick<Frame, 'width' | 'height'>, volume: Volume, payload: Buffer): void {
  const expected = rawVolumeBytes(frame, volume);
  if (payload.length !== expected) {
    throw shape(`raw payload has ${payload.length} bytes, ${volume.depth}×${frame.height}×${frame.width} uint16 needs ${expected}`);
  }
}

/**
 * Checks a ct TIFF payload against the declared geometry from its IFDs alone (no pixel is
 * decoded; every strip is checked to lie inside the file): one page per slice, each
 * width × height, one 16-bit unsigned sample.
 */
export function checkVolumeTiff(frame: VolumeHeader, volume: Volume, payload: Buffer, limits: CtLimits): TiffPageLayout[] {
  let pages;
  try {
    pages = tiffPages(payload, limits.maxDepth).pages;
  } catch (err) {
    throw new MmadError(ErrorCode.FRAME_CORRUPT, `ct frame: payload is not a readable multi-page TIFF: ${messageOf(err)}`, { cause: err });
  }
  if (pages.length !== volume.depth) throw shape(`TIFF has ${pages.length} pages, the frame declares a depth of ${volume.depth} slices`);
  for (const [k, p] of pages.entries()) {
    if (p.width !== frame.width || p.height !== frame.height) {
      throw shape(`TIFF page ${k} is ${p.width}×${p.height}, the frame declares slices of ${frame.width}×${frame.height}`);
    }
    if (p.samplesPerPixel !== 1 || p.dtype !== 'uint16') {
      throw shape(`TIFF page ${k} has ${p.samplesPerPixel} × ${p.dtype} samples, a ct slice is 1 × uint16 (16-bit greyscale)`);
    }
  }
  return pages;
}

/** checkVolumeTiff, then every Deflate strip inflated in the thread pool (codec/tiff-reader.ts verifyTiffStrips): FRAME_CORRUPT when one does not. */
export async function verifyVolumeTiff(frame: VolumeHeader, volume: Volume, payload: Buffer, limits: CtLimits): Promise<void> {
  const pages = checkVolumeTiff(frame, volume, payload, limits);
  try {
    await verifyTiffStrips(payload, pages);
  } catch (err) {
    throw new MmadError(ErrorCode.FRAME_CORRUPT, `ct frame: payload cannot be decoded: ${messageOf(err)}`, { cause: err });
  }
}

/** A decoded volume: slice after slice, each row-major. */
export interface DecodedVolume {
  width: number;
  height: number;
  depth: number;
  voxelSizeMm: Volume['voxelSizeMm'];
  data: Uint16Array;
}

/** Decodes a ct payload (checked against the declared geometry first) to depth × height × width uint16 samples. */
export function decodeVolume(frame: VolumeHeader, payload: Buffer, limits: CtLimits): DecodedVolume {
  const volume = checkVolume(frame, limits);
  const { width, height } = frame;
  const { depth, voxelSizeMm } = volume;
  if (frame.encoding === 'raw') {
    checkRawVolume(frame, volume, payload);
    const copy = Buffer.from(payload); // an aligned copy of its own
    if (!HOST_LITTLE_ENDIAN) copy.swap16();
    return { width, height, depth, voxelSizeMm, data: new Uint16Array(copy.buffer, copy.byteOffset, copy.length / 2) };
  }
  checkVolumeTiff(frame, volume, payload, limits);
  try {
    const stack = decodeTiffStack(payload, limits.maxDepth, limits.maxVoxels);
    return { width, height, depth, voxelSizeMm, data: stack.data as Uint16Array };
  } catch (err) {
    throw new MmadError(ErrorCode.FRAME_CORRUPT, `ct frame: payload cannot be decoded: ${messageOf(err)}`, { cause: err });
  }
}

/** A grid: slices, rows, columns. */
export interface Grid {
  depth: number;
  height: number;
  width: number;
}

/**
 * Source positions and weights along one axis for trilinear resampling, voxel centres aligned
 * (PyTorch's interpolate with align_corners=False: the two grids cover the same extent, so
 * output voxel i samples source position (i + 0.5) · n/m − 0.5, clamped to the end voxels).
 */
function axisTaps(n: number, m: number): { lo: Int32Array; hi: Int32Array; t: Float32Array } {
  const lo = new Int32Array(m);
  const hi = new Int32Array(m);
  const t = new Float32Array(m);
  const ratio = n / m;
  for (let i = 0; i < m; i++) {
    const x = Math.min(Math.max((i + 0.5) * ratio - 0.5, 0), n - 1);
    const l = Math.floor(x);
    lo[i] = l;
    hi[i] = Math.min(l + 1, n - 1);
    t[i] = x - l;
  }
  return { lo, hi, t };
}

/**
 * A volume (depth × height × width uint16, slice-major) as float32 raw counts on the grid `to`,
 * written into `out` at `offset` (one slot of a batch): a copy when the grids are equal, else
 * trilinear resampling over the same field of view (voxel centres aligned, as above). Raw
 * counts go in: the model normalises in its graph.
 */
export function resampleVolume(data: Uint16Array, from: Grid, to: Grid, out: Float32Array = new Float32Array(to.depth * to.height * to.width), offset = 0): Float32Array {
  const n = from.depth * from.height * from.width;
  if (data.length !== n) throw new RangeError(`${data.length} samples for a ${from.depth}×${from.height}×${from.width} volume`);
  if (out.length < offset + to.depth * to.height * to.width) throw new RangeError(`${out.length - offset} values of room for a ${to.depth}×${to.height}×${to.width} grid`);
  if (from.depth === to.depth && from.height === to.height && from.width === to.width) {
    out.set(data, offset); // converted to float32 natively
    return out;
  }
  const z = axisTaps(from.depth, to.depth);
  const y = axisTaps(from.height, to.height);
  const x = axisTaps(from.width, to.width);
  const plane = from.height * from.width;
  let o = offset;
  for (let k = 0; k < to.depth; k++) {
    const z0 = (z.lo[k] ?? outOfRange(z.lo, k)) * plane;
    const z1 = (z.hi[k] ?? outOfRange(z.hi, k)) * plane;
    const tz = z.t[k] ?? outOfRange(z.t, k);
    for (let j = 0; j < to.height; j++) {
      const y0 = (y.lo[j] ?? outOfRange(y.lo, j)) * from.width;
      const y1 = (y.hi[j] ?? outOfRange(y.hi, j)) * from.width;
      const ty = y.t[j] ?? outOfRange(y.t, j);
      for (let i = 0; i < to.width; i++) {
        const x0 = x.lo[i] ?? outOfRange(x.lo, i);
        const x1 = x.hi[i] ?? outOfRange(x.hi, i);
        const tx = x.t[i] ?? outOfRange(x.t, i);
        const at = (p: number): number => data[p] ?? outOfRange(data, p);
        const c00 = at(z0 + y0 + x0) + (at(z0 + y0 + x1) - at(z0 + y0 + x0)) * tx;
        const c01 = at(z0 + y1 + x0) + (at(z0 + y1 + x1) - at(z0 + y1 + x0)) * tx;
        const c10 = at(z1 + y0 + x0) + (at(z1 + y0 + x1) - at(z1 + y0 + x0)) * tx;
        const c11 = at(z1 + y1 + x0) + (at(z1 + y1 + x1) - at(z1 + y1 + x0)) * tx;
        const c0 = c00 + (c01 - c00) * ty;
        const c1 = c10 + (c11 - c10) * ty;
        out[o++] = c0 + (c1 - c0) * tz;
      }
    }
  }
  return out;
}

/**
 * A region's depth from the model's anomaly_depth at its peak: the slice (of the model's grid,
 * 0 = centre of the lowest slice) in millimetres above the volume's lowest slice,
 * (slice + 0.5) · sourceDepth / modelDepth · voxel z. Null for a value that is not finite, and
 * for a negative one: the student writes -1 where another modality's branch leads its map, so
 * the anomaly there is not the CT's and the volume says nothing of its depth.
 */
export function depthMm(slice: number, sourceDepth: number, modelDepth: number, voxelZMm: number): number | null {
  if (!Number.isFinite(slice) || slice < 0) return null;
  return (slice + 0.5) * (sourceDepth / modelDepth) * voxelZMm;
}
