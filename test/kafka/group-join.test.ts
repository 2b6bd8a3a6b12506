import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Consumer } from 'kafkajs';
import { after, test } from 'node:test';
import { createConsumer, frameConsumerConfig, onGroupJoin } from '../../src/kafka/kafka-client.js';
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

test('joins are handed on until the owner ends them, also after a restart of the consumer; a join reported after the end is not (seeking there would throw inside kafkajs)', () => {
  // kafkajs' order of events, emitted by hand (a broker cannot force these races): a consumer
  // that kafkajs restarts after a retriable crash emits STOP, then joins again; one stopped by
  // its owner while still joining emits STOP and then still reports the join.
  const emitter = new EventEmitter();
  const events = { STOP: 'consumer.stop', GROUP_JOIN: 'consumer.group_join' };
  const consumer = { events, on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener) } as unknown as Consumer;
  const handled: Record<string, number[]>[] = [];
  const end = onGroupJoin(consumer, (assignment) => handled.push(assignment));
  emitter.emit(events.GROUP_JOIN, { payload: { memberAssignment: { t: [0, 1] } } });
  emitter.emit(events.STOP, { payload: {} }); // kafkajs restarting the consumer
  emitter.emit(events.GROUP_JOIN, { payload: { memberAssignment: { t: [1] } } });
  end(); // the owner stops it
  emitter.emit(events.STOP, { payload: {} });
  emitter.emit(events.GROUP_JOIN, { payload: { memberAssignment: { t: [2] } } });
  assert.deepEqual(handled, [{ t: [0, 1] }, { t: [1] }]);
});

test('onGroupJoin hands a running consumer its assignment on each join', async () => {
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, uniqueName('group-join')), readUncommitted: false });
  await consumer.connect();
  const joined = new Promise<Record<string, number[]>>((resolve) => onGroupJoin(consumer, resolve));
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async () => undefined });
  const assignment = await joined;
  await consumer.disconnect();
  assert.deepEqual([...(assignment[topic] ?? [])].sort(), [0, 1]);
});

test('a consumer whose owner disconnects it while it crashes stays stopped (kafkajs would restart it on its own)', async () => {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ key: 'k', value: 'v' }] });
  await producer.disconnect();
  const consumer = createConsumer(kafka, { ...frameConsumerConfig(config, uniqueName('group-join')), retry: { retries: 0, initialRetryTime: 50 } });
  const crashes: boolean[] = [];
  let joins = 0;
  consumer.on(consumer.events.CRASH, (e) => crashes.push(e.payload.restart));
  consumer.on(consumer.events.GROUP_JOIN, () => joins++);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let ended: Promise<void> | undefined;
  await consumer.run({
    eachMessage: async () => {
      // the owner ends the consumer while its handler fails: the crash comes after the stop began
      ended ??= consumer.disconnect();
      throw new Error('handler failed while its owner disconnected');
    },
  });
  while (ended === undefined) await new Promise((r) => setTimeout(r, 20));
  await ended;
  // long enough for kafkajs' restart timer (50 ms) and a join of a restarted consumer
  await new Promise((r) => setTimeout(r, 3_000));
  await consumer.disconnect();
  assert.ok(crashes.length > 0, 'the failing handler crashed the consumer');
  assert.deepEqual(crashes, crashes.map(() => false), 'no crash restarts a consumer its owner ended');
  assert.equal(joins, 1);
});
