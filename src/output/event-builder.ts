/**
 * Output stage: a judgement → the records the service publishes for it: one
 * AnomalyEvent (always), an Alert when the verdict is NOK, a DeadLetter for
 * each frame that could not be used. Every record is keyed by sample id.
 */
import { createHash } from 'node:crypto';
import type { ErrorCode } from '../base/errors.js';
import type { Alert, AnomalyEvent, DeadLetter, Severity } from '../codec/records.js';
import type { Judgement } from '../inference/judge.js';
import type { FrameSource } from '../join/sample-joiner.js';
import { depthMm } from '../inference/volume.js';
import { outOfRange } from '../base/invariant.js';
import { anomalousRegions, heatmapPng } from './anomaly-map.js';

export interface OutputOptions {
  heatmapSize: number;
  maxRegions: number;
}

/** What one step publishes: an event (absent for a step that only dead-letters a frame), an alert, dead letters. */
export interface Outputs {
  event: AnomalyEvent | null;
  alert: Alert | null;
  deadLetters: DeadLetter[];
}

/** A score within this fraction above the threshold is a WARNING, further above CRITICAL. */
export const WARNING_BAND = 0.25;

export function buildOutputs(j: Judgement, options: OutputOptions, now: () => number = Date.now): Outputs {
  const route = j.route;
  const map = j.map;
  const threshold = j.threshold;
  const d = j.depth;
  // a model that took ct: the depth of a region's peak, in mm above the volume's lowest slice
  const depthAt = d === null ? undefined : (cell: number): number | null => depthMm(d.data[cell] ?? outOfRange(d.data, cell), d.sourceDepth, d.modelDepth, d.voxelZMm);
  const drawn = map !== null && threshold !== null && options.heatmapSize > 0 ? heatmapPng(map.data, map.height, map.width, options.heatmapSize, threshold) : null;
  // a map whose peak is under the threshold (most parts) has no region: not scanned again
  const regions =
    map !== null && threshold !== null && j.sourceSize !== null && options.maxRegions > 0 && (drawn === null || drawn.peak >= threshold)
      ? anomalousRegions(map.data, map.height, map.width, threshold, j.sourceSize.width, j.sourceSize.height, options.maxRegions, depthAt)
      : [];
  const heatmap = drawn?.heatmap ?? null;
  const producedAt = now();
  const event: AnomalyEvent = {
    sampleId: j.sampleId,
    line: j.line,
    station: j.station,
    revision: j.revision,
    final: j.final,
    captureTime: new Date(j.firstCapture),
    verdict: j.verdict,
    reason: j.reason,
    score: j.score,
    threshold,
    modalitiesUsed: j.used,
    modalitiesMissing: j.missing,
    model: route === null ? null : { id: route.model.spec.id, version: route.model.spec.version, modalities: [...route.model.spec.modalities] },
    heatmap,
    regions,
    timings: {
      joinWaitMs: Math.max(0, j.releasedAt - j.firstArrival),
      preprocessMs: j.preprocessMs,
      inferenceMs: j.inferenceMs,
      endToEndMs: Math.max(0, producedAt - j.firstArrival),
    },
    sources: j.frames.map((f) => ({
      modality: f.modality,
      topic: f.source.topic,
      partition: f.source.partition,
      offset: Number(f.source.offset),
      captureTime: new Date(f.captureTime),
    })),
    producedAt: new Date(producedAt),
  };
  let alert: Alert | null = null;
  if (j.verdict === 'NOK' && route !== null && j.score !== null && threshold !== null) {
    const severity: Severity = j.score >= threshold * (1 + WARNING_BAND) ? 'CRITICAL' : 'WARNING';
    alert = {
      sampleId: j.sampleId,
      line: j.line,
      station: j.station,
      revision: j.revision,
      severity,
      score: j.score,
      threshold,
      modelId: route.model.spec.id,
      modelVersion: route.model.spec.version,
      modalitiesUsed: j.used,
      regionCount: regions.length,
      message:
        `${severity}: part ${j.sampleId} on ${j.line}/${j.station} is NOK (score ${j.score.toPrecision(4)} ≥ ${threshold.toPrecision(4)}, ` +
        `${j.used.join('+')}, ${regions.length} region(s)${j.final ? '' : ', provisional'})`,
      captureTime: new Date(j.firstCapture),
      producedAt: new Date(producedAt),
    };
  }
  const deadLetters = j.unusable.map((u) =>
    deadLetter(
      u.code,
      `sample ${j.sampleId}, ${u.input.modality} frame: ${u.message}`,
      { ...u.input.source, timestamp: u.input.payload.timestamp, key: u.input.payload.key },
      u.input.payload.raw,
      j.sampleId,
      u.input.modality,
      producedAt,
    ),
  );
  return { event, alert, deadLetters };
}

/** Room left in a dead letter's record for everything but the original bytes (reason, message, source, ids; Avro framing). */
export const DEAD_LETTER_OVERHEAD_BYTES = 65_536;
const MAX_MESSAGE_CHARS = 4_096;

/**
 * The dead letter made to fit a record of `maxRecordBytes`: the message cut to
 * 4096 characters; an original too large to fit beside the rest replaced by
 * nothing, the message then naming its size and SHA-256 (the record itself
 * stays on its input topic at the source coordinates until the topic's retention
 * removes it); a source key that still does not fit dropped. Writing a dead
 * letter must never fail for its size: the task would be rebuilt and meet the
 * same record again.
 */
export function fitDeadLetter(d: DeadLetter, maxRecordBytes: number): DeadLetter {
  const budget = maxRecordBytes - DEAD_LETTER_OVERHEAD_BYTES;
  let message = d.message.length > MAX_MESSAGE_CHARS ? `${d.message.slice(0, MAX_MESSAGE_CHARS)}…` : d.message;
  let key = d.source.key;
  let original = d.original;
  // the key travels twice: as the dead letter's record key and inside it
  if (original.length + 2 * (key?.length ?? 0) > budget) {
    const sha = createHash('sha256').update(original).digest('hex');
    message += ` [original of ${original.length} bytes omitted (over the dead-letter record limit), SHA-256 ${sha}; it is at ${d.source.topic}/${d.source.partition}@${d.source.offset}]`;
    original = Buffer.alloc(0);
  }
  if (key !== null && 2 * key.length > budget) {
    message += ` [source key of ${key.length} bytes omitted]`;
    key = null;
  }
  if (message === d.message && key === d.source.key && original === d.original) return d;
  return { ...d, message, original, source: { ...d.source, key } };
}

/** A dead letter for an input record, carrying its original bytes; its `reasonCode` is one of the service's error codes. */
export function deadLetter(
  reasonCode: ErrorCode,
  message: string,
  source: FrameSource & { timestamp?: number; key?: Buffer | null },
  original: Buffer,
  sampleId: string | null,
  modality: string | null,
  producedAt: number,
): DeadLetter {
  return {
    reasonCode,
    message,
    source: {
      topic: source.topic,
      partition: source.partition,
      offset: Number(source.offset),
      timestamp: new Date(source.timestamp ?? producedAt),
      key: source.key ?? null,
    },
    sampleId,
    modality,
    original,
    producedAt: new Date(producedAt),
  };
}
