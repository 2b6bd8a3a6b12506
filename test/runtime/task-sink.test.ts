import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, isMmadError } from '../../src/base/errors.js';
import { TransactionalSink } from '../../src/runtime/task-sink.js';
import { consumeAll, deleteTopics, testConfig, testKafka } from '../helpers/kafka.js';

test('a transactional sink that gave up takes nothing more: what was queued behind the abort is neither published nor committed', async () => {
  const config = testConfig();
  const kafka = testKafka(config);
  const out = config.topics.events;
  const input = config.topics.inputs.rgb;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: out, numPartitions: 1 }, { topic: input, numPartitions: 1 }], waitForLeaders: true });
    const sink = await TransactionalSink.open(kafka, config, 0);
    // a task hands in two steps and a commit without waiting, then dies (abort) while the first is in flight
    const first = sink.write([{ topic: out, key: 'a', value: Buffer.from('step 1') }]);
    const second = sink.write([{ topic: out, key: 'b', value: Buffer.from('step 2') }]);
    const commit = sink.commit([{ topic: input, partition: 0, offset: '5' }]);
    const aborted = sink.abort();
    const [, secondResult, commitResult] = await Promise.allSettled([first, second, commit]);
    await aborted;
    await sink.close();
    assert.equal(secondResult.status, 'rejected', 'a write queued behind the abort fails');
    assert.equal(commitResult.status, 'rejected', 'the commit queued behind the abort fails');
    assert.match(String(commitResult.reason), /gave up its outputs/);
    // not a broker outage, and nothing to retry: the task that queued them is gone
    for (const refused of [secondResult.reason, commitResult.reason]) {
      assert.ok(isMmadError(refused, ErrorCode.TASK_CLOSED), String(refused));
      assert.equal(refused.retriable, false);
    }

    // the next owner of the task (same transactional id) writes and commits normally
    const next = await TransactionalSink.open(kafka, config, 0);
    void next.write([{ topic: out, key: 'c', value: Buffer.from('next owner') }]);
    await next.commit([{ topic: input, partition: 0, offset: '7' }]);
    await next.close();

    const visible = await consumeAll(kafka, config, out);
    assert.deepEqual(visible.map((m) => String(m.value)), ['next owner'], 'read committed: only what the next owner committed');
    const [committed] = await admin.fetchOffsets({ groupId: config.input.groupId, topics: [input] });
    assert.equal(committed?.partitions[0]?.offset, '7');
  } finally {
    await deleteTopics(admin, [out, input]);
    await admin.disconnect();
  }
});
