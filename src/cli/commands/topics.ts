import { createKafka } from '../../kafka/kafka-client.js';
import { ensureTopics, planTopics, verifyTopics, type TopicState } from '../../kafka/topics.js';
import { MmadError, ErrorCode } from '../../base/errors.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { brokerFor, configOf } from '../common.js';
import { at } from '../../base/invariant.js';

export const topicsCommand: Command = {
  name: 'topics',
  summary: "Create the project's topics (create) or check them (verify): inputs co-partitioned, outputs present.",
  positionals: '<create|verify>',
  options: { ...CONFIG_OPTION },
  async run(ctx) {
    const action = ctx.positionals[0] ?? 'verify';
    if (action !== 'create' && action !== 'verify') {
      throw new MmadError(ErrorCode.USAGE, `unknown action '${action}': expected create or verify`);
    }
    const { config, broker } = await brokerFor(configOf(ctx));
    const admin = createKafka(config).admin();
    try {
      await admin.connect();
      const plans = planTopics(config);
      const states = action === 'create' ? await ensureTopics(admin, plans) : await verifyTopics(admin, plans);
      for (const line of formatTopicTable(states)) ctx.out(line);
      return 0;
    } finally {
      await admin.disconnect();
      await broker.stop();
    }
  },
};

export function formatTopicTable(states: TopicState[]): string[] {
  const rows = states.map((s) => [s.name, s.role + (s.modality === undefined ? '' : `:${s.modality}`), String(s.actualPartitions), s.created ? 'created' : 'existed']);
  const header = ['topic', 'role', 'partitions', 'state'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => at(r, i).length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padEnd(at(widths, i))).join('  ').trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}
