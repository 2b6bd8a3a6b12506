/** Real encoded frames for the tests: PNGs through sharp, xyz as the MVTec 3D-AD TIFF. */
import sharp from 'sharp';
import type { Frame, Modality } from '../../src/codec/records.js';
import { encodeXyzTiff } from '../../src/codec/tiff-writer.js';

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
