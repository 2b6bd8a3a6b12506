/**
 * The view's reading of the service's consumer lag, on the real broker: no group yet, a
 * group behind its input topics, the same group caught up (lag 0), and a poller stopped
 * while a read is in flight leaves no connection behind.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LagPoller, type LagReport } from '../../src/view/line-health.js';
import { deleteTopics, quietLogger, testConfig, testKafka, uniqueName } from '../helpers/kafka.js';

const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const topics = [uniqueName('lag-a'), uniqueName('lag-b')];
await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 2, replicationFactor: 1 })), waitForLeaders: true });
const producer = kafka.producer();
await producer.connect();
after(async () => {
  await producer.disconnect();
  await deleteTopics(admin, topics);
  await admin.disconnect();
});
// 5 records on a's partition 0, 2 on its partition 1, 3 on b's partition 0
await producer.send({ topic: topics[0] ?? '', messages: [0, 0, 0, 0, 0, 1, 1].map((partition, i) => ({ partition, value: `a${i}` })) });
await producer.send({ topic: topics[1] ?? '', messages: [0, 0, 0].map((partition, i) => ({ partition, value: `b${i}` })) });

const poller = (groupId: string): LagPoller => new LagPoller(kafka, groupId, topics, 60_000, () => undefined, quietLogger);

test('a group that never committed: no-group; behind: end less committed; caught up: 0', async () => {
  const groupId = uniqueName('lag-group');
  const p = poller(groupId);
  after(() => p.stop());
  assert.equal((await p.poll()).state, 'no-group');

  // the group committed a's partition 0 at 2 and nothing else: the rest counts from the low offsets
  await admin.setOffsets({ groupId, topic: topics[0] ?? '', partitions: [{ partition: 0, offset: '2' }] });
  const behind = await p.poll();
  assert.equal(behind.state, 'ok');
  assert.equal(behind.total, 3 + 2 + 3);
  assert.deepEqual(
    behind.topics.map((t) => [t.lag, t.uncommitted]),
    [
      [3 + 2, 1],
      [3, 2],
    ],
  );

  // caught up: committed at every end offset
  for (const topic of topics) {
    const ends = await admin.fetchTopicOffsets(topic);
    await admin.setOffsets({ groupId, topic, partitions: ends.map((o) => ({ partition: o.partition, offset: o.high })) });
  }
  const drained = await p.poll();
  assert.equal(drained.state, 'ok');
  assert.equal(drained.total, 0);
  assert.deepEqual(
    drained.topics.map((t) => [t.lag, t.uncommitted]),
    [
      [0, 0],
      [0, 0],
    ],
  );
});

test('started polling, reported, stopped: the report reaches its callback, and a stop during a read leaves no connection', async () => {
  const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  const before = sockets();
  const reports: LagReport[] = [];
  const first = new LagPoller(kafka, uniqueName('lag-group'), topics, 100, (r) => reports.push(r), quietLogger);
  first.start();
  for (let i = 0; i < 100 && reports.length < 2; i++) await sleep(50);
  await first.stop();
  assert.ok(reports.length >= 2, `polled again after its interval (${reports.length} reports)`);
  assert.deepEqual(
    reports.map((r) => r.state),
    reports.map(() => 'no-group'),
  );
  // stopped at different points of its first read: connecting, reading the group, reading offsets
  for (const delayMs of [0, 5, 20, 50, 100, 200]) {
    const p = poller(uniqueName('lag-group'));
    p.start();
    await sleep(delayMs);
    await p.stop();
  }
  await sleep(500);
  assert.equal(sockets(), before, 'every connection the pollers opened is closed');
});
