import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Kafka } from 'kafkajs';
import { MmadError } from '../../src/base/errors.js';
import { createLogger } from '../../src/base/logger.js';
import { loadConfig } from '../../src/config/load-config.js';
import { changelogTopic } from '../../src/runtime/join-changelog.js';
import { TopicWatchdog } from '../../src/runtime/topic-watchdog.js';

const config = loadConfig({ env: {}, overrides: { processing: { topicCheckMs: 1000 }, input: { groupId: 'g' } } });
const t = config.topics;
const ALL = [t.inputs.rgb, t.inputs.ir, t.inputs.xyz, t.events, t.alerts, t.deadLetters, changelogTopic(config)];

/** A broker whose topic list the test sets; `down` makes it unreachable. Counts the checks. */
function broker(topics: string[]): { kafka: Pick<Kafka, 'admin'>; topics: string[]; down: boolean; checks: number } {
  const b = {
    topics,
    down: false,
    checks: 0,
    kafka: {
      admin: () =>
        ({
          connect: async () => {
            b.checks++;
            if (b.down) throw new Error('connection refused');
          },
          listTopics: async () => b.topics,
          disconnect: async () => undefined,
        }) as unknown as ReturnType<Kafka['admin']>,
    },
  };
  return b;
}

/** What the watchdog reported so far. */
function reported(w: TopicWatchdog): () => MmadError | undefined {
  let fatal: MmadError | undefined;
  void w.fatal.then((e) => (fatal = e));
  return () => fatal;
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

test('the topics are listed every topicCheckMs; a missing one is fatal, named, unless the processor is stopping', async () => {
  const b = broker([...ALL]);
  let now = 5_000;
  let stopping = false;
  const w = new TopicWatchdog(config, b.kafka, createLogger({}, 'silent'), () => now, () => stopping);
  const fatal = reported(w);
  w.tick();
  w.tick();
  await settle();
  assert.equal(b.checks, 1, 'one check at a time');
  now += 999;
  w.tick();
  await settle();
  assert.equal(b.checks, 1, 'not due yet');
  b.topics = ALL.filter((x) => x !== t.alerts);
  stopping = true;
  now += 1;
  w.tick();
  await settle();
  assert.equal(b.checks, 2);
  assert.equal(fatal(), undefined, 'a stopping processor reports nothing');
  stopping = false;
  now += 1000;
  w.tick();
  await settle();
  assert.equal(fatal()?.code, 'TOPIC_MISSING');
  assert.deepEqual(fatal()?.details, { missing: [t.alerts] });
});

test('a broker that cannot be reached is no finding: the next check tries again', async () => {
  const b = broker([]);
  b.down = true;
  let now = 0;
  const w = new TopicWatchdog(config, b.kafka, createLogger({}, 'silent'), () => now, () => false);
  const fatal = reported(w);
  now = 1000;
  w.tick();
  await settle();
  assert.equal(fatal(), undefined);
  b.down = false;
  now = 2000;
  w.tick();
  await settle();
  assert.equal(b.checks, 2);
  assert.equal(fatal()?.code, 'TOPIC_MISSING', 'every topic is gone');
});
