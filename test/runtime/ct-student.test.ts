/**
 * A part's CT revision judged by a student that takes ct, through the running service on the
 * real broker: rgb + ir judged in-line by the rgb+ir student, the late volume (a grid of its
 * own, resampled to the student's) refining the part with the rgb+ir+ct student, the event
 * naming ct among the modalities used and its regions carrying the depth of their peak.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { inputTopics } from '../../src/kafka/topics.js';
import { consumeUntil, consumedAll } from '../helpers/kafka.js';
import { makeFrame, makeVolumeFrame } from '../helpers/frames.js';
import { CT_MANIFEST, processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';
import { until } from '../helpers/wait.js';

const config = processorTestConfig((base) => ({
  topics: { ...base.topics, inputs: { ...base.topics.inputs, ct: base.topics.inputs.rgb.replace(/\.rgb$/, '.ct') } },
  inference: { manifest: CT_MANIFEST, maxBatchWaitMs: 2 },
  join: {
    modalities: { rgb: { policy: 'required', timeoutMs: 1000 }, ir: { policy: 'optional', timeoutMs: 500 }, xyz: { policy: 'late', windowMs: 3000 }, ct: { policy: 'late', windowMs: 4000 } },
    idleAdvanceMs: 300,
  },
}));
const { kafka, processor, send } = await serviceUnderTest(config);
const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');

test('a part\'s CT revision is judged by the ct student: ct among the modalities used, regions with depthMm', { timeout: 120_000 }, async () => {
  await processor.start();
  const t0 = Date.now();
  const expected = ['rgb', 'ir', 'ct'] as const;
  // two volumes: on the student's grid (8 slices of 0.5 mm), and of 16 slices of 0.25 mm resampled to it
  const parts = { 'P-8': { depth: 8, voxelZMm: 0.5 }, 'P-16': { depth: 16, voxelZMm: 0.25 } };
  for (const id of Object.keys(parts)) {
    for (const m of ['rgb', 'ir'] as const) await send(m, id, frames.encode(await makeFrame(id, m, { captureTime: t0, expected: [...expected] })));
  }
  for (const [id, v] of Object.entries(parts)) await send('ct', id, frames.encode(makeVolumeFrame(id, { ...v, captureTime: t0 + 2000, expected: [...expected] })));

  const codec = AvroCodec.local(catalog, 'AnomalyEvent');
  const evs: AnomalyEvent[] = [];
  await consumeUntil(kafka, config, config.topics.events, (got) => {
    evs.splice(0, evs.length, ...got.map((m) => codec.decodeSync(present(m.value, 'an event'))));
    return Object.keys(parts).every((id) => evs.some((e) => e.sampleId === id && e.final));
  }, 'the final event of every part');
  for (const [id, v] of Object.entries(parts)) {
    const mine = evs.filter((e) => e.sampleId === id).sort((a, b) => a.revision - b.revision);
    assert.deepEqual(
      mine.map((e) => [e.revision, e.final, e.model?.id, e.verdict, e.modalitiesUsed.join('+'), e.modalitiesMissing.join('+')]),
      [[1, false, 'null-rgb-ir', 'OK', 'rgb+ir', 'xyz+ct'], [2, true, 'null-rgb-ir-ct', 'NOK', 'rgb+ir+ct', 'xyz']],
      id,
    );
    const [first, refined] = mine;
    assert.deepEqual(first?.regions, [], `${id}: the in-line verdict has no region`);
    // the bright column: map 20..23 × 8..11 of the 32 × 32 frames; its peak at slice 5 of the student's 8
    assert.deepEqual(
      refined?.regions.map((r) => [r.x, r.y, r.width, r.height, r.depthMm]),
      [[20, 8, 4, 4, (5 + 0.5) * (v.depth / 8) * v.voxelZMm]],
      `${id}: the region and the depth of its peak`,
    );
  }
  await until('every input offset committed', () => consumedAll(kafka, config.input.groupId, inputTopics(config).map((i) => i.topic)), 30_000, { everyMs: 200 });
});
