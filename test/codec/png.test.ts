/**
 * codec/png.ts's decoder against sharp's (libvips/libspng): every filter type of the PNG
 * specification, 8 and 16 bits, with and without alpha, written by an encoder of this
 * test that chooses each row's filter, and PNGs written by sharp itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { decodePngSamples } from '../../src/codec/png.js';
import { ErrorCode, MmadError } from '../../src/base/errors.js';

/** Pixels with smooth gradients and noise, so every filter has something to predict. */
function samples(w: number, h: number, channels: number, bits: 8 | 16, seed: number): Uint8Array | Uint16Array {
  const max = bits === 8 ? 255 : 65535;
  const out = bits === 8 ? new Uint8Array(w * h * channels) : new Uint16Array(w * h * channels);
  let s = seed;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < channels; c++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        const v = ((x * (c + 1) * max) / w + (y * max) / h) / 2 + ((s % 41) - 20) * (max / 255);
        out[(y * w + x) * channels + c] = Math.max(0, Math.min(max, Math.round(v)));
      }
    }
  }
  return out;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/** A PNG of `px` whose row y is filtered with `filterOf(y)` (0 none, 1 sub, 2 up, 3 average, 4 Paeth). */
function encode(px: Uint8Array | Uint16Array, w: number, h: number, colourType: 0 | 2 | 4 | 6, filterOf: (y: number) => number, extra: Buffer[] = []): Buffer {
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType];
  const bytes = px instanceof Uint16Array ? 2 : 1;
  const bpp = channels * bytes;
  const rowBytes = w * bpp;
  const raw = Buffer.alloc(h * rowBytes);
  for (let i = 0; i < px.length; i++) {
    const v = px[i] ?? 0;
    if (bytes === 2) raw.writeUInt16BE(v, i * 2);
    else raw[i] = v;
  }
  const out = Buffer.alloc(h * (rowBytes + 1));
  for (let y = 0; y < h; y++) {
    const f = filterOf(y);
    out[y * (rowBytes + 1)] = f;
    for (let i = 0; i < rowBytes; i++) {
      const x = raw[y * rowBytes + i] ?? 0;
      const a = i >= bpp ? (raw[y * rowBytes + i - bpp] ?? 0) : 0;
      const b = y > 0 ? (raw[(y - 1) * rowBytes + i] ?? 0) : 0;
      const c = i >= bpp && y > 0 ? (raw[(y - 1) * rowBytes + i - bpp] ?? 0) : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f] ?? 0;
      out[y * (rowBytes + 1) + 1 + i] = (x - pred) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = bytes * 8;
  ihdr[9] = colourType;
  // two IDAT chunks, as encoders that stream write them
  const z = deflateSync(out);
  const half = z.length >> 1;
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), ...extra, chunk('IDAT', z.subarray(0, half)), chunk('IDAT', z.subarray(half)), chunk('IEND', Buffer.alloc(0))]);
}

/** What sharp decodes from the same bytes, alpha removed, in the file's own colour space and depth (as inference/preprocess.ts pins them). */
async function bySharp(png: Buffer, bits: 8 | 16, grey: boolean): Promise<number[]> {
  const space = grey ? (bits === 16 ? 'grey16' : 'b-w') : bits === 16 ? 'rgb16' : 'srgb';
  const { data } = await sharp(png).removeAlpha().toColourspace(space).raw({ depth: bits === 16 ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  return bits === 16 ? [...new Uint16Array(data.buffer, data.byteOffset, data.length / 2)] : [...data];
}

const withoutAlpha = (px: Uint8Array | Uint16Array, channels: number): number[] => [...px].filter((_, i) => i % channels !== channels - 1);

test('every filter type, 8 and 16 bits, with and without alpha: the samples written, as sharp decodes them', async () => {
  const [w, h] = [37, 23];
  const filters: [string, (y: number) => number][] = [
    ['none', () => 0],
    ['sub', () => 1],
    ['up', () => 2],
    ['average', () => 3],
    ['paeth', () => 4],
    ['mixed', (y) => (y * 7) % 5],
  ];
  const kinds = [
    { colourType: 2, channels: 3, bits: 8 },
    { colourType: 6, channels: 4, bits: 8 },
    { colourType: 0, channels: 1, bits: 16 },
    { colourType: 4, channels: 2, bits: 16 },
    { colourType: 2, channels: 3, bits: 16 },
    { colourType: 0, channels: 1, bits: 8 },
  ] as const;
  for (const k of kinds) {
    const px = samples(w, h, k.channels, k.bits, 7 + k.colourType);
    const colours = k.colourType === 4 || k.colourType === 6 ? withoutAlpha(px, k.channels) : [...px];
    for (const [name, f] of filters) {
      const png = encode(px, w, h, k.colourType, f);
      const got = await decodePngSamples(png);
      const what = `colour type ${k.colourType}, ${k.bits}-bit, filter ${name}`;
      assert.ok(got !== undefined, what);
      assert.deepEqual([got.width, got.height, got.channels], [w, h, k.colourType === 4 || k.colourType === 6 ? k.channels - 1 : k.channels], what);
      assert.ok(k.bits === 16 ? got.data instanceof Uint16Array : got.data instanceof Uint8Array, what);
      assert.deepEqual([...got.data], colours, `${what}: the samples written`);
      assert.deepEqual([...got.data], await bySharp(png, k.bits, k.colourType === 0 || k.colourType === 4), `${what}: as sharp decodes them`);
    }
  }
});

test('PNGs written by sharp (adaptive filtering) decode as sharp reads them back', async () => {
  const [w, h] = [64, 48];
  const rgb = Buffer.from(samples(w, h, 3, 8, 3));
  const ir = samples(w, h, 1, 16, 5) as Uint16Array;
  const pngs: [Buffer, 8 | 16, boolean][] = [
    [await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png({ adaptiveFiltering: true }).toBuffer(), 8, false],
    [await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png({ adaptiveFiltering: false, compressionLevel: 1 }).toBuffer(), 8, false],
    [await sharp(ir, { raw: { width: w, height: h, channels: 1 } }).toColourspace('grey16').png({ adaptiveFiltering: true }).toBuffer(), 16, true],
  ];
  for (const [png, bits, grey] of pngs) {
    const got = await decodePngSamples(png);
    assert.ok(got !== undefined);
    assert.deepEqual([...got.data], await bySharp(png, bits, grey));
  }
});

test('what it leaves to a general decoder (undefined), and damaged data (IMAGE_INVALID)', async () => {
  const px = samples(16, 8, 3, 8, 1) as Uint8Array;
  const interlaced = await sharp(Buffer.from(px), { raw: { width: 16, height: 8, channels: 3 } }).png({ progressive: true }).toBuffer();
  const palette = await sharp(Buffer.from(px), { raw: { width: 16, height: 8, channels: 3 } }).png({ palette: true }).toBuffer();
  const profiled = encode(px, 16, 8, 2, () => 0, [chunk('iCCP', Buffer.concat([Buffer.from('p\0\0', 'latin1'), deflateSync(Buffer.alloc(8))]))]);
  for (const [name, png] of [['Adam7', interlaced], ['palette', palette], ['a colour profile', profiled]] as const) {
    assert.equal(await decodePngSamples(png), undefined, name);
  }
  const good = encode(px, 16, 8, 2, () => 4);
  const cut = good.subarray(0, good.length - 20);
  const err = await decodePngSamples(cut).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof MmadError && err.code === ErrorCode.IMAGE_INVALID, String(err));
  const bad = encode(px, 16, 8, 2, (y) => (y === 3 ? 7 : 0));
  await assert.rejects(decodePngSamples(bad), /scanline 3 has filter type 7/);
});
