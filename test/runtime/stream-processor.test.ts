/**
 * The stream processor end to end on the real broker with real ONNX models:
 * frames in, events, alerts and dead letters out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent, DeadLetter } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { consumeAll, consumeN } from '../helpers/kafka.js';
import { makeFrame } from '../helpers/frames.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';

const config = processorTestConfig(() => ({
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1500 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 5000 } }, idleAdvanceMs: 300 },
}));
const { kafka, processor, send: sendTo } = await serviceUnderTest(config);
const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');
const events = AvroCodec.local(catalog, 'AnomalyEvent');
const deadLetters = AvroCodec.local(catalog, 'DeadLetter');

const P = config.topics.partitions;
/** Sends to the partition the sample id hashes to, whatever the key (some tests send a wrong one). */
function send(modality: 'rgb' | 'ir' | 'xyz', sampleId: string, value: Buffer, key = sampleId): Promise<void> {
  return sendTo(modality, key, value, partitionFor(sampleId, P));
}

test('frames in → verdicts, refinements, alerts and dead letters out', { timeout: 90_000 }, async () => {
  await processor.start();
  const t0 = Date.now();
  // S-ok: rgb + ir now (provisional OK), xyz 2 s later in capture time (refined, final)
  await send('rgb', 'S-ok', frames.encode(await makeFrame('S-ok', 'rgb', { captureTime: t0 })));
  await send('ir', 'S-ok', frames.encode(await makeFrame('S-ok', 'ir', { captureTime: t0 + 2 })));
  // S-nok: a bright square on rgb, announced as rgb+ir only: one final NOK event and an alert
  await send('rgb', 'S-nok', frames.encode(await makeFrame('S-nok', 'rgb', { captureTime: t0 + 10, square: [8, 4, 6], expected: ['rgb', 'ir'] })));
  await send('rgb', 'S-nok', frames.encode(await makeFrame('S-nok', 'rgb', { captureTime: t0 + 10, square: [8, 4, 6], expected: ['rgb', 'ir'] }))); // duplicate
  await send('ir', 'S-nok', frames.encode(await makeFrame('S-nok', 'ir', { captureTime: t0 + 12, expected: ['rgb', 'ir'] })));
  // S-noir: rgb only; ir times out → judged with rgb alone
  await send('rgb', 'S-noir', frames.encode(await makeFrame('S-noir', 'rgb', { captureTime: t0 + 20, expected: ['rgb', 'ir'] })));
  // S-norgb: ir only → UNKNOWN after the rgb timeout
  await send('ir', 'S-norgb', frames.encode(await makeFrame('S-norgb', 'ir', { captureTime: t0 + 30, expected: ['rgb', 'ir'] })));
  // unusable records
  await send('rgb', 'S-garbage', Buffer.from('definitely not avro'));
  await send('rgb', 'S-wrongtopic', frames.encode(await makeFrame('S-wrongtopic', 'ir', { captureTime: t0 + 40 })));
  const corrupt = await makeFrame('S-corrupt', 'rgb', { captureTime: t0 + 50 });
  await send('rgb', 'S-corrupt', frames.encode({ ...corrupt, payload: present(corrupt.payload, 'the rgb payload').subarray(0, 40) }));
  await send('xyz', 'S-ok', frames.encode(await makeFrame('S-ok', 'xyz', { captureTime: t0 + 2000 })));

  const msgs = await consumeN(kafka, config, config.topics.events, 5, 60_000);
  const evs = await Promise.all(msgs.map((m) => events.decode(present(m.value, 'the record value'))));
  const by = (id: string): AnomalyEvent[] => evs.filter((e) => e.sampleId === id).sort((a, b) => a.revision - b.revision);

  const ok = by('S-ok');
  assert.deepEqual(ok.map((e) => [e.revision, e.verdict, e.final, e.model?.id]), [
    [1, 'OK', false, 'test-rgb-ir'],
    [2, 'OK', true, 'test-rgb-ir-xyz'],
  ]);
  assert.deepEqual(ok[0]?.modalitiesMissing, ['xyz']);
  assert.deepEqual(ok[1]?.sources.map((s) => s.modality), ['rgb', 'ir', 'xyz']);
  const revised = at(ok, 1);
  assert.ok(revised.timings.endToEndMs >= revised.timings.joinWaitMs);

  const nok = at(by('S-nok'), 0);
  assert.equal(nok.verdict, 'NOK');
  assert.equal(nok.final, true);
  assert.ok(present(nok.score, 'the NOK score') >= present(nok.threshold, 'the NOK threshold'));
  assert.ok(nok.regions.length >= 1);
  const r = at(nok.regions, 0);
  assert.ok(r.x <= 8 && r.x + r.width >= 14 && r.y <= 4 && r.y + r.height >= 10, `region ${JSON.stringify(r)} covers the square`);
  assert.equal(nok.heatmap?.width, 64);

  const noir = at(by('S-noir'), 0);
  assert.deepEqual([noir.verdict, noir.model?.id, noir.modalitiesUsed], ['OK', 'test-rgb', ['rgb']]);
  assert.ok(noir.modalitiesMissing.includes('ir'));

  const norgb = at(by('S-norgb'), 0);
  assert.equal(norgb.verdict, 'UNKNOWN');
  assert.match(norgb.reason ?? '', /required modality rgb did not arrive/);
  assert.equal(by('S-nok').length, 1, 'the duplicate rgb frame made no second event');

  const alerts = await consumeN(kafka, config, config.topics.alerts, 1);
  assert.equal(alerts[0]?.key?.toString(), 'S-nok');

  const dls = await consumeN(kafka, config, config.topics.deadLetters, 3);
  const dl = await Promise.all(dls.map((m) => deadLetters.decode(present(m.value, 'the record value'))));
  const reason = (pred: (d: DeadLetter) => boolean): string | undefined => dl.find(pred)?.reasonCode;
  assert.equal(reason((d) => d.original.toString() === 'definitely not avro'), 'CODEC_BAD_MAGIC');
  assert.equal(reason((d) => d.sampleId === 'S-wrongtopic'), 'FRAME_UNKNOWN_MODALITY');
  assert.equal(reason((d) => d.sampleId === 'S-corrupt'), 'FRAME_CORRUPT');
  assert.ok(dl.every((d) => d.source.topic === config.topics.inputs.rgb && d.original.length > 0));
  assert.equal((await consumeAll(kafka, config, config.topics.events)).length, 5, 'exactly one event per sample and revision');
  const stats = processor.stats();
  assert.equal(stats.duplicates, 1);
  assert.deepEqual(stats.tasks, [0, 1, 2]);
});
