/**
 * The records a station publishes: one Avro Frame per captured image or
 * point cloud, and one Label per part on the labels topic. Only what a real
 * sensor knows goes into a frame — the ground truth stays in the label.
 */
import type { Frame, Label, ModalityVisibility, VisibilityLevel, Volume } from '../codec/records.js';
import type { VisibilityModality } from './defects.js';

/** How each modality's payload is encoded (schemas/avro/Frame.v2.avsc). */
export const FRAME_LAYOUT: Record<VisibilityModality, Pick<Frame, 'encoding' | 'channels' | 'dtype'>> = {
  rgb: { encoding: 'png', channels: 3, dtype: 'uint8' },
  ir: { encoding: 'png', channels: 1, dtype: 'uint16' },
  xyz: { encoding: 'tiff', channels: 3, dtype: 'float32' },
  // a multi-page 16-bit greyscale TIFF, one page per slice
  ct: { encoding: 'tiff', channels: 1, dtype: 'uint16' },
};

export interface StationIdentity {
  line: string;
  station: string;
}

export function frameRecord(a: {
  id: StationIdentity;
  sampleId: string;
  modality: VisibilityModality;
  captureTime: Date;
  width: number;
  height: number;
  payload: Buffer;
  expected: VisibilityModality[] | null;
  attributes: Record<string, string>;
  /** ct: the volume's depth and voxel size (width and height are its slices'). */
  volume?: Volume;
  /** The payload is raw samples (`encoding: raw`), not the modality's file format. */
  raw?: boolean;
}): Frame {
  return {
    sampleId: a.sampleId,
    line: a.id.line,
    station: a.id.station,
    sensorId: `${a.id.station}-${a.modality}`,
    modality: a.modality,
    captureTime: a.captureTime,
    ...FRAME_LAYOUT[a.modality],
    ...(a.raw === true ? { encoding: 'raw' as const } : {}),
    width: a.width,
    height: a.height,
    payload: a.payload,
    payloadRef: null,
    expectedModalities: a.expected,
    attributes: a.attributes,
    volume: a.volume ?? null,
  };
}

export function labelRecord(a: {
  id: StationIdentity;
  sampleId: string;
  productType: string;
  defectType: string;
  visibility: Partial<Record<VisibilityModality, VisibilityLevel>>;
  modalities: readonly VisibilityModality[];
  mask: Buffer | null;
  width: number;
  height: number;
  defectPixels: number;
  captureTime: Date;
  sent: VisibilityModality[];
  dropped: VisibilityModality[];
  source: string;
  seed: number | null;
  attributes: Record<string, string>;
}): Label {
  const visibility: ModalityVisibility[] = a.modalities.map((m) => ({ modality: m, level: a.visibility[m] ?? 'unknown' }));
  return {
    sampleId: a.sampleId,
    line: a.id.line,
    station: a.id.station,
    productType: a.productType,
    defectType: a.defectType,
    visibility,
    mask: a.mask,
    width: a.width,
    height: a.height,
    defectPixels: a.defectPixels,
    captureTime: a.captureTime,
    modalitiesSent: a.sent,
    modalitiesDropped: a.dropped,
    source: a.source,
    seed: a.seed,
    attributes: a.attributes,
  };
}
