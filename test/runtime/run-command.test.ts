/**
 * `mmad run` as an operator runs it: a process on the real broker, stopped
 * with SIGTERM — in-flight samples published, offsets committed, exit 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { consumeN, deleteTopics, serviceEnv, testConfig, testKafka } from '../helpers/kafka.js';
import { makeFrame } from '../helpers/frames.js';
import { TEST_MANIFEST } from '../helpers/models.js';
import { until } from '../helpers/wait.js';

const bin = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');
const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const plans = planTopics(config);
await ensureTopics(admin, plans);
after(async () => {
  await deleteTopics(admin, plans.map((p) => p.name));
  await admin.disconnect();
});

test('mmad run judges frames and stops gracefully on SIGTERM with its offsets committed', { timeout: 90_000 }, async () => {
  const group = config.input.groupId;
  const env = { ...process.env, MMAD_LOG_LEVEL: 'warn', ...serviceEnv(config) };
  const child = spawn(process.execPath, [bin, 'run', '--manifest', TEST_MANIFEST], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  await until('the service running', () => out.includes('running on'), 60_000, { detail: () => err });

  const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
  const producer = kafka.producer();
  await producer.connect();
  const t0 = Date.now();
  for (let i = 0; i < 6; i++) {
    const id = `R-${i}`;
    for (const m of ['rgb', 'ir'] as const) {
      const value = frames.encode(await makeFrame(id, m, { captureTime: t0 + i, expected: ['rgb', 'ir'] }));
      await producer.send({ topic: config.topics.inputs[m], messages: [{ key: id, value, partition: partitionFor(id, 3) }] });
    }
  }
  await producer.disconnect();
  const events = await consumeN(kafka, config, config.topics.events, 6, 60_000);
  assert.equal(new Set(events.map((e) => present(e.key, 'an event key').toString())).size, 6);

  child.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.match(out, /stopped: 12 frames read, 6 verdicts, 0 dead letters/);
  // everything consumed is committed: a restart would not judge these samples again
  const committed = await admin.fetchOffsets({ groupId: group, topics: [config.topics.inputs.rgb, config.topics.inputs.ir] });
  const ends = await Promise.all([config.topics.inputs.rgb, config.topics.inputs.ir].map((t) => admin.fetchTopicOffsets(t)));
  for (const [i, t] of committed.entries()) {
    for (const p of t.partitions) {
      const end = present(at(ends, i).find((e) => e.partition === p.partition), `the end of ${t.topic}[${p.partition}]`).offset;
      assert.equal(p.offset, end, `${t.topic}[${p.partition}] committed ${p.offset}, end ${end}`);
    }
  }
});
