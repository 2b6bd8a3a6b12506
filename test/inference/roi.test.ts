/**
 * A student with a region of interest (test/fixtures/models/roi: the test-rgb and test-xyz
 * graphs, whose map is the deviation from a flat reference part, with the roi left 0.3, top
 * 0.2, right 0.8, bottom 0.9): frames cropped to the roi's pixel box before the resize, in
 * every decoding path, and the map placed back on the frame for the event's regions and heatmap.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { at, present } from '../../src/base/invariant.js';
import type { FramePayload } from '../../src/codec/frame-payload.js';
import type { Frame, Modality } from '../../src/codec/records.js';
import { encodeXyzTiff } from '../../src/codec/tiff-writer.js';
import { SampleJudge, type Judgement, type Released } from '../../src/inference/judge.js';
import { loadManifest } from '../../src/inference/model-manifest.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { decodeFrame } from '../../src/inference/preprocess.js';
import { placeOnFrame, roiBox, type Roi } from '../../src/inference/roi.js';
import { depthMm } from '../../src/inference/volume.js';
import { anomalousRegions } from '../../src/output/anomaly-map.js';
import { buildOutputs } from '../../src/output/event-builder.js';
import { quietLogger } from '../helpers/kafka.js';
import { CT_MANIFEST, TEST_MODELS_DIR, copyOfTestModels, inferenceConfig } from '../helpers/models.js';
import { sampleFrame } from '../helpers/records.js';

const ROI_MANIFEST = join(TEST_MODELS_DIR, 'roi', 'manifest.json');
const ROI: Roi = { left: 0.3, top: 0.2, right: 0.8, bottom: 0.9 };
// the test frames: 120 × 80, so the box is columns 36..95 and rows 16..71 (60 × 56), resized to the 32 × 32 student
const [W, H] = [120, 80];
const BOX = { x0: 36, y0: 16, x1: 96, y1: 72 };
// the map on the frame: 64 × 46 cells, one about 1.9 × 1.7 frame pixels
const CELL = { w: W / 64, h: H / 46 };
const LIMITS = { maxPixels: 1 << 20 };

const registry = await ModelRegistry.open(inferenceConfig({ manifest: ROI_MANIFEST }), quietLogger);
after(() => registry.close());

type Square = [x: number, y: number, side: number];

/** A grey (the reference) rgb frame, 250 in each square. */
function rgbPixels(squares: Square[], w = W, h = H): Uint8Array {
  const px = new Uint8Array(w * h * 3).fill(128);
  for (const [x0, y0, s] of squares) for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) px.fill(250, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return px;
}

/** A point cloud at the reference (z = 0.5 m) inside the box, 0.6 m in each square, and missing (0,0,0) points outside the box. */
function xyzPoints(squares: Square[]): Float32Array {
  const pc = new Float32Array(W * H * 3);
  for (let y = BOX.y0; y < BOX.y1; y++) for (let x = BOX.x0; x < BOX.x1; x++) pc.set([0, 0, 0.5], (y * W + x) * 3);
  for (const [x0, y0, s] of squares) for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) pc.set([0, 0, 0.6], (y * W + x) * 3);
  return pc;
}

type Kind = 'png' | 'png-interlaced' | 'raw' | 'xyz-tiff' | 'xyz-raw';

async function frameOf(kind: Kind, squares: Square[]): Promise<Frame> {
  if (kind === 'xyz-tiff' || kind === 'xyz-raw') {
    const pc = xyzPoints(squares);
    const payload = kind === 'xyz-tiff' ? encodeXyzTiff(pc, W, H) : Buffer.from(pc.buffer, pc.byteOffset, pc.byteLength);
    return sampleFrame(payload, { sampleId: 'roi-1', modality: 'xyz', encoding: kind === 'xyz-tiff' ? 'tiff' : 'raw', width: W, height: H, channels: 3, dtype: 'float32', expectedModalities: null });
  }
  const px = rgbPixels(squares);
  // an interlaced PNG is not one codec/png.ts decodes: sharp's path (extract, then resize)
  const payload =
    kind === 'raw'
      ? Buffer.from(px)
      : await sharp(px, { raw: { width: W, height: H, channels: 3 } }).toColourspace('srgb').png({ progressive: kind === 'png-interlaced' }).toBuffer();
  return sampleFrame(payload, { sampleId: 'roi-1', modality: 'rgb', encoding: kind === 'raw' ? 'raw' : 'png', width: W, height: H, channels: 3, dtype: 'uint8', expectedModalities: null });
}

async function judge(frame: Frame): Promise<Judgement> {
  const payload = present(frame.payload, 'the payload');
  const modality = frame.modality as Modality;
  const release: Released = {
    type: 'release',
    kind: 'complete',
    sampleId: frame.sampleId,
    revision: 1,
    frames: [{ sampleId: frame.sampleId, modality, captureTime: 0, arrivedAt: 0, bytes: payload.length, expectedModalities: null, source: { topic: 't', partition: 0, offset: '0' }, payload: { frame, payload, raw: Buffer.alloc(0), key: null, timestamp: 0 } satisfies FramePayload }],
    missing: [],
    final: true,
    firstCapture: 0,
    firstArrival: 0,
  };
  return new SampleJudge(registry, LIMITS, [modality], () => 0).judge(release);
}

const KINDS: Kind[] = ['png', 'png-interlaced', 'raw', 'xyz-tiff', 'xyz-raw'];

test('roiBox: fractions to the pixel box, the whole frame at 0 and 1, a pixel edge kept, at least one pixel, the start inside the frame', () => {
  assert.deepEqual(roiBox(null, 120, 80), { x0: 0, y0: 0, x1: 120, y1: 80 });
  assert.deepEqual(roiBox({ left: 0, top: 0, right: 1, bottom: 1 }, 120, 80), { x0: 0, y0: 0, x1: 120, y1: 80 });
  assert.deepEqual(roiBox(ROI, W, H), BOX);
  // a fraction written from a pixel edge stays on it: 0.7 × 90 is 62.99999999999999, 0.07 × 100 is 7.000000000000001
  assert.deepEqual(roiBox({ left: 0.7, top: 0, right: 1, bottom: 0.07 }, 90, 100), { x0: 63, y0: 0, x1: 90, y1: 7 });
  assert.deepEqual(roiBox({ left: 0.07, top: 0.07, right: 0.7, bottom: 1 }, 100, 100), { x0: 7, y0: 7, x1: 70, y1: 100 });
  // a side between pixels takes the pixels it touches: floor of the start, ceil of the end
  assert.deepEqual(roiBox({ left: 0.101, top: 0.249, right: 0.499, bottom: 0.751 }, 10, 4), { x0: 1, y0: 0, x1: 5, y1: 4 });
  // a tiny roi still gives one pixel each way
  assert.deepEqual(roiBox({ left: 0.5, top: 0.5, right: 0.5000001, bottom: 0.5000001 }, 100, 50), { x0: 50, y0: 25, x1: 51, y1: 26 });
  // at the far edge: the start stays in the frame, the box one pixel wide
  assert.deepEqual(roiBox({ left: 0.9999999, top: 0.9999999, right: 1, bottom: 1 }, 100, 50), { x0: 99, y0: 49, x1: 100, y1: 50 });
  assert.deepEqual(roiBox({ left: 0.999, top: 0, right: 1, bottom: 0.001 }, 10, 10), { x0: 9, y0: 0, x1: 10, y1: 1 });
  // the case models/tests/test_roi.py checks box_pixels with (the real tire's estimated box): the two sides crop the same pixels
  assert.deepEqual(roiBox({ left: 0.141, top: 0.0839, right: 0.852, bottom: 0.9161 }, 600, 800), { x0: 84, y0: 67, x1: 512, y1: 733 });
});

test('placeOnFrame: the map on a canvas of the frame\'s geometry at about its resolution, the rest filled', () => {
  const map = Float32Array.from({ length: 32 * 32 }, (_, i) => i + 1);
  const placed = placeOnFrame(map, 32, 32, BOX, W, H);
  // round(32 · 120 / 60) × round(32 · 80 / 56); at (round(36 · 32 / 60), round(16 · 32 / 56))
  assert.deepEqual([placed.width, placed.height, placed.cells], [64, 46, { x0: 19, y0: 9, x1: 51, y1: 41 }]);
  assert.equal(placed.data[9 * 64 + 19], 1, 'the map\'s first cell');
  assert.equal(placed.data[40 * 64 + 50], 32 * 32, 'its last');
  assert.equal(placed.data[9 * 64 + 18], 0);
  assert.equal(placed.data[41 * 64 + 50], 0);
  assert.equal(placed.data.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0), 32 * 32, 'everything else 0');
  // a box at the frame's far edge: moved in so that the map fits
  const edge = placeOnFrame(new Float32Array(4 * 4).fill(1), 4, 4, { x0: 7, y0: 7, x1: 10, y1: 10 }, 10, 10);
  assert.deepEqual([edge.width, edge.height, edge.cells], [13, 13, { x0: 9, y0: 9, x1: 13, y1: 13 }]);
  // anomaly_depth placed with -1: a region's depth is its own cell's; outside the roi there is none
  const depth = placeOnFrame(new Float32Array(32 * 32).fill(5), 32, 32, BOX, W, H, -1).data;
  const hot = new Float32Array(32 * 32);
  hot.fill(2, 10 * 32 + 4, 10 * 32 + 8);
  const canvas = placeOnFrame(hot, 32, 32, BOX, W, H);
  const regions = anomalousRegions(canvas.data, canvas.height, canvas.width, 1, W, H, 4, (cell) => depthMm(at(depth, cell), 8, 8, 0.5));
  assert.equal(at(regions, 0).depthMm, 5.5 * 0.5);
  assert.equal(depthMm(at(depth, 0), 8, 8, 0.5), null);
});

test('decodeFrame crops to the roi\'s pixel box in every path (own PNG decoder, sharp, raw, xyz TIFF and raw): exactly the box\'s samples', async () => {
  // pixels that differ everywhere, so a box shifted by one is seen
  const w = 50;
  const h = 30;
  const roi: Roi = { left: 0.1, top: 0.2, right: 0.7, bottom: 0.9 };
  const box = roiBox(roi, w, h);
  assert.deepEqual(box, { x0: 5, y0: 6, x1: 35, y1: 27 });
  const expectCrop = (full: ArrayLike<number>, c: number): number[] => {
    const out: number[] = [];
    for (let y = box.y0; y < box.y1; y++) for (let x = box.x0; x < box.x1; x++) for (let k = 0; k < c; k++) out.push(at(full, (y * w + x) * c + k));
    return out;
  };
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
  const ir = Uint16Array.from({ length: w * h }, (_, i) => (i * 997) % 65536);
  const xyz = Float32Array.from({ length: w * h * 3 }, (_, i) => 0.25 + i / 4096);
  const frame = (modality: 'rgb' | 'ir' | 'xyz', encoding: Frame['encoding'], payload: Buffer): Frame => {
    const [channels, dtype] = ({ rgb: [3, 'uint8'], ir: [1, 'uint16'], xyz: [3, 'float32'] } as const)[modality];
    return sampleFrame(payload, { modality, encoding, width: w, height: h, channels, dtype });
  };
  const cases: [string, Frame, ArrayLike<number>, number][] = [
    ['rgb png', frame('rgb', 'png', await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).toColourspace('srgb').png().toBuffer()), rgb, 3],
    ['rgb png interlaced (sharp)', frame('rgb', 'png', await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).toColourspace('srgb').png({ progressive: true }).toBuffer()), rgb, 3],
    ['rgb raw', frame('rgb', 'raw', Buffer.from(rgb)), rgb, 3],
    ['ir png', frame('ir', 'png', await sharp(ir, { raw: { width: w, height: h, channels: 1 } }).toColourspace('grey16').png().toBuffer()), ir, 1],
    ['ir png interlaced (sharp)', frame('ir', 'png', await sharp(ir, { raw: { width: w, height: h, channels: 1 } }).toColourspace('grey16').png({ progressive: true }).toBuffer()), ir, 1],
    ['ir raw', frame('ir', 'raw', Buffer.from(ir.buffer)), ir, 1],
    ['xyz tiff', frame('xyz', 'tiff', encodeXyzTiff(xyz, w, h)), xyz, 3],
    ['xyz raw', frame('xyz', 'raw', Buffer.from(xyz.buffer)), xyz, 3],
  ];
  for (const [name, f, full, c] of cases) {
    const payload = present(f.payload, 'the payload');
    const whole = await decodeFrame(f, payload, LIMITS);
    assert.deepEqual([whole.width, whole.height], [w, h], `${name}: no roi, the whole frame`);
    assert.deepEqual([...whole.data], [...Array.from(full)], `${name}: no roi, every sample`);
    const img = await decodeFrame(f, payload, LIMITS, undefined, roi);
    assert.deepEqual([img.width, img.height, img.channels], [30, 21, c], name);
    assert.deepEqual([...img.data], expectCrop(full, c), `${name}: the box's samples`);
    // the size of the crop: nothing resized; another size: the crop resized to it
    const same = await decodeFrame(f, payload, LIMITS, { width: 30, height: 21 }, roi);
    assert.deepEqual([...same.data], expectCrop(full, c), `${name}: at the crop's size, not resized`);
    const resized = await decodeFrame(f, payload, LIMITS, { width: 8, height: 8 }, roi);
    assert.deepEqual([resized.width, resized.height, resized.data.length], [8, 8, 64 * c], name);
  }
  // a cloud with valid points only outside the roi has nothing to judge, and says where it looked
  const outside = new Float32Array(w * h * 3);
  outside.set([0, 0, 0.5], 0);
  await assert.rejects(decodeFrame(frame('xyz', 'raw', Buffer.from(outside.buffer)), Buffer.from(outside.buffer), LIMITS, undefined, roi), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.FRAME_CORRUPT && /no valid point in the region of interest/.test(e.message));
});

test('the roi is read from the manifest, one for the model\'s image inputs', () => {
  const { models } = loadManifest(ROI_MANIFEST);
  assert.deepEqual(models.map((m) => [m.id, m.roi]), [['test-rgb-roi', ROI], ['test-xyz-roi', ROI]]);
  assert.equal(registry.models.length, 2);
  // every manifest without one: the whole frame
  assert.ok(loadManifest(join(TEST_MODELS_DIR, 'manifest.json')).models.every((m) => m.roi === null));
  assert.ok(loadManifest(CT_MANIFEST).models.every((m) => m.roi === null));
});

for (const kind of KINDS) {
  test(`${kind}: a bright square inside the roi is found where it is in the frame; one outside the roi is not judged`, async () => {
    // inside: columns 80..91, rows 56..67 of the frame (the box is 36..95 × 16..71); outside: the top-left corner
    const inside: Square = [80, 56, 12];
    const outside: Square = [4, 2, 12];
    const flat = await judge(await frameOf(kind, []));
    assert.equal(flat.verdict, 'OK', `${kind}: the reference part`);
    assert.ok(present(flat.score, 'the score') < 0.05, `${kind}: the reference part scores ${String(flat.score)}`);

    // (b) the square outside the roi changes nothing: the same score as the part without it
    const out = await judge(await frameOf(kind, [outside]));
    assert.equal(out.verdict, 'OK', `${kind}: a square outside the roi`);
    assert.ok(Math.abs(present(out.score, 'the score') - present(flat.score, 'the score')) < 1e-6, `${kind}: outside the roi scores ${String(out.score)}, the reference ${String(flat.score)}`);
    assert.deepEqual(buildOutputs(out, { heatmapSize: 16, maxRegions: 4 }, () => 0).event?.regions, []);

    // (a) inside: NOK, the region on the square in frame pixels (within about a cell of the map on the frame)
    const j = await judge(await frameOf(kind, [inside, outside]));
    assert.equal(j.verdict, 'NOK', kind);
    assert.deepEqual([j.map?.width, j.map?.height, j.sourceSize], [64, 46, { width: W, height: H }], `${kind}: the map on the frame's canvas`);
    const { event } = buildOutputs(j, { heatmapSize: 16, maxRegions: 4 }, () => 0);
    const ev = present(event, 'the event');
    assert.equal(ev.score, j.score, 'the score is the model\'s');
    assert.equal(ev.regions.length, 1, `${kind}: ${JSON.stringify(ev.regions)}`);
    const r = at(ev.regions, 0);
    const [x, y, s] = inside;
    // a region's edge is within two cells of the map (one for its 3 × 3 smoothing, one for the resize) and a pixel of rounding
    const near = (got: number, want: number, cell: number): boolean => Math.abs(got - want) <= 2 * cell + 1;
    assert.ok(near(r.x, x, CELL.w) && near(r.x + r.width, x + s, CELL.w) && near(r.y, y, CELL.h) && near(r.y + r.height, y + s, CELL.h), `${kind}: region ${JSON.stringify(r)}, the square at ${JSON.stringify(inside)}`);
    // the heatmap keeps the frame's aspect (64 × 46 cells), and is dark outside the roi
    const heatmap = present(ev.heatmap, 'the heatmap');
    assert.deepEqual([heatmap.width, heatmap.height], [16, 12]);
    const grey = await sharp(heatmap.png).raw().toBuffer();
    assert.equal(grey[0], 0, 'outside the roi: nothing judged');
  });
}

test('a manifest with an invalid roi is refused (MODEL_INVALID), naming the problem', () => {
  const dir = copyOfTestModels();
  const main = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { models: { id: string; inputs: Record<string, unknown>[] }[] };
  const ct = JSON.parse(readFileSync(join(dir, 'ct', 'manifest.json'), 'utf8')) as { models: { id: string; inputs: Record<string, unknown>[] }[] };
  const write = (folder: string, m: unknown): string => {
    const p = join(dir, folder, `m-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(p, JSON.stringify(m));
    return p;
  };
  /** The manifest with the inputs of model `id` changed by `edit`. */
  const withInputs = (m: typeof main, id: string, edit: (inputs: Record<string, unknown>[]) => Record<string, unknown>[]): unknown => ({
    ...m,
    models: m.models.map((x) => (x.id === id ? { ...x, inputs: edit(x.inputs) } : x)),
  });
  const refused = (path: string, pattern: RegExp): void =>
    assert.throws(() => loadManifest(path), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.MODEL_INVALID && pattern.test(e.message), String(pattern));
  const setRoi = (roi: unknown) => (inputs: Record<string, unknown>[]): Record<string, unknown>[] => inputs.map((i) => ({ ...i, roi }));

  // a valid one loads: the copy is the same files
  assert.deepEqual(at(loadManifest(write('.', withInputs(main, 'test-rgb-ir', setRoi(ROI)))).models, 1).roi, ROI);
  refused(write('.', withInputs(main, 'test-rgb', setRoi({ ...ROI, right: 1.5 }))), /model test-rgb: input rgb \(rgb\) has a roi with right 1\.5; every side is a fraction of the frame, 0\.\.1/);
  refused(write('.', withInputs(main, 'test-rgb', setRoi({ ...ROI, left: -0.1 }))), /model test-rgb: input rgb \(rgb\) has a roi with left -0\.1; every side/);
  refused(write('.', withInputs(main, 'test-rgb', setRoi({ ...ROI, left: 0.8 }))), /model test-rgb: input rgb \(rgb\) has a roi with left 0\.8 >= right 0\.8; the box must have a width/);
  refused(write('.', withInputs(main, 'test-rgb', setRoi({ ...ROI, top: 0.95 }))), /model test-rgb: input rgb \(rgb\) has a roi with top 0\.95 >= bottom 0\.9; the box must have a height/);
  refused(write('.', withInputs(main, 'test-rgb', setRoi({ left: 0.1, top: 0.1, right: 0.9 }))), /\/models\/0\/inputs\/0\/roi: must have required property 'bottom'/);
  refused(write('.', withInputs(main, 'test-rgb', setRoi({ ...ROI, width: 0.5 }))), /\/models\/0\/inputs\/0\/roi: must NOT have additional properties/);
  // image inputs of one model share the frame: the same roi, or none
  refused(
    write('.', withInputs(main, 'test-rgb-ir', (inputs) => inputs.map((i) => (i.modality === 'rgb' ? { ...i, roi: ROI } : i)))),
    /model test-rgb-ir: its image inputs have different rois \(rgb \{"left":0\.3,"top":0\.2,"right":0\.8,"bottom":0\.9\}, ir none\); they share the frame's geometry, so they must have the same roi/,
  );
  refused(write('.', withInputs(main, 'test-rgb-ir', (inputs) => inputs.map((i) => ({ ...i, roi: i.modality === 'ir' ? { ...ROI, left: 0.31 } : ROI })))), /model test-rgb-ir: its image inputs have different rois/);
  // a volume is judged whole, and so is the frame of a model that takes one
  refused(write('ct', withInputs(ct, 'null-rgb-ir-ct', (inputs) => inputs.map((i) => (i.modality === 'ct' ? i : { ...i, roi: ROI })))), /model null-rgb-ir-ct: has a roi and a ct input; a model that takes ct judges the whole frame/);
  refused(write('ct', withInputs(ct, 'null-rgb-ir-ct', (inputs) => inputs.map((i) => (i.modality === 'ct' ? { ...i, roi: ROI } : i)))), /model null-rgb-ir-ct: input ct \(ct\) has a roi; only image inputs \(NCHW\) have one, a ct volume is judged whole/);
});
