import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { AvroCodec } from '../../codec/avro-codec.js';
import { SchemaCatalog } from '../../codec/schema-catalog.js';
import type { Config } from '../../config/config-schema.js';
import { fromRoot } from '../../config/paths.js';
import { ErrorCode, MmadError } from '../../base/errors.js';
import { ModelRegistry } from '../../inference/model-registry.js';
import { createKafka, createConsumer, frameConsumerConfig } from '../../kafka/kafka-client.js';
import { ensureTopics, planTopics } from '../../kafka/topics.js';
import { LineSummary } from '../../output/line-summary.js';
import { StreamProcessor } from '../../runtime/stream-processor.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopics } from '../../simulate/kafka-sink.js';
import { SimulatedPartSource } from '../../simulate/line-simulator.js';
import { productByName } from '../../simulate/products/index.js';
import { runStation } from '../../simulate/station-publisher.js';
import { createLogger } from '../../base/logger.js';
import { Telemetry } from '../../telemetry/telemetry.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { brokerFor, configOf } from '../common.js';
import { LiveLine } from '../live-line.js';
import { formatTopicTable } from './topics.js';
import { startLineView, type LineView } from '../../view/line-view.js';
import { VIEW_OPTIONS, viewOptionsOf } from './view.js';

/** Parts the demo renders before its line starts (about 0.1 s and 3 MB each with a CT volume). */
const DEMO_PRERENDER = 120;

/**
 * The main job on an embedded default, end to end: a broker (the configured
 * one, a container, or a local one started here), the topics, the trained
 * students, the stream processor, and a simulated line with defects, late and
 * missing modalities publishing into it; a live summary while it runs and the
 * verdicts against the line's ground truth at the end.
 */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'The main job on an embedded default: broker, topics, students, stream processor and a simulated line with defects; live summary and confusion against the labels.',
  details: [
    'Runs the simulated line (config section simulate; the demo defaults to 30% defective parts with',
    'defects 2.5x larger and 2x stronger than the simulator default, so that a run of 60 parts shows',
    'each defect type found; at the simulator default the students find fewer, models/README.md has',
    'their figures; xyz for 30% of the parts 2-10 s after they pass; a CT volume for --ct-fraction of',
    'them 5-15 s after, the defects inside the material among the defect types) through the service',
    '(sections join, inference, processing) and compares the last verdict on each part with its label;',
    'the report names the defective parts found only once their CT volume came.',
    'The web view of the line (mmad view) runs beside it and its URL is printed; --no-view leaves it out,',
    '--keep-view keeps it (and the broker) running after the report until Ctrl-C. When --port is taken, the',
    'view takes a free port.',
  ].join('\n'),
  options: {
    ...CONFIG_OPTION,
    parts: { type: 'string', short: 'n', description: 'parts the line produces', placeholder: 'N', default: '60' },
    rate: { type: 'string', description: 'parts per second', placeholder: 'R', default: '3' },
    'defect-rate': { type: 'string', description: 'share of defective parts', placeholder: 'F', default: '0.3' },
    // the students' faint defects (bulge, dent, the weakest hot spots) are below what they find at size 1, contrast 1
    'defect-size': { type: 'string', description: 'scale of defect footprints (1 = the simulator default)', placeholder: 'X', default: '2.5' },
    'defect-contrast': { type: 'string', description: 'scale of defect magnitude (1 = the simulator default)', placeholder: 'X', default: '2' },
    'ct-fraction': { type: 'string', description: 'share of parts the line\'s CT scans, 5-15 s after they pass (0: no CT, and no defects inside the material)', placeholder: 'F', default: '0.4' },
    'no-view': { type: 'boolean', description: 'do not start the web view' },
    'keep-view': { type: 'boolean', description: 'keep the web view (and the broker) running after the report, until Ctrl-C' },
    ...VIEW_OPTIONS,
  },
  async run(ctx) {
    const parts = positive(ctx.values.parts, 'parts');
    const rate = positive(ctx.values.rate, 'rate');
    const viewOn = ctx.values['no-view'] !== true;
    const viewOptions = viewOptionsOf(ctx.values);
    const defectRate = Number(ctx.values['defect-rate']);
    if (!(defectRate >= 0 && defectRate <= 1)) throw new MmadError(ErrorCode.USAGE, '--defect-rate must be between 0 and 1');
    const ctFraction = Number(ctx.values['ct-fraction']);
    if (!(ctFraction >= 0 && ctFraction <= 1)) throw new MmadError(ErrorCode.USAGE, '--ct-fraction must be between 0 and 1');
    const withCt = ctFraction > 0;
    const base = configOf(ctx);
    if (!existsSync(fromRoot(base.inference.manifest))) {
      throw new MmadError(
        ErrorCode.MODEL_MISSING,
        `no trained students at ${base.inference.manifest}: train and export them with 'bash models/scripts/train-all.sh' (see models/README.md)`,
      );
    }
    const run = randomBytes(3).toString('hex');
    // a fresh consumer group per demo run: its own changelog, nothing inherited from earlier runs
    // the line's CT: its own input topic, and a window of seconds, not minutes (the demo's CT answers in 5-15 s)
    const demo: Config = {
      ...base,
      input: { ...base.input, groupId: `mmad-demo-${run}` },
      topics: withCt ? { ...base.topics, inputs: { ...base.topics.inputs, ct: base.topics.inputs.ct ?? `${base.topics.inputs.rgb.replace(/\.rgb$/, '')}.ct` } } : base.topics,
      join: { ...base.join, modalities: { ...base.join.modalities, xyz: { policy: 'late', windowMs: 20_000 }, ct: { policy: 'late', windowMs: 30_000 } } },
    };
    const { config, broker } = await brokerFor(demo);
    const quiet = createLogger({}, process.env.MMAD_LOG_LEVEL === undefined ? 'warn' : undefined);
    const kafka = createKafka(config, config.kafka.brokers, quiet);
    const admin = kafka.admin();
    let registry: ModelRegistry | undefined;
    let processor: StreamProcessor | undefined;
    let telemetry: Telemetry | undefined;
    let view: LineView | undefined;
    const collector = createConsumer(kafka, frameConsumerConfig(config, `mmad-demo-${run}-summary`));
    const producer = stationProducer(kafka, config);
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      ctx.out(`broker: ${broker.brokers.join(',')} (${broker.kind}; cluster ${cluster.clusterId}, ${cluster.brokers.length} node(s))`);
      if (broker.local !== undefined) {
        const t = broker.local.timings;
        ctx.out(`local broker start: ${Math.round(t.startMs)} ms (jar fetch ${Math.round(t.fetchMs)} ms, format ${Math.round(t.formatMs)} ms)`);
      }
      for (const line of formatTopicTable(await ensureTopics(admin, planTopics(config)))) ctx.out(line);

      registry = await ModelRegistry.open(config, quiet);
      ctx.out(`students: ${registry.models.map((m) => `${m.spec.id}@${m.spec.version}`).join(', ')}`);
      telemetry = await Telemetry.startBestEffort(config, { logger: quiet });
      if (telemetry.port !== undefined) ctx.out(`operations: http://localhost:${telemetry.port}/metrics, /healthz, /readyz`);
      processor = new StreamProcessor(config, registry, { logger: quiet, ...telemetry.processorOptions() });
      telemetry.attach(processor, registry);
      await processor.start();
      await processor.assigned;
      if (viewOn) {
        const start = (port: number): Promise<LineView> =>
          startLineView(config, { host: viewOptions.host, port, limits: { maxParts: viewOptions.parts }, groupId: `mmad-demo-${run}-view`, logger: quiet });
        view = await start(viewOptions.port).catch(async (err: unknown) => {
          if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
          ctx.out(`view: port ${viewOptions.port} is taken, using a free one`);
          return await start(0);
        });
        ctx.out(`view: ${view.url}`);
      }

      const summary = new LineSummary();
      const catalog = SchemaCatalog.load();
      const events = AvroCodec.local(catalog, 'AnomalyEvent');
      const labels = AvroCodec.local(catalog, 'Label');
      const prefix = `demo-${run}-`;
      await collector.connect();
      await collector.subscribe({ topics: [config.topics.events, config.topics.labels], fromBeginning: true });
      await collector.run({
        eachMessage: async ({ topic, message }) => {
          if (message.value === null || !(message.key?.toString() ?? '').startsWith(prefix)) return;
          if (topic === config.topics.events) summary.addEvent(await events.decode(message.value));
          else summary.addLabel(await labels.decode(message.value));
        },
      });

      const s = config.simulate;
      const product = productByName(s.product);
      const source = await SimulatedPartSource.create({
        product: s.product,
        width: s.width,
        height: s.height,
        seed: s.seed,
        defectRate,
        // a CT sees inside the material: with one, the defects there are drawn too
        defects: withCt ? [...product.defects, ...product.interiorDefects] : [],
        defectParams: { size: positive(ctx.values['defect-size'], 'defect-size'), contrast: positive(ctx.values['defect-contrast'], 'defect-contrast') },
        // every part its own, as on a real line (a pool would show the same few defective parts
        // again and again), rendered before the line starts so that rendering does not compete
        // with the service for the CPU; a longer run renders the rest as it goes
        poolSize: 0,
        prerender: Math.min(parts, DEMO_PRERENDER),
        ct: withCt,
      });
      ctx.out(
        `line: ${parts} ${s.product} parts at ${rate}/s, ${Math.round(defectRate * 100)}% defective, xyz for ${Math.round(s.xyzFraction * 100)}% of the parts` +
          `${withCt ? `, a CT volume for ${Math.round(ctFraction * 100)}% (defects inside the material: ${product.interiorDefects.join(', ')})` : ''}; Ctrl-C stops`,
      );
      const topics = await stationTopics(admin, config);
      await producer.connect();
      const abort = new AbortController();
      void ctx.shutdown.then(() => abort.abort());
      // redrawn in place on a terminal; in a log, a line only when something changed
      const status = new LiveLine(process.stdout, ctx.out);
      const refresh = (): void => status.update(summary.live(), summary.parts, parts);
      const ticker = setInterval(refresh, process.stdout.isTTY ? 250 : 2_000);
      try {
        const report = await runStation({
          source,
          topics,
          sink: new KafkaRecordSink(producer),
          codecs: await stationCodecs(config, topics, catalog),
          identity: { line: s.line, station: s.station },
          timing: {
            ratePerSecond: rate,
            rgbIrJitterMs: s.rgbIrJitterMs,
            xyzFraction: s.xyzFraction,
            xyzDelayMinMs: 2_000,
            xyzDelayMaxMs: 10_000,
            dropRate: 0.01,
            duplicateRate: 0.01,
            reorderRate: s.reorderRate,
            reorderMaxMs: s.reorderMaxMs,
            clockSkewMs: s.clockSkewMs,
            burstRate: s.burstRate,
            burstSize: s.burstSize,
            burstFactor: s.burstFactor,
            ctFraction,
            ctDelayMinMs: 5_000,
            ctDelayMaxMs: 15_000,
            ctMissRate: 0.05,
          },
          scheduleSeed: run,
          count: parts,
          pace: true,
          idPrefix: prefix,
          announceModalities: true,
          labels: true,
          signal: abort.signal,
          // frames carry their send span's traceparent, so a sample's trace links to them
          ...(telemetry.tracer !== null ? { tracer: telemetry.tracer } : {}),
        });
        status.end();
        ctx.out(`line done: ${report.parts} parts, ${report.frames.rgb + report.frames.ir + report.frames.xyz + report.frames.ct} frames (${report.frames.ct} CT volumes; ${report.dropped} dropped, ${report.duplicated} duplicated on purpose)`);
        // the last parts settle when their waits expire (the idle timer advances stream time)
        const deadline = performance.now() + 45_000;
        while (performance.now() < deadline && !abort.signal.aborted && summary.settled() < summary.labelled) await new Promise((r) => setTimeout(r, 250));
      } finally {
        clearInterval(ticker);
      }
      refresh();
      status.end();
      ctx.out('');
      for (const line of summary.report()) ctx.out(line);
      const st = processor.stats();
      ctx.out(`service: ${st.framesRead} frames read, ${st.judged} verdicts, ${st.deadLetters} dead letters, ${st.duplicates} duplicates suppressed, ${st.commits} commits (${config.processing.guarantee})`);
      if (view !== undefined && ctx.values['keep-view'] === true && !abort.signal.aborted) {
        ctx.out(`view: still at ${view.url}; Ctrl-C stops`);
        await ctx.shutdown;
      }
      return 0;
    } finally {
      await view?.close();
      await collector.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      telemetry?.stopping();
      await processor?.stop().catch(() => undefined);
      await telemetry?.shutdown();
      await registry?.close();
      await admin.disconnect().catch(() => undefined);
      await broker.stop();
    }
  },
};

function positive(v: unknown, name: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new MmadError(ErrorCode.USAGE, `--${name} must be a positive number`);
  return n;
}
