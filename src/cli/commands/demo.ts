import { createKafka } from '../../kafka/kafka-client.js';
import { ensureTopics, planTopics } from '../../kafka/topics.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { brokerFor, configOf } from '../common.js';
import { formatTopicTable } from './topics.js';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'The main job on an embedded default: provide a broker (configured, container or local), create the topics, report.',
  options: {
    ...CONFIG_OPTION,
    'keep-running': { type: 'boolean', description: 'keep the broker up until Ctrl-C instead of stopping after the report' },
  },
  async run(ctx) {
    const { config, broker } = await brokerFor(configOf(ctx));
    const admin = createKafka(config).admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      ctx.out(`broker: ${broker.brokers.join(',')} (${broker.kind}; cluster ${cluster.clusterId}, ${cluster.brokers.length} node(s))`);
      if (broker.local !== undefined) {
        const t = broker.local.timings;
        ctx.out(`local broker start: ${Math.round(t.startMs)} ms (jar fetch ${Math.round(t.fetchMs)} ms, format ${Math.round(t.formatMs)} ms)`);
      }
      const states = await ensureTopics(admin, planTopics(config));
      for (const line of formatTopicTable(states)) ctx.out(line);
      if (ctx.values['keep-running'] === true) {
        ctx.out('running; Ctrl-C stops');
        await ctx.shutdown;
      }
      return 0;
    } finally {
      await admin.disconnect();
      await broker.stop();
    }
  },
};
