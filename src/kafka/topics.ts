/**
 * The project's topics: what exists, with how many partitions, and why.
 *
 * Input topics (one per modality) must share one partition count and the key
 * partitioner, so that all frames of a sample meet in one task; that is
 * verified here, and a mismatch is an error naming every topic and its count.
 */
import type { Admin, ITopicConfig } from 'kafkajs';
import type { Config } from '../config/config-schema.js';
import { MODALITIES, type Modality } from '../codec/records.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';

export type TopicRole = 'input' | 'events' | 'alerts' | 'deadLetters' | 'labels' | 'changelog';

export interface TopicPlan {
  name: string;
  role: TopicRole;
  modality?: Modality;
  partitions: number;
  replicationFactor: number;
  configs: Record<string, string>;
}

export interface TopicState extends TopicPlan {
  created: boolean;
  /** Partition count found on the broker. */
  actualPartitions: number;
}

export function inputTopics(config: Config): { modality: Modality; topic: string }[] {
  const out: { modality: Modality; topic: string }[] = [];
  for (const modality of MODALITIES) {
    const topic = config.topics.inputs[modality];
    if (topic !== null) out.push({ modality, topic });
  }
  return out;
}

export function planTopics(config: Config): TopicPlan[] {
  const t = config.topics;
  const big = { 'max.message.bytes': String(config.kafka.maxMessageBytes), 'message.timestamp.type': 'CreateTime' };
  const base = { partitions: t.partitions, replicationFactor: t.replicationFactor };
  return [
    ...inputTopics(config).map(({ modality, topic }) => ({ name: topic, role: 'input' as const, modality, ...base, configs: big })),
    { name: t.events, role: 'events', ...base, configs: big },
    // every output takes the record limit the service assumes (kafka.maxMessageBytes): a write the
    // broker refuses for its size would fail the task's transaction and rebuild it in a loop
    { name: t.alerts, role: 'alerts', ...base, configs: big },
    // dead letters carry the original frame bytes (event-builder.fitDeadLetter keeps them under the limit)
    { name: t.deadLetters, role: 'deadLetters', ...base, configs: big },
    { name: t.labels, role: 'labels', ...base, configs: big },
    // internal: the join's changelog, co-partitioned with the inputs, compacted (see src/runtime/join-changelog.ts)
    { name: `${config.input.groupId}-join-changelog`, role: 'changelog', ...base, configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '60000', 'max.message.bytes': String(config.kafka.maxMessageBytes) } },
  ];
}

/** Creates missing topics, then verifies all of them; throws on a partition mismatch among inputs. */
export async function ensureTopics(admin: Admin, plans: TopicPlan[]): Promise<TopicState[]> {
  let existing: Set<string>;
  try {
    existing = new Set(await admin.listTopics());
  } catch (err) {
    throw new MmadError(ErrorCode.TOPIC_ADMIN_FAILED, `cannot list topics: ${messageOf(err)}`, { cause: err });
  }
  const missing = plans.filter((p) => !existing.has(p.name));
  if (missing.length > 0) {
    const topics: ITopicConfig[] = missing.map((p) => ({
      topic: p.name,
      numPartitions: p.partitions,
      replicationFactor: p.replicationFactor,
      configEntries: Object.entries(p.configs).map(([name, value]) => ({ name, value })),
    }));
    try {
      await admin.createTopics({ topics, waitForLeaders: true });
    } catch (err) {
      // a concurrent instance may have created some of them, or the new topics' metadata is
      // still propagating (kafkajs waits for leaders): the verification below decides, with retries
      const decideBelow = /already exists|does not host this topic-partition|leader/i.test(messageOf(err));
      if (!decideBelow) {
        throw new MmadError(ErrorCode.TOPIC_ADMIN_FAILED, `cannot create topics ${missing.map((m) => m.name).join(', ')}: ${messageOf(err)}`, { cause: err });
      }
    }
  }
  const states = await describeTopics(admin, plans, new Set(missing.map((m) => m.name)));
  checkInputPartitions(states);
  return states;
}

/** Verifies without creating anything: every topic exists and inputs are co-partitioned. */
export async function verifyTopics(admin: Admin, plans: TopicPlan[]): Promise<TopicState[]> {
  const existing = new Set(await admin.listTopics());
  const absent = plans.filter((p) => !existing.has(p.name)).map((p) => p.name);
  if (absent.length > 0) {
    throw new MmadError(ErrorCode.TOPIC_ADMIN_FAILED, `topics missing: ${absent.join(', ')} (create them with 'mmad topics create')`);
  }
  const states = await describeTopics(admin, plans, new Set());
  checkInputPartitions(states);
  return states;
}

async function describeTopics(admin: Admin, plans: TopicPlan[], created: Set<string>): Promise<TopicState[]> {
  let meta;
  // right after creation a topic's metadata may not have reached every broker cache yet
  for (let attempt = 1; ; attempt++) {
    try {
      meta = await admin.fetchTopicMetadata({ topics: plans.map((p) => p.name) });
      break;
    } catch (err) {
      const transient = /does not host this topic-partition|unknown topic|leader/i.test(messageOf(err));
      if (!transient || attempt >= 20) {
        throw new MmadError(ErrorCode.TOPIC_ADMIN_FAILED, `cannot describe topics: ${messageOf(err)}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
  const counts = new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
  return plans.map((p) => ({ ...p, created: created.has(p.name), actualPartitions: counts.get(p.name) ?? 0 }));
}

function checkInputPartitions(states: TopicState[]): void {
  // the join changelog is written per task, so it is co-partitioned with the inputs too
  const inputs = states.filter((s) => s.role === 'input' || s.role === 'changelog');
  const counts = new Set(inputs.map((s) => s.actualPartitions));
  if (counts.size > 1) {
    const listing = inputs.map((s) => `${s.name}=${s.actualPartitions}`).join(', ');
    throw new MmadError(
      ErrorCode.TOPIC_PARTITION_MISMATCH,
      `input topics must share one partition count so that a sample's frames meet in one task, found ${listing}; ` +
        'recreate the odd ones, or repartition them all to the same count with the same key partitioner',
      { details: { partitions: Object.fromEntries(inputs.map((s) => [s.name, s.actualPartitions])) } },
    );
  }
}
