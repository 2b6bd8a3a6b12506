/**
 * Reads the TIFFs a dataset holds: MVTec 3D-AD's xyz point clouds (and ours),
 * or any strip-organized 8/16/32-bit TIFF of 1..4 samples — either byte order,
 * contiguous or planar samples, any strip size, uncompressed or Deflate.
 * Everything in the file is checked against its size before it is used, so a
 * truncated or hostile file is an IMAGE_INVALID error, never a crash or a
 * huge allocation. BigTIFF, tiles, JPEG/LZW and the floating-point predictor
 * are refused with a message that says so.
 */
import { inflateSync } from 'node:zlib';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { at, outOfRange } from '../base/invariant.js';
import type { TiffImage, TiffSamples } from './tiff-writer.js';

export interface DecodedTiff extends TiffImage {
  dtype: 'uint8' | 'uint16' | 'float32';
  littleEndian: boolean;
  /** Tag number → values, for callers who need more than the pixels. */
  tags: Map<number, number[]>;
}

const MAX_PIXELS = 64 * 1024 * 1024;
const TYPE_SIZES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8 };

function bad(message: string, cause?: unknown): MmadError {
  return new MmadError(ErrorCode.IMAGE_INVALID, `TIFF: ${message}`, cause === undefined ? {} : { cause });
}

export function decodeTiff(bytes: Buffer | Uint8Array): DecodedTiff {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8) throw bad(`file of ${buf.length} bytes is too short for a header`);
  const order = buf.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') throw bad(`byte-order mark '${buf.subarray(0, 2).toString('hex')}' is neither II nor MM`);
  const le = order === 'II';
  const u16 = (o: number): number => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const magic = u16(2);
  if (magic === 43) throw bad('BigTIFF is not supported');
  if (magic !== 42) throw bad(`magic number ${magic}, expected 42`);
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > buf.length) throw bad(`first IFD offset ${ifd} lies outside the file`);
  const count = u16(ifd);
  if (ifd + 2 + count * 12 + 4 > buf.length) throw bad(`IFD of ${count} entries runs past the end of the file`);

  const tags = new Map<number, number[]>();
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + k * 12;
    const tag = u16(e);
    const type = u16(e + 2);
    const n = u32(e + 4);
    const size = TYPE_SIZES[type];
    if (size === undefined) continue; // an unknown type: skip the tag, as readers must
    const total = size * n;
    if (total > buf.length) throw bad(`tag ${tag} claims ${n} values, more than the file holds`);
    const from = total <= 4 ? e + 8 : u32(e + 8);
    if (from + total > buf.length) throw bad(`values of tag ${tag} lie outside the file`);
    if (type !== 3 && type !== 4 && type !== 1) continue; // pixel layout tags are BYTE, SHORT or LONG
    const values: number[] = [];
    if (n > 1 << 20) throw bad(`tag ${tag} has ${n} values`);
    for (let v = 0; v < n; v++) values.push(type === 3 ? u16(from + 2 * v) : type === 4 ? u32(from + 4 * v) : buf.readUInt8(from + v));
    tags.set(tag, values);
  }
  const one = (tag: number, name: string, dflt?: number): number => {
    const v = tags.get(tag)?.[0] ?? dflt;
    if (v === undefined) throw bad(`required tag ${name} (${tag}) is missing`);
    return v;
  };
  const width = one(256, 'ImageWidth');
  const height = one(257, 'ImageLength');
  const spp = one(277, 'SamplesPerPixel', 1);
  const bitsList = tags.get(258) ?? [1];
  const bits = one(258, 'BitsPerSample', 1);
  const compression = one(259, 'Compression', 1);
  const planar = one(284, 'PlanarConfiguration', 1);
  const format = one(339, 'SampleFormat', 1);
  const predictor = one(317, 'Predictor', 1);
  if (width < 1 || height < 1 || width * height > MAX_PIXELS) throw bad(`image size ${width}x${height} is out of range`);
  if (spp < 1 || spp > 4) throw bad(`${spp} samples per pixel is not supported`);
  if (bitsList.some((b) => b !== bits)) throw bad(`mixed bits per sample ${bitsList.join(',')} are not supported`);
  if (tags.has(322) || tags.has(324)) throw bad('tiled TIFF is not supported (strips only)');
  let dtype: DecodedTiff['dtype'];
  if (format === 3 && bits === 32) dtype = 'float32';
  else if (format === 1 && bits === 16) dtype = 'uint16';
  else if (format === 1 && bits === 8) dtype = 'uint8';
  else throw bad(`samples of ${bits} bits with SampleFormat ${format} are not supported (uint8, uint16, float32 are)`);
  if (compression !== 1 && compression !== 8 && compression !== 32946) {
    throw bad(`compression ${compression} is not supported (none or Deflate)`);
  }
  if (predictor !== 1 && !(predictor === 2 && dtype !== 'float32')) throw bad(`predictor ${predictor} is not supported`);
  if (planar !== 1 && planar !== 2) throw bad(`PlanarConfiguration ${planar} is invalid`);

  const offsets = tags.get(273);
  const counts = tags.get(279);
  if (offsets === undefined || counts === undefined || offsets.length !== counts.length || offsets.length === 0) {
    throw bad('StripOffsets and StripByteCounts are missing or disagree');
  }
  const rowsPerStrip = Math.min(one(278, 'RowsPerStrip', height), height);
  const bytesPerSample = bits / 8;
  const planes = planar === 2 ? spp : 1;
  const samplesPerRow = planar === 2 ? width : width * spp;
  const stripsPerPlane = Math.ceil(height / rowsPerStrip);
  if (offsets.length !== stripsPerPlane * planes) throw bad(`${offsets.length} strips, expected ${stripsPerPlane * planes}`);

  const total = width * height * spp;
  const stripBytes = (s: number): number => Math.min(rowsPerStrip, height - (s % stripsPerPlane) * rowsPerStrip) * samplesPerRow * bytesPerSample;
  // every strip checked against the file before the image is allocated: a small file cannot make it allocate much
  let stored = 0;
  for (const [s, off] of offsets.entries()) {
    const len = at(counts, s);
    if (off + len > buf.length) throw bad(`strip ${s} (offset ${off}, ${len} bytes) runs past the end of the file`);
    if (compression === 1 && len < stripBytes(s)) throw bad(`strip ${s} holds ${len} bytes, expected ${stripBytes(s)}`);
    stored += len;
  }
  // Deflate expands at most about 1032:1
  if (compression !== 1 && stored * 1032 < total * bytesPerSample) {
    throw bad(`${stored} bytes of compressed strips cannot hold a ${width}x${height}x${spp} image`);
  }
  const raw = Buffer.alloc(total * bytesPerSample);
  for (const [s, off] of offsets.entries()) {
    const len = at(counts, s);
    const plane = Math.floor(s / stripsPerPlane);
    const firstRow = (s % stripsPerPlane) * rowsPerStrip;
    const expected = stripBytes(s);
    let strip = buf.subarray(off, off + len);
    if (compression !== 1) {
      try {
        strip = inflateSync(strip, { maxOutputLength: expected });
      } catch (err) {
        throw bad(`strip ${s} does not inflate: ${messageOf(err)}`, err);
      }
    }
    if (strip.length < expected) throw bad(`strip ${s} holds ${strip.length} bytes, expected ${expected}`);
    const planeStart = plane * width * height * bytesPerSample;
    strip.copy(raw, planeStart + firstRow * samplesPerRow * bytesPerSample, 0, expected);
  }
  if (!le && bytesPerSample > 1) {
    if (bytesPerSample === 2) raw.swap16();
    else raw.swap32();
  }
  let data: TiffSamples =
    dtype === 'float32'
      ? new Float32Array(raw.buffer, raw.byteOffset, total)
      : dtype === 'uint16'
        ? new Uint16Array(raw.buffer, raw.byteOffset, total)
        : new Uint8Array(raw.buffer, raw.byteOffset, total);
  if (predictor === 2) undoHorizontalPredictor(data as Uint8Array | Uint16Array, width, height, planar === 2 ? 1 : spp, planes);
  if (planar === 2 && spp > 1) data = interleave(data, width * height, spp);
  return { width, height, samplesPerPixel: spp, data, dtype, littleEndian: le, tags };
}

function undoHorizontalPredictor(d: Uint8Array | Uint16Array, width: number, height: number, stride: number, planes: number): void {
  const mask = d instanceof Uint16Array ? 0xffff : 0xff;
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < height; y++) {
      const row = (p * height + y) * width * stride;
      for (let i = row + stride; i < row + width * stride; i++) d[i] = ((d[i] ?? outOfRange(d, i)) + (d[i - stride] ?? outOfRange(d, i - stride))) & mask;
    }
  }
}

function interleave(d: TiffSamples, pixels: number, spp: number): TiffSamples {
  const out = new (d.constructor as { new (n: number): TiffSamples })(d.length);
  for (let s = 0; s < spp; s++) {
    for (let i = 0; i < pixels; i++) {
      const k = s * pixels + i;
      out[i * spp + s] = d[k] ?? outOfRange(d, k);
    }
  }
  return out;
}

/** Reads an organized point cloud TIFF: must be H×W×3 float32. */
export function decodeXyzTiff(bytes: Buffer | Uint8Array): { width: number; height: number; xyz: Float32Array } {
  const t = decodeTiff(bytes);
  if (t.dtype !== 'float32' || t.samplesPerPixel !== 3) {
    throw bad(`an xyz point cloud must be 3 samples of float32 per pixel, found ${t.samplesPerPixel} of ${t.dtype}`);
  }
  return { width: t.width, height: t.height, xyz: t.data as Float32Array };
}
