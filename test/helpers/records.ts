/** Complete, valid records of every schema, for round-trip tests. */
import type { Alert, AnomalyEvent, DeadLetter, Frame, Label } from '../../src/codec/records.js';

export function sampleFrame(payload: Buffer = Buffer.from([0x89, 0x50, 0x4e, 0x47]), overrides: Partial<Frame> = {}): Frame {
  return {
    sampleId: 'S-000123',
    line: 'line-1',
    station: 'st-7',
    sensorId: 'cam-rgb-0',
    modality: 'rgb',
    captureTime: new Date('2026-11-23T08:00:00.123Z'),
    encoding: 'png',
    width: 256,
    height: 256,
    channels: 3,
    dtype: 'uint8',
    payload,
    payloadRef: null,
    expectedModalities: ['rgb', 'ir', 'xyz'],
    attributes: { lot: 'L42', recipe: 'lid-v3' },
    volume: null,
    ...overrides,
  };
}

export function sampleEvent(): AnomalyEvent {
  return {
    sampleId: 'S-000123',
    line: 'line-1',
    station: 'st-7',
    revision: 2,
    final: true,
    captureTime: new Date('2026-11-23T08:00:00.123Z'),
    verdict: 'NOK',
    reason: null,
    score: 3.75,
    threshold: 2.5,
    modalitiesUsed: ['rgb', 'ir', 'xyz'],
    modalitiesMissing: [],
    model: { id: 'crd-rgb-ir-xyz', version: '1.0.0', modalities: ['rgb', 'ir', 'xyz'] },
    heatmap: { png: Buffer.from([1, 2, 3]), width: 64, height: 64, scale: 5.5 },
    regions: [{ x: 10, y: 20, width: 30, height: 12, area: 250, peak: 5.5, depthMm: null }],
    timings: { joinWaitMs: 12.5, preprocessMs: 3.25, inferenceMs: 20, endToEndMs: 40.5 },
    sources: [
      { modality: 'rgb', topic: 'in.rgb', partition: 2, offset: 100, captureTime: new Date('2026-11-23T08:00:00.123Z') },
      { modality: 'xyz', topic: 'in.xyz', partition: 2, offset: 7, captureTime: new Date('2026-11-23T08:00:09.000Z') },
    ],
    producedAt: new Date('2026-11-23T08:00:10.000Z'),
  };
}

export function sampleAlert(): Alert {
  return {
    sampleId: 'S-000123',
    line: 'line-1',
    station: 'st-7',
    revision: 2,
    severity: 'CRITICAL',
    score: 3.75,
    threshold: 2.5,
    modelId: 'crd-rgb-ir-xyz',
    modelVersion: '1.0.0',
    modalitiesUsed: ['rgb', 'ir', 'xyz'],
    regionCount: 1,
    message: 'NOK: score 3.75 ≥ 2.5',
    captureTime: new Date('2026-11-23T08:00:00.123Z'),
    producedAt: new Date('2026-11-23T08:00:10.000Z'),
  };
}

export function sampleDeadLetter(): DeadLetter {
  return {
    reasonCode: 'CODEC_BAD_MAGIC',
    message: 'not an Avro record',
    source: { topic: 'in.rgb', partition: 1, offset: 55, timestamp: new Date('2026-11-23T08:00:00.000Z'), key: Buffer.from('S-1') },
    sampleId: null,
    modality: null,
    original: Buffer.from('garbage'),
    producedAt: new Date('2026-11-23T08:00:01.000Z'),
  };
}

export function sampleLabel(overrides: Partial<Label> = {}): Label {
  return {
    sampleId: 'S-000123',
    line: 'line-1',
    station: 'st-7',
    productType: 'battery_lid',
    defectType: 'hot_spot',
    visibility: [
      { modality: 'rgb', level: 'none' },
      { modality: 'ir', level: 'strong' },
      { modality: 'xyz', level: 'none' },
    ],
    mask: Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]),
    width: 256,
    height: 256,
    defectPixels: 412,
    captureTime: new Date('2026-11-23T08:00:00.123Z'),
    modalitiesSent: ['rgb', 'ir'],
    modalitiesDropped: ['xyz'],
    source: 'simulator',
    seed: 4_000_000_123,
    attributes: { defectSize: '1', defectContrast: '1' },
    ...overrides,
  };
}

/** avsc decodes records as instances of generated classes; this strips the prototypes (keeping Buffer and Date) for deep equality. */
export function plain<T>(v: T): T {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v) || v instanceof Date) return v;
  if (Array.isArray(v)) return v.map(plain) as T;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) as T;
}
