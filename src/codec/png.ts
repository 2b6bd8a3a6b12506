/**
 * PNG bytes without a decoder. The frame reader checks every frame's declared
 * shape against the IHDR, and the decoder its sample depth, on the event loop:
 * a header is 33 bytes, while a decoder's metadata call is a trip through the
 * thread pool that queues behind the pixel decoding of frames already joined
 * (so reading new input would wait for judging). Events carry a small 8-bit
 * grey heatmap, written here with zlib: a sharp pipeline per event costs
 * twenty times more CPU for a 64×64 image.
 */
import { promisify } from 'node:util';
import { deflateSync, inflate } from 'node:zlib';
import { ErrorCode, MmadError } from '../base/errors.js';
import { outOfRange } from '../base/invariant.js';

const inflateAsync = promisify(inflate);

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  /** PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colourType: number;
  channels: number;
  /** Adam7-interlaced image data. */
  interlaced: boolean;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Per colour type: its channels and the bit depths the PNG specification allows. */
const COLOUR_TYPES: Record<number, { channels: number; depths: number[] } | undefined> = {
  0: { channels: 1, depths: [1, 2, 4, 8, 16] },
  2: { channels: 3, depths: [8, 16] },
  3: { channels: 1, depths: [1, 2, 4, 8] },
  4: { channels: 2, depths: [8, 16] },
  6: { channels: 4, depths: [8, 16] },
};

/** CRC-32 (ISO-HDLC, as PNG chunks use), table-driven; node:zlib has one only from Node 20.15. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    const i = (c ^ b) & 0xff;
    c = (CRC_TABLE[i] ?? outOfRange(CRC_TABLE, i)) ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Throws IMAGE_INVALID (naming what is wrong) for bytes that do not start with a valid PNG header (CRC checked). */
export function pngHeader(bytes: Buffer): PngHeader {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE) || bytes.toString('latin1', 12, 16) !== 'IHDR') {
    throw new MmadError(ErrorCode.IMAGE_INVALID, 'not a PNG file (no signature and IHDR chunk)');
  }
  if (bytes.readUInt32BE(8) !== 13 || crc32(bytes.subarray(12, 29)) !== bytes.readUInt32BE(29)) {
    throw new MmadError(ErrorCode.IMAGE_INVALID, 'PNG header chunk is damaged (length or CRC does not match)');
  }
  const colourType = bytes.readUInt8(25);
  const bitDepth = bytes.readUInt8(24);
  const kind = COLOUR_TYPES[colourType];
  if (kind === undefined) throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG colour type ${colourType} is invalid`);
  if (!kind.depths.includes(bitDepth)) throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG bit depth ${bitDepth} is invalid for colour type ${colourType}`);
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (width === 0 || height === 0) throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG size ${width}×${height} is empty`);
  return { width, height, bitDepth, colourType, channels: kind.channels, interlaced: bytes[28] === 1 };
}

/**
 * Walks a PNG's chunks from IHDR to IEND by their lengths (no decompression,
 * no CRC of the data): a payload cut short or padded with garbage is found
 * here, at read time, for the cost of a dozen hops. Returns the IDAT chunks'
 * data (views into `bytes`, in order). Throws IMAGE_INVALID.
 */
export function checkPngChunks(bytes: Buffer): Buffer[] {
  return walkPngChunks(bytes).idat;
}

/** checkPngChunks, and whether the PNG embeds a colour profile (iCCP), which a general decoder applies. */
function walkPngChunks(bytes: Buffer): { idat: Buffer[]; profile: boolean } {
  let at = 8;
  const idat: Buffer[] = [];
  let profile = false;
  while (at + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const end = at + 12 + length;
    if (length > 0x7fffffff || end > bytes.length) {
      throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG is cut short: chunk ${JSON.stringify(type)} at byte ${at} needs ${end} bytes, the payload has ${bytes.length}`);
    }
    if (type === 'IDAT') idat.push(bytes.subarray(at + 8, at + 8 + length));
    if (type === 'iCCP') profile = true;
    if (type === 'IEND') {
      if (idat.length === 0) throw new MmadError(ErrorCode.IMAGE_INVALID, 'PNG has no image data (no IDAT chunk)');
      if (end !== bytes.length) throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG has ${bytes.length - end} bytes after its IEND chunk`);
      return { idat, profile };
    }
    at = end;
  }
  throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG is cut short: no IEND chunk in ${bytes.length} bytes`);
}

/** Adam7: per pass, the first column and row and the steps between them. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** The scanlines of the image data: per row, its byte length (filter byte included). */
function scanlines(h: PngHeader): number[] {
  const rowBytes = (w: number): number => 1 + Math.ceil((w * h.channels * h.bitDepth) / 8);
  if (!h.interlaced) return Array.from({ length: h.height }, () => rowBytes(h.width));
  const rows: number[] = [];
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil((h.width - x0) / dx);
    const n = Math.ceil((h.height - y0) / dy);
    if (w > 0) for (let i = 0; i < n; i++) rows.push(rowBytes(w));
  }
  return rows;
}

/**
 * Inflates a PNG's image data (in the thread pool) and checks it holds exactly
 * the scanlines its header needs, each with a valid filter type: what a decoder
 * would find wrong later, found at read time, so a corrupt frame is a dead letter
 * before it joins a part (and a station's retry of it is a new frame, not a
 * duplicate). Inflating is most of a PNG decode's work: measured 0.2-0.7 × the
 * decode (`npm run bench -- codec`), in the thread pool. `idat`: what
 * checkPngChunks returns; returns the inflated scanlines (decodePngSamples can
 * take them instead of inflating again); throws IMAGE_INVALID.
 */
export async function verifyPngData(idat: Buffer[], h: PngHeader): Promise<Buffer> {
  return inflateScanlines(idat, h);
}

/**
 * The image data inflated, its length and every scanline's filter type checked.
 * In one trip through the thread pool: the output buffer is sized to what the
 * header needs (node's default of 16 KiB chunks made a 256² RGB frame a dozen
 * trips, 2-3× the CPU of inflating it).
 */
async function inflateScanlines(idat: Buffer[], h: PngHeader): Promise<Buffer> {
  const rows = scanlines(h);
  const expected = rows.reduce((a, b) => a + b, 0);
  let data: Buffer;
  try {
    data = await inflateAsync(idat.length === 1 ? (idat[0] ?? outOfRange(idat, 0)) : Buffer.concat(idat), { maxOutputLength: expected + 1, chunkSize: Math.max(64, expected + 1) });
  } catch (err) {
    throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG image data does not inflate: ${(err as Error).message}`, { cause: err });
  }
  if (data.length !== expected) {
    throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG image data inflates to ${data.length > expected ? 'more than' : data.length} bytes, a ${h.width}×${h.height} image needs ${expected}`);
  }
  for (let i = 0, at = 0; i < rows.length; i++) {
    const filter = data[at] ?? outOfRange(data, at);
    if (filter > 4) throw new MmadError(ErrorCode.IMAGE_INVALID, `PNG scanline ${i} has filter type ${filter} (0..4 are valid)`);
    at += rows[i] ?? outOfRange(rows, i);
  }
  return data;
}

/** A PNG's samples, row-major and interleaved (HWC), alpha dropped: what sharp's `removeAlpha().raw()` gives for the same file. */
export interface PngSamples {
  width: number;
  height: number;
  /** Colour channels (1 grey, 3 RGB), without alpha. */
  channels: number;
  data: Uint8Array | Uint16Array;
}

/**
 * Decodes the PNGs stations send: not interlaced, 8 or 16 bits per sample, grey
 * or RGB with or without alpha, no embedded colour profile. Inflated in one trip
 * through the thread pool, unfiltered row by row here. `undefined` for any other
 * PNG (palette, fewer bits, Adam7, a profile to apply): a general decoder takes
 * those. For the 256² rgb and ir frames of the simulated line this is about a
 * third of the CPU of a sharp pipeline per frame. `inflated`: the scanlines
 * verifyPngData returned for these bytes (their filter types checked there), used
 * instead of inflating again. Throws IMAGE_INVALID for a damaged file.
 */
export async function decodePngSamples(bytes: Buffer, inflated?: Buffer): Promise<PngSamples | undefined> {
  const h = pngHeader(bytes);
  if (h.interlaced || h.bitDepth < 8 || h.colourType === 3) return undefined;
  const { idat, profile } = walkPngChunks(bytes);
  if (profile) return undefined;
  const bytesPerSample = h.bitDepth / 8;
  const bpp = h.channels * bytesPerSample; // bytes per pixel, alpha included
  const colours = h.colourType === 4 || h.colourType === 6 ? h.channels - 1 : h.channels;
  const rowBytes = h.width * bpp;
  // the scanlines handed over are used when they have this image's length (filter byte + row, per row)
  const data = inflated?.length === h.height * (rowBytes + 1) ? inflated : await inflateScanlines(idat, h);
  // samples without alpha are the unfiltered rows as they are (16-bit: big-endian, swapped once at the end):
  // unfiltered straight into the output, each row against the one above it there; with alpha, into two
  // alternating rows, then the colours copied out
  const whole = colours === h.channels;
  const bytesOut = new Uint8Array(h.width * h.height * colours * bytesPerSample);
  const out = bytesPerSample === 1 || whole ? bytesOut : new Uint16Array(bytesOut.buffer);
  const rows = whole ? bytesOut : new Uint8Array(2 * rowBytes);
  let o = 0;
  for (let y = 0; y < h.height; y++) {
    const start = y * (rowBytes + 1);
    const cur = whole ? y * rowBytes : (y % 2) * rowBytes;
    const up = y === 0 ? -1 : whole ? cur - rowBytes : rowBytes - cur; // -1: the row above the first is zeros
    unfilterRow(data[start] ?? outOfRange(data, start), data, start + 1, rows, cur, up, rowBytes, bpp);
    if (whole) continue;
    if (bytesPerSample === 1) {
      for (let i = cur; i < cur + rowBytes; i += bpp) for (let c = 0; c < colours; c++) out[o++] = rows[i + c] ?? outOfRange(rows, i + c);
    } else {
      for (let i = cur; i < cur + rowBytes; i += bpp) {
        for (let c = 0; c < colours; c++) {
          const j = i + 2 * c;
          out[o++] = ((rows[j] ?? outOfRange(rows, j)) << 8) | (rows[j + 1] ?? outOfRange(rows, j + 1));
        }
      }
    }
  }
  if (bytesPerSample === 1) return { width: h.width, height: h.height, channels: colours, data: bytesOut };
  if (whole && !BIG_ENDIAN) Buffer.from(bytesOut.buffer).swap16();
  return { width: h.width, height: h.height, channels: colours, data: whole ? new Uint16Array(bytesOut.buffer) : out };
}

const BIG_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 0;

/**
 * One scanline's filter undone (PNG specification, section 9): the `n` filtered bytes at `line[at]` into
 * `out[o]`, the row above unfiltered at `out[up]` (-1: the first row, whose row above is zeros). Offsets,
 * not subarrays: no object per row.
 */
function unfilterRow(filter: number, line: Uint8Array, at: number, out: Uint8Array, o: number, up: number, n: number, bpp: number): void {
  const b = (i: number): number => (up < 0 ? 0 : (out[up + i] ?? outOfRange(out, up + i)));
  switch (filter) {
    case 0:
      out.set(line.subarray(at, at + n), o);
      return;
    case 1:
      for (let i = 0; i < n; i++) out[o + i] = ((line[at + i] ?? outOfRange(line, at + i)) + (i >= bpp ? (out[o + i - bpp] ?? outOfRange(out, o + i - bpp)) : 0)) & 0xff;
      return;
    case 2:
      for (let i = 0; i < n; i++) out[o + i] = ((line[at + i] ?? outOfRange(line, at + i)) + b(i)) & 0xff;
      return;
    case 3:
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? (out[o + i - bpp] ?? outOfRange(out, o + i - bpp)) : 0;
        out[o + i] = ((line[at + i] ?? outOfRange(line, at + i)) + ((left + b(i)) >> 1)) & 0xff;
      }
      return;
    default: {
      // 4, Paeth (inflateScanlines has checked the filter types)
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? (out[o + i - bpp] ?? outOfRange(out, o + i - bpp)) : 0;
        const bb = b(i);
        const c = i >= bpp ? b(i - bpp) : 0;
        const p = a + bb - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - bb);
        const pc = Math.abs(p - c);
        const pred = pa <= pb && pa <= pc ? a : pb <= pc ? bb : c;
        out[o + i] = ((line[at + i] ?? outOfRange(line, at + i)) + pred) & 0xff;
      }
    }
  }
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit greyscale PNG of `grey` (row-major, width × height), non-interlaced, filter type 0 per row. */
export function encodeGreyPng(grey: Uint8Array, width: number, height: number): Buffer {
  if (grey.length !== width * height || width < 1 || height < 1) throw new RangeError(`${grey.length} grey values for a ${width}×${height} image`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: grey; compression, filter and interlace methods stay 0
  const rows = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) rows.set(grey.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}
