import type { Config } from '../../config/config-schema.js';
import { loadConfig } from '../../config/load-config.js';
import { fromRoot } from '../../config/paths.js';
import { provideBroker } from '../../kafka/provide-broker.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { configOf } from '../common.js';

export const kafkaCommand: Command = {
  name: 'kafka',
  summary: 'Start a local single-node Kafka broker (KRaft) for development, print its address, run until Ctrl-C.',
  details: [
    'The jars come from Maven Central on first use and are cached under broker.cacheDir.',
    'Data persists in <cacheDir>/dev unless --ephemeral. Point other commands at it with',
    'KAFKA_BROKERS=<printed address>.',
  ].join('\n'),
  options: {
    ...CONFIG_OPTION,
    port: { type: 'string', short: 'p', description: 'client port (a free one if not given)', placeholder: 'PORT' },
    ephemeral: { type: 'boolean', description: 'use a temporary data directory, deleted on stop' },
  },
  async run(ctx) {
    const config = configOf(ctx);
    // this command is the broker: a configured KAFKA_BROKERS is not a reason to start nothing
    const local = loadConfig({ overrides: { ...(JSON.parse(JSON.stringify(config)) as Config), kafka: { ...config.kafka, brokers: [] }, broker: { ...config.broker, provider: 'local' } } });
    const port = ctx.values.port === undefined ? undefined : Number(ctx.values.port);
    const broker = await provideBroker(local, {
      ...(ctx.values.ephemeral === true ? {} : { dataDir: fromRoot(`${config.broker.cacheDir}/dev`) }),
      ...(port === undefined ? {} : { port }),
    });
    ctx.out(broker.brokers.join(','));
    ctx.out(`# export KAFKA_BROKERS=${broker.brokers.join(',')}   (Ctrl-C stops the broker; log: ${broker.local?.logFile ?? '-'})`);
    await ctx.shutdown;
    await broker.stop();
    return 0;
  },
};
