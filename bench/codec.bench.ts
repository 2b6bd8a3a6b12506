/**
 * Codec figures, side by side in one run: encode and decode of frames of
 * several payload sizes, and what the bounds-checking guard costs on decode
 * (guarded decode vs avsc alone); and what the frame reader's PNG checks cost at
 * read time (header, chunk walk, image data inflated) against the decode at judge
 * time; and what an event's map outputs cost (regions, heatmap); and what a student's region of
 * interest costs (the crop before the resize, the map drawn back on the frame). Run: npm run bench -- codec
 */
import { randomBytes } from 'node:crypto';
import { AvroCodec } from '../src/codec/avro-codec.js';
import { SchemaCatalog } from '../src/codec/schema-catalog.js';
import { sampleEvent, sampleFrame } from '../test/helpers/records.js';
import sharp from 'sharp';
import { checkPngChunks, pngHeader, verifyPngData } from '../src/codec/png.js';
import { anomalousRegions, heatmapPng } from '../src/output/anomaly-map.js';
import { decodeFrame } from '../src/inference/preprocess.js';
import { placeOnFrame, roiBox } from '../src/inference/roi.js';
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

// what each event's map outputs cost (output/anomaly-map.ts) on a model's 256×256 map: a smooth
// good part's map (nothing at the threshold: no region to label) and one with a defect over it
const outputs: Record<string, string | number>[] = [];
const side = 256;
const good = new Float32Array(side * side);
for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) good[y * side + x] = 1.5 + Math.sin(x / 9) * Math.cos(y / 13) + Math.random() * 0.2;
const defective = good.slice();
for (let y = 100; y < 130; y++) for (let x = 60; x < 90; x++) defective[y * side + x] = 6 - Math.hypot(x - 75, y - 115) / 10;
for (const [part, map] of [['good (no cell at the threshold)', good], ['defective (a 30×30 region over it)', defective]] as const) {
  const regions = measure(() => anomalousRegions(map, side, side, 4, 1024, 1024, 10));
  const heatmap = measure(() => heatmapPng(map, side, side, 64, 4));
  outputs.push({
    map: `256×256, ${part}`,
    'regions µs': regions.micros.toFixed(0),
    'heatmap 64×64 PNG µs': heatmap.micros.toFixed(0),
    'regions / heatmap': `${(regions.micros / heatmap.micros).toFixed(2)}×`,
  });
}
printTable("an event's map outputs (regions at the threshold, heatmap)", outputs);

// a student's region of interest (inference/roi.ts) on a tire-sized 600×800 rgb PNG: decoded and resized to
// the model's input whole (272×208 as `train --size auto` makes it), or cropped first to the box
// `--roi auto` finds on the real tire and resized to its input (296×192); and the map drawn back on the frame
const tw = 600;
const th = 800;
const tirePx = new Uint8Array(tw * th * 3);
for (let i = 0; i < tirePx.length; i++) tirePx[i] = ((((i % (tw * 3)) * 5) >> 3) + (Math.random() * 9 | 0)) & 255;
const tirePng = await sharp(Buffer.from(tirePx.buffer), { raw: { width: tw, height: th, channels: 3 } }).png().toBuffer();
const tireFrame = { modality: 'rgb', encoding: 'png', width: tw, height: th, channels: 3, dtype: 'uint8', volume: null } as const;
const limits = { maxPixels: 4096 * 4096 };
const tireRoi = { left: 0.141, top: 0.0839, right: 0.852, bottom: 0.9161 };
const whole = await measureAsync(() => decodeFrame(tireFrame, tirePng, limits, { height: 272, width: 208 }), 60);
const cropped = await measureAsync(() => decodeFrame(tireFrame, tirePng, limits, { height: 296, width: 192 }, tireRoi), 60);
const box = roiBox(tireRoi, tw, th);
const roiMap = new Float32Array(296 * 192).fill(1);
const placed = measure(() => placeOnFrame(roiMap, 296, 192, box, tw, th));
printTable("a student's region of interest (600×800 rgb PNG, decoded and resized to the model's input)", [
  { step: 'decode + resize, the whole frame to 272×208', 'µs': whole.micros.toFixed(0), 'against the whole frame': '1.00×' },
  { step: `decode + crop to the roi (${box.x1 - box.x0}×${box.y1 - box.y0}) + resize to 296×192`, 'µs': cropped.micros.toFixed(0), 'against the whole frame': `${(cropped.micros / whole.micros).toFixed(2)}×` },
  { step: 'the 296×192 map drawn back on the frame', 'µs': placed.micros.toFixed(0), 'against the whole frame': `${(placed.micros / whole.micros).toFixed(2)}×` },
]);
