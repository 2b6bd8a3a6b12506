import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RecordFetcher } from '../../src/view/record-fetcher.js';
import { deleteTopics, quietLogger, testConfig, testKafka, uniqueName } from '../helpers/kafka.js';

const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const topic = uniqueName('record-fetcher');
await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
const producer = kafka.producer();
await producer.connect();
await producer.send({ topic, messages: [{ key: 'a', value: 'first' }, { key: 'b', value: 'second' }] });
// offset 2: a record of an aborted transaction, which a read_committed reader never gets, so a
// read of it waits until its timeout (a frame whose station's transaction failed)
const txProducer = kafka.producer({ transactionalId: uniqueName('record-fetcher-tx'), idempotent: true, maxInFlightRequests: 1 });
await txProducer.connect();
const tx = await txProducer.transaction();
await tx.send({ topic, messages: [{ key: 'c', value: 'aborted' }] });
await tx.abort();
after(async () => {
  await txProducer.disconnect();
  await producer.disconnect();
  await deleteTopics(admin, [topic]);
  await admin.disconnect();
});

test('a record is read at its offset; a read in flight when the reader stops is answered at once and nothing touches the stopped consumer later', async () => {
  const timeoutMs = 400;
  const fetcher = new RecordFetcher(kafka, config, [topic], uniqueName('record-fetcher'), quietLogger, timeoutMs);
  await fetcher.start();
  const second = await fetcher.fetch(topic, 0, 1);
  assert.ok(second.found && second.message.value?.toString() === 'second', JSON.stringify(second));
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    const read = fetcher.fetch(topic, 0, 2);
    // stop while the read waits for its record
    for (let i = 0; i < 2_000 && !fetcher.reading; i++) await sleep(1);
    assert.ok(fetcher.reading, 'the read is in flight');
    await fetcher.stop();
    assert.deepEqual(await read, { found: false, why: 'the frame reader has stopped' });
    await sleep(2 * timeoutMs); // the read's timeout would have paused the stopped consumer here
    assert.deepEqual(uncaught, []);
    assert.deepEqual(await fetcher.fetch(topic, 0, 1), { found: false, why: 'the frame reader has stopped' });
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});
