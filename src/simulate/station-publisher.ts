/**
 * Runs a station: takes parts from a source (the simulator's renderer or a
 * recorded dataset), follows the timing plan of line-schedule.ts, turns each
 * emission into an Avro record with the sample ID as key and the partition
 * from the project's partitioner, and hands batches to a sink.
 *
 * Paced, it sends each record when the plan says (a live line). Unpaced, it
 * sends in the same order as fast as the sink accepts, with a few batches in
 * flight — the load-test mode; frame timestamps then still follow the plan
 * (event time runs faster than the wall clock).
 */
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import type { VisibilityLevel, Volume } from '../codec/records.js';
import { ErrorCode, MmadError } from '../base/errors.js';
import { traceHeaders } from '../telemetry/tracing.js';
import type { VisibilityModality } from './defects.js';
import { EmissionStream, LineSchedule, type TimingOptions } from './line-schedule.js';
import type { OutRecord, RecordSink, StationCodecs, StationTopics } from './kafka-sink.js';
import { partitionFor } from '../kafka/partitioner.js';
import { frameRecord, labelRecord, type StationIdentity } from './station-records.js';
import { at, present } from '../base/invariant.js';

/** One part as a station source provides it: encoded payloads plus its ground truth. */
export interface SourcedPart {
  /** Becomes the sample ID after the run's prefix. */
  name: string;
  productType: string;
  defectType: string;
  visibility: Partial<Record<VisibilityModality, VisibilityLevel>>;
  width: number;
  height: number;
  defectPixels: number;
  payloads: Partial<Record<VisibilityModality, Buffer>>;
  /**
   * The payloads are raw samples (`encoding: raw`: row-major little-endian samples, height ×
   * width × channels; ct depth × height × width), as a camera streaming uncompressed frames
   * sends them, instead of PNG/TIFF files.
   */
  raw?: boolean;
  /** With a ct payload: the volume's slice size and its geometry (its grid is not the 2D frames'). */
  ct?: { width: number; height: number; volume: Volume };
  /** 8-bit PNG mask, null for a good part or when unknown. */
  mask: Buffer | null;
  seed: number | null;
  source: string;
  /** What every frame of the part carries (product, recipe...; never ground truth). */
  frameAttributes: Record<string, string>;
}

export interface PartSource {
  /** Modalities the parts have ('ct': a part the schedule sends to the CT has a volume). */
  readonly modalities: readonly VisibilityModality[];
  /** Parts available; undefined for an endless source. */
  readonly size: number | undefined;
  get(index: number): Promise<SourcedPart>;
  /** The part's last record is out: its payloads may be dropped. */
  release(index: number): void;
}

export interface StationRunOptions {
  source: PartSource;
  topics: StationTopics;
  sink: RecordSink;
  /** One Frame codec per input topic (a registry keeps a subject per topic), one for labels. */
  codecs: StationCodecs;
  identity: StationIdentity;
  timing: TimingOptions;
  scheduleSeed: number | string;
  /** Parts to publish; undefined: as many as the source has (endless for the simulator). */
  count?: number | undefined;
  /** Stop starting new parts after this much line time (paced) or wall time (unpaced). */
  durationMs?: number | undefined;
  pace: boolean;
  idPrefix: string;
  /** Epoch ms of line time 0 (default: now). */
  startTime?: number;
  /** Send the expectedModalities hint on frames. */
  announceModalities?: boolean;
  /** Publish labels (the ground truth) to the labels topic. */
  labels?: boolean;
  labelAttributes?: Record<string, string>;
  signal?: AbortSignal;
  maxBatchBytes?: number;
  maxBatchRecords?: number;
  maxInFlight?: number;
  onProgress?: (r: PublishReport) => void;
  progressEveryMs?: number;
  /** Clock for pacing (tests inject one); default performance.now/setTimeout. */
  clock?: { now(): number; sleep(ms: number): Promise<void> };
  /**
   * Traces each frame's send (a producer span, ended when its batch is
   * acknowledged) and puts the span's W3C traceparent in the record's headers,
   * so the service's span of the sample links to it.
   */
  tracer?: Tracer;
}

export interface PublishReport {
  parts: number;
  good: number;
  defective: number;
  frames: Record<VisibilityModality, number>;
  labels: number;
  /** Frames the plan lost on purpose. */
  dropped: number;
  /** Second copies sent. */
  duplicated: number;
  /** Frames held back (sent out of order). */
  delayed: number;
  /** Planned emissions not sent because the run was interrupted. */
  unsent: number;
  /** Bytes of record values sent (Avro frames and labels). */
  bytes: number;
  /** Bytes of frame payloads alone. */
  payloadBytes: number;
  elapsedMs: number;
  /** Wall time spent waiting for the source (rendering or reading files). */
  sourceMs: number;
  /** Records per topic and partition. */
  perTopic: Record<string, number[]>;
  /** Line time of the last emission sent. */
  lineTimeMs: number;
}

export function emptyReport(topics: StationTopics): PublishReport {
  const perTopic: Record<string, number[]> = {};
  for (const t of [...Object.values(topics.inputs), topics.labels]) perTopic[t.topic] = new Array<number>(t.partitions).fill(0);
  return {
    parts: 0,
    good: 0,
    defective: 0,
    frames: { rgb: 0, ir: 0, xyz: 0, ct: 0 },
    labels: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    unsent: 0,
    bytes: 0,
    payloadBytes: 0,
    elapsedMs: 0,
    sourceMs: 0,
    perTopic,
    lineTimeMs: 0,
  };
}

const realClock = {
  now: () => performance.now(),
  sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
};

export async function runStation(o: StationRunOptions): Promise<PublishReport> {
  const clock = o.clock ?? realClock;
  const report = emptyReport(o.topics);
  if ((o.timing.ctFraction ?? 0) > 0 && (o.topics.inputs.ct === undefined || o.codecs.frame.ct === undefined || !o.source.modalities.includes('ct'))) {
    throw new MmadError(
      ErrorCode.USAGE,
      `a CT share of ${String(o.timing.ctFraction)} needs a ct input topic (topics.inputs.ct)${o.source.modalities.includes('ct') ? '' : ' and a source with CT volumes'}`,
    );
  }
  const schedule = new LineSchedule(o.timing, o.scheduleSeed, o.source.modalities);
  const maxParts = Math.min(o.count ?? Infinity, o.source.size ?? Infinity);
  const stream = new EmissionStream(schedule, maxParts, o.pace && o.durationMs !== undefined ? o.durationMs : Infinity);
  const startTime = o.startTime ?? Date.now();
  const maxBatchBytes = o.maxBatchBytes ?? 8 * 1024 * 1024;
  const maxBatchRecords = o.maxBatchRecords ?? 500;
  // the sink puts what is handed in while a request is in flight into the next one, so a
  // paced line hands over what is due and goes on with its clock instead of waiting for acks
  const maxInFlight = o.maxInFlight ?? (o.pace ? 16 : 4);
  const announce = o.announceModalities ?? true;
  const withLabels = o.labels ?? true;
  const remaining = new Map<number, number>();
  const t0 = clock.now();
  let batch: OutRecord[] = [];
  let batchSpans: Span[] = [];
  let batchBytes = 0;
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined; // the first failed write
  let lastProgress = t0;

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const records = batch;
    const spans = batchSpans;
    batch = [];
    batchSpans = [];
    batchBytes = 0;
    const p = o.sink.send(records).then(
      () => {
        for (const r of records) {
          const counts = present(report.perTopic[r.topic], `the record counts of ${r.topic}`);
          counts[r.partition] = at(counts, r.partition) + 1;
        }
        for (const s of spans) s.end();
      },
      (err: unknown) => {
        failure ??= { error: err };
        for (const s of spans) {
          s.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
          s.end();
        }
      },
    );
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    if (failure !== undefined) throw failure.error;
  };
  const add = async (r: OutRecord, span?: Span): Promise<void> => {
    batch.push(r);
    if (span !== undefined) batchSpans.push(span);
    batchBytes += r.value.length;
    report.bytes += r.value.length;
    if (batch.length >= maxBatchRecords || batchBytes >= maxBatchBytes) await flush();
  };
  const done = (index: number): void => {
    const left = (remaining.get(index) ?? 1) - 1;
    if (left <= 0) {
      remaining.delete(index);
      o.source.release(index);
    } else remaining.set(index, left);
  };

  try {
    for (;;) {
      if (o.signal?.aborted === true) {
        stream.close();
        report.unsent = stream.pending;
        break;
      }
      if (!o.pace && o.durationMs !== undefined && clock.now() - t0 >= o.durationMs) stream.close();
      const due = stream.peekTime();
      if (due === undefined) break;
      if (o.pace) {
        const wait = due - (clock.now() - t0);
        if (wait > 1) {
          await flush(); // what is due goes out before we sleep
          await sleepUnlessAborted(clock, Math.min(wait, 250), o.signal);
          continue;
        }
      }
      const e = present(stream.next(), 'the emission peekTime() saw');
      const part = e.part;
      const s0 = clock.now();
      const sourced = await o.source.get(part.index);
      report.sourceMs += clock.now() - s0;
      const sampleId = `${o.idPrefix}${sourced.name}`;
      report.lineTimeMs = e.sendMs;
      if (e.kind === 'label') {
        remaining.set(part.index, 1 + part.frames.length);
        report.parts++;
        if (sourced.defectType === 'good') report.good++;
        else report.defective++;
        report.dropped += part.dropped.length;
        if (withLabels) {
          const label = labelRecord({
            id: o.identity,
            sampleId,
            productType: sourced.productType,
            defectType: sourced.defectType,
            visibility: sourced.visibility,
            modalities: o.source.modalities,
            mask: sourced.mask,
            width: sourced.width,
            height: sourced.height,
            defectPixels: sourced.defectPixels,
            captureTime: new Date(startTime + Math.round(part.timeMs)),
            sent: part.sent,
            dropped: part.dropped,
            source: sourced.source,
            seed: sourced.seed,
            attributes: o.labelAttributes ?? {},
          });
          await add({
            topic: o.topics.labels.topic,
            partition: partitionFor(sampleId, o.topics.labels.partitions),
            key: sampleId,
            value: o.codecs.label.encode(label),
            timestamp: startTime + Math.round(part.timeMs),
          });
          report.labels++;
        }
        done(part.index);
      } else {
        const f = e.frame;
        const payload = sourced.payloads[f.modality];
        if (payload === undefined) throw new Error(`part ${sourced.name} has no ${f.modality} payload`);
        const target = present(o.topics.inputs[f.modality], `the ${f.modality} input topic`);
        const codec = present(o.codecs.frame[f.modality], `the ${f.modality} frame codec`);
        const ct = f.modality === 'ct' ? present(sourced.ct, `the CT volume of part ${sourced.name}`) : undefined;
        const frame = frameRecord({
          id: o.identity,
          sampleId,
          modality: f.modality,
          captureTime: new Date(startTime + f.stampedMs),
          width: ct?.width ?? sourced.width,
          height: ct?.height ?? sourced.height,
          payload,
          expected: announce ? part.expected : null,
          attributes: sourced.frameAttributes,
          ...(ct === undefined ? {} : { volume: ct.volume }),
          raw: sourced.raw === true,
        });
        const partition = partitionFor(sampleId, target.partitions);
        const span = o.tracer?.startSpan(`send ${f.modality} frame`, {
          kind: SpanKind.PRODUCER,
          root: true,
          attributes: {
            'mmad.sample_id': sampleId,
            'mmad.modality': f.modality,
            'mmad.line': o.identity.line,
            'mmad.station': o.identity.station,
            'messaging.system': 'kafka',
            'messaging.operation.type': 'send',
            'messaging.destination.name': target.topic,
            'messaging.destination.partition.id': String(partition),
          },
        });
        const headers = span === undefined ? {} : traceHeaders(span);
        await add(
          {
            topic: target.topic,
            partition,
            key: sampleId,
            value: codec.encode(frame),
            timestamp: startTime + Math.round(f.sendMs) + schedule.skewMs[f.modality],
            ...(Object.keys(headers).length > 0 ? { headers } : {}),
          },
          span,
        );
        report.frames[f.modality]++;
        report.payloadBytes += payload.length;
        if (f.duplicate) report.duplicated++;
        if (f.delayed && !f.duplicate) report.delayed++;
        done(part.index);
      }
      if (o.onProgress !== undefined && clock.now() - lastProgress >= (o.progressEveryMs ?? 5000)) {
        lastProgress = clock.now();
        o.onProgress({ ...report, elapsedMs: lastProgress - t0 });
      }
    }
    await flush();
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure.error;
  } finally {
    // nothing may stay in flight past a failure either: the caller disconnects the producer next
    await Promise.allSettled(inFlight);
    report.elapsedMs = clock.now() - t0;
  }
  return report;
}

async function sleepUnlessAborted(clock: { sleep(ms: number): Promise<void> }, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return clock.sleep(ms);
  if (signal.aborted) return;
  await new Promise<void>((resolve) => {
    const onAbort = (): void => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    void clock.sleep(ms).then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/** Frames per second and MB/s (10⁶ bytes) of a report. */
export function throughput(r: PublishReport): { framesPerSecond: number; recordsPerSecond: number; megabytesPerSecond: number } {
  const s = Math.max(r.elapsedMs, 1) / 1000;
  const frames = r.frames.rgb + r.frames.ir + r.frames.xyz + r.frames.ct;
  return { framesPerSecond: frames / s, recordsPerSecond: (frames + r.labels) / s, megabytesPerSecond: r.bytes / 1e6 / s };
}

/** The report as lines for a terminal. */
export function formatReport(r: PublishReport): string[] {
  const t = throughput(r);
  const frames = r.frames.rgb + r.frames.ir + r.frames.xyz + r.frames.ct;
  const lines = [
    `parts: ${r.parts} (good ${r.good}, defective ${r.defective})   line time: ${(r.lineTimeMs / 1000).toFixed(1)} s   wall time: ${(r.elapsedMs / 1000).toFixed(2)} s`,
    `frames: ${frames} (rgb ${r.frames.rgb}, ir ${r.frames.ir}, xyz ${r.frames.xyz}${r.frames.ct > 0 ? `, ct ${r.frames.ct}` : ''})   labels: ${r.labels}`,
    `faults: dropped ${r.dropped}, duplicated ${r.duplicated}, out of order ${r.delayed}${r.unsent > 0 ? `, unsent (interrupted) ${r.unsent}` : ''}`,
    `throughput: ${t.framesPerSecond.toFixed(1)} frames/s, ${t.megabytesPerSecond.toFixed(2)} MB/s (${(r.bytes / 1e6).toFixed(1)} MB of records, ${(r.payloadBytes / 1e6).toFixed(1)} MB of payloads); waiting for the source ${(r.sourceMs / 1000).toFixed(2)} s`,
    'records per topic and partition:',
  ];
  const width = Math.max(...Object.keys(r.perTopic).map((k) => k.length));
  for (const [topic, counts] of Object.entries(r.perTopic)) {
    lines.push(`  ${topic.padEnd(width)}  ${counts.map((c, p) => `p${p}=${c}`).join(' ')}  total=${counts.reduce((a, b) => a + b, 0)}`);
  }
  return lines;
}
