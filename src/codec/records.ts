/**
 * TypeScript shapes of the Avro records in schemas/avro (the newest version of
 * each). avsc hands back exactly these: timestamp-millis as Date, bytes as
 * Buffer, a union with null as the value or null.
 */
export const MODALITIES = ['rgb', 'ir', 'xyz', 'ct'] as const;
/** A sensor modality the service knows. */
export type Modality = (typeof MODALITIES)[number];
/** On the wire a frame may also say 'unknown': a newer writer's modality this reader does not know. */
export type WireModality = Modality | 'unknown';

export type PayloadEncoding = 'png' | 'tiff' | 'raw';
export type SampleType = 'uint8' | 'uint16' | 'float32';

export interface PayloadRef {
  uri: string;
  sizeBytes: number;
  sha256: string | null;
}

/** Edge lengths of one voxel, mm. */
export interface VoxelSize {
  x: number;
  y: number;
  z: number;
}

/** The geometry of a ct frame (Frame version 2): depth slices of the frame's width × height. */
export interface Volume {
  depth: number;
  voxelSizeMm: VoxelSize;
}

export interface Frame {
  sampleId: string;
  line: string;
  station: string;
  sensorId: string;
  modality: WireModality;
  captureTime: Date;
  encoding: PayloadEncoding;
  width: number;
  height: number;
  channels: number;
  dtype: SampleType;
  payload: Buffer | null;
  payloadRef: PayloadRef | null;
  expectedModalities: WireModality[] | null;
  attributes: Record<string, string>;
  /** ct only; null otherwise (and in version-1 records). */
  volume: Volume | null;
}

export type Verdict = 'OK' | 'NOK' | 'UNKNOWN';

export interface ModelRef {
  id: string;
  version: string;
  modalities: WireModality[];
}

export interface Heatmap {
  png: Buffer;
  width: number;
  height: number;
  scale: number;
}

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
  area: number;
  peak: number;
  /** AnomalyEvent v2: height of the region's peak above the CT volume's lowest slice, mm; null unless the model took ct. */
  depthMm: number | null;
}

export interface Timings {
  joinWaitMs: number;
  preprocessMs: number;
  inferenceMs: number;
  endToEndMs: number;
}

export interface SourceFrame {
  modality: WireModality;
  topic: string;
  partition: number;
  offset: number;
  captureTime: Date;
}

export interface AnomalyEvent {
  sampleId: string;
  line: string;
  station: string;
  revision: number;
  final: boolean;
  captureTime: Date;
  verdict: Verdict;
  reason: string | null;
  score: number | null;
  threshold: number | null;
  modalitiesUsed: WireModality[];
  modalitiesMissing: WireModality[];
  model: ModelRef | null;
  heatmap: Heatmap | null;
  regions: Region[];
  timings: Timings;
  sources: SourceFrame[];
  producedAt: Date;
}

export type Severity = 'WARNING' | 'CRITICAL';

export interface Alert {
  sampleId: string;
  line: string;
  station: string;
  revision: number;
  severity: Severity;
  score: number;
  threshold: number;
  modelId: string;
  modelVersion: string;
  modalitiesUsed: WireModality[];
  regionCount: number;
  message: string;
  captureTime: Date;
  producedAt: Date;
}

export interface SourceRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: Date;
  key: Buffer | null;
}

export interface DeadLetter {
  reasonCode: string;
  message: string;
  source: SourceRecord;
  sampleId: string | null;
  modality: string | null;
  original: Buffer;
  producedAt: Date;
}

export type VisibilityLevel = 'none' | 'faint' | 'strong' | 'unknown';

export interface ModalityVisibility {
  modality: WireModality;
  level: VisibilityLevel;
}

/** Ground truth of a sample, on the labels topic (evaluation only; the service never reads it). */
export interface Label {
  sampleId: string;
  line: string;
  station: string;
  productType: string;
  /** 'good' or the defect's name. */
  defectType: string;
  visibility: ModalityVisibility[];
  /** 8-bit grey PNG, or null for a good part / unknown mask. */
  mask: Buffer | null;
  width: number;
  height: number;
  defectPixels: number;
  captureTime: Date;
  modalitiesSent: WireModality[];
  modalitiesDropped: WireModality[];
  source: string;
  seed: number | null;
  attributes: Record<string, string>;
}

/** The join's changelog record (internal topic): what has been published for a sample. */
export interface JoinState {
  sampleId: string;
  revision: number;
  modalities: string[];
  firstCapture: Date;
  closed: boolean;
  closedAt: number | null;
}

/** Record name → TypeScript shape, for the typed codec. */
export interface RecordTypes {
  Frame: Frame;
  AnomalyEvent: AnomalyEvent;
  Alert: Alert;
  DeadLetter: DeadLetter;
  Label: Label;
  JoinState: JoinState;
}
export type RecordName = keyof RecordTypes;
export const RECORD_NAMES: readonly RecordName[] = ['Frame', 'AnomalyEvent', 'Alert', 'DeadLetter', 'Label', 'JoinState'];
