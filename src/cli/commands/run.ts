import { ModelRegistry } from '../../inference/model-registry.js';
import { createKafka } from '../../kafka/kafka-client.js';
import { ensureTopics, planTopics } from '../../kafka/topics.js';
import { StreamProcessor } from '../../runtime/stream-processor.js';
import { rootLogger } from '../../telemetry/logger.js';
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
    try {
      await admin.connect();
      await ensureTopics(admin, planTopics(cfg));
      await admin.disconnect();
      registry = await ModelRegistry.open(cfg);
      const processor = new StreamProcessor(cfg, registry);
      await processor.start();
      ctx.out(`running on ${cfg.kafka.brokers.join(',')} (group ${cfg.input.groupId}); Ctrl-C stops`);
      const signal = await ctx.shutdown;
      log.info('shutting down', { signal });
      await processor.stop();
      const s = processor.stats();
      ctx.out(`stopped: ${s.framesRead} frames read, ${s.judged} verdicts, ${s.deadLetters} dead letters, ${s.duplicates} duplicates`);
      return 0;
    } finally {
      await registry?.close();
      await broker.stop();
    }
  },
};
