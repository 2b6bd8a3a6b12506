/**
 * Reads the TIFFs a dataset holds: MVTec 3D-AD's xyz point clouds (and ours),
 * multi-page CT volumes and their 3D masks (one page per slice, read as a stack),
 * or any strip-organized 8/16/32-bit TIFF of 1..4 samples — either byte order,
 * contiguous or planar samples, any strip size, uncompressed or Deflate.
 * Everything in the file is checked against its size before it is used, so a
 * truncated or hostile file is an IMAGE_INVALID error, never a crash or a
 * huge allocation. BigTIFF, tiles, JPEG/LZW and the floating-point predictor
 * are refused with a message that says so.
 */
import { promisify } from 'node:util';
import { inflate, inflateSync } from 'node:zlib';
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

const inflateAsync = promisify(inflate);

function bad(message: string, cause?: unknown): MmadError {
  return new MmadError(ErrorCode.IMAGE_INVALID, `TIFF: ${message}`, cause === undefined ? {} : { cause });
}

/** The header of a TIFF: byte order and where the first IFD lies. */
interface TiffFile {
  buf: Buffer;
  le: boolean;
  u16: (o: number) => number;
  u32: (o: number) => number;
  firstIfd: number;
}

/** Where one page's pixels lie and how they are stored, every strip checked against the file. */
export interface TiffPageLayout {
  width: number;
  height: number;
  samplesPerPixel: number;
  dtype: DecodedTiff['dtype'];
  tags: Map<number, number[]>;
  /** Offset of the next IFD (0: this is the last page). */
  next: number;
  compression: number;
  predictor: number;
  planar: number;
  rowsPerStrip: number;
  offsets: number[];
  counts: number[];
}

function openTiff(bytes: Buffer | Uint8Array): TiffFile {
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
  return { buf, le, u16, u32, firstIfd: u32(4) };
}

/** Reads the IFD at `ifd` and checks the page it describes against the file, without touching its pixels. */
function pageLayout(f: TiffFile, ifd: number): TiffPageLayout {
  const { buf, u16, u32 } = f;
  if (ifd < 8 || ifd + 2 > buf.length) throw bad(`IFD offset ${ifd} lies outside the file`);
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
  const next = u32(ifd + 2 + count * 12);
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
  const layout: TiffPageLayout = {
    width,
    height,
    samplesPerPixel: spp,
    dtype,
    tags,
    next,
    compression,
    predictor,
    planar,
    rowsPerStrip: Math.min(one(278, 'RowsPerStrip', height), height),
    offsets,
    counts,
  };
  const { stripsPerPlane, planes, stripBytes, bytesPerSample } = geometry(layout);
  if (offsets.length !== stripsPerPlane * planes) throw bad(`${offsets.length} strips, expected ${stripsPerPlane * planes}`);
  // every strip checked against the file before the image is allocated: a small file cannot make it allocate much
  let stored = 0;
  for (const [s, off] of offsets.entries()) {
    const len = at(counts, s);
    if (off + len > buf.length) throw bad(`strip ${s} (offset ${off}, ${len} bytes) runs past the end of the file`);
    if (compression === 1 && len < stripBytes(s)) throw bad(`strip ${s} holds ${len} bytes, expected ${stripBytes(s)}`);
    stored += len;
  }
  // Deflate expands at most about 1032:1
  if (compression !== 1 && stored * 1032 < width * height * spp * bytesPerSample) {
    throw bad(`${stored} bytes of compressed strips cannot hold a ${width}x${height}x${spp} image`);
  }
  return layout;
}

function geometry(l: TiffPageLayout): { bytesPerSample: number; planes: number; samplesPerRow: number; stripsPerPlane: number; stripBytes: (s: number) => number } {
  const bytesPerSample = l.dtype === 'float32' ? 4 : l.dtype === 'uint16' ? 2 : 1;
  const planes = l.planar === 2 ? l.samplesPerPixel : 1;
  const samplesPerRow = l.planar === 2 ? l.width : l.width * l.samplesPerPixel;
  const stripsPerPlane = Math.ceil(l.height / l.rowsPerStrip);
  const stripBytes = (s: number): number => Math.min(l.rowsPerStrip, l.height - (s % stripsPerPlane) * l.rowsPerStrip) * samplesPerRow * bytesPerSample;
  return { bytesPerSample, planes, samplesPerRow, stripsPerPlane, stripBytes };
}

/** Decodes one checked page into `raw` (its samples, file byte order) and returns them in host order, interleaved. */
function decodePage(f: TiffFile, l: TiffPageLayout): TiffSamples {
  const { width, height, samplesPerPixel: spp, dtype } = l;
  const { bytesPerSample, planes, samplesPerRow, stripsPerPlane, stripBytes } = geometry(l);
  const total = width * height * spp;
  const raw = Buffer.alloc(total * bytesPerSample);
  for (const [s, off] of l.offsets.entries()) {
    const len = at(l.counts, s);
    const plane = Math.floor(s / stripsPerPlane);
    const firstRow = (s % stripsPerPlane) * l.rowsPerStrip;
    const expected = stripBytes(s);
    let strip = f.buf.subarray(off, off + len);
    if (l.compression !== 1) {
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
  if (!f.le && bytesPerSample > 1) {
    if (bytesPerSample === 2) raw.swap16();
    else raw.swap32();
  }
  let data: TiffSamples =
    dtype === 'float32'
      ? new Float32Array(raw.buffer, raw.byteOffset, total)
      : dtype === 'uint16'
        ? new Uint16Array(raw.buffer, raw.byteOffset, total)
        : new Uint8Array(raw.buffer, raw.byteOffset, total);
  if (l.predictor === 2) undoHorizontalPredictor(data as Uint8Array | Uint16Array, width, height, l.planar === 2 ? 1 : spp, planes);
  if (l.planar === 2 && spp > 1) data = interleave(data, width * height, spp);
  return data;
}

/**
 * Inflates every Deflate strip of `pages` (tiffPages' layout of `bytes`) in the thread pool,
 * one trip per strip, and checks each holds the bytes its rows need: what a decode would
 * find wrong, found without holding up the event loop (a decode inflates on it). Uncompressed
 * strips were checked against the file when the layout was read. Throws IMAGE_INVALID.
 */
export async function verifyTiffStrips(bytes: Buffer | Uint8Array, pages: readonly TiffPageLayout[]): Promise<void> {
  for (const [k, l] of pages.entries()) {
    if (l.compression === 1) continue;
    const { stripBytes } = geometry(l);
    for (const [s, off] of l.offsets.entries()) {
      const expected = stripBytes(s);
      let strip: Buffer;
      try {
        strip = await inflateAsync(bytes.subarray(off, off + at(l.counts, s)), { maxOutputLength: expected, chunkSize: Math.max(64, expected) });
      } catch (err) {
        throw bad(`page ${k}, strip ${s} does not inflate: ${messageOf(err)}`, err);
      }
      if (strip.length < expected) throw bad(`page ${k}, strip ${s} holds ${strip.length} bytes, expected ${expected}`);
    }
  }
}

/** The first page of a TIFF (the only one of an image). */
export function decodeTiff(bytes: Buffer | Uint8Array): DecodedTiff {
  const f = openTiff(bytes);
  const l = pageLayout(f, f.firstIfd);
  return { width: l.width, height: l.height, samplesPerPixel: l.samplesPerPixel, data: decodePage(f, l), dtype: l.dtype, littleEndian: f.le, tags: l.tags };
}

/**
 * Every page's layout, in file order, checked against the file without decoding a pixel
 * (what a multi-page file holds, cheaply). A chain longer than `maxPages` or one that loops
 * back to an IFD already read is IMAGE_INVALID.
 */
export function tiffPages(bytes: Buffer | Uint8Array, maxPages: number): { littleEndian: boolean; pages: TiffPageLayout[] } {
  const f = openTiff(bytes);
  return { littleEndian: f.le, pages: walkPages(f, maxPages) };
}

function walkPages(f: TiffFile, maxPages: number): TiffPageLayout[] {
  const pages: TiffPageLayout[] = [];
  const seen = new Set<number>();
  for (let ifd = f.firstIfd; ifd !== 0; ) {
    if (seen.has(ifd)) throw bad(`the IFD chain loops back to offset ${ifd}`);
    if (pages.length >= maxPages) throw bad(`more than ${maxPages} pages`);
    seen.add(ifd);
    const page = pageLayout(f, ifd);
    pages.push(page);
    ifd = page.next;
  }
  return pages;
}

/** A multi-page TIFF whose pages share one size and sample layout, as a stack: pages × height × width × samples. */
export interface DecodedTiffStack {
  width: number;
  height: number;
  pages: number;
  samplesPerPixel: number;
  dtype: DecodedTiff['dtype'];
  /** Page after page, each row-major, samples interleaved. */
  data: TiffSamples;
}

/**
 * Reads every page of a multi-page TIFF (a CT volume: one 16-bit greyscale page per slice)
 * into one array. All pages are checked (size, sample layout, strips inside the file) before
 * anything is allocated, and the stack's samples against `maxSamples`; pages that differ in
 * size or sample type are IMAGE_INVALID.
 */
export function decodeTiffStack(bytes: Buffer | Uint8Array, maxPages: number, maxSamples = Number.POSITIVE_INFINITY): DecodedTiffStack {
  const f = openTiff(bytes);
  const pages = walkPages(f, maxPages);
  const first = at(pages, 0);
  for (const [k, p] of pages.entries()) {
    if (p.width !== first.width || p.height !== first.height || p.samplesPerPixel !== first.samplesPerPixel || p.dtype !== first.dtype) {
      throw bad(`page ${k} is ${p.width}x${p.height}x${p.samplesPerPixel} ${p.dtype}, page 0 is ${first.width}x${first.height}x${first.samplesPerPixel} ${first.dtype}`);
    }
  }
  const per = first.width * first.height * first.samplesPerPixel;
  if (per * pages.length > maxSamples) throw bad(`${pages.length} pages of ${per} samples are more than the ${maxSamples} allowed`);
  const Ctor = first.dtype === 'float32' ? Float32Array : first.dtype === 'uint16' ? Uint16Array : Uint8Array;
  const data = new Ctor(per * pages.length);
  for (const [k, p] of pages.entries()) data.set(decodePage(f, p), k * per);
  return { width: first.width, height: first.height, pages: pages.length, samplesPerPixel: first.samplesPerPixel, dtype: first.dtype, data };
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
