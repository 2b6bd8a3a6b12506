/**
 * Frames → model input tensors (float32, NCHW, raw sensor units; the graph
 * normalises). PNGs of the kinds stations send (8-bit RGB(A), 16-bit grey,
 * non-interlaced, no colour profile) are decoded by codec/png.ts (lossless, a
 * third of sharp's CPU); everything else, and every resize, goes through sharp
 * with pinned colourspaces, because sharp converts to sRGB on output unless
 * told and 16-bit infrared values would change.
 *
 *   rgb  PNG 8-bit (or raw uint8 HWC)   → lanczos3 resize → 0..255
 *   ir   PNG 16-bit grey (or raw uint16) → lanczos3 resize → 0..65535
 *   xyz  TIFF 3 × float32 (or raw)       → non-finite points become missing
 *        (0,0,0), resize by nearest valid point (never interpolated)
 *   ct   multi-page TIFF 16-bit grey (or raw uint16), Frame.volume's depth
 *        → depth × height × width uint16 at its own grid (volume.ts; not resized)
 *
 * A student whose inputs have a region of interest (roi.ts) gets its image frames cropped to
 * the roi's pixel box first, then resized: the model was trained on frames cropped so.
 *
 * Every check names what is wrong: FRAME_CORRUPT (undecodable bytes, a point
 * cloud with no valid point), FRAME_SHAPE (declared and actual size, channels
 * or sample type disagree, or the image is larger than the pixel limit).
 */
import sharp, { type Sharp } from 'sharp';
import { checkPngChunks, decodePngSamples, pngHeader, verifyPngData } from '../codec/png.js';
import type { Frame, Modality } from '../codec/records.js';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { outOfRange } from '../base/invariant.js';
import { resizeOrganized } from './point-cloud.js';
import { cropRows, isWholeFrame, roiBox, type PixelBox, type Roi } from './roi.js';
import { checkRawVolume, checkVolume, checkVolumeTiff, decodeVolume, DEFAULT_CT_LIMITS, verifyVolumeTiff, type CtLimits } from './volume.js';

// libvips' operation cache pays off when the same image is processed again; a frame never is
sharp.cache(false);

export interface DecodeLimits {
  /** Largest width × height accepted (decompression bombs stop here, before decoding). */
  maxPixels: number;
  /** Largest width × height of a point cloud (12 bytes a point, 4 × an rgb pixel); maxPixels when absent. */
  maxXyzPixels?: number;
  /** Bounds of a ct volume (depth, voxels, voxel size); the configuration's defaults when absent. */
  ct?: CtLimits;
}

/** The decode limits the configuration sets (inference.maxPixels, maxXyzPixels, ct). */
export function decodeLimitsOf(config: Config): DecodeLimits {
  return { maxPixels: config.inference.maxPixels, maxXyzPixels: config.inference.maxXyzPixels, ct: config.inference.ct };
}

/** The ct bounds of these limits. */
export function ctLimits(limits: DecodeLimits): CtLimits {
  return limits.ct ?? DEFAULT_CT_LIMITS;
}

/** The most bytes a frame within these limits can take uncompressed (what a claim check may declare). */
export function maxPayloadBytes(limits: DecodeLimits): number {
  // 4 channels of float32 a pixel, or 2 bytes a voxel
  return Math.max(limits.maxPixels * 16, ctLimits(limits).maxVoxels * 2);
}

/** The pixel limit for a modality. */
export function pixelLimit(modality: string, limits: DecodeLimits): number {
  return modality === 'xyz' ? (limits.maxXyzPixels ?? limits.maxPixels) : limits.maxPixels;
}

/** Bytes a raw image or point cloud of the declared size must have (a ct volume's: volume.ts rawVolumeBytes). */
export function rawBytes(frame: Pick<Frame, 'width' | 'height' | 'channels' | 'dtype'>): number {
  return frame.width * frame.height * frame.channels * BYTES[frame.dtype];
}

/** A frame's pixels, interleaved (HWC), in the sample type of its modality. */
export interface DecodedImage {
  modality: Modality;
  width: number;
  height: number;
  channels: number;
  data: Uint8Array | Uint16Array | Float32Array;
  /** xyz: points that were NaN/inf and are treated as missing. */
  nonFinitePoints?: number;
  /** ct: the volume's slices and voxel size; `data` then holds depth × height × width samples, slice after slice. */
  volume?: { depth: number; voxelSizeMm: { x: number; y: number; z: number } };
}

interface ModalitySpec {
  channels: number;
  dtype: Frame['dtype'];
  encodings: Frame['encoding'][];
}

export const MODALITY_SPECS: Record<Modality, ModalitySpec> = {
  rgb: { channels: 3, dtype: 'uint8', encodings: ['png', 'raw'] },
  ir: { channels: 1, dtype: 'uint16', encodings: ['png', 'raw'] },
  xyz: { channels: 3, dtype: 'float32', encodings: ['tiff', 'raw'] },
  ct: { channels: 1, dtype: 'uint16', encodings: ['tiff', 'raw'] },
};

const BYTES: Record<Frame['dtype'], number> = { uint8: 1, uint16: 2, float32: 4 };

function shapeError(frame: Pick<Frame, 'modality'>, message: string): MmadError {
  return new MmadError(ErrorCode.FRAME_SHAPE, `${frame.modality} frame: ${message}`);
}

/** Checks the header fields of a frame against its modality (a ct frame's volume against inference.ct), before any decoding. */
export function checkDeclared(frame: Pick<Frame, 'modality' | 'encoding' | 'width' | 'height' | 'channels' | 'dtype' | 'volume'>, limits: DecodeLimits): ModalitySpec {
  const specs: Partial<Record<string, ModalitySpec>> = MODALITY_SPECS;
  const spec = specs[frame.modality];
  if (spec === undefined) {
    throw new MmadError(ErrorCode.FRAME_UNKNOWN_MODALITY, `modality '${frame.modality}' has no decoder`);
  }
  if (!spec.encodings.includes(frame.encoding)) {
    throw shapeError(frame, `encoding ${frame.encoding} is not one of ${spec.encodings.join(', ')}`);
  }
  if (frame.channels !== spec.channels || frame.dtype !== spec.dtype) {
    throw shapeError(frame, `declared ${frame.channels} × ${frame.dtype}, a ${frame.modality} frame is ${spec.channels} × ${spec.dtype}`);
  }
  if (!(frame.width >= 1 && frame.height >= 1)) throw shapeError(frame, `declared size ${frame.width}×${frame.height} is empty`);
  const limit = pixelLimit(frame.modality, limits);
  if (frame.width * frame.height > limit) {
    throw shapeError(frame, `declared size ${frame.width}×${frame.height} exceeds the limit of ${limit} pixels${frame.modality === 'xyz' ? ' for a point cloud (inference.maxXyzPixels)' : ''}`);
  }
  if (frame.modality === 'ct') checkVolume(frame, ctLimits(limits));
  else if (frame.volume !== null) throw shapeError(frame, 'declares a volume, which only a ct frame has');
  return spec;
}

/**
 * Checks an encoded ct payload against the frame's volume: a raw one's length, a TIFF's pages
 * from its IFDs (volume.ts), and with `data` a TIFF's pixel data too (every Deflate strip
 * inflated in the thread pool: one that does not inflate is caught here, not when a student
 * first reads it). Call after checkDeclared.
 */
export async function checkVolumePayload(frame: Pick<Frame, 'modality' | 'encoding' | 'width' | 'height' | 'volume'>, payload: Buffer, limits: DecodeLimits, o: { data?: boolean } = {}): Promise<void> {
  const volume = checkVolume(frame, ctLimits(limits));
  if (frame.encoding === 'raw') checkRawVolume(frame, volume, payload);
  else if (o.data === true) await verifyVolumeTiff(frame, volume, payload, ctLimits(limits));
  else checkVolumeTiff(frame, volume, payload, ctLimits(limits));
}

export interface TargetSize {
  height: number;
  width: number;
}

/**
 * Image data the read-time check inflated (imageShape with `data`), kept for the decode of the
 * same payload when its part is judged, which takes it out: a PNG is inflated once, not twice.
 * Keyed by the payload's Buffer (the frame reader's view into its record, the one the join hands
 * to the judge). Bounded in bytes, oldest out first: a frame judged after its rows were dropped
 * (a part waiting long for a partner) is inflated again; one read through a claim check, or not
 * checked at read time, always is.
 */
export class InflatedRows {
  private readonly rows = new Map<Buffer, Buffer>();
  private held = 0;

  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.held;
  }

  put(payload: Buffer, data: Buffer): void {
    if (data.length > this.maxBytes) return;
    this.take(payload);
    this.rows.set(payload, data);
    this.held += data.length;
    for (const [key, value] of this.rows) {
      if (this.held <= this.maxBytes) break;
      this.rows.delete(key);
      this.held -= value.length;
    }
  }

  take(payload: Buffer): Buffer | undefined {
    const data = this.rows.get(payload);
    if (data !== undefined) {
      this.rows.delete(payload);
      this.held -= data.length;
    }
    return data;
  }
}

/** The process's hand-over of inflated image data from the read-time check to the decode: 32 MiB, about a hundred 256² rgb + ir parts. */
export const inflatedRows = new InflatedRows(32 * 1024 * 1024);

/** What an encoded payload's header says, in sharp's terms for the sample depth ('uchar', 'ushort', 'float', ...). */
export interface ImageShape {
  format: string;
  width: number;
  height: number;
  depth: string;
  channels: number;
}

/**
 * Reads an encoded payload's header without decoding the pixels. PNG headers
 * are parsed here, on the event loop (33 bytes; a metadata call would queue in
 * the thread pool behind the decoding of frames already joined), and with
 * `structure` the chunks are walked to IEND, so a payload cut short is caught
 * at read time; with `data` the image data is inflated and its scanlines
 * checked (codec/png.ts verifyPngData, in the thread pool); TIFF goes through
 * sharp's metadata. An unreadable header or image data is FRAME_CORRUPT.
 */
export async function imageShape(frame: Pick<Frame, 'modality' | 'encoding'>, payload: Buffer, limits: DecodeLimits, o: { structure?: boolean; data?: boolean } = {}): Promise<ImageShape> {
  const unreadable = (err: unknown): MmadError =>
    new MmadError(ErrorCode.FRAME_CORRUPT, `${frame.modality} frame: payload is not a readable ${frame.encoding.toUpperCase()}: ${messageOf(err)}`, { cause: err });
  if (frame.encoding === 'png') {
    let h;
    let idat: Buffer[] = [];
    try {
      h = pngHeader(payload);
      // the image-data check needs the chunks walked
      if (o.structure === true || o.data === true) idat = checkPngChunks(payload);
    } catch (err) {
      throw unreadable(err);
    }
    if (h.width * h.height > limits.maxPixels) {
      throw shapeError(frame, `PNG header says ${h.width}×${h.height}, over the limit of ${limits.maxPixels} pixels (not decoded)`);
    }
    if (o.data === true) {
      try {
        inflatedRows.put(payload, await verifyPngData(idat, h));
      } catch (err) {
        throw unreadable(err);
      }
    }
    return { format: 'png', width: h.width, height: h.height, depth: h.bitDepth === 16 ? 'ushort' : 'uchar', channels: h.channels };
  }
  try {
    const m = await sharp(payload, { limitInputPixels: pixelLimit(frame.modality, limits) }).metadata();
    return { format: m.format, width: m.width, height: m.height, depth: m.depth, channels: m.channels };
  } catch (err) {
    throw unreadable(err);
  }
}

/**
 * Decodes a frame's payload to pixels, checking it against what the frame
 * declares, crops it to `roi` (a student's region of interest, roi.ts) and
 * resizes the crop to `size` when given (one decode for all). The checks of the
 * declared size are about the whole frame, whatever the roi. A ct volume is
 * decoded whole at its own grid whatever `size` and `roi` say (volume.ts).
 */
export async function decodeFrame(
  frame: Pick<Frame, 'modality' | 'encoding' | 'width' | 'height' | 'channels' | 'dtype' | 'volume'>,
  payload: Buffer,
  limits: DecodeLimits,
  size?: TargetSize,
  roi: Roi | null = null,
): Promise<DecodedImage> {
  const spec = checkDeclared(frame, limits);
  const { width, height, channels } = frame;
  const modality = frame.modality as Modality;
  if (modality === 'ct') {
    const v = decodeVolume(frame, payload, ctLimits(limits));
    return { modality, width, height, channels: 1, data: v.data, volume: { depth: v.depth, voxelSizeMm: v.voxelSizeMm } };
  }
  const box = roiBox(roi, width, height);
  const whole = isWholeFrame(box, width, height);
  const cropped = { width: box.x1 - box.x0, height: box.y1 - box.y0 };
  if (frame.encoding === 'raw') {
    const expected = rawBytes(frame);
    if (payload.length !== expected) {
      throw shapeError(frame, `raw payload has ${payload.length} bytes, ${width}×${height}×${channels} ${spec.dtype} needs ${expected}`);
    }
    // the box's rows in one aligned, owned copy (the whole frame's without a roi)
    const bytes = cropRows(payload, width, channels * BYTES[spec.dtype], box);
    return resizeDecoded(finish({ modality, ...cropped, channels, data: typedView(bytes, spec.dtype) }, !whole), size);
  }

  const meta = await imageShape(frame, payload, limits);
  if (meta.format !== frame.encoding) {
    throw new MmadError(ErrorCode.FRAME_CORRUPT, `${modality} frame: payload is ${meta.format}, the frame says ${frame.encoding}`);
  }
  if (meta.width !== width || meta.height !== height) {
    throw shapeError(frame, `payload is ${meta.width}×${meta.height}, the frame declares ${width}×${height}`);
  }
  const image = (): Sharp => sharp(payload, { limitInputPixels: limits.maxPixels, failOn: 'error', sequentialRead: true });
  // extract called before resize is applied before it (sharp's pre-resize extraction); no resize when the crop has the size already
  const resize = (img: Sharp): Sharp => {
    const c = whole ? img : img.extract({ left: box.x0, top: box.y0, width: cropped.width, height: cropped.height });
    return size === undefined || (size.width === cropped.width && size.height === cropped.height) ? c : c.resize(size.width, size.height, { kernel: 'lanczos3', fit: 'fill' });
  };
  const out = size ?? cropped;
  try {
    if (modality === 'rgb' && meta.depth !== 'uchar') throw shapeError(frame, `PNG sample depth is ${meta.depth}, expected 8-bit`);
    if (modality === 'ir' && meta.depth !== 'ushort') throw shapeError(frame, `PNG sample depth is ${meta.depth}, expected 16-bit`);
    // 8-bit RGB(A) and 16-bit grey PNGs, what stations send, are decoded here (codec/png.ts), then cropped and
    // resized like raw frames; sharp decodes the others (palette, Adam7, a colour profile, grey as rgb)
    const handed = frame.encoding === 'png' ? inflatedRows.take(payload) : undefined;
    if (frame.encoding === 'png' && (modality === 'rgb' ? meta.channels === 3 || meta.channels === 4 : modality === 'ir' && meta.channels === 1)) {
      const samples = await decodePngSamples(payload, handed);
      if (samples !== undefined) {
        const decoded: DecodedImage = { modality, width, height, channels: samples.channels, data: samples.data };
        return await resizeDecoded(whole ? decoded : crop(decoded, box), size);
      }
    }
    if (modality === 'rgb') {
      const { data, info } = await resize(image().removeAlpha()).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw shapeError(frame, `decoded to ${info.channels} channels, expected 3`);
      return { modality, ...out, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
    }
    if (modality === 'ir') {
      const { data } = await resize(image()).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
      return { modality, ...out, channels: 1, data: new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)) };
    }
    // xyz
    if (meta.depth !== 'float' || meta.channels !== 3) {
      throw shapeError(frame, `TIFF has ${meta.channels} × ${meta.depth} samples, expected 3 × float`);
    }
    // decoded whole, then the organised cloud cropped by pixel index: one copy, which also aligns it
    const { data } = await image().toColourspace('scrgb').raw({ depth: 'float' }).toBuffer({ resolveWithObject: true });
    const bytes = cropRows(data, width, 12, box);
    return await resizeDecoded(finish({ modality, ...cropped, channels: 3, data: typedView(bytes, 'float32') }, !whole), size);
  } catch (err) {
    if (err instanceof MmadError && err.code !== ErrorCode.IMAGE_INVALID) throw err;
    throw new MmadError(ErrorCode.FRAME_CORRUPT, `${modality} frame: payload cannot be decoded: ${messageOf(err)}`, { cause: err });
  }
}

/** Samples of a sample type over a fresh, offset-0 (so aligned) buffer, without a copy. */
function typedView(bytes: Uint8Array, dtype: Frame['dtype']): Uint8Array | Uint16Array | Float32Array {
  if (dtype === 'uint8') return bytes;
  if (dtype === 'uint16') return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

/** A decoded image cropped to `box`: one copy of the box's rows, in the same sample type. */
function crop(img: DecodedImage, box: PixelBox): DecodedImage {
  const d = img.data;
  const bytes = cropRows(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), img.width, img.channels * d.BYTES_PER_ELEMENT, box);
  const data = d instanceof Uint8Array ? bytes : typedView(bytes, d instanceof Uint16Array ? 'uint16' : 'float32');
  return { ...img, width: box.x1 - box.x0, height: box.y1 - box.y0, data };
}

/** xyz: NaN/inf points become missing; a cloud without any valid point (in the roi, when `cropped`) cannot be judged. */
function finish(img: DecodedImage, cropped = false): DecodedImage {
  if (img.modality !== 'xyz') return img;
  const d = img.data as Float32Array;
  let nonFinite = 0;
  let valid = 0;
  for (let i = 0; i < d.length; i += 3) {
    const x = d[i] ?? outOfRange(d, i);
    const y = d[i + 1] ?? outOfRange(d, i + 1);
    const z = d[i + 2] ?? outOfRange(d, i + 2);
    if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) {
      d[i] = 0;
      d[i + 1] = 0;
      d[i + 2] = 0;
      nonFinite++;
    } else if (x !== 0 || y !== 0 || z !== 0) {
      valid++;
    }
  }
  if (valid === 0) {
    throw new MmadError(
      ErrorCode.FRAME_CORRUPT,
      `xyz frame: the point cloud has no valid point${cropped ? ' in the region of interest' : ''} (${img.width * img.height} points, ${nonFinite} non-finite, the rest 0,0,0)`,
    );
  }
  img.nonFinitePoints = nonFinite;
  return img;
}

/** Raw frames and point clouds are resized here: images with lanczos3 like sharp, point clouds by nearest valid point. */
async function resizeDecoded(img: DecodedImage, size: TargetSize | undefined): Promise<DecodedImage> {
  if (size === undefined || (size.width === img.width && size.height === img.height)) return img;
  if (img.modality === 'xyz') {
    return { ...img, ...size, data: resizeOrganized(img.data as Float32Array, img.height, img.width, size.height, size.width) };
  }
  const src = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 } });
  const depth = img.modality === 'ir' ? 'ushort' : 'uchar';
  const { data } = await src
    .resize(size.width, size.height, { kernel: 'lanczos3', fit: 'fill' })
    .toColourspace(depth === 'ushort' ? 'grey16' : 'srgb')
    .raw({ depth })
    .toBuffer({ resolveWithObject: true });
  const pixels = depth === 'ushort' ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)) : new Uint8Array(data.buffer, data.byteOffset, data.length);
  return { ...img, ...size, data: pixels };
}

/** writeCHW's float32 copy of an integer image (grown to the largest seen; writeCHW is synchronous, so one is enough). */
let scratch = new Float32Array(0);

/** Writes an image (HWC) into a float32 CHW tensor (raw units) at `offset`, e.g. one slot of a batch. */
export function writeCHW(img: DecodedImage, out: Float32Array, offset = 0): void {
  const plane = img.height * img.width;
  const c = img.channels;
  const px = img.data;
  if (px.length !== plane * c) throw new RangeError(`${px.length} samples for a ${img.width}×${img.height}×${c} image`);
  if (c === 1) {
    out.set(px, offset); // one plane: converted to float32 natively
    return;
  }
  if (c === 3) {
    // converted to float32 natively first, so the loop below reads one kind of array whatever the
    // frame's (a loop over three kinds runs several times slower); then one pass, three planes
    let f: Float32Array;
    if (px instanceof Float32Array) f = px;
    else {
      if (scratch.length < px.length) scratch = new Float32Array(px.length);
      scratch.set(px);
      f = scratch;
    }
    const g = offset + plane;
    const b = g + plane;
    for (let p = 0, i = 0; p < plane; p++, i += 3) {
      out[offset + p] = f[i] ?? outOfRange(f, i);
      out[g + p] = f[i + 1] ?? outOfRange(f, i + 1);
      out[b + p] = f[i + 2] ?? outOfRange(f, i + 2);
    }
    return;
  }
  for (let ch = 0; ch < c; ch++) {
    const base = offset + ch * plane;
    for (let p = 0; p < plane; p++) {
      const i = p * c + ch;
      out[base + p] = px[i] ?? outOfRange(px, i);
    }
  }
}
