/**
 * Codec figures, side by side in one run: encode and decode of frames of
 * several payload sizes, and what the bounds-checking guard costs on decode
 * (guarded decode vs avsc alone); and what the frame reader's PNG checks cost at
 * read time (header, chunk walk, image data inflated) against the decode at judge
 * time. Run: npm run bench -- codec
 */
import { randomBytes } from 'node:crypto';
import { AvroCodec } from '../src/codec/avro-codec.js';
import { SchemaCatalog } from '../src/codec/schema-catalog.js';
import { sampleEvent, sampleFrame } from '../test/helpers/records.js';
import sharp from 'sharp';
import { checkPngChunks, pngHeader, verifyPngData } from '../src/codec/png.js';
import { measure, measureAsync, printTable } from './harness.js';

const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');
const events = AvroCodec.local(catalog, 'AnomalyEvent');
const frameType = catalog.current('Frame').type;

const rows: Record<string, string | number>[] = [];
for (const size of [64 * 1024, 1024 * 1024, 12 * 1024 * 1024]) {
  const value = sampleFrame(randomBytes(size));
  const bytes = frames.encode(value);
  const body = bytes.subarray(10);
  const enc = measure(() => frames.encode(value));
  const dec = measure(() => frames.decodeSync(bytes));
  const raw = measure(() => frameType.decode(body, 0));
  rows.push({
    record: `Frame ${(size / 1024).toFixed(0)} KiB payload`,
    'encode µs': enc.micros.toFixed(1),
    'decode µs': dec.micros.toFixed(1),
    'avsc alone µs': raw.micros.toFixed(1),
    'guard overhead': `${(dec.micros / raw.micros).toFixed(2)}×`,
    'encode MB/s': ((bytes.length / enc.micros) * 1e6 / 1e6).toFixed(0),
  });
}
const ev = sampleEvent();
const evBytes = events.encode(ev);
const evType = catalog.current('AnomalyEvent').type;
const encE = measure(() => events.encode(ev));
const decE = measure(() => events.decodeSync(evBytes));
const rawE = measure(() => evType.decode(evBytes.subarray(10), 0));
rows.push({
  record: `AnomalyEvent (${evBytes.length} B)`,
  'encode µs': encE.micros.toFixed(1),
  'decode µs': decE.micros.toFixed(1),
  'avsc alone µs': rawE.micros.toFixed(1),
  'guard overhead': `${(decE.micros / rawE.micros).toFixed(2)}×`,
  'encode MB/s': ((evBytes.length / encE.micros) * 1e6 / 1e6).toFixed(0),
});
printTable('codec (per record, median of repeated runs)', rows);

// the frame reader's checks on simulated-looking frames (smooth, with noise), against sharp's decode at judge time
const checks: Record<string, string | number>[] = [];
for (const [n, channels, depth] of [[256, 3, 8], [256, 1, 16], [512, 3, 8]] as const) {
  const px = depth === 16 ? new Uint16Array(n * n) : new Uint8Array(n * n * channels);
  for (let i = 0; i < px.length; i++) px[i] = ((((i % (n * channels)) * 7) >> 2) + (Math.random() * 9 | 0)) * (depth === 16 ? 97 : 1);
  const img = sharp(Buffer.from(px.buffer), { raw: { width: n, height: n, channels } });
  const bytes = await (depth === 16 ? img.toColourspace('grey16') : img).png().toBuffer();
  const h = pngHeader(bytes);
  const head = measure(() => pngHeader(bytes));
  const walk = measure(() => checkPngChunks(bytes));
  const idat = checkPngChunks(bytes);
  const inflate = await measureAsync(() => verifyPngData(idat, h), 200);
  const decode = await measureAsync(() => sharp(bytes).raw().toBuffer(), 100);
  checks.push({
    frame: `${n}×${n}×${channels} ${depth}-bit PNG (${(bytes.length / 1024).toFixed(0)} KiB)`,
    'header µs': head.micros.toFixed(1),
    'chunk walk µs': walk.micros.toFixed(1),
    'image data µs': inflate.micros.toFixed(0),
    'decode µs': decode.micros.toFixed(0),
    'image data / decode': `${(inflate.micros / decode.micros).toFixed(2)}×`,
  });
}
printTable('read-time PNG checks (input.verifyImageData) vs the decode at judge time', checks);
