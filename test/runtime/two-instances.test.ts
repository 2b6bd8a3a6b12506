/**
 * Two service instances in one consumer group share the tasks (whole
 * partition numbers) and judge every part exactly once.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { StreamProcessor } from '../../src/runtime/stream-processor.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { consumeUntil, deleteTopics, quietLogger, testKafka } from '../helpers/kafka.js';
import { makeFrame } from '../helpers/frames.js';
import { processorTestConfig } from '../helpers/models.js';
import { until } from '../helpers/wait.js';

const config = processorTestConfig((base) => ({ topics: { ...base.topics, partitions: 6 } }));
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const plans = planTopics(config);
await ensureTopics(admin, plans);
const registry = await ModelRegistry.open(config, quietLogger);
const a = new StreamProcessor(config, registry, { logger: quietLogger });
const b = new StreamProcessor(config, registry, { logger: quietLogger });
after(async () => {
  await Promise.all([a.stop(), b.stop()]);
  await registry.close();
  await deleteTopics(admin, plans.map((p) => p.name));
  await admin.disconnect();
});

test('two instances in one group split the tasks and judge every part once', { timeout: 120_000 }, async () => {
  await a.start();
  await b.start();
  // wait until the group has settled with both members holding tasks
  const settled = (): boolean => a.stats().tasks.length > 0 && b.stats().tasks.length > 0 && a.stats().tasks.length + b.stats().tasks.length === 6;
  await until('both members to hold tasks, six in all', settled, 60_000, { everyMs: 200, detail: () => `tasks ${JSON.stringify(a.stats().tasks)} + ${JSON.stringify(b.stats().tasks)}` });
  const ta = a.stats().tasks;
  const tb = b.stats().tasks;
  assert.deepEqual([...ta, ...tb].sort(), [0, 1, 2, 3, 4, 5], `tasks ${JSON.stringify(ta)} + ${JSON.stringify(tb)}`);
  assert.equal(ta.length, 3);

  const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
  const producer = kafka.producer();
  await producer.connect();
  const n = 30;
  const t0 = Date.now();
  for (let i = 0; i < n; i++) {
    const id = `P-${i}`;
    const messages = await Promise.all(
      (['rgb', 'ir'] as const).map(async (m) => ({
        topic: config.topics.inputs[m],
        messages: [{ key: id, value: frames.encode(await makeFrame(id, m, { captureTime: t0 + i * 10, expected: ['rgb', 'ir'] })), partition: partitionFor(id, 6) }],
      })),
    );
    await producer.sendBatch({ topicMessages: messages });
  }
  await producer.disconnect();
  const events = await consumeUntil(kafka, config, config.topics.events, (got) => got.length >= n, `${n} events`);
  const ids = events.map((e) => present(e.key, 'an event key').toString()).sort();
  assert.equal(ids.length, n, 'one event per part');
  assert.equal(new Set(ids).size, n, 'no part judged twice');
  assert.ok(a.stats().judged > 0 && b.stats().judged > 0, `both instances judged (${a.stats().judged} + ${b.stats().judged})`);
  assert.equal(a.stats().judged + b.stats().judged, n);
});
