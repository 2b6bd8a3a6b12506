import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Consumer } from 'kafkajs';
import { after, test } from 'node:test';
import { frameConsumerConfig, onGroupJoin } from '../../src/kafka/kafka-client.js';
import { deleteTopics, testConfig, testKafka, uniqueName } from '../helpers/kafka.js';

const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const topic = uniqueName('group-join');
await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
after(async () => {
  await deleteTopics(admin, [topic]);
  await admin.disconnect();
});

test('a group join reported after the consumer stopped is not handed on (seeking there would throw inside kafkajs)', () => {
  // kafkajs stops a consumer that is still joining at once (its runner is not running yet),
  // then reports the join when it completes: STOP, then GROUP_JOIN. That order cannot be
  // forced on a broker, so the consumer's two events are emitted here as kafkajs emits them.
  const emitter = new EventEmitter();
  const events = { STOP: 'consumer.stop', GROUP_JOIN: 'consumer.group_join' };
  const consumer = { events, on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener) } as unknown as Consumer;
  const handled: Record<string, number[]>[] = [];
  onGroupJoin(consumer, (assignment) => handled.push(assignment));
  emitter.emit(events.GROUP_JOIN, { payload: { memberAssignment: { t: [0, 1] } } });
  emitter.emit(events.STOP, { payload: {} });
  emitter.emit(events.GROUP_JOIN, { payload: { memberAssignment: { t: [2] } } });
  assert.deepEqual(handled, [{ t: [0, 1] }]);
});

test('onGroupJoin hands a running consumer its assignment on each join', async () => {
  const consumer = kafka.consumer({ ...frameConsumerConfig(config, uniqueName('group-join')), readUncommitted: false });
  await consumer.connect();
  const joined = new Promise<Record<string, number[]>>((resolve) => onGroupJoin(consumer, resolve));
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async () => undefined });
  const assignment = await joined;
  await consumer.disconnect();
  assert.deepEqual([...(assignment[topic] ?? [])].sort(), [0, 1]);
});
