import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { at } from '../../src/base/invariant.js';
import { generatePart } from '../../src/simulate/part-generator.js';
import { decodeTiff, decodeTiffStack, decodeXyzTiff, tiffPages, verifyTiffStrips } from '../../src/codec/tiff-reader.js';
import { encodeTiff, encodeTiffPages, encodeVolumeTiff, encodeXyzTiff } from '../../src/codec/tiff-writer.js';

// The independent reader is tifffile (Debian python3-tifffile, installed by scripts/bootstrap.sh).
const PYTHON = '/usr/bin/python3';
const dir = mkdtempSync(join(tmpdir(), 'mmad-tiff-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The bytes of a Buffer as an ArrayBuffer of their own (small Buffers share a pool). */
function copyOf(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

function python(script: string, ...args: string[]): string {
  return execFileSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8' });
}

test('an xyz TIFF we write reads back with tifffile as H×W×3 little-endian float32, uncompressed, values identical', () => {
  const part = generatePart({ product: 'composite_coupon', seed: 11, defect: 'crack', width: 80, height: 48 });
  const tiff = encodeXyzTiff(part.xyz, 80, 48);
  const file = join(dir, 'ours.tiff');
  const raw = join(dir, 'ours.f32');
  writeFileSync(file, tiff);
  writeFileSync(raw, Buffer.from(part.xyz.buffer, part.xyz.byteOffset, part.xyz.byteLength));
  const out = python(
    `
import sys, json, numpy, tifffile
a = tifffile.imread(sys.argv[1])
b = numpy.fromfile(sys.argv[2], dtype='<f4').reshape(48, 80, 3)
with tifffile.TiffFile(sys.argv[1]) as t:
    p = t.pages[0]
    print(json.dumps({'dtype': str(a.dtype), 'shape': list(a.shape), 'equal': bool(numpy.array_equal(a, b)),
      'missing': int((a == 0).all(axis=2).sum()), 'byteorder': t.byteorder, 'pages': len(t.pages),
      'compression': int(p.compression), 'sampleformat': int(p.sampleformat), 'planar': int(p.planarconfig),
      'bits': int(p.bitspersample), 'spp': int(p.samplesperpixel)}))
`,
    file,
    raw,
  );
  const r = JSON.parse(out) as Record<string, unknown>;
  assert.deepEqual(r, {
    dtype: 'float32',
    shape: [48, 80, 3],
    equal: true,
    missing: r.missing,
    byteorder: '<',
    pages: 1,
    compression: 1,
    sampleformat: 3,
    planar: 1,
    bits: 32,
    spp: 3,
  });
  let missing = 0;
  for (let i = 0; i < 80 * 48; i++) if (part.xyz[3 * i + 2] === 0) missing++;
  assert.equal(r.missing, missing, 'missing points survive as 0,0,0');
});

test('our reader reads TIFFs written by tifffile in every layout a recorded dataset may use', () => {
  const script = `
import sys, numpy, tifffile
d = sys.argv[1]
rng = numpy.random.default_rng(5)
xyz = rng.normal(size=(37, 29, 3)).astype('float32')
xyz[3, 4] = 0
xyz.tofile(d + '/xyz.f32')
tifffile.imwrite(d + '/plain.tiff', xyz, photometric='rgb')
tifffile.imwrite(d + '/minisblack.tiff', xyz, photometric='minisblack', planarconfig='contig')
tifffile.imwrite(d + '/bigendian.tiff', xyz, photometric='rgb', byteorder='>')
tifffile.imwrite(d + '/strips.tiff', xyz, photometric='rgb', rowsperstrip=5)
tifffile.imwrite(d + '/planar.tiff', numpy.ascontiguousarray(numpy.moveaxis(xyz, 2, 0)), photometric='rgb', planarconfig='separate')
tifffile.imwrite(d + '/deflate.tiff', xyz, photometric='rgb', compression='zlib')
g = (rng.random((21, 17)) * 65535).astype('uint16')
g.tofile(d + '/grey.u16')
tifffile.imwrite(d + '/grey16.tiff', g, compression='zlib', predictor=True)
`;
  python(script, dir);
  const expected = new Float32Array(copyOf(readFileSync(join(dir, 'xyz.f32'))));
  for (const name of ['plain', 'minisblack', 'bigendian', 'strips', 'planar', 'deflate']) {
    const t = decodeXyzTiff(readFileSync(join(dir, `${name}.tiff`)));
    assert.equal(t.width, 29, name);
    assert.equal(t.height, 37, name);
    assert.deepEqual(Array.from(t.xyz), Array.from(expected), name);
  }
  const grey = decodeTiff(readFileSync(join(dir, 'grey16.tiff')));
  assert.equal(grey.dtype, 'uint16');
  assert.equal(grey.samplesPerPixel, 1);
  assert.deepEqual(Array.from(grey.data), Array.from(new Uint16Array(copyOf(readFileSync(join(dir, 'grey.u16'))))));
});

test('a written TIFF round-trips through our reader, for each sample type', () => {
  const cases = [
    { samplesPerPixel: 3, data: Float32Array.from({ length: 5 * 4 * 3 }, (_, i) => i * 0.25 - 3) },
    { samplesPerPixel: 1, data: Uint16Array.from({ length: 5 * 4 }, (_, i) => i * 3000) },
    { samplesPerPixel: 3, data: Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => i) },
  ];
  for (const c of cases) {
    const t = decodeTiff(encodeTiff({ width: 5, height: 4, ...c }));
    assert.equal(t.width, 5);
    assert.equal(t.height, 4);
    assert.deepEqual(Array.from(t.data), Array.from(c.data));
  }
  assert.throws(() => encodeTiff({ width: 5, height: 4, samplesPerPixel: 3, data: new Float32Array(7) }), /expected 5x4x3/);
});

test('malformed TIFFs are IMAGE_INVALID errors that say what is wrong, never a crash', () => {
  const good = encodeXyzTiff(new Float32Array(8 * 8 * 3).fill(0.3), 8, 8);
  const cases: [string, Buffer, RegExp][] = [
    ['empty', Buffer.alloc(0), /too short/],
    ['not a TIFF', Buffer.from('PNG and more bytes'), /byte-order/],
    ['BigTIFF', Buffer.from([0x49, 0x49, 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), /BigTIFF/],
    ['truncated pixels', good.subarray(0, good.length - 10), /runs past the end/],
    ['IFD out of file', Buffer.concat([good.subarray(0, 4), Buffer.from([0xff, 0xff, 0xff, 0x7f]), good.subarray(8)]), /outside the file/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(
      () => decodeXyzTiff(bytes),
      (e: unknown) => e instanceof MmadError && e.code === ErrorCode.IMAGE_INVALID && message.test(e.message),
      what,
    );
  }
  // a 200-byte file claiming 8192 x 8192 x 3 float32 (805 MB) in one Deflate strip: refused before anything is allocated
  const claim = patchTags(encodeXyzTiff(new Float32Array(3).fill(0.3), 1, 1), { 256: 8192, 257: 8192, 278: 8192, 259: 8 });
  assert.throws(() => decodeXyzTiff(claim), /bytes of compressed strips cannot hold a 8192x8192x3 image/);
  const plain = patchTags(encodeXyzTiff(new Float32Array(3).fill(0.3), 1, 1), { 256: 8192, 257: 8192, 278: 8192 });
  assert.throws(() => decodeXyzTiff(plain), /runs past the end|strip 0 holds 12 bytes, expected 805306368/);
  // right format, wrong kind: a grey 16-bit image is not a point cloud
  const grey = encodeTiff({ width: 4, height: 4, samplesPerPixel: 1, data: new Uint16Array(16) });
  assert.throws(() => decodeXyzTiff(grey), /3 samples of float32/);
  // random corruption of the header never escapes as anything but a typed error
  let seed = 99;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let i = 0; i < 500; i++) {
    const b = Buffer.from(good);
    for (let f = 0; f < 3; f++) b[Math.floor(rnd() * 200)] = Math.floor(rnd() * 256);
    try {
      decodeTiff(b);
    } catch (e) {
      assert.ok(e instanceof MmadError, `corruption ${i} escaped as ${String(e)}`);
    }
  }
});

test('a CT volume we write as a multi-page 16-bit TIFF reads back with tifffile as depth × height × width uint16, one page per slice', () => {
  const [d, h, w] = [5, 7, 9];
  const vol = Uint16Array.from({ length: d * h * w }, (_, i) => (i * 2654435761) % 65536);
  const file = join(dir, 'volume.tiff');
  const raw = join(dir, 'volume.u16');
  writeFileSync(file, encodeVolumeTiff(vol, w, h, d));
  writeFileSync(raw, Buffer.from(vol.buffer, vol.byteOffset, vol.byteLength));
  const out = python(
    `
import sys, json, numpy, tifffile
a = tifffile.imread(sys.argv[1])
b = numpy.fromfile(sys.argv[2], dtype='<u2').reshape(${d}, ${h}, ${w})
with tifffile.TiffFile(sys.argv[1]) as t:
    print(json.dumps({'dtype': str(a.dtype), 'shape': list(a.shape), 'equal': bool(numpy.array_equal(a, b)), 'pages': len(t.pages),
      'bits': sorted({int(p.bitspersample) for p in t.pages}), 'spp': sorted({int(p.samplesperpixel) for p in t.pages})}))
`,
    file,
    raw,
  );
  assert.deepEqual(JSON.parse(out), { dtype: 'uint16', shape: [d, h, w], equal: true, pages: d, bits: [16], spp: [1] });
  // and an 8-bit one (a 3D mask)
  const mask = Uint8Array.from({ length: d * h * w }, (_, i) => (i % 3 === 0 ? 255 : 0));
  const back = decodeTiffStack(encodeVolumeTiff(mask, w, h, d), 64);
  assert.deepEqual([back.pages, back.height, back.width, back.dtype], [d, h, w, 'uint8']);
  assert.deepEqual(Array.from(back.data), Array.from(mask));
});

test('our stack reader reads multi-page 16-bit TIFFs tifffile writes (plain, Deflate with predictor, big-endian, strips); their strips verify in the thread pool', async () => {
  python(
    `
import sys, numpy, tifffile
d = sys.argv[1]
v = (numpy.random.default_rng(8).random((6, 11, 13)) * 65535).astype('uint16')
v.tofile(d + '/v.u16')
tifffile.imwrite(d + '/v-plain.tiff', v, photometric='minisblack')
tifffile.imwrite(d + '/v-deflate.tiff', v, photometric='minisblack', compression='zlib', predictor=True)
tifffile.imwrite(d + '/v-bigendian.tiff', v, photometric='minisblack', byteorder='>')
tifffile.imwrite(d + '/v-strips.tiff', v, photometric='minisblack', rowsperstrip=4)
`,
    dir,
  );
  const expected = Array.from(new Uint16Array(copyOf(readFileSync(join(dir, 'v.u16')))));
  for (const name of ['plain', 'deflate', 'bigendian', 'strips']) {
    const bytes = readFileSync(join(dir, `v-${name}.tiff`));
    const s = decodeTiffStack(bytes, 64);
    assert.deepEqual([s.pages, s.height, s.width, s.samplesPerPixel, s.dtype], [6, 11, 13, 1, 'uint16'], name);
    assert.deepEqual(Array.from(s.data), expected, name);
    assert.equal(tiffPages(bytes, 64).pages.length, 6, name);
    await verifyTiffStrips(bytes, tiffPages(bytes, 64).pages);
  }
  // a Deflate strip with its stream damaged: the layout still reads, the strip check names the page and strip
  const deflate = readFileSync(join(dir, 'v-deflate.tiff'));
  const pages = tiffPages(deflate, 64).pages;
  const third = at(pages, 2);
  const damaged = Buffer.from(deflate);
  damaged.fill(0xff, at(third.offsets, 0) + 2, at(third.offsets, 0) + Math.min(12, at(third.counts, 0)));
  await assert.rejects(verifyTiffStrips(damaged, tiffPages(damaged, 64).pages), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.IMAGE_INVALID && /page 2, strip 0 does not inflate/.test(e.message));
});

test('malformed multi-page TIFFs are IMAGE_INVALID before anything is allocated: a looping chain, too many pages or samples, pages that differ', () => {
  const page = (w: number, h: number): { width: number; height: number; samplesPerPixel: number; data: Uint16Array } => ({ width: w, height: h, samplesPerPixel: 1, data: new Uint16Array(w * h).fill(7) });
  const three = encodeTiffPages([page(4, 4), page(4, 4), page(4, 4)]);
  const invalid = (fn: () => unknown, message: RegExp, what: string): void => {
    assert.throws(fn, (e: unknown) => e instanceof MmadError && e.code === ErrorCode.IMAGE_INVALID && message.test(e.message), what);
  };
  invalid(() => decodeTiffStack(three, 2), /more than 2 pages/, 'a page limit');
  invalid(() => decodeTiffStack(three, 8, 40), /3 pages of 16 samples are more than the 40 allowed/, 'a sample limit');
  invalid(() => decodeTiffStack(encodeTiffPages([page(4, 4), page(5, 4)]), 8), /page 1 is 5x4x1 uint16, page 0 is 4x4x1 uint16/, 'pages of two sizes');
  // the last page's next-IFD field pointed back at the first IFD
  const loop = Buffer.from(three);
  const last = at(tiffPages(three, 8).pages, 1).next;
  loop.writeUInt32LE(8, last + 2 + loop.readUInt16LE(last) * 12);
  invalid(() => tiffPages(loop, 100), /loops back to offset 8/, 'a looping IFD chain');
  assert.equal(decodeTiffStack(three, 3).pages, 3, 'at the limit it reads');
});

/** A little-endian TIFF with the first IFD's SHORT/LONG tags set to new values (the tags must exist). */
function patchTags(tiff: Buffer, values: Record<number, number>): Buffer {
  const out = Buffer.from(tiff);
  const ifd = out.readUInt32LE(4);
  const n = out.readUInt16LE(ifd);
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const at = ifd + 2 + i * 12;
    const tag = out.readUInt16LE(at);
    const value = values[tag];
    if (value === undefined) continue;
    const type = out.readUInt16LE(at + 2);
    if (type === 3) out.writeUInt16LE(value, at + 8);
    else out.writeUInt32LE(value, at + 8);
    seen.add(tag);
  }
  assert.equal(seen.size, Object.keys(values).length, 'every patched tag exists');
  return out;
}
