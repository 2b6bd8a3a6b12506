/**
 * The file formats of the three modalities and the mask, in one place:
 * rgb → 8-bit sRGB PNG, ir → 16-bit grey PNG, gt → 8-bit grey PNG (sharp),
 * xyz → MVTec 3D-AD float TIFF (our writer). sharp converts to sRGB on output
 * unless told, so every call pins its colourspace: 'srgb' for colour, 'b-w'
 * for 8-bit grey and 'grey16' for thermal — without that a 16-bit image would
 * come back 8-bit or three-channel.
 */
import sharp, { type OutputInfo, type PngOptions as SharpPngOptions, type Sharp } from 'sharp';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import type { GeneratedPart } from './part-generator.js';
import { encodeVolumeTiff, encodeXyzTiff } from '../codec/tiff-writer.js';
import type { CtScan } from './ct-scanner.js';

export interface PngOptions {
  /** zlib level 0..9: 6 is libpng's balance; lower is faster and larger. */
  compressionLevel?: number;
}

const png = (o: PngOptions): SharpPngOptions => ({ compressionLevel: o.compressionLevel ?? 6, adaptiveFiltering: false });

export async function encodeRgbPng(rgb: Uint8Array, width: number, height: number, o: PngOptions = {}): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } }).toColourspace('srgb').png(png(o)).toBuffer();
}

/** 16-bit grey PNG. sharp takes the sample depth of raw input from the typed array, so a Uint16Array is read as 16-bit. */
export async function encodeIrPng(ir: Uint16Array, width: number, height: number, o: PngOptions = {}): Promise<Buffer> {
  return sharp(ir, { raw: { width, height, channels: 1 } }).toColourspace('grey16').png(png(o)).toBuffer();
}

export async function encodeMaskPng(mask: Uint8Array, width: number, height: number, o: PngOptions = {}): Promise<Buffer> {
  return sharp(mask, { raw: { width, height, channels: 1 } }).toColourspace('b-w').png(png(o)).toBuffer();
}

async function raw(bytes: Buffer, what: string, pipeline: (s: Sharp) => Sharp): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    return await pipeline(sharp(bytes)).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new MmadError(ErrorCode.IMAGE_INVALID, `cannot decode ${what}: ${messageOf(err)}`, { cause: err });
  }
}

/** Any image → 8-bit sRGB, 3 channels (alpha dropped). */
export async function decodeRgb(bytes: Buffer): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  const { data, info } = await raw(bytes, 'rgb image', (s) => s.removeAlpha().toColourspace('srgb').raw());
  return { width: info.width, height: info.height, rgb: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** A 16-bit grey PNG → counts. */
export async function decodeIr(bytes: Buffer): Promise<{ width: number; height: number; ir: Uint16Array }> {
  const { data, info } = await raw(bytes, 'thermal image', (s) => s.toColourspace('grey16').raw({ depth: 'ushort' }));
  const copy = Buffer.from(data); // own, aligned storage for the Uint16Array view
  return { width: info.width, height: info.height, ir: new Uint16Array(copy.buffer, copy.byteOffset, copy.length / 2) };
}

/** An 8-bit grey mask PNG → 0..255 per pixel. */
export async function decodeMask(bytes: Buffer): Promise<{ width: number; height: number; mask: Uint8Array }> {
  const { data, info } = await raw(bytes, 'mask', (s) => s.toColourspace('b-w').raw());
  return { width: info.width, height: info.height, mask: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** A CT scan's files: the volume (multi-page 16-bit TIFF), its 3D mask (multi-page 8-bit TIFF) and the mask's projection on the 2D frames (8-bit PNG). */
export async function encodeCtFiles(scan: CtScan, width: number, height: number, compressionLevel?: number): Promise<{ ct: Buffer; mask: Buffer; projection: Buffer }> {
  return {
    ct: encodeVolumeTiff(scan.volume, scan.width, scan.height, scan.depth),
    mask: encodeVolumeTiff(scan.mask, scan.width, scan.height, scan.depth),
    projection: await encodeMaskPng(scan.projection, width, height, compressionLevel === undefined ? {} : { compressionLevel }),
  };
}

/** A part's files, as written to disk and as carried in frames and labels. */
export interface EncodedPart {
  product: string;
  defect: GeneratedPart['defect'];
  visibility: GeneratedPart['visibility'];
  width: number;
  height: number;
  defectPixels: number;
  rgb: Buffer;
  ir: Buffer;
  xyz: Buffer;
  /** 8-bit grey PNG mask (all zero for a good part). */
  gt: Buffer;
}

/**
 * The bytes of a typed array as they lie in memory: row-major little-endian samples on the
 * little-endian hosts this runs on (what `encoding: raw` frames carry and the service reads).
 */
export function rawSamples(a: Uint8Array | Uint16Array | Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A part as a camera streaming uncompressed frames sends it: rgb, ir and xyz as raw samples (`encoding: raw`); the mask stays a PNG. */
export async function rawPart(part: GeneratedPart, o: PngOptions = {}): Promise<EncodedPart> {
  const gt = await encodeMaskPng(part.mask, part.width, part.height, o);
  return withPayloads(part, { rgb: rawSamples(part.rgb), ir: rawSamples(part.ir), xyz: rawSamples(part.xyz), gt });
}

export async function encodePart(part: GeneratedPart, o: PngOptions = {}): Promise<EncodedPart> {
  const { width, height } = part;
  const [rgb, ir, gt] = await Promise.all([
    encodeRgbPng(part.rgb, width, height, o),
    encodeIrPng(part.ir, width, height, o),
    encodeMaskPng(part.mask, width, height, o),
  ]);
  return withPayloads(part, { rgb, ir, xyz: encodeXyzTiff(part.xyz, width, height), gt });
}

function withPayloads(part: GeneratedPart, payloads: Pick<EncodedPart, 'rgb' | 'ir' | 'xyz' | 'gt'>): EncodedPart {
  return {
    product: part.product,
    defect: part.defect,
    visibility: part.visibility,
    width: part.width,
    height: part.height,
    defectPixels: part.defectPixels,
    ...payloads,
  };
}
