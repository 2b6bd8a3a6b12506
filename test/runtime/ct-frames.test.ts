/**
 * CT volume frames through the running service on the real broker: a ct input topic
 * co-partitioned with the others, ct joined as a late modality (never holding up the
 * in-line verdict), inline TIFF, raw and claim-checked volumes reaching the join, each kind
 * of unusable volume dead-lettered with its reason, and every input offset committed at the
 * end (nothing lost). No student takes ct: the refined revision is judged by the in-line
 * student, with ct named as unused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent, DeadLetter, Frame } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { encodeVolumeTiff } from '../../src/codec/tiff-writer.js';
import type { Judgement } from '../../src/inference/judge.js';
import { inputTopics } from '../../src/kafka/topics.js';
import { consumeN, consumeUntil, consumedAll } from '../helpers/kafka.js';
import { makeFrame, volumeFrame } from '../helpers/frames.js';
import { TEST_MANIFEST, processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';
import { until } from '../helpers/wait.js';

const claimDir = mkdtempSync(join(tmpdir(), 'mmad-ct-claims-'));
const config = processorTestConfig((base) => ({
  topics: { ...base.topics, inputs: { ...base.topics.inputs, ct: base.topics.inputs.rgb.replace(/\.rgb$/, '.ct') } },
  input: { ...base.input, claimCheckRoots: [claimDir] },
  inference: { manifest: TEST_MANIFEST, maxBatchWaitMs: 2, ct: { maxDepth: 16, maxVoxels: 4096 } },
  join: {
    modalities: { rgb: { policy: 'required', timeoutMs: 1000 }, ir: { policy: 'optional', timeoutMs: 500 }, xyz: { policy: 'late', windowMs: 3000 }, ct: { policy: 'late', windowMs: 4000 } },
    idleAdvanceMs: 300,
  },
}));
const judgements: Judgement[] = [];
const { kafka, processor, send } = await serviceUnderTest(config, {
  onWritten: (j) => {
    if (j !== null) judgements.push(j);
  },
});
const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');

const [D, H, W] = [4, 8, 8]; // the volume's grid is its own: the cameras' frames are 32×32
const volume = Uint16Array.from({ length: D * H * W }, (_, i) => (i * 977) % 65536);
const tiff = encodeVolumeTiff(volume, W, H, D);
const raw = Buffer.from(volume.buffer, volume.byteOffset, volume.byteLength);

function ct(sampleId: string, captureTime: number, o: Partial<Frame> = {}): Frame {
  return volumeFrame(sampleId, { depth: D, height: H, width: W }, { captureTime: new Date(captureTime), payload: tiff, expectedModalities: ['rgb', 'ir', 'ct'], ...o });
}

test('ct volumes reach the join as a late modality; unusable ones are dead letters with their reason; nothing is lost', { timeout: 120_000 }, async () => {
  assert.deepEqual(
    inputTopics(config).map((i) => i.modality),
    ['rgb', 'ir', 'xyz', 'ct'],
    'ct has an input topic, created with the same partition count as the others',
  );
  await processor.start();
  const t0 = Date.now();
  const part = async (id: string): Promise<void> => {
    for (const m of ['rgb', 'ir'] as const) await send(m, id, frames.encode(await makeFrame(id, m, { captureTime: t0, expected: ['rgb', 'ir', 'ct'] })));
  };
  // good volumes, minutes later in a real line (here 2 s of capture time): inline TIFF, raw, by claim check
  const claimed = join(claimDir, 'volume.tiff');
  writeFileSync(claimed, tiff);
  const good: Record<string, Frame> = {
    'C-tiff': ct('C-tiff', t0 + 2000),
    'C-raw': ct('C-raw', t0 + 2000, { encoding: 'raw', payload: raw }),
    'C-claim': ct('C-claim', t0 + 2000, { payload: null, payloadRef: { uri: pathToFileURL(claimed).href, sizeBytes: tiff.length, sha256: null } }),
  };
  // unusable volumes of judged parts: each a dead letter, its part keeps its in-line verdict
  const bad: Record<string, [Frame, string, RegExp]> = {
    'B-novolume': [ct('B-novolume', t0 + 2000, { volume: null }), 'FRAME_SHAPE', /declares no volume/],
    'B-depth': [ct('B-depth', t0 + 2000, { volume: { depth: 20, voxelSizeMm: { x: 0.2, y: 0.2, z: 0.5 } } }), 'FRAME_SHAPE', /depth of 20 slices is outside 1\.\.16/],
    'B-voxel': [ct('B-voxel', t0 + 2000, { volume: { depth: D, voxelSizeMm: { x: 0.2, y: 0.2, z: 50 } } }), 'FRAME_SHAPE', /voxel size z of 50 mm is outside/],
    'B-voxels': [ct('B-voxels', t0 + 2000, { width: 32, height: 32, volume: { depth: 8, voxelSizeMm: { x: 0.2, y: 0.2, z: 0.5 } } }), 'FRAME_SHAPE', /8192 voxels, over the limit of 4096/],
    'B-corrupt': [ct('B-corrupt', t0 + 2000, { payload: Buffer.concat([tiff.subarray(0, 8), Buffer.alloc(64, 0xee)]) }), 'FRAME_CORRUPT', /not a readable multi-page TIFF/],
    'B-pages': [ct('B-pages', t0 + 2000, { volume: { depth: 3, voxelSizeMm: { x: 0.2, y: 0.2, z: 0.5 } } }), 'FRAME_SHAPE', /TIFF has 4 pages, the frame declares a depth of 3/],
    'B-rawlength': [ct('B-rawlength', t0 + 2000, { encoding: 'raw', payload: raw.subarray(0, raw.length - 2) }), 'FRAME_SHAPE', /4×8×8 uint16 needs 512/],
    'B-claim': [ct('B-claim', t0 + 2000, { payload: null, payloadRef: { uri: pathToFileURL(claimed).href, sizeBytes: tiff.length + 1, sha256: null } }), 'FRAME_PAYLOAD_UNRESOLVED', /file has 1\d+ bytes, the reference says/],
  };
  for (const id of [...Object.keys(good), ...Object.keys(bad)]) await part(id);
  for (const [id, f] of Object.entries(good)) await send('ct', id, frames.encode(f));
  for (const [id, [f]] of Object.entries(bad)) await send('ct', id, frames.encode(f));

  const dlCodec = AvroCodec.local(catalog, 'DeadLetter');
  const dls: DeadLetter[] = await Promise.all((await consumeN(kafka, config, config.topics.deadLetters, Object.keys(bad).length, 60_000)).map((m) => dlCodec.decode(present(m.value, 'a dead letter'))));
  for (const [id, [, code, reason]] of Object.entries(bad)) {
    const mine = dls.filter((d) => d.sampleId === id);
    assert.deepEqual(mine.map((d) => [d.reasonCode, d.modality, d.source.topic]), [[code, 'ct', config.topics.inputs.ct]], id);
    assert.match(present(mine[0], id).message, reason, id);
  }

  const evCodec = AvroCodec.local(catalog, 'AnomalyEvent');
  const ids = [...Object.keys(good), ...Object.keys(bad)];
  // every part judged in-line; the good ones refined (and final) once their volume came
  const settled = (evs: AnomalyEvent[]): boolean =>
    ids.every((id) => evs.some((e) => e.sampleId === id)) && Object.keys(good).every((id) => evs.some((e) => e.sampleId === id && e.final));
  const evs: AnomalyEvent[] = [];
  await consumeUntil(kafka, config, config.topics.events, (got) => {
    evs.splice(0, evs.length, ...got.map((m) => evCodec.decodeSync(present(m.value, 'an event'))));
    return settled(evs);
  }, 'a final event of every part');
  for (const id of Object.keys(good)) {
    const mine = evs.filter((e) => e.sampleId === id).sort((a, b) => a.revision - b.revision);
    assert.deepEqual(mine.map((e) => [e.revision, e.final, e.model?.id, e.modalitiesUsed.join('+')]), [[1, false, 'test-rgb-ir', 'rgb+ir'], [2, true, 'test-rgb-ir', 'rgb+ir']], id);
    const [first, refined] = mine;
    assert.deepEqual([refined?.verdict, refined?.score], [first?.verdict, first?.score], `${id}: no student takes ct, so the refined revision keeps the in-line verdict`);
    assert.ok(refined?.modalitiesMissing.includes('ct'), `${id}: the refined verdict is made without ct`);
    const j = present(judgements.find((x) => x.sampleId === id && x.revision === 2), `${id}'s refined judgement`);
    assert.deepEqual([j.route?.match, j.route?.unused], ['subset', ['ct']], `${id}: ct arrived and no student takes it`);
  }
  for (const id of Object.keys(bad)) {
    const mine = evs.filter((e) => e.sampleId === id);
    assert.deepEqual(mine.map((e) => [e.revision, e.final, e.model?.id]), [[1, false, 'test-rgb-ir']], `${id}: its in-line verdict stands, its volume a dead letter`);
  }
  // nothing lost: every record of every input topic, ct included, is committed once its part closed (the bad ones' at the end of the ct window)
  await until('every input offset committed', () => consumedAll(kafka, config.input.groupId, inputTopics(config).map((i) => i.topic)), 30_000, { everyMs: 200 });
  assert.equal(processor.stats().taskRestarts, 0);
});
