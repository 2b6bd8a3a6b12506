/**
 * Writes the TIFF that MVTec 3D-AD uses for its organized point clouds:
 * classic TIFF, little-endian, one image, uncompressed, interleaved samples
 * (PlanarConfiguration 1), three 32-bit IEEE float samples per pixel
 * (SampleFormat 3) — what `tifffile.imread` returns as an H×W×3 float32 array.
 * The layout is header, IFD, out-of-line tag values, then one strip holding
 * the whole image, so the pixel data starts at a fixed, 16-byte-aligned offset.
 *
 * Also writes 1- or 3-sample 8/16-bit images the same way (used by tests and
 * tools; the sensors' images themselves travel as PNG), and multi-page files of
 * them, one IFD per page: a CT volume, one 16-bit greyscale page per slice.
 */
import { outOfRange } from '../base/invariant.js';
export type TiffSamples = Float32Array | Uint16Array | Uint8Array;

export interface TiffImage {
  width: number;
  height: number;
  samplesPerPixel: number;
  data: TiffSamples;
}

const TYPE_SHORT = 3;
const TYPE_LONG = 4;

// tag numbers (TIFF 6.0)
const IMAGE_WIDTH = 256;
const IMAGE_LENGTH = 257;
const BITS_PER_SAMPLE = 258;
const COMPRESSION = 259;
const PHOTOMETRIC = 262;
const STRIP_OFFSETS = 273;
const SAMPLES_PER_PIXEL = 277;
const ROWS_PER_STRIP = 278;
const STRIP_BYTE_COUNTS = 279;
const PLANAR_CONFIGURATION = 284;
const SAMPLE_FORMAT = 339;

interface Entry {
  tag: number;
  type: number;
  values: number[];
}

function sampleInfo(data: TiffSamples): { bits: number; format: number } {
  if (data instanceof Float32Array) return { bits: 32, format: 3 }; // IEEE float
  if (data instanceof Uint16Array) return { bits: 16, format: 1 }; // unsigned integer
  return { bits: 8, format: 1 };
}

export function encodeTiff(img: TiffImage): Buffer {
  return encodeTiffPages([img]);
}

/**
 * A multi-page TIFF: one IFD per image, chained in order (what `tifffile.imread` returns as a
 * pages × H × W [× samples] array when the pages agree). Each page is laid out as a single
 * image is (its IFD, its out-of-line values, its strip), one after the other.
 */
export function encodeTiffPages(pages: readonly TiffImage[]): Buffer {
  if (pages.length === 0) throw new RangeError('a TIFF needs at least one page');
  const parts: Buffer[] = [];
  let offset = 8;
  const ifdOffsets: number[] = [];
  const laid = pages.map((img) => {
    const page = layPage(img, offset);
    ifdOffsets.push(offset);
    offset += page.length;
    return page;
  });
  const header = Buffer.alloc(8);
  header.write('II', 0, 'latin1');
  header.writeUInt16LE(42, 2);
  header.writeUInt32LE(8, 4);
  parts.push(header);
  laid.forEach((page, k) => {
    // the IFD's next-IFD field: the next page's IFD, or 0 after the last page
    const next = ifdOffsets[k + 1] ?? 0;
    page.writeUInt32LE(next, 2 + PAGE_TAGS * 12);
    parts.push(page);
  });
  return Buffer.concat(parts);
}

/** Tags each page's IFD has. */
const PAGE_TAGS = 11;

/** One page (IFD, out-of-line values, strip) as it lies at `base` in the file; its next-IFD field is left 0. */
function layPage(img: TiffImage, base: number): Buffer {
  const { width, height, samplesPerPixel: spp, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`TIFF size ${width}x${height} is not a positive integer size`);
  }
  if (spp !== 1 && spp !== 3) throw new RangeError(`TIFF with ${spp} samples per pixel: only 1 or 3 are written`);
  if (data.length !== width * height * spp) {
    throw new RangeError(`TIFF data has ${data.length} samples, expected ${width}x${height}x${spp}`);
  }
  const { bits, format } = sampleInfo(data);
  const byteCount = data.length * (bits / 8);
  const stripOffsets: Entry = { tag: STRIP_OFFSETS, type: TYPE_LONG, values: [0] }; // set below
  const entries: Entry[] = [
    { tag: IMAGE_WIDTH, type: TYPE_LONG, values: [width] },
    { tag: IMAGE_LENGTH, type: TYPE_LONG, values: [height] },
    { tag: BITS_PER_SAMPLE, type: TYPE_SHORT, values: new Array<number>(spp).fill(bits) },
    { tag: COMPRESSION, type: TYPE_SHORT, values: [1] },
    // RGB for three interleaved samples needs no ExtraSamples tag and is what readers expect for H×W×3
    { tag: PHOTOMETRIC, type: TYPE_SHORT, values: [spp === 3 ? 2 : 1] },
    stripOffsets,
    { tag: SAMPLES_PER_PIXEL, type: TYPE_SHORT, values: [spp] },
    { tag: ROWS_PER_STRIP, type: TYPE_LONG, values: [height] },
    { tag: STRIP_BYTE_COUNTS, type: TYPE_LONG, values: [byteCount] },
    { tag: PLANAR_CONFIGURATION, type: TYPE_SHORT, values: [1] },
    { tag: SAMPLE_FORMAT, type: TYPE_SHORT, values: new Array<number>(spp).fill(format) },
  ];
  const ifdSize = 2 + entries.length * 12 + 4;
  // values that do not fit in the entry's 4 bytes go right after the IFD
  let extra = ifdSize;
  const outOfLine = new Map<Entry, number>();
  for (const e of entries) {
    const size = e.values.length * (e.type === TYPE_SHORT ? 2 : 4);
    if (size > 4) {
      outOfLine.set(e, extra);
      extra += size + (size % 2); // word-aligned, as TIFF asks
    }
  }
  // the pixel data starts 16-byte aligned in the file
  const dataOffset = Math.ceil((base + extra) / 16) * 16 - base;
  stripOffsets.values[0] = base + dataOffset;
  // the page ends word-aligned, so the next page's IFD starts on a word boundary
  const buf = Buffer.alloc(dataOffset + byteCount + ((dataOffset + byteCount) % 2));
  buf.writeUInt16LE(entries.length, 0);
  let p = 2;
  const writeValues = (e: Entry, at: number): void => {
    e.values.forEach((v, k) => (e.type === TYPE_SHORT ? buf.writeUInt16LE(v, at + 2 * k) : buf.writeUInt32LE(v, at + 4 * k)));
  };
  for (const e of entries) {
    buf.writeUInt16LE(e.tag, p);
    buf.writeUInt16LE(e.type, p + 2);
    buf.writeUInt32LE(e.values.length, p + 4);
    const at = outOfLine.get(e);
    if (at === undefined) writeValues(e, p + 8);
    else {
      buf.writeUInt32LE(base + at, p + 8);
      writeValues(e, at);
    }
    p += 12;
  }
  // sample data, little-endian; typed arrays are in host order, so go through a DataView-free copy only on big-endian hosts
  const bytes = new Uint8Array(data.buffer, data.byteOffset, byteCount);
  if (HOST_LITTLE_ENDIAN || bits === 8) buf.set(bytes, dataOffset);
  else {
    const step = bits / 8;
    for (let i = 0; i < byteCount; i += step) {
      for (let b = 0; b < step; b++) {
        const k = i + step - 1 - b;
        buf[dataOffset + i + b] = bytes[k] ?? outOfRange(bytes, k);
      }
    }
  }
  return buf;
}

export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** An organized point cloud (H×W×3 float32, metres, missing = 0,0,0) as MVTec 3D-AD's xyz TIFF bytes. */
export function encodeXyzTiff(xyz: Float32Array, width: number, height: number): Buffer {
  return encodeTiff({ width, height, samplesPerPixel: 3, data: xyz });
}

/**
 * A volume (depth × height × width samples, slice-major, one sample per voxel) as a multi-page
 * greyscale TIFF, one page per slice: a CT frame's payload (uint16) or its 3D ground-truth mask (uint8).
 */
export function encodeVolumeTiff(data: Uint16Array | Uint8Array, width: number, height: number, depth: number): Buffer {
  if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`volume depth ${depth} is not a positive integer`);
  if (data.length !== width * height * depth) throw new RangeError(`volume data has ${data.length} samples, expected ${width}x${height}x${depth}`);
  const slice = width * height;
  const pages: TiffImage[] = [];
  for (let z = 0; z < depth; z++) pages.push({ width, height, samplesPerPixel: 1, data: data.subarray(z * slice, (z + 1) * slice) });
  return encodeTiffPages(pages);
}
