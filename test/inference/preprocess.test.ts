import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import type { Frame } from '../../src/codec/records.js';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { present } from '../../src/base/invariant.js';
import { InflatedRows, checkVolumePayload, decodeFrame, imageShape, inflatedRows, writeCHW } from '../../src/inference/preprocess.js';
import { encodeVolumeTiff, encodeXyzTiff } from '../../src/codec/tiff-writer.js';
import { sampleFrame } from '../helpers/records.js';

const LIMITS = { maxPixels: 4096 * 4096 };

function rgbPixels(w: number, h: number): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
  return px;
}

async function png(px: Uint8Array | Uint16Array, w: number, h: number, channels: 1 | 3): Promise<Buffer> {
  return sharp(px, { raw: { width: w, height: h, channels } }).toColourspace(px instanceof Uint16Array ? 'grey16' : 'srgb').png().toBuffer();
}

function frame(modality: Frame['modality'], encoding: Frame['encoding'], w: number, h: number, payload: Buffer): Frame {
  const spec = { rgb: [3, 'uint8'], ir: [1, 'uint16'], xyz: [3, 'float32'] } as const;
  const [channels, dtype] = spec[modality as 'rgb' | 'ir' | 'xyz'];
  return sampleFrame(payload, { modality, encoding, width: w, height: h, channels, dtype });
}

/** A PNG whose IHDR claims another size (CRC fixed up), as a decompression bomb's header does. */
function withPngSize(pngBytes: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(pngBytes);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29); // CRC over chunk type + IHDR data
  return out;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MmadError, String(e));
    return e.code;
  }
  return 'no error';
}

test('rgb PNG decodes to the exact 8-bit values', async () => {
  const px = rgbPixels(20, 10);
  const img = await decodeFrame(frame('rgb', 'png', 20, 10, await png(px, 20, 10, 3)), (await png(px, 20, 10, 3)), LIMITS);
  assert.equal(img.channels, 3);
  assert.deepEqual([...img.data], [...px]);
  const chw = new Float32Array(3 * 200);
  writeCHW(img, chw);
  assert.equal(chw[0], px[0]);
  assert.equal(chw[200], px[1], 'second plane is the G channel');
});

test('16-bit infrared PNG keeps its values (no sRGB conversion)', async () => {
  const px = new Uint16Array(16 * 8);
  for (let i = 0; i < px.length; i++) px[i] = (i * 4099) % 65536;
  const bytes = await png(px, 16, 8, 1);
  const img = await decodeFrame(frame('ir', 'png', 16, 8, bytes), bytes, LIMITS);
  assert.ok(img.data instanceof Uint16Array);
  assert.deepEqual([...img.data], [...px]);
});

test('xyz float TIFF (MVTec 3D-AD layout) decodes exactly, NaN included', async () => {
  const w = 6;
  const h = 4;
  const pc = new Float32Array(w * h * 3).map((_, i) => 0.001 * i - 0.01);
  const tiff = encodeXyzTiff(pc, w, h);
  const img = await decodeFrame(frame('xyz', 'tiff', w, h, tiff), tiff, LIMITS);
  assert.deepEqual([...img.data], [...pc]);
  pc.set([Number.NaN, 1, 2], 3);
  const withNaN = await decodeFrame(frame('xyz', 'tiff', w, h, encodeXyzTiff(pc, w, h)), encodeXyzTiff(pc, w, h), LIMITS);
  assert.equal(withNaN.nonFinitePoints, 1);
  assert.deepEqual([...withNaN.data.subarray(3, 6)], [0, 0, 0]);
});

test('xyz NaN/inf points become missing (0,0,0) and are counted', async () => {
  const pc = new Float32Array(4 * 4 * 3).fill(0.25);
  pc.set([Number.NaN, 1, 2], 3);
  pc.set([Number.POSITIVE_INFINITY, 0, 0], 9);
  const bytes = Buffer.from(pc.buffer);
  const img = await decodeFrame(frame('xyz', 'raw', 4, 4, bytes), bytes, LIMITS);
  assert.equal(img.nonFinitePoints, 2);
  const want = Float32Array.from(pc);
  want.set([0, 0, 0], 3);
  want.set([0, 0, 0], 9);
  assert.deepEqual([...img.data], [...want]);
});

test('raw payloads of every modality decode, and resize to the model size', async () => {
  const px = rgbPixels(8, 8);
  const img = await decodeFrame(frame('rgb', 'raw', 8, 8, Buffer.from(px)), Buffer.from(px), LIMITS, { height: 4, width: 4 });
  assert.equal(img.width, 4);
  assert.equal(img.data.length, 48);
  const pc = new Float32Array(8 * 8 * 3).fill(0.5);
  const x = await decodeFrame(frame('xyz', 'raw', 8, 8, Buffer.from(pc.buffer)), Buffer.from(pc.buffer), LIMITS, { height: 4, width: 4 });
  assert.ok([...x.data].every((v) => v === 0.5), 'point-cloud resize picks source points');
});

test('bad frames get the precise error: corrupt bytes, wrong size, wrong depth, bombs, empty clouds', async () => {
  const good = await png(rgbPixels(20, 10), 20, 10, 3);
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 20, 10, Buffer.from('not a png')), Buffer.from('not a png'), LIMITS)), ErrorCode.FRAME_CORRUPT);
  const truncated = good.subarray(0, good.length - 30);
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 20, 10, truncated), truncated, LIMITS)), ErrorCode.FRAME_CORRUPT);
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 21, 10, good), good, LIMITS)), ErrorCode.FRAME_SHAPE);
  const ir16 = await png(new Uint16Array(200), 20, 10, 1);
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 20, 10, ir16), ir16, LIMITS)), ErrorCode.FRAME_SHAPE, 'a 16-bit grey PNG on the rgb topic');
  assert.equal(await code(decodeFrame(frame('ir', 'png', 20, 10, good), good, LIMITS)), ErrorCode.FRAME_SHAPE, 'an 8-bit PNG on the ir topic');
  assert.equal(await code(decodeFrame({ ...frame('rgb', 'png', 20, 10, good), channels: 1 }, good, LIMITS)), ErrorCode.FRAME_SHAPE);
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 100_000, 100_000, good), good, LIMITS)), ErrorCode.FRAME_SHAPE, 'declared 1e5 × 1e5');
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 0, 0, good), good, LIMITS)), ErrorCode.FRAME_SHAPE, 'declared 0 × 0');
  // a PNG whose header says 30000 × 30000: refused from the header, before decoding
  const bomb = withPngSize(good, 30_000, 30_000);
  const refused = await decodeFrame(frame('rgb', 'png', 20, 10, bomb), bomb, LIMITS).then(() => null, (e: unknown) => e as MmadError);
  assert.equal(refused?.code, ErrorCode.FRAME_SHAPE);
  assert.match(refused.message, /30000×30000, over the limit/);
  // a header whose CRC does not match is corrupt, whatever it says
  const forged = Buffer.from(good);
  forged.writeUInt32BE(11, 16);
  assert.equal(await code(decodeFrame(frame('rgb', 'png', 11, 10, forged), forged, LIMITS)), ErrorCode.FRAME_CORRUPT);
  const zeros = new Float32Array(4 * 4 * 3);
  assert.equal(await code(decodeFrame(frame('xyz', 'raw', 4, 4, Buffer.from(zeros.buffer)), Buffer.from(zeros.buffer), LIMITS)), ErrorCode.FRAME_CORRUPT);
  assert.equal(await code(decodeFrame(frame('xyz', 'raw', 4, 4, Buffer.alloc(10)), Buffer.alloc(10), LIMITS)), ErrorCode.FRAME_SHAPE);
  assert.equal(await code(decodeFrame({ ...frame('rgb', 'png', 20, 10, good), modality: 'unknown' }, good, LIMITS)), ErrorCode.FRAME_UNKNOWN_MODALITY);
});

test('image data checked at read time: good PNGs pass (8 and 16 bit, interlaced); damaged data is FRAME_CORRUPT naming the fault', async () => {
  const shape = (f: Pick<Frame, 'modality' | 'encoding'>, p: Buffer) => imageShape(f, p, LIMITS, { structure: true, data: true });
  const rgb = await png(rgbPixels(20, 10), 20, 10, 3);
  const ir = await png(Uint16Array.from({ length: 77 * 13 }, (_, i) => i * 37), 77, 13, 1);
  const interlaced = await sharp(Buffer.from(rgbPixels(23, 9)), { raw: { width: 23, height: 9, channels: 3 } }).png({ progressive: true }).toBuffer();
  assert.equal(interlaced[28], 1, 'the fixture is Adam7-interlaced');
  for (const [m, p] of [['rgb', rgb], ['ir', ir], ['rgb', interlaced]] as const) assert.equal((await shape({ modality: m, encoding: 'png' }, p)).format, 'png');
  const reason = (p: Buffer): Promise<string> => shape({ modality: 'rgb', encoding: 'png' }, p).then(() => 'accepted', (e: unknown) => `${(e as MmadError).code}: ${(e as Error).message}`);
  // the image data rewritten with the chunk's CRC fixed: only inflating finds it
  const idat = (p: Buffer, edit: (data: Buffer) => Buffer): Buffer => {
    const at = p.indexOf('IDAT');
    const len = p.readUInt32BE(at - 4);
    const data = edit(Buffer.from(p.subarray(at + 4, at + 4 + len)));
    const body = Buffer.concat([Buffer.from('IDAT'), data]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([p.subarray(0, at - 4), head, body, crc, p.subarray(at + 8 + len)]);
  };
  assert.match(await reason(idat(rgb, (d) => d.fill(0xff, 2))), /^FRAME_CORRUPT: .*image data does not inflate/);
  const { deflateSync, inflateSync } = await import('node:zlib');
  const rows = inflateSync(rgb.subarray(rgb.indexOf('IDAT') + 4, rgb.indexOf('IDAT') + 4 + rgb.readUInt32BE(rgb.indexOf('IDAT') - 4)));
  assert.match(await reason(idat(rgb, () => deflateSync(rows.subarray(0, rows.length - 61)))), /inflates to 549 bytes, a 20×10 image needs 610/);
  const badFilter = Buffer.from(rows);
  badFilter[61 * 3] = 9;
  assert.match(await reason(idat(rgb, () => deflateSync(badFilter))), /scanline 3 has filter type 9/);
});

test('rgb and ir PNGs decode here (codec/png.ts) to what the sharp pipeline gives, at their size and resized to the model', async () => {
  const [w, h] = [61, 47];
  const rgb = await sharp(Buffer.from(rgbPixels(w, h)), { raw: { width: w, height: h, channels: 3 } }).png({ adaptiveFiltering: true }).toBuffer();
  const rgba = await sharp(Buffer.from(rgbPixels(w, h)), { raw: { width: w, height: h, channels: 3 } }).ensureAlpha(0.5).png().toBuffer();
  const ir = await png(Uint16Array.from({ length: w * h }, (_, i) => (i * 7919) % 65536), w, h, 1);
  const cases = [
    ['rgb', rgb, 'srgb', 'uchar'],
    ['rgb', rgba, 'srgb', 'uchar'],
    ['ir', ir, 'grey16', 'ushort'],
  ] as const;
  for (const [modality, bytes, space, depth] of cases) {
    for (const size of [undefined, { width: 32, height: 24 }, { width: 90, height: 70 }]) {
      const img = await decodeFrame(frame(modality, 'png', w, h, bytes), bytes, LIMITS, size);
      // with alpha, sharp's own pipeline would resize premultiplied samples and drop alpha after; the
      // service drops it first (alpha means nothing to inspection; the training side loads RGB alone)
      let pipeline = bytes === rgba ? sharp(await sharp(bytes).removeAlpha().raw().toBuffer(), { raw: { width: w, height: h, channels: 3 } }) : sharp(bytes).removeAlpha();
      if (size !== undefined) pipeline = pipeline.resize(size.width, size.height, { kernel: 'lanczos3', fit: 'fill' });
      const { data } = await pipeline.toColourspace(space).raw({ depth }).toBuffer({ resolveWithObject: true });
      const expected = depth === 'ushort' ? [...new Uint16Array(data.buffer, data.byteOffset, data.length / 2)] : [...data];
      assert.deepEqual([img.width, img.height], [size?.width ?? w, size?.height ?? h]);
      assert.deepEqual([...img.data], expected, `${modality} ${bytes === rgba ? 'with alpha ' : ''}at ${size === undefined ? 'its size' : `${size.width}×${size.height}`}`);
    }
  }
});

test('the read-time check hands its inflated image data to the decode of the same payload, which takes it out; bounded in bytes, oldest out first', async () => {
  const [w, h] = [40, 30];
  const a = await png(rgbPixels(w, h), w, h, 3);
  const other = Buffer.from(rgbPixels(w, h)).map((v) => 255 - v);
  const b = await png(other, w, h, 3);
  const before = inflatedRows.bytes;
  await imageShape({ modality: 'rgb', encoding: 'png' }, b, LIMITS, { structure: true, data: true });
  const rowBytes = h * (1 + w * 3);
  assert.equal(inflatedRows.bytes, before + rowBytes, 'the checked frame\'s scanlines are held');
  // the rows are keyed by the payload object: a's bytes decoded with b's rows handed over show b's pixels
  inflatedRows.put(a, present(inflatedRows.take(b), 'the rows of b'));
  const swapped = await decodeFrame(frame('rgb', 'png', w, h, a), a, LIMITS);
  assert.deepEqual([...swapped.data], [...other], 'the decode used the rows handed over');
  assert.equal(inflatedRows.bytes, before, 'and took them out');
  const again = await decodeFrame(frame('rgb', 'png', w, h, a), a, LIMITS);
  assert.deepEqual([...again.data], [...rgbPixels(w, h)], 'without rows handed over, its own bytes are inflated');

  const small = new InflatedRows(250);
  const [k1, k2, k3] = [Buffer.alloc(1), Buffer.alloc(1), Buffer.alloc(1)];
  small.put(k1, Buffer.alloc(100));
  small.put(k2, Buffer.alloc(100));
  small.put(k3, Buffer.alloc(100));
  assert.equal(small.bytes, 200);
  assert.equal(small.take(k1), undefined, 'the oldest went first');
  assert.equal(small.take(k3)?.length, 100);
  small.put(k1, Buffer.alloc(251));
  assert.equal(small.take(k1), undefined, 'larger than the bound: not held');
  assert.equal(small.bytes, 100);
});

// ct: a volume of depth × height × width uint16, as a multi-page TIFF or raw little-endian
const CT = { maxPixels: 4096 * 4096, ct: { minDepth: 2, maxDepth: 16, maxVoxels: 4096, minVoxelSizeMm: 0.01, maxVoxelSizeMm: 2 } };

function volumeOf(d: number, h: number, w: number): Uint16Array {
  return Uint16Array.from({ length: d * h * w }, (_, i) => (i * 7919) % 65536);
}

function ctFrame(encoding: 'tiff' | 'raw', w: number, h: number, depth: number, payload: Buffer, voxelSizeMm = { x: 0.1, y: 0.1, z: 0.2 }): Frame {
  return sampleFrame(payload, { modality: 'ct', encoding, width: w, height: h, channels: 1, dtype: 'uint16', volume: { depth, voxelSizeMm } });
}

test('a ct volume decodes from a multi-page 16-bit TIFF and from raw little-endian to the same depth × height × width Uint16Array', async () => {
  const [d, h, w] = [6, 5, 7];
  const vol = volumeOf(d, h, w);
  const tiff = encodeVolumeTiff(vol, w, h, d);
  const raw = Buffer.alloc(vol.length * 2);
  vol.forEach((v, i) => raw.writeUInt16LE(v, 2 * i));
  for (const [encoding, bytes] of [['tiff', tiff], ['raw', raw]] as const) {
    // a student's 2D size does not resample a volume: it keeps its own grid
    const img = await decodeFrame(ctFrame(encoding, w, h, d, bytes), bytes, CT, { width: 32, height: 32 });
    assert.ok(img.data instanceof Uint16Array, encoding);
    assert.deepEqual([img.modality, img.width, img.height, img.channels, img.volume?.depth], ['ct', w, h, 1, d], encoding);
    assert.deepEqual(img.volume?.voxelSizeMm, { x: 0.1, y: 0.1, z: 0.2 });
    assert.deepEqual(Array.from(img.data), Array.from(vol), encoding);
  }
});

test('ct frames that cannot be used are FRAME_SHAPE or FRAME_CORRUPT with a reason naming the problem', async () => {
  const [d, h, w] = [4, 8, 8];
  const tiff = encodeVolumeTiff(volumeOf(d, h, w), w, h, d);
  const raw = Buffer.alloc(d * h * w * 2);
  const cases: [string, Frame, Buffer, string, RegExp][] = [
    ['no volume', { ...ctFrame('tiff', w, h, d, tiff), volume: null }, tiff, 'FRAME_SHAPE', /declares no volume/],
    ['depth below the bound', ctFrame('tiff', w, h, 1, tiff), tiff, 'FRAME_SHAPE', /depth of 1 slices is outside 2\.\.16/],
    ['depth above the bound', ctFrame('raw', 2, 2, 17, Buffer.alloc(17 * 8)), Buffer.alloc(17 * 8), 'FRAME_SHAPE', /depth of 17 slices is outside 2\.\.16/],
    ['voxel size too small', ctFrame('tiff', w, h, d, tiff, { x: 0.1, y: 0.001, z: 0.1 }), tiff, 'FRAME_SHAPE', /voxel size y of 0\.001 mm is outside 0\.01\.\.2 mm/],
    ['voxel size not a number', ctFrame('tiff', w, h, d, tiff, { x: 0.1, y: 0.1, z: Number.NaN }), tiff, 'FRAME_SHAPE', /voxel size z of NaN mm/],
    ['too many voxels', ctFrame('raw', 32, 32, 8, Buffer.alloc(32 * 32 * 8 * 2)), Buffer.alloc(32 * 32 * 8 * 2), 'FRAME_SHAPE', /8192 voxels, over the limit of 4096/],
    ['slice over the pixel limit', ctFrame('tiff', 5000, 5000, 2, tiff), tiff, 'FRAME_SHAPE', /exceeds the limit of .* pixels/],
    ['raw length ≠ d×h×w×2', ctFrame('raw', w, h, d, raw.subarray(2)), raw.subarray(2), 'FRAME_SHAPE', /raw payload has 510 bytes, 4×8×8 uint16 needs 512/],
    ['pages ≠ depth', ctFrame('tiff', w, h, 3, tiff), tiff, 'FRAME_SHAPE', /TIFF has 4 pages, the frame declares a depth of 3/],
    ['slices of another size', ctFrame('tiff', w, 4, d, tiff), tiff, 'FRAME_SHAPE', /page 0 is 8×8, the frame declares slices of 8×4/],
    ['8-bit pages', ctFrame('tiff', w, h, d, encodeVolumeTiff(new Uint8Array(d * h * w), w, h, d)), encodeVolumeTiff(new Uint8Array(d * h * w), w, h, d), 'FRAME_SHAPE', /1 × uint8 samples, a ct slice is 1 × uint16/],
    ['corrupt TIFF', ctFrame('tiff', w, h, d, Buffer.from('II*\0garbage')), Buffer.from('II*\0garbage'), 'FRAME_CORRUPT', /not a readable multi-page TIFF/],
    ['TIFF cut short', ctFrame('tiff', w, h, d, tiff.subarray(0, tiff.length - 100)), tiff.subarray(0, tiff.length - 100), 'FRAME_CORRUPT', /runs past the end of the file/],
    ['declared 8-bit', { ...ctFrame('raw', w, h, d, raw), dtype: 'uint8' }, raw, 'FRAME_SHAPE', /a ct frame is 1 × uint16/],
    ['a PNG', { ...ctFrame('raw', w, h, d, raw), encoding: 'png' }, raw, 'FRAME_SHAPE', /encoding png is not one of tiff, raw/],
  ];
  for (const [what, f, payload, expected, reason] of cases) {
    const err = await decodeFrame(f, payload, CT).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof MmadError, `${what}: ${String(err)}`);
    assert.deepEqual([err.code, reason.test(err.message)], [expected, true], `${what}: ${err.message}`);
  }
  // a volume on another modality's frame is refused too
  const rgb = { ...frame('rgb', 'raw', 2, 2, Buffer.alloc(12)), volume: { depth: 2, voxelSizeMm: { x: 1, y: 1, z: 1 } } };
  assert.equal(await code(decodeFrame(rgb, Buffer.alloc(12), CT)), ErrorCode.FRAME_SHAPE);
});

test('a ct TIFF whose Deflate strips do not inflate passes the header check and is FRAME_CORRUPT when its data is checked (input.verifyImageData): strips inflated in the thread pool', async () => {
  const [d, h, w] = [3, 4, 4];
  const tiff = Buffer.from(encodeVolumeTiff(volumeOf(d, h, w), w, h, d));
  // every page says Deflate (Compression 8) while its strip holds raw samples
  for (let ifd = tiff.readUInt32LE(4); ifd !== 0; ) {
    const n = tiff.readUInt16LE(ifd);
    for (let k = 0; k < n; k++) if (tiff.readUInt16LE(ifd + 2 + 12 * k) === 259) tiff.writeUInt16LE(8, ifd + 2 + 12 * k + 8);
    ifd = tiff.readUInt32LE(ifd + 2 + 12 * n);
  }
  const f = ctFrame('tiff', w, h, d, tiff);
  await checkVolumePayload(f, tiff, CT);
  await assert.rejects(checkVolumePayload(f, tiff, CT, { data: true }), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.FRAME_CORRUPT && /does not inflate/.test(e.message));
  await checkVolumePayload(f, encodeVolumeTiff(volumeOf(d, h, w), w, h, d), CT, { data: true });
});
