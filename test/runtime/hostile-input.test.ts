/**
 * Hostile input through the running service: every kind of bad record gets a
 * dead letter with a precise reason (or a defined result), the service keeps
 * running, and a good part sent after all of it is still judged.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec, SINGLE_OBJECT_MARKER } from '../../src/codec/avro-codec.js';
import { fingerprintBytes } from '../../src/codec/crc64-avro.js';
import type { AnomalyEvent, DeadLetter, Frame } from '../../src/codec/records.js';
import { SchemaCatalog, parseSchema } from '../../src/codec/schema-catalog.js';
import { encodeXyzTiff } from '../../src/codec/tiff-writer.js';
import { consumeN, consumeUntil, type Consumed } from '../helpers/kafka.js';
import { makeFrame } from '../helpers/frames.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';

const claimDir = mkdtempSync(join(tmpdir(), 'mmad-claims-'));
const config = processorTestConfig((base) => ({
  input: { ...base.input, claimCheckRoots: [claimDir] },
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1000 }, ir: { policy: 'optional', timeoutMs: 500 }, xyz: { policy: 'late', windowMs: 3000 } }, idleAdvanceMs: 300 },
}));
const { kafka, processor, send } = await serviceUnderTest(config);
const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');

function withPngSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

test('every kind of hostile record is dead-lettered with its reason; the service keeps judging', { timeout: 120_000 }, async () => {
  await processor.start();
  const t0 = Date.now();
  const f = (id: string, m: 'rgb' | 'ir' | 'xyz', o: Parameters<typeof makeFrame>[2] = {}): Promise<Frame> => makeFrame(id, m, { captureTime: t0, ...o });
  const expect: Record<string, string> = {};

  // garbage bytes, an empty record
  await send('rgb', 'H-garbage', Buffer.from([0xc3, 0x01, 9, 9, 9]));
  expect['H-garbage'] = 'CODEC_TRUNCATED';
  // a record of a newer station schema (unknown fingerprint, no registry to ask): refused, naming the fingerprint
  const v2 = parseSchema(readFileSync(new URL('../fixtures/schemas/Frame.v3.avsc', import.meta.url), 'utf8'));
  const thz = await f('H-thz', 'rgb');
  await send('rgb', 'H-thz', Buffer.concat([SINGLE_OBJECT_MARKER, fingerprintBytes(v2.fingerprint), v2.type.toBuffer({ ...thz, modality: 'thz', exposureUs: 5 })]));
  expect['H-thz'] = 'CODEC_UNKNOWN_SCHEMA';
  // a valid record of a modality this line does not join (ct), and an ir frame on the rgb topic
  await send('rgb', 'H-ct', frames.encode({ ...(await f('H-ct', 'rgb')), modality: 'ct' }));
  expect['H-ct'] = 'FRAME_UNKNOWN_MODALITY';
  await send('rgb', 'H-irOnRgb', frames.encode(await f('H-irOnRgb', 'ir')));
  expect['H-irOnRgb'] = 'FRAME_UNKNOWN_MODALITY';
  // declared 0x0 and 1e5 x 1e5
  await send('rgb', 'H-zero', frames.encode({ ...(await f('H-zero', 'rgb')), width: 0, height: 0 }));
  expect['H-zero'] = 'FRAME_SHAPE';
  await send('rgb', 'H-huge', frames.encode({ ...(await f('H-huge', 'rgb')), width: 100_000, height: 100_000 }));
  expect['H-huge'] = 'FRAME_SHAPE';
  // a PNG bomb: a header claiming 40000 x 40000
  const bomb = await f('H-bomb', 'rgb');
  await send('rgb', 'H-bomb', frames.encode({ ...bomb, payload: withPngSize(present(bomb.payload, 'the rgb payload'), 40_000, 40_000) }));
  expect['H-bomb'] = 'FRAME_SHAPE';
  // a payload reference that does not resolve, and one outside the allowed directory
  await send('rgb', 'H-ref', frames.encode({ ...(await f('H-ref', 'rgb')), payload: null, payloadRef: { uri: pathToFileURL(join(claimDir, 'gone.png')).href, sizeBytes: 10, sha256: null } }));
  expect['H-ref'] = 'FRAME_PAYLOAD_UNRESOLVED';
  await send('rgb', 'H-escape', frames.encode({ ...(await f('H-escape', 'rgb')), payload: null, payloadRef: { uri: 'file:///etc/passwd', sizeBytes: 10, sha256: null } }));
  expect['H-escape'] = 'FRAME_PAYLOAD_UNRESOLVED';
  // a 10 kB sample id
  const longId = 'L'.repeat(10_000);
  await send('rgb', longId, frames.encode(await f(longId, 'rgb')));
  // NaN/inf and all-zero point clouds: NaN points are missing (defined result), an all-zero cloud is unusable
  const all = ['rgb', 'ir', 'xyz'] as const;
  for (const m of ['rgb', 'ir'] as const) await send(m, 'H-zeros', frames.encode(await f('H-zeros', m, { expected: [...all] })));
  await send('xyz', 'H-zeros', frames.encode({ ...(await f('H-zeros', 'xyz', { expected: [...all] })), payload: encodeXyzTiff(new Float32Array(32 * 32 * 3), 32, 32) }));
  const nan = new Float32Array(32 * 32 * 3);
  for (let i = 0; i < 32 * 32; i++) nan.set(i % 7 === 0 ? [Number.NaN, Number.POSITIVE_INFINITY, 0] : [0, 0, 0.5], i * 3);
  for (const m of ['rgb', 'ir'] as const) await send(m, 'H-nan', frames.encode(await f('H-nan', m, { expected: [...all] })));
  await send('xyz', 'H-nan', frames.encode({ ...(await f('H-nan', 'xyz', { expected: [...all] })), payload: encodeXyzTiff(nan, 32, 32) }));
  // modalities of one part with different sizes: the odd one out is unusable, the rest judged
  await send('rgb', 'H-mismatch', frames.encode(await f('H-mismatch', 'rgb', { expected: ['rgb', 'ir'] })));
  await send('ir', 'H-mismatch', frames.encode(await f('H-mismatch', 'ir', { size: 16, expected: ['rgb', 'ir'] })));
  // a hint that lies: announces xyz, which never comes — the part is judged without waiting for it, refined never
  await send('rgb', 'H-liar', frames.encode(await f('H-liar', 'rgb', { expected: ['rgb', 'ir', 'xyz'] })));
  await send('ir', 'H-liar', frames.encode(await f('H-liar', 'ir', { expected: ['rgb', 'ir', 'xyz'] })));
  // a claim check that resolves: judged like an inline frame
  const good = await f('H-claim', 'rgb', { expected: ['rgb'] });
  const file = join(claimDir, 'claim.png');
  const goodPayload = present(good.payload, 'the rgb payload');
    writeFileSync(file, goodPayload);
  await send('rgb', 'H-claim', frames.encode({ ...good, payload: null, payloadRef: { uri: pathToFileURL(file).href, sizeBytes: goodPayload.length, sha256: null } }));
  // and after all of it, a good part
  await send('rgb', 'H-good', frames.encode(await f('H-good', 'rgb', { expected: ['rgb', 'ir'] })));
  await send('ir', 'H-good', frames.encode(await f('H-good', 'ir', { expected: ['rgb', 'ir'] })));

  const dlCodec = AvroCodec.local(catalog, 'DeadLetter');
  const dls = await Promise.all((await consumeN(kafka, config, config.topics.deadLetters, 12, 60_000)).map((m) => dlCodec.decode(present(m.value, 'the record value'))));
  const reasonOf = (pred: (d: DeadLetter) => boolean): string[] => dls.filter(pred).map((d) => d.reasonCode);
  for (const [id, code] of Object.entries(expect)) {
    const got = reasonOf((d) => d.source.key?.toString() === id);
    assert.deepEqual(got, [code], `${id}: ${JSON.stringify(got)}`);
  }
  assert.deepEqual(reasonOf((d) => d.source.key?.toString() === longId), ['FRAME_INVALID']);
  assert.match(present(dls.find((d) => d.source.key?.toString() === longId), 'the dead letter of the long id').message, /sample id of 10000 bytes/);
  assert.deepEqual(reasonOf((d) => d.sampleId === 'H-zeros'), ['FRAME_CORRUPT']);
  assert.deepEqual(reasonOf((d) => d.sampleId === 'H-mismatch'), ['FRAME_INCONSISTENT']);
  assert.ok(dls.every((d) => d.original.length > 0 && d.message.length > 0));

  const evCodec = AvroCodec.local(catalog, 'AnomalyEvent');
  // events are keyed by sample id: wait for those asserted below (H-nan and H-zeros judged twice), then read all there is
  const count = (got: Consumed[], id: string): number => got.filter((m) => m.key?.toString() === id).length;
  const judged = (got: Consumed[]): boolean =>
    ['H-good', 'H-claim', 'H-mismatch', 'H-liar'].every((id) => count(got, id) >= 1) && count(got, 'H-nan') >= 2 && count(got, 'H-zeros') >= 2;
  const evs: AnomalyEvent[] = await Promise.all((await consumeUntil(kafka, config, config.topics.events, judged, 'the events of the parts asserted')).map((m) => evCodec.decode(present(m.value, 'the record value'))));
  const by = (id: string): AnomalyEvent[] => evs.filter((e) => e.sampleId === id);
  assert.deepEqual(by('H-good').map((e) => [e.verdict, e.model?.id]), [['OK', 'test-rgb-ir']]);
  assert.deepEqual(by('H-claim').map((e) => [e.verdict, e.final]), [['OK', true]]);
  assert.deepEqual(by('H-mismatch').map((e) => e.model?.id), ['test-rgb'], 'judged with rgb alone');
  const nanLast = at(by('H-nan').sort((a, b) => b.revision - a.revision), 0);
  assert.deepEqual([nanLast.revision, nanLast.model?.id], [2, 'test-rgb-ir-xyz'], 'NaN points are missing points: the cloud is still judged');
  assert.ok(nanLast.score !== null && Number.isFinite(nanLast.score));
  const zerosLast = at(by('H-zeros').sort((a, b) => b.revision - a.revision), 0);
  assert.deepEqual([zerosLast.revision, zerosLast.model?.id], [2, 'test-rgb-ir'], 'an unusable cloud is set aside; the part is judged again without it');
  assert.deepEqual(by('H-liar').map((e) => [e.revision, e.final]), [[1, false]], 'one provisional verdict; the announced xyz never refines it');
  const stats = processor.stats();
  assert.equal(stats.taskRestarts, 0);
});
