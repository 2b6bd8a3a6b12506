import { ModelRegistry } from '../../inference/model-registry.js';
import { createKafka } from '../../kafka/kafka-client.js';
import { ensureTopics, planTopics } from '../../kafka/topics.js';
import { waitForBroker } from '../../kafka/wait-for-broker.js';
import { StreamProcessor } from '../../runtime/stream-processor.js';
import { rootLogger } from '../../base/logger.js';
import { Telemetry } from '../../telemetry/telemetry.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { brokerFor, configOf } from '../common.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'Run the stream processor: join frames by sample id, judge each sample with its student, publish events, alerts and dead letters.',
  details: [
    'Configuration from --config / MMAD_CONFIG and the environment (see README). With no broker',
    'configured, a local one is started. SIGTERM or SIGINT stops gracefully: samples in flight are',
    'published, offsets committed, the consumer group left.',
  ].join('\n'),
  options: {
    ...CONFIG_OPTION,
    manifest: { type: 'string', short: 'm', description: 'model manifest (overrides inference.manifest)', placeholder: 'FILE' },
  },
  async run(ctx) {
    let config = configOf(ctx);
    if (typeof ctx.values.manifest === 'string') config = { ...config, inference: { ...config.inference, manifest: ctx.values.manifest } };
    const { config: cfg, broker } = await brokerFor(config);
    const log = rootLogger.child({ component: 'run' });
    const admin = createKafka(cfg).admin();
    let registry: ModelRegistry | undefined;
    let telemetry: Telemetry | undefined;
    try {
      // /healthz answers (and /readyz says why not ready) while the broker and the models come up
      telemetry = await Telemetry.start(cfg);
      await waitForBroker(cfg, log, ctx.shutdown);
      await admin.connect();
      await ensureTopics(admin, planTopics(cfg));
      await admin.disconnect();
      registry = await ModelRegistry.open(cfg);
      const processor = new StreamProcessor(cfg, registry, { ...telemetry.processorOptions() });
      telemetry.attach(processor, registry);
      await processor.start();
      ctx.out(`running on ${cfg.kafka.brokers.join(',')} (group ${cfg.input.groupId}); Ctrl-C stops`);
      const end = await Promise.race([ctx.shutdown.then((signal) => ({ signal })), processor.fatal.then((error) => ({ error }))]);
      telemetry.stopping();
      if ('error' in end) {
        await processor.abort();
        throw end.error;
      }
      log.info('shutting down', { signal: end.signal });
      await processor.stop();
      const s = processor.stats();
      ctx.out(`stopped: ${s.framesRead} frames read, ${s.judged} verdicts, ${s.deadLetters} dead letters, ${s.duplicates} duplicates`);
      return 0;
    } finally {
      await telemetry?.shutdown();
      await registry?.close();
      await broker.stop();
    }
  },
};
