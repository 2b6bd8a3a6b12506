/**
 * Observability of one process, started by the commands that run the
 * service (`mmad run`, `mmad demo`): the OpenTelemetry meter and tracer
 * providers, their exporters (Prometheus on the operations server, OTLP/HTTP
 * to a collector when `telemetry.otlp.endpoint` is set), the operations
 * server (/metrics, /healthz, /readyz), and the hooks that connect them to a
 * stream processor without the runtime knowing about any of it:
 *
 *   const telemetry = await Telemetry.start(config);          // /healthz answers from here on
 *   const processor = new StreamProcessor(config, registry, { ...telemetry.processorOptions() });
 *   telemetry.attach(processor, registry);                    // /readyz and the gauges read it
 *   ...
 *   telemetry.stopping(); await processor.stop(); await telemetry.shutdown();
 *
 * Nothing is registered globally: the tracer is handed to whoever produces
 * spans (the station publisher in the demo), so several instances can live
 * in one process (tests).
 */
import { hostname } from 'node:os';
import { diag, DiagLogLevel, type Tracer } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, isMmadError } from '../base/errors.js';
import type { Judgement } from '../inference/judge.js';
import type { ModelRegistry } from '../inference/model-registry.js';
import { frameConsumerConfig } from '../kafka/kafka-client.js';
import { inputTopics } from '../kafka/topics.js';
import type { Outputs } from '../output/event-builder.js';
import type { Delivery } from '../runtime/processor-status.js';
import { rootLogger, type Logger } from '../base/logger.js';
import { ServiceMetrics, type ProcessorView } from './metrics.js';
import { startOpsServer, type Check, type OpsServer, type Readiness } from './ops-server.js';
import { SampleTracer } from './tracing.js';

export interface TelemetryOptions {
  logger?: Logger;
  /** More metric readers beside the configured exporters (tests: a reader collected on demand). */
  metricReaders?: IMetricReader[];
  /** Span exporters beside the configured one, fed span by span (tests: an in-memory exporter). */
  spanExporters?: SpanExporter[];
  /** Start the operations server when telemetry.prometheus.port is not 0 (default true; false for commands that only publish). */
  server?: boolean;
  /** Listen on this port instead of the configured one (0: any free port). */
  port?: number;
  now?: () => number;
}

/** The processor hooks telemetry needs (spread into ProcessorOptions). */
export interface TelemetryHooks {
  onWritten: (j: Judgement | null, outputs: Outputs) => void;
  onDelivery: (d: Delivery) => void;
}

let diagInstalled = false;

export class Telemetry {
  readonly metrics: ServiceMetrics;
  /** Tracer for spans of this process (null when no trace exporter is configured). */
  readonly tracer: Tracer | null;
  private readonly samples: SampleTracer | null;
  private processor: ProcessorView | undefined;
  private registry: ModelRegistry | undefined;
  private isStopping = false;
  private server: OpsServer | undefined;
  private readonly brokerTimeoutMs: number;
  private readonly now: () => number;

  private constructor(
    config: Config,
    private readonly meterProvider: MeterProvider,
    private readonly tracerProvider: BasicTracerProvider | null,
    private readonly log: Logger,
    now: () => number,
  ) {
    this.now = now;
    this.metrics = new ServiceMetrics(meterProvider.getMeter('mmad'), inputTopics(config));
    this.tracer = tracerProvider === null ? null : tracerProvider.getTracer('mmad');
    this.samples = this.tracer === null ? null : new SampleTracer(this.tracer, config.topics.events);
    // a member that has not heard from the broker for a session timeout has been evicted anyway
    this.brokerTimeoutMs = frameConsumerConfig(config, config.input.groupId).sessionTimeout ?? 30_000;
  }

  /** Builds the providers and exporters and, unless told not to, starts the operations server. */
  static async start(config: Config, options: TelemetryOptions = {}): Promise<Telemetry> {
    const log = (options.logger ?? rootLogger).child({ component: 'telemetry' });
    installDiag(log);
    const t = config.telemetry;
    const resource = resourceFromAttributes({ 'service.name': t.serviceName, 'service.instance.id': `${hostname()}-${process.pid}` });
    const port = options.port ?? t.prometheus.port;
    const serve = (options.server ?? true) && (options.port !== undefined || t.prometheus.port !== 0);
    const readers: IMetricReader[] = [...(options.metricReaders ?? [])];
    // every series carries service_name (telemetry.serviceName): one Prometheus can tell lines apart
    const prometheus = serve ? new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true, withResourceConstantLabels: /^service\.name$/ }) : undefined;
    if (prometheus !== undefined) readers.push(prometheus);
    const endpoint = t.otlp.endpoint?.replace(/\/+$/, '');
    if (endpoint !== undefined && t.otlp.metricIntervalMs > 0) {
      readers.push(
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: `${endpoint}/v1/metrics` }),
          exportIntervalMillis: t.otlp.metricIntervalMs,
          exportTimeoutMillis: Math.min(t.otlp.metricIntervalMs, 10_000),
        }),
      );
    }
    const meterProvider = new MeterProvider({ resource, readers });
    const spanProcessors: SpanProcessor[] = (options.spanExporters ?? []).map((exporter) => new SimpleSpanProcessor(exporter));
    if (endpoint !== undefined) spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` })));
    const tracerProvider =
      spanProcessors.length === 0 ? null : new BasicTracerProvider({ resource, spanProcessors, sampler: new TraceIdRatioBasedSampler(t.traceSampleRatio) });
    const telemetry = new Telemetry(config, meterProvider, tracerProvider, log, options.now ?? Date.now);
    if (serve) {
      try {
        telemetry.server = await startOpsServer({ host: t.prometheus.host, port, ...(prometheus ? { prometheus } : {}), readiness: () => telemetry.readiness(), liveness: () => telemetry.liveness() });
      } catch (err) {
        await telemetry.shutdown();
        throw err;
      }
      log.info('operations server listening', { host: t.prometheus.host, port: telemetry.server.port, endpoints: ['/metrics', '/healthz', '/readyz'] });
    }
    if (endpoint !== undefined) log.info('exporting over OTLP/HTTP', { endpoint, metrics: t.otlp.metricIntervalMs > 0, traceSampleRatio: t.traceSampleRatio });
    return telemetry;
  }

  /**
   * As start(), but a port already in use is a warning, not a failure: the
   * process runs without the operations server (the demo on a developer's
   * machine). The service itself (`mmad run`) uses start() and fails fast.
   */
  static async startBestEffort(config: Config, options: TelemetryOptions = {}): Promise<Telemetry> {
    try {
      return await Telemetry.start(config, options);
    } catch (err) {
      if (!isMmadError(err) || err.code !== ErrorCode.TELEMETRY_FAILED) throw err;
      (options.logger ?? rootLogger).warn('running without the operations server', { error: err.message });
      return Telemetry.start(config, { ...options, server: false });
    }
  }

  /** The port the operations server listens on (undefined: no server). */
  get port(): number | undefined {
    return this.server?.port;
  }

  /** Hooks for the stream processor's options. */
  processorOptions(): TelemetryHooks {
    return {
      onWritten: (j, outputs) => {
        const at = this.now();
        this.metrics.written(j, outputs, at);
        if (j !== null && this.samples !== null) this.samples.record(j, outputs, at);
      },
      onDelivery: (d) => this.metrics.delivered(d),
    };
  }

  /** The processor whose state readiness and the gauges read, and its students. */
  attach(processor: ProcessorView, registry: ModelRegistry): void {
    this.processor = processor;
    this.registry = registry;
    this.metrics.attach(processor, registry);
  }

  /** Shutdown has begun: /readyz answers 503 from now on. */
  stopping(): void {
    this.isStopping = true;
  }

  readiness(): Readiness {
    const models = this.registry?.models ?? [];
    const status = this.processor?.status();
    const consumer = this.isStopping
      ? { ok: false, detail: 'stopping' }
      : status === undefined || !status.running
        ? { ok: false, detail: 'starting' }
        : status.assigned
          ? { ok: true, detail: `tasks ${status.tasks.join(',') || 'none (more members than partitions)'}` }
          : { ok: false, detail: 'waiting for the group assignment' };
    const ago = status?.brokerContactAgoMs ?? null;
    const broker =
      ago === null
        ? { ok: false, detail: 'no answer from the broker yet' }
        : { ok: ago <= this.brokerTimeoutMs, detail: `last answer ${(ago / 1000).toFixed(1)} s ago (limit ${this.brokerTimeoutMs / 1000} s)` };
    const checks = {
      models: models.length > 0 ? { ok: true, detail: models.map((m) => `${m.spec.id}@${m.spec.version}`).join(', ') } : { ok: false, detail: 'loading' },
      consumer,
      broker,
    };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  /** Alive unless the processor reports stalled work (a stuck read, a task that took and finished nothing). */
  liveness(): Readiness {
    const stalled = this.processor?.status().stalled ?? [];
    if (stalled.length === 0) return { ready: true, checks: { progress: { ok: true } } };
    const checks: Record<string, Check> = {};
    for (const s of stalled) checks[s.task === null ? 'consumer' : `task ${s.task}`] = { ok: false, detail: `${s.what} for ${(s.forMs / 1000).toFixed(0)} s` };
    return { ready: false, checks };
  }

  /** Closes the operations server, then flushes what the exporters hold (at most 5 s: a collector that is away does not hold up the exit). */
  async shutdown(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
    const bounded = (p: Promise<unknown>): Promise<unknown> =>
      Promise.race([p.catch((err: unknown) => this.log.warn('telemetry flush failed', { error: err })), new Promise((r) => setTimeout(r, 5_000).unref())]);
    await Promise.all([bounded(this.meterProvider.shutdown()), this.tracerProvider === null ? undefined : bounded(this.tracerProvider.shutdown())]);
  }
}

/** OpenTelemetry's own problems (an unreachable collector) go to the service log, once per process. */
function installDiag(log: Logger): void {
  if (diagInstalled) return;
  diagInstalled = true;
  const warn = (message: string, ...args: unknown[]): void => log.warn(`opentelemetry: ${message}`, args.length > 0 ? { detail: args.map(String).join(' ') } : undefined);
  diag.setLogger({ error: warn, warn, info: () => undefined, debug: () => undefined, verbose: () => undefined }, DiagLogLevel.WARN);
}
