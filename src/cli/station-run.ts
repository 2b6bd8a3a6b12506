/**
 * What `simulate` and `publish-dataset` share once they have a part source:
 * a broker (the configured one, or one started for the command), the topics
 * (created where missing), codecs, a producer, the run itself with Ctrl-C
 * stopping it cleanly, and the report.
 */
import type { Config } from '../config/config-schema.js';
import { createKafka } from '../kafka/kafka-client.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopics } from '../simulate/kafka-sink.js';
import type { TimingOptions } from '../simulate/line-schedule.js';
import { formatReport, runStation, throughput, type PartSource, type PublishReport } from '../simulate/station-publisher.js';
import { Telemetry } from '../telemetry/telemetry.js';
import type { CommandContext } from './command.js';
import { brokerFor } from './common.js';
import type { RunSettings } from './station-options.js';

export interface StationCommandRun {
  /** Builds the source once the broker is known to be there (a pool renders first). */
  source: () => Promise<PartSource>;
  timing: TimingOptions;
  run: RunSettings;
  startTime: number;
  labelAttributes: Record<string, string>;
}

export async function runStationCommand(ctx: CommandContext, base: Config, r: StationCommandRun): Promise<PublishReport> {
  const { config, broker } = await brokerFor(base);
  const kafka = createKafka(config);
  const admin = kafka.admin();
  const producer = stationProducer(kafka, config);
  // with an OTLP collector configured, each frame's send is traced and its traceparent travels in the record headers
  const telemetry = config.telemetry.otlp.endpoint === null ? undefined : await Telemetry.start(config, { server: false });
  const abort = new AbortController();
  void ctx.shutdown.then(() => {
    abort.abort();
    // a send still retrying against an unreachable broker would never return: give it a moment, then cut it
    setTimeout(() => void producer.disconnect().catch(() => undefined), 5000).unref();
  });
  try {
    await admin.connect();
    const topics = await stationTopics(admin, config);
    const codecs = await stationCodecs(config, topics);
    const source = await r.source();
    await producer.connect();
    const targets = source.modalities.flatMap((m) => {
      const t = topics.inputs[m];
      return t === undefined ? [] : [`${t.topic} (${t.partitions} partitions)`];
    });
    ctx.out(
      `publishing to ${broker.brokers.join(',')}: ${targets.join(', ')}${r.run.labels ? `, labels → ${topics.labels.topic}` : ''}; ` +
        `${r.run.pace ? 'paced' : 'max speed'}, Ctrl-C stops`,
    );
    const report = await runStation({
      source,
      topics,
      sink: new KafkaRecordSink(producer),
      codecs,
      identity: { line: r.run.line, station: r.run.station },
      timing: r.timing,
      scheduleSeed: r.run.seed,
      count: r.run.count,
      durationMs: r.run.durationMs,
      pace: r.run.pace,
      idPrefix: r.run.idPrefix,
      startTime: r.startTime,
      announceModalities: r.run.announce,
      labels: r.run.labels,
      labelAttributes: r.labelAttributes,
      signal: abort.signal,
      ...(telemetry?.tracer ? { tracer: telemetry.tracer } : {}),
      progressEveryMs: 5000,
      onProgress: (p) => {
        const t = throughput(p);
        ctx.out(`… ${p.parts} parts, ${p.frames.rgb + p.frames.ir + p.frames.xyz} frames, ${t.framesPerSecond.toFixed(1)} frames/s, ${t.megabytesPerSecond.toFixed(2)} MB/s`);
      },
    });
    for (const line of formatReport(report)) ctx.out(line);
    return report;
  } finally {
    await telemetry?.shutdown();
    await producer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await broker.stop();
  }
}
