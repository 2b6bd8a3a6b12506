import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { consumeN, deleteTopics, testConfig, testKafka } from '../helpers/kafka.js';
import { plain, sampleAlert, sampleDeadLetter, sampleEvent, sampleFrame, sampleLabel } from '../helpers/records.js';

const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const plans = planTopics(config);
await ensureTopics(admin, plans);
const catalog = SchemaCatalog.load();
const producer = kafka.producer({ allowAutoTopicCreation: false });
await producer.connect();
after(async () => {
  await producer.disconnect();
  await deleteTopics(admin, plans.map((p) => p.name));
  await admin.disconnect();
});

test('every schema round-trips through Kafka with kafkajs', async () => {
  const cases = [
    ['Frame', config.topics.inputs.rgb, sampleFrame()],
    ['AnomalyEvent', config.topics.events, sampleEvent()],
    ['Alert', config.topics.alerts, sampleAlert()],
    ['DeadLetter', config.topics.deadLetters, sampleDeadLetter()],
    ['Label', config.topics.labels, sampleLabel()],
  ] as const;
  for (const [name, topic, value] of cases) {
    const codec = await AvroCodec.create(catalog, name);
    await producer.send({ topic, messages: [{ key: 'S-000123', value: codec.encode(value) }] });
    const [msg] = await consumeN(kafka, config, topic, 1);
    assert.equal(msg?.key?.toString(), 'S-000123');
    assert.deepEqual(plain(await codec.decode(present(msg.value, `the ${name} record's value`))), value, name);
  }
});

test('a frame with a 12 MB payload goes through', async () => {
  const payload = randomBytes(12 * 1024 * 1024);
  const codec = await AvroCodec.create(catalog, 'Frame');
  const topic = config.topics.inputs.xyz;
  await producer.send({ topic, messages: [{ key: 'S-big', value: codec.encode(sampleFrame(payload, { sampleId: 'S-big', modality: 'xyz' })) }] });
  const [msg] = await consumeN(kafka, config, topic, 1, 60_000);
  const frame = await codec.decode(present(msg?.value, 'the frame record value'));
  assert.equal(frame.sampleId, 'S-big');
  assert.equal(frame.payload?.length, payload.length);
  assert.ok(frame.payload.equals(payload));
});
