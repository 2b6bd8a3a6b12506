/** Real encoded frames for the tests: PNGs through sharp, xyz as the MVTec 3D-AD TIFF. */
import sharp from 'sharp';
import type { Frame, Modality } from '../../src/codec/records.js';
import { encodeVolumeTiff, encodeXyzTiff } from '../../src/codec/tiff-writer.js';

export interface FrameOptions {
  size?: number;
  /** A bright square on rgb at (x, y, side) — anomalous for the test students. */
  square?: [number, number, number];
  captureTime?: number;
  expected?: Modality[] | null;
}

export async function makeFrame(sampleId: string, modality: 'rgb' | 'ir' | 'xyz', o: FrameOptions = {}): Promise<Frame> {
  const n = o.size ?? 32;
  let payload: Buffer;
  if (modality === 'rgb') {
    const px = new Uint8Array(n * n * 3).fill(128);
    if (o.square) {
      const [x0, y0, s] = o.square;
      for (let y = y0; y < y0 + s; y++) for (let x = x0; x < x0 + s; x++) px.fill(250, (y * n + x) * 3, (y * n + x) * 3 + 3);
    }
    payload = await sharp(px, { raw: { width: n, height: n, channels: 3 } }).toColourspace('srgb').png().toBuffer();
  } else if (modality === 'ir') {
    payload = await sharp(new Uint16Array(n * n).fill(30000), { raw: { width: n, height: n, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  } else {
    const pc = new Float32Array(n * n * 3);
    for (let i = 0; i < n * n; i++) pc.set([0, 0, 0.5], i * 3);
    payload = encodeXyzTiff(pc, n, n);
  }
  const spec = { rgb: [3, 'uint8', 'png'], ir: [1, 'uint16', 'png'], xyz: [3, 'float32', 'tiff'] } as const;
  const [channels, dtype, encoding] = spec[modality];
  return {
    sampleId,
    line: 'line-1',
    station: 'st-1',
    sensorId: `${modality}-0`,
    modality,
    captureTime: new Date(o.captureTime ?? Date.now()),
    encoding,
    width: n,
    height: n,
    channels,
    dtype,
    payload,
    payloadRef: null,
    expectedModalities: o.expected ?? null,
    attributes: {},
    volume: null,
  };
}

/**
 * A ct frame for the ct test students (fixtures/models/ct: an 8-slice grid of 16 × 16): a
 * 16 × 16 volume of `depth` slices (a multiple of 8), dark but for a bright column under
 * volume rows 4..5, columns 10..11 (map rows 8..11, columns 20..23 of the 32 × 32 frames),
 * bright over slices 3..7 of the model's 8 and brightest at slice 5, so the null student's
 * anomaly_depth there is 5.
 */
export function makeVolumeFrame(sampleId: string, o: { depth?: number; voxelZMm?: number; captureTime?: number; expected?: Modality[] | null } = {}): Frame {
  const [depth, h, w] = [o.depth ?? 8, 16, 16];
  const data = new Uint16Array(depth * h * w);
  const per = depth / 8;
  for (let z = 0; z < depth; z++) {
    const modelSlice = Math.floor(z / per);
    const v = modelSlice === 5 ? 65535 : modelSlice >= 3 ? 60000 : 0;
    for (let y = 4; y < 6; y++) for (let x = 10; x < 12; x++) data[(z * h + y) * w + x] = v;
  }
  return volumeFrame(sampleId, { depth, height: h, width: w }, {
    captureTime: new Date(o.captureTime ?? Date.now()),
    payload: encodeVolumeTiff(data, w, h, depth),
    expectedModalities: o.expected ?? null,
    volume: { depth, voxelSizeMm: { x: 0.1, y: 0.1, z: o.voxelZMm ?? 0.5 } },
  });
}

/** A ct frame of a depth × height × width grid, a multi-page TIFF by default; `o` sets any field (payload, volume...). */
export function volumeFrame(sampleId: string, grid: { depth: number; height: number; width: number }, o: Partial<Frame> = {}): Frame {
  return {
    sampleId,
    line: 'line-1',
    station: 'st-1',
    sensorId: 'ct-0',
    modality: 'ct',
    captureTime: new Date(),
    encoding: 'tiff',
    width: grid.width,
    height: grid.height,
    channels: 1,
    dtype: 'uint16',
    payload: encodeVolumeTiff(new Uint16Array(grid.depth * grid.height * grid.width), grid.width, grid.height, grid.depth),
    payloadRef: null,
    expectedModalities: null,
    attributes: {},
    volume: { depth: grid.depth, voxelSizeMm: { x: 0.2, y: 0.2, z: 0.5 } },
    ...o,
  };
}
