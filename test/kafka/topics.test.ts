import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import kafkajs from 'kafkajs'; // its enums (ConfigResourceTypes) are on the CommonJS default export only
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { at } from '../../src/base/invariant.js';
import { ensureTopics, planTopics, verifyTopics } from '../../src/kafka/topics.js';
import { deleteTopics, testConfig, testKafka } from '../helpers/kafka.js';

const created: string[] = [];
const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
after(async () => {
  await deleteTopics(admin, created);
  await admin.disconnect();
});

test('ensureTopics creates inputs, outputs and labels with the configured partitions, then finds them', async () => {
  const plans = planTopics(config);
  created.push(...plans.map((p) => p.name));
  const first = await ensureTopics(admin, plans);
  assert.deepEqual(first.map((s) => s.role), ['input', 'input', 'input', 'events', 'alerts', 'deadLetters', 'labels', 'changelog']);
  assert.ok(first.every((s) => s.created && s.actualPartitions === 3));
  const again = await ensureTopics(admin, plans);
  assert.ok(again.every((s) => !s.created && s.actualPartitions === 3), 'idempotent');
  const verified = await verifyTopics(admin, plans);
  assert.equal(verified.length, plans.length);
  const configs = await admin.describeConfigs({ resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: config.topics.inputs.rgb }], includeSynonyms: false });
  const maxBytes = configs.resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes');
  assert.equal(maxBytes?.configValue, String(config.kafka.maxMessageBytes));
});

test('input topics with different partition counts are refused, naming each topic and count', async () => {
  const odd = testConfig();
  const plans = planTopics(odd);
  created.push(...plans.map((p) => p.name));
  // kafkajs' waitForLeaders gives up on the broker's first UNKNOWN_TOPIC_OR_PARTITION (a fresh broker): wait here instead
  await admin.createTopics({ topics: [{ topic: odd.topics.inputs.ir, numPartitions: 5 }], waitForLeaders: false });
  for (let i = 0; ; i++) {
    const ok = await admin.fetchTopicMetadata({ topics: [odd.topics.inputs.ir] }).then((m) => at(m.topics, 0).partitions.every((p) => p.leader >= 0), () => false);
    if (ok) break;
    assert.ok(i < 100, 'the topic gets leaders');
    await new Promise((r) => setTimeout(r, 100));
  }
  await assert.rejects(ensureTopics(admin, plans), (e: unknown) => {
    assert.ok(e instanceof MmadError);
    assert.equal(e.code, ErrorCode.TOPIC_PARTITION_MISMATCH);
    assert.ok(e.message.includes(`${odd.topics.inputs.ir}=5`));
    assert.ok(e.message.includes(`${odd.topics.inputs.rgb}=3`));
    return true;
  });
});

test('verify names the topics that are missing', async () => {
  const absent = testConfig();
  await assert.rejects(verifyTopics(admin, planTopics(absent)), new RegExp(absent.topics.inputs.rgb.replace(/\./g, '\\.')));
});
