/**
 * The service's metrics: every instrument in one place, with its name,
 * labels and (for histograms) explicit bucket boundaries, and a narrow API
 * the runtime's hooks call. Names are Prometheus-style (seconds, `_total`
 * added to counters by the exporter), so the same names appear on /metrics
 * and, through an OpenTelemetry collector, over OTLP.
 *
 * Sources, observed from outside the runtime:
 *  - the processor's `onWritten` hook (one call per published step):
 *    verdicts, modality coverage, latencies, batch sizes, dead letters, alerts;
 *  - its `onDelivery` hook: records read per modality, consumer lag per task;
 *  - its read-only `stats()`, `status()` and `joinSnapshot()`, read at each
 *    collection: join outcomes, pending samples, tasks, commits, restarts;
 *  - the students' micro-batchers: inference runs and samples per model.
 *
 * README.md (Operations → Metrics) lists these; test/deploy checks that every
 * metric a dashboard or an autoscaler uses is one of them.
 */
import type { BatchObservableResult, Counter, Histogram, Meter, Observable } from '@opentelemetry/api';
import type { Modality } from '../codec/records.js';
import type { Judgement } from '../inference/judge.js';
import type { ModelRegistry } from '../inference/model-registry.js';
import type { Outputs } from '../output/event-builder.js';
import type { Delivery, JoinSnapshot, ProcessorStats, ProcessorStatus } from '../runtime/processor-status.js';

/** First frame arrival → release, and → published: seconds, up to the late-modality windows. */
export const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] as const;
/** One stage of judging (decode+resize, a model run): seconds. */
export const STAGE_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;
/** Samples per micro-batch. */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256] as const;

export interface MetricDef {
  name: string;
  type: 'counter' | 'histogram' | 'gauge';
  unit: string;
  labels: readonly string[];
  description: string;
  buckets?: readonly number[];
}

export const METRICS = {
  framesRead: {
    name: 'mmad_frames_read',
    type: 'counter',
    unit: '{record}',
    labels: ['modality'],
    description: 'Records taken from the input topics, by the modality of the topic (records a rebuilt task reads again count again).',
  },
  joinOutcomes: {
    name: 'mmad_join_outcomes',
    type: 'counter',
    unit: '{sample}',
    labels: ['outcome'],
    description:
      'Join results: complete (every modality in), provisional (judged without a late modality), timed_out (judged after an optional wait expired), unknown (a required modality never came), late (a late modality refined a verdict), duplicate (frame), too_late (frame, dead-lettered).',
  },
  joinTimeouts: {
    name: 'mmad_join_timeouts',
    type: 'counter',
    unit: '{sample}',
    labels: ['modality'],
    description: 'Samples released or closed without a modality because its wait expired.',
  },
  verdicts: {
    name: 'mmad_verdicts',
    type: 'counter',
    unit: '{event}',
    labels: ['model', 'model_version', 'verdict', 'revision'],
    description: 'Anomaly events by model (none for UNKNOWN without a model), verdict (OK, NOK, UNKNOWN) and revision (first: one per part; refined).',
  },
  modalityCoverage: {
    name: 'mmad_modality_coverage',
    type: 'counter',
    unit: '{event}',
    labels: ['modalities'],
    description: 'Anomaly events by the modalities the verdict used (e.g. rgb+ir, rgb+ir+xyz; none).',
  },
  modalitiesUnused: {
    name: 'mmad_modalities_unused',
    type: 'counter',
    unit: '{frame}',
    labels: ['modality'],
    description: 'Frames a judged revision had that its student does not take, by modality (e.g. ct, which no student takes yet: the part keeps the verdict of the modalities a student takes).',
  },
  deadLetters: {
    name: 'mmad_dead_letters',
    type: 'counter',
    unit: '{record}',
    labels: ['reason'],
    description: 'Dead letters published, by reason code.',
  },
  alerts: {
    name: 'mmad_alerts',
    type: 'counter',
    unit: '{alert}',
    labels: ['severity'],
    description: 'Alerts published (one per NOK revision), by severity.',
  },
  joinWait: {
    name: 'mmad_join_wait_seconds',
    type: 'histogram',
    unit: 's',
    labels: [],
    description: "From the arrival of a sample's first frame to its release by the join.",
    buckets: LATENCY_BUCKETS_S,
  },
  preprocess: {
    name: 'mmad_preprocess_seconds',
    type: 'histogram',
    unit: 's',
    labels: ['model'],
    description: "Decoding and resizing a sample's frames for its student.",
    buckets: STAGE_BUCKETS_S,
  },
  inference: {
    name: 'mmad_inference_seconds',
    type: 'histogram',
    unit: 's',
    labels: ['model'],
    description: 'The ONNX Runtime run of the micro-batch a sample was in (recorded once per sample).',
    buckets: STAGE_BUCKETS_S,
  },
  endToEnd: {
    name: 'mmad_end_to_end_seconds',
    type: 'histogram',
    unit: 's',
    labels: [],
    description: "From the arrival of a sample's first frame to its event being written (before the transaction commits).",
    buckets: LATENCY_BUCKETS_S,
  },
  batchSize: {
    name: 'mmad_batch_size',
    type: 'histogram',
    unit: '{sample}',
    labels: ['model'],
    description: 'Size of the micro-batch each sample was inferred in (recorded once per sample; runs and samples give the mean per run).',
    buckets: BATCH_SIZE_BUCKETS,
  },
  inferenceRuns: {
    name: 'mmad_inference_runs',
    type: 'counter',
    unit: '{run}',
    labels: ['model'],
    description: 'ONNX Runtime runs (micro-batches) per model.',
  },
  inferenceSamples: {
    name: 'mmad_inference_samples',
    type: 'counter',
    unit: '{sample}',
    labels: ['model'],
    description: 'Samples inferred per model.',
  },
  consumerLag: {
    name: 'mmad_consumer_lag_records',
    type: 'gauge',
    unit: '{record}',
    labels: ['task', 'modality'],
    description: "Records behind the end of each input partition this member owns, as of the task's last delivery (a paused partition keeps its last value).",
  },
  pendingSamples: {
    name: 'mmad_pending_samples',
    type: 'gauge',
    unit: '{sample}',
    labels: [],
    description: 'Samples waiting in the joins of this member.',
  },
  pendingBytes: {
    name: 'mmad_pending_bytes',
    type: 'gauge',
    unit: 'By',
    labels: [],
    description: 'Bytes of frames held by those samples.',
  },
  tasks: {
    name: 'mmad_tasks',
    type: 'gauge',
    unit: '{task}',
    labels: ['state'],
    description: 'Tasks of this member: running, starting (fencing, restoring), paused (backpressure).',
  },
  commits: {
    name: 'mmad_commits',
    type: 'counter',
    unit: '{commit}',
    labels: [],
    description: 'Commits (transactions under exactly-once) of all tasks.',
  },
  taskRestarts: {
    name: 'mmad_task_restarts',
    type: 'counter',
    unit: '{restart}',
    labels: [],
    description: 'Tasks rebuilt from Kafka after a failed write or commit.',
  },
  keyProblems: {
    name: 'mmad_key_problems',
    type: 'counter',
    unit: '{record}',
    labels: [],
    description: 'Frames whose key is not their sample id or does not hash (murmur2) to their partition.',
  },
  clockSkew: {
    name: 'mmad_station_clock_skew_seconds',
    type: 'gauge',
    unit: 's',
    labels: ['line', 'station'],
    description:
      "A station's last frame: capture time minus the record's timestamp (positive: the station's clock is ahead). Beyond input.maxClockLeadMs / maxClockLagMs frames are FRAME_CLOCK_SKEW dead letters. At most 256 stations.",
  },
  closedSamples: {
    name: 'mmad_join_closed_samples',
    type: 'gauge',
    unit: '{sample}',
    labels: [],
    description: 'Closed samples the joins remember (to recognise duplicates and late frames); bounded by join.maxClosedSamples and maxClosedBytes per task.',
  },
  closedForgottenEarly: {
    name: 'mmad_join_closed_forgotten_early',
    type: 'counter',
    unit: '{sample}',
    labels: [],
    description: 'Closed samples forgotten before join.closedRetentionMs because a task reached its closed-sample bound.',
  },
  stuckClaimReads: {
    name: 'mmad_claim_check_stuck_reads',
    type: 'gauge',
    unit: '{read}',
    labels: [],
    description: 'Claim-check reads past input.claimCheckTimeoutMs that have not returned (storage not answering); at input.maxStuckClaimReads references fail at once.',
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;

/** The series names Prometheus shows for a metric. */
export function seriesNames(def: MetricDef): string[] {
  if (def.type === 'counter') return [`${def.name}_total`];
  if (def.type === 'histogram') return [`${def.name}_bucket`, `${def.name}_sum`, `${def.name}_count`];
  return [def.name];
}

/** Every series name the service exports. */
export function allSeriesNames(): string[] {
  return Object.values(METRICS).flatMap((d) => seriesNames(d));
}

/** What the metrics read from the stream processor at each collection (StreamProcessor has these). */
export interface ProcessorView {
  stats(): ProcessorStats;
  status(): ProcessorStatus;
  joinSnapshot(): JoinSnapshot;
}

const OUTCOMES = ['complete', 'provisional', 'timed_out', 'unknown', 'late', 'duplicate', 'too_late'] as const;

export class ServiceMetrics {
  private readonly counters: Record<'framesRead' | 'verdicts' | 'modalityCoverage' | 'modalitiesUnused' | 'deadLetters' | 'alerts', Counter>;
  private readonly histograms: Record<'joinWait' | 'preprocess' | 'inference' | 'endToEnd' | 'batchSize', Histogram>;
  private readonly modalityOf: Map<string, Modality>;
  /** Task → input topic → lag at its last delivery. */
  private readonly lag = new Map<number, Map<string, number>>();
  private processor: ProcessorView | undefined;
  private registry: ModelRegistry | undefined;

  constructor(
    meter: Meter,
    inputs: { topic: string; modality: Modality }[],
  ) {
    this.modalityOf = new Map(inputs.map((i) => [i.topic, i.modality]));
    const counter = (k: MetricKey): Counter => {
      const d: MetricDef = METRICS[k];
      return meter.createCounter(d.name, { description: d.description, unit: d.unit });
    };
    const histogram = (k: MetricKey): Histogram => {
      const d: MetricDef = METRICS[k];
      return meter.createHistogram(d.name, { description: d.description, unit: d.unit, advice: { explicitBucketBoundaries: [...(d.buckets ?? [])] } });
    };
    this.counters = {
      framesRead: counter('framesRead'),
      verdicts: counter('verdicts'),
      modalityCoverage: counter('modalityCoverage'),
      modalitiesUnused: counter('modalitiesUnused'),
      deadLetters: counter('deadLetters'),
      alerts: counter('alerts'),
    };
    this.histograms = {
      joinWait: histogram('joinWait'),
      preprocess: histogram('preprocess'),
      inference: histogram('inference'),
      endToEnd: histogram('endToEnd'),
      batchSize: histogram('batchSize'),
    };
    const observable = (k: MetricKey): Observable => {
      const d: MetricDef = METRICS[k];
      const o = { description: d.description, unit: d.unit };
      return d.type === 'gauge' ? meter.createObservableGauge(d.name, o) : meter.createObservableCounter(d.name, o);
    };
    const obs = {
      joinOutcomes: observable('joinOutcomes'),
      joinTimeouts: observable('joinTimeouts'),
      inferenceRuns: observable('inferenceRuns'),
      inferenceSamples: observable('inferenceSamples'),
      consumerLag: observable('consumerLag'),
      pendingSamples: observable('pendingSamples'),
      pendingBytes: observable('pendingBytes'),
      tasks: observable('tasks'),
      commits: observable('commits'),
      taskRestarts: observable('taskRestarts'),
      keyProblems: observable('keyProblems'),
      clockSkew: observable('clockSkew'),
      closedSamples: observable('closedSamples'),
      closedForgottenEarly: observable('closedForgottenEarly'),
      stuckClaimReads: observable('stuckClaimReads'),
    };
    meter.addBatchObservableCallback((r) => this.collect(r, obs), Object.values(obs));
  }

  /** The processor (and its students) whose state is read at each collection. */
  attach(processor: ProcessorView, registry?: ModelRegistry): void {
    this.processor = processor;
    this.registry = registry;
  }

  /** The processor's `onDelivery` hook. */
  delivered(d: Delivery): void {
    const modality = this.modalityOf.get(d.topic);
    if (modality === undefined) return;
    this.counters.framesRead.add(d.records, { modality });
    let topics = this.lag.get(d.partition);
    if (topics === undefined) this.lag.set(d.partition, (topics = new Map<string, number>()));
    topics.set(d.topic, d.lag);
  }

  /** The processor's `onWritten` hook: one published step (a judgement, or dead letters alone); `writtenAt` epoch ms. */
  written(j: Judgement | null, outputs: Outputs, writtenAt: number): void {
    for (const d of outputs.deadLetters) this.counters.deadLetters.add(1, { reason: d.reasonCode });
    if (outputs.alert !== null) this.counters.alerts.add(1, { severity: outputs.alert.severity });
    if (j === null || outputs.event === null) return;
    const spec = j.route?.model.spec;
    const model = spec?.id ?? 'none';
    this.counters.verdicts.add(1, { model, model_version: spec?.version ?? 'none', verdict: j.verdict, revision: j.revision === 1 ? 'first' : 'refined' });
    this.counters.modalityCoverage.add(1, { modalities: j.used.length === 0 ? 'none' : j.used.join('+') });
    for (const modality of j.route?.unused ?? []) this.counters.modalitiesUnused.add(1, { modality });
    if (Number.isFinite(j.firstArrival)) {
      this.histograms.joinWait.record(Math.max(0, j.releasedAt - j.firstArrival) / 1000);
      this.histograms.endToEnd.record(Math.max(0, writtenAt - j.firstArrival) / 1000);
    }
    if (spec !== undefined && j.batchSize > 0) {
      this.histograms.preprocess.record(j.preprocessMs / 1000, { model });
      // inferenceMs is this sample's share of the run; the sample waited for the whole run
      this.histograms.inference.record((j.inferenceMs * j.batchSize) / 1000, { model });
      this.histograms.batchSize.record(j.batchSize, { model });
    }
  }

  private collect(
    r: BatchObservableResult,
    o: Record<'joinOutcomes' | 'joinTimeouts' | 'inferenceRuns' | 'inferenceSamples' | 'consumerLag' | 'pendingSamples' | 'pendingBytes' | 'tasks' | 'commits' | 'taskRestarts' | 'keyProblems' | 'clockSkew' | 'closedSamples' | 'closedForgottenEarly' | 'stuckClaimReads', Observable>,
  ): void {
    for (const m of this.registry?.models ?? []) {
      r.observe(o.inferenceRuns, m.batcher.stats.runs, { model: m.spec.id });
      r.observe(o.inferenceSamples, m.batcher.stats.samples, { model: m.spec.id });
    }
    const p = this.processor;
    if (p === undefined) return;
    const stats = p.stats();
    const status = p.status();
    const join = p.joinSnapshot();
    const s = join.stats;
    const outcome: Record<(typeof OUTCOMES)[number], number> = {
      complete: s.released.complete,
      provisional: s.released.provisional,
      timed_out: s.released.timeout,
      unknown: s.unknown,
      late: s.released.refine,
      duplicate: s.duplicates,
      too_late: s.tooLate,
    };
    for (const k of OUTCOMES) r.observe(o.joinOutcomes, outcome[k], { outcome: k });
    for (const [modality, n] of Object.entries(s.timedOut)) r.observe(o.joinTimeouts, n, { modality });
    r.observe(o.pendingSamples, join.pendingSamples);
    r.observe(o.pendingBytes, join.pendingBytes);
    r.observe(o.tasks, status.tasks.length, { state: 'running' });
    r.observe(o.tasks, status.starting.length, { state: 'starting' });
    r.observe(o.tasks, stats.paused.length, { state: 'paused' });
    r.observe(o.commits, stats.commits);
    r.observe(o.taskRestarts, stats.taskRestarts);
    r.observe(o.keyProblems, stats.keyProblems);
    for (const c of stats.clockSkew) r.observe(o.clockSkew, c.skewMs / 1000, { line: c.line, station: c.station });
    r.observe(o.closedSamples, join.closedSamples);
    r.observe(o.closedForgottenEarly, s.forgottenEarly);
    r.observe(o.stuckClaimReads, stats.stuckClaimReads);
    // lag only of tasks running here: a task that moved away is reported by its new owner
    const owned = new Set(status.tasks);
    for (const task of [...this.lag.keys()]) if (!owned.has(task)) this.lag.delete(task);
    for (const [task, topics] of this.lag) {
      for (const [topic, lag] of topics) r.observe(o.consumerLag, lag, { task: String(task), modality: this.modalityOf.get(topic) ?? topic });
    }
  }
}
