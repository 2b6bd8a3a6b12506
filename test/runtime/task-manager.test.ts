import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Consumer, Kafka } from 'kafkajs';
import { present } from '../../src/base/invariant.js';
import { createLogger } from '../../src/base/logger.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { loadConfig } from '../../src/config/load-config.js';
import type { SampleJudge } from '../../src/inference/judge.js';
import { changelogTopic } from '../../src/runtime/join-changelog.js';
import { PartitionPauses } from '../../src/runtime/partition-pauses.js';
import { RecordEncoder } from '../../src/runtime/record-encoder.js';
import { StatsRollup } from '../../src/runtime/stats-rollup.js';
import { TaskManager } from '../../src/runtime/task-manager.js';
import type { TaskSink } from '../../src/runtime/task-sink.js';

const config = loadConfig({ env: {}, overrides: { topics: { inputs: { rgb: 'rgb', ir: 'ir', xyz: 'xyz' } }, input: { groupId: 'g' } } });
const catalog = SchemaCatalog.load();
const local = <N extends 'AnomalyEvent' | 'Alert' | 'DeadLetter' | 'JoinState'>(name: N): AvroCodec<N> => AvroCodec.local(catalog, name);

/**
 * A broker and a consumer that log what the manager asks of them. The group
 * committed rgb at 5 and 7 and nothing on ir and xyz (whose partitions hold 2
 * records, from offset 2 on: the start is the earliest); the changelog is empty.
 */
function world(): { kafka: Kafka; consumer: Consumer; log: string[]; openSink: (p: number) => Promise<TaskSink> } {
  const log: string[] = [];
  const admin = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    fetchOffsets: async ({ topics }: { topics: string[] }) => {
      log.push('read committed offsets');
      return topics.map((topic) => ({ topic, partitions: topic === 'rgb' ? [{ partition: 0, offset: '5' }, { partition: 1, offset: '7' }] : [] }));
    },
    fetchTopicOffsets: async (topic: string) => {
      if (topic === changelogTopic(config)) log.push('read changelog');
      const [low, high] = topic === 'rgb' ? ['0', '9'] : topic === changelogTopic(config) ? ['0', '0'] : ['2', '4'];
      return [0, 1].map((partition) => ({ partition, low, high, offset: high }));
    },
  };
  const fmt = (ts: { topic: string; partitions: number[] }[]): string => ts.map((t) => `${t.topic}:${t.partitions.join(',')}`).join(' ');
  const consumer = {
    seek: ({ topic, partition, offset }: { topic: string; partition: number; offset: string }) => log.push(`seek ${topic}:${partition}@${offset}`),
    pause: (ts: { topic: string; partitions: number[] }[]) => log.push(`pause ${fmt(ts)}`),
    resume: (ts: { topic: string; partitions: number[] }[]) => log.push(`resume ${fmt(ts)}`),
  } as unknown as Consumer;
  const openSink = async (p: number): Promise<TaskSink> => {
    log.push(`open sink ${p} (fences the previous owner)`);
    return { write: async () => undefined, commit: async () => undefined, abort: async () => undefined, close: async () => void log.push(`close sink ${p}`) };
  };
  return { kafka: { admin: () => admin } as unknown as Kafka, consumer, log, openSink };
}

function manager(w: ReturnType<typeof world>, stats = new StatsRollup()): { tasks: TaskManager; assigned: () => Promise<void> } {
  let assigned!: () => void;
  let next = new Promise<void>((r) => (assigned = r));
  const tasks = new TaskManager({
    config,
    kafka: w.kafka,
    consumer: w.consumer,
    judge: {} as unknown as SampleJudge, // no record is delivered, so nothing is judged
    pauses: new PartitionPauses(w.consumer, ['rgb', 'ir', 'xyz'], undefined),
    stats,
    range: undefined,
    log: createLogger({}, 'silent'),
    now: () => 0,
    onAssigned: () => assigned(),
    stopping: () => false,
  });
  tasks.open(new RecordEncoder(config, { event: local('AnomalyEvent'), alert: local('Alert'), deadLetter: local('DeadLetter'), joinState: local('JoinState') }), w.openSink);
  // each call waits for the next assignment's tasks to have started
  const waitAssigned = async (): Promise<void> => {
    await next;
    next = new Promise<void>((r) => (assigned = r));
  };
  return { tasks, assigned: waitAssigned };
}

test('a task starts with its sink (fencing), then reads the changelog and the committed offsets, then is seeked there and resumed', async () => {
  const w = world();
  const { tasks, assigned } = manager(w);
  tasks.onAssignment({ rgb: [0], ir: [0], xyz: [0] });
  assert.deepEqual(tasks.startingNumbers(), [0]);
  assert.equal(tasks.get(0), undefined, 'no task takes input while it starts');
  await assigned();
  assert.deepEqual(w.log, [
    'pause rgb:0 ir:0 xyz:0',
    'open sink 0 (fences the previous owner)',
    'read changelog',
    'read committed offsets',
    'seek rgb:0@5',
    'seek ir:0@2',
    'seek xyz:0@2',
    'resume rgb:0 ir:0 xyz:0',
  ]);
  assert.deepEqual(tasks.startingNumbers(), []);
  assert.deepEqual([...present(tasks.get(0), 'task 0').positions()], [['rgb', 5n], ['ir', 2n], ['xyz', 2n]], 'ir and xyz had no commit: their earliest offset');
});

test('on a new assignment a kept task is seeked to its own position, a task that moved away is retired', async () => {
  const w = world();
  const stats = new StatsRollup();
  const { tasks, assigned } = manager(w, stats);
  tasks.onAssignment({ rgb: [0, 1], ir: [0, 1], xyz: [0, 1] });
  await assigned();
  present(tasks.get(1), 'task 1').stats.framesRead = 3;
  w.log.length = 0;
  tasks.onAssignment({ rgb: [0], ir: [0], xyz: [0] });
  await assigned();
  assert.deepEqual(w.log, ['seek rgb:0@5', 'seek ir:0@2', 'seek xyz:0@2', 'close sink 1']);
  assert.deepEqual(tasks.running().map((t) => t.partition), [0]);
  assert.equal(stats.stats(tasks.running(), { paused: [], clockSkew: [], stuckClaimReads: 0 }).framesRead, 3, "the moved task's counts are kept");
});
