/**
 * A faulty or hostile station cannot stop, stall or bloat the service: each
 * class of bad record below goes to the same partition as the good parts sent
 * after it, through the running service on the real broker. The good parts are
 * all judged, no task is rebuilt, the closed-part memory stays at its bound and
 * the process's memory stays sane.
 *
 * Classes: capture times far ahead or behind (and a changelog entry from the
 * future written before the service starts), claim checks that are FIFOs, links
 * to /dev/zero or out of the root, directories; sample ids that are not UTF-8;
 * oversized station names; a record near the size limit whose dead letter would
 * not fit; a required modality whose frame is unusable when judged; a corrupt
 * frame and the station's retry of it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import type { ErrorCode } from '../../src/base/errors.js';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent, DeadLetter, Frame } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { changelogTopic } from '../../src/runtime/join-changelog.js';
import { consumeN, consumeUntil, type Consumed } from '../helpers/kafka.js';
import { makeFrame } from '../helpers/frames.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';

const MAX_RECORD = 2 * 1024 * 1024;
const claimDir = mkdtempSync(join(tmpdir(), 'mmad-claims-'));
const outside = mkdtempSync(join(tmpdir(), 'mmad-outside-'));
const config = processorTestConfig((base) => ({
  kafka: { ...base.kafka, maxMessageBytes: MAX_RECORD },
  input: { ...base.input, claimCheckRoots: [claimDir], claimCheckTimeoutMs: 2_000 },
  join: {
    // waits long enough that a slow machine never judges a good part without its ir frame
    modalities: { rgb: { policy: 'required', timeoutMs: 10_000 }, ir: { policy: 'required', timeoutMs: 10_000 }, xyz: { policy: 'late', windowMs: 3000 } },
    idleAdvanceMs: 300,
    maxClosedSamples: 5,
  },
}));
const { kafka, producer, processor, send: sendTo } = await serviceUnderTest(config);
const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');

const P = config.topics.partitions;
const TARGET = 0;
/** `prefix-N` for the first N whose key hashes to the target partition: every record below lands on one partition. */
function idOn(prefix: string): string {
  for (let n = 0; ; n++) if (partitionFor(`${prefix}-${n}`, P) === TARGET) return `${prefix}-${n}`;
}
const send = (modality: 'rgb' | 'ir' | 'xyz', key: string | Buffer, value: Buffer): Promise<void> => sendTo(modality, key, value, TARGET);

/** A PNG whose chunks and CRCs are intact (it passes the reader's structure check) but whose image data does not inflate. */
function withCorruptIdat(png: Buffer): Buffer {
  const out = Buffer.from(png);
  const at = out.indexOf('IDAT');
  const len = out.readUInt32BE(at - 4);
  for (let i = at + 4 + 2; i < at + 4 + len; i++) out[i] = 0xff;
  out.writeUInt32BE(crc32(out.subarray(at, at + 4 + len)), at + 4 + len);
  return out;
}

test('bad stations are dead-lettered by class; good parts after them on the same partition are all judged', { timeout: 180_000 }, async () => {
  const dayAhead = Date.now() + 86_400_000;
  // a changelog entry written from a clock a day ahead, before clock bounds existed: restore must not carry stream time there
  const states = AvroCodec.local(catalog, 'JoinState');
  await producer.send({
    topic: changelogTopic(config),
    messages: [{ key: 'F-old-future', partition: TARGET, value: states.encode({ sampleId: 'F-old-future', revision: 1, modalities: ['rgb'], firstCapture: new Date(dayAhead), closed: true, closedAt: dayAhead }) }],
  });
  await processor.start();
  // idle for a while after the restart: the join's idle timer moves stream time from what was restored
  await new Promise((r) => setTimeout(r, 2 * config.join.idleAdvanceMs + 500));
  const t0 = Date.now();
  const rssBefore = process.memoryUsage().rss;
  const f = (id: string, m: 'rgb' | 'ir', o: Parameters<typeof makeFrame>[2] = {}): Promise<Frame> => makeFrame(id, m, { captureTime: t0, expected: ['rgb', 'ir'], ...o });
  const expect = new Map<string, RegExp>();
  const bad = async (prefix: string, code: ErrorCode, why: RegExp, frame: (id: string) => Promise<Frame>): Promise<void> => {
    const id = idOn(prefix);
    await send('rgb', id, frames.encode(await frame(id)));
    expect.set(id, new RegExp(`^${code}: .*${why.source}`));
  };

  // 1. clocks: a day ahead, µs sent as ms, three days behind
  await bad('F-future', 'FRAME_CLOCK_SKEW', /ahead/, (id) => f(id, 'rgb', { captureTime: t0 + 86_400_000 }));
  await bad('F-micros', 'FRAME_CLOCK_SKEW', /ahead/, (id) => f(id, 'rgb', { captureTime: t0 * 1000 }));
  await bad('F-behind', 'FRAME_CLOCK_SKEW', /behind/, (id) => f(id, 'rgb', { captureTime: t0 - 3 * 86_400_000 }));
  // 2. claim checks: a FIFO, a link to /dev/zero declaring 0 and 1000 bytes, a link to a file outside the root, a directory
  const ref = (file: string, sizeBytes: number) => async (id: string): Promise<Frame> => ({ ...(await f(id, 'rgb')), payload: null, payloadRef: { uri: pathToFileURL(file).href, sizeBytes, sha256: null } });
  execFileSync('mkfifo', [join(claimDir, 'fifo.png')]);
  symlinkSync('/dev/zero', join(claimDir, 'zero.png'));
  const png = present((await f('x', 'rgb')).payload, 'the payload of an rgb frame');
  writeFileSync(join(outside, 'secret.png'), png);
  symlinkSync(join(outside, 'secret.png'), join(claimDir, 'escape.png'));
  mkdirSync(join(claimDir, 'dir.png'));
  await bad('F-fifo', 'FRAME_PAYLOAD_UNRESOLVED', /not a regular file/, ref(join(claimDir, 'fifo.png'), 1000));
  await bad('F-zero0', 'FRAME_PAYLOAD_UNRESOLVED', /not a positive byte count/, ref(join(claimDir, 'zero.png'), 0));
  await bad('F-zero', 'FRAME_PAYLOAD_UNRESOLVED', /outside input.claimCheckRoots/, ref(join(claimDir, 'zero.png'), 1000));
  await bad('F-escape', 'FRAME_PAYLOAD_UNRESOLVED', /outside input.claimCheckRoots/, ref(join(claimDir, 'escape.png'), png.length));
  await bad('F-dir', 'FRAME_PAYLOAD_UNRESOLVED', /not a regular file/, ref(join(claimDir, 'dir.png'), 4096));
  await bad('F-size', 'FRAME_PAYLOAD_UNRESOLVED', /file has \d+ bytes/, async (id) => {
    writeFileSync(join(claimDir, `${id}.png`), png);
    return ref(join(claimDir, `${id}.png`), png.length + 1)(id);
  });
  // 3. a station name of 100 kB
  await bad('F-station', 'FRAME_INVALID', /station of 100000 bytes/, async (id) => ({ ...(await f(id, 'rgb')), station: 's'.repeat(100_000) }));
  // a raw frame whose bytes do not match its declared size; a point cloud over its own pixel bound
  await bad('F-raw', 'FRAME_SHAPE', /raw rgb payload has 100 bytes, 32×32×3 uint8 needs 3072/, async (id) => ({ ...(await f(id, 'rgb')), encoding: 'raw', payload: Buffer.alloc(100) }));
  const xyzId = idOn('F-xyz');
  await send('xyz', xyzId, frames.encode({ ...(await makeFrame(xyzId, 'xyz', { captureTime: t0 })), width: 3000, height: 3000 }));
  expect.set(xyzId, /^FRAME_SHAPE: .*exceeds the limit of 4194304 pixels for a point cloud/);
  // 4. two sample ids that differ only in bytes that are not UTF-8: both refused, never merged into one part
  const badUtf8: Buffer[] = [];
  for (const byte of [0xff, 0xfe]) {
    const value = frames.encode(await f('U-X-1', 'rgb'));
    const at = value.indexOf('U-X-1');
    value[at + 2] = byte;
    badUtf8.push(value);
    await send('rgb', Buffer.from(value.subarray(at, at + 5)), value);
  }
  // 5. a record just under the size limit that is not a frame: its dead letter cannot carry it whole
  const big = Buffer.alloc(MAX_RECORD - 16_384, 7);
  await send('rgb', idOn('F-big'), big);
  // 6. a required modality whose frame is found unusable only when the part is judged (its size
  // disagrees with the part's rgb frame): UNKNOWN, not judged on rgb alone
  const req = idOn('F-required');
  await send('rgb', req, frames.encode(await f(req, 'rgb')));
  await send('ir', req, frames.encode(await f(req, 'ir', { size: 16 })));
  // 7. a PNG whose chunks and CRCs are intact but whose image data does not inflate, then the
  // station's retry of it: the corrupt frame is a dead letter at read time, the retry is judged
  const retry = idOn('F-retry');
  const rgb = await f(retry, 'rgb');
  await send('rgb', retry, frames.encode({ ...rgb, payload: withCorruptIdat(present(rgb.payload, 'the rgb payload')) }));
  expect.set(retry, /^FRAME_CORRUPT: .*image data does not inflate/);
  await send('rgb', retry, frames.encode(rgb));
  await send('ir', retry, frames.encode(await f(retry, 'ir')));
  // and after all of it, good parts on the same partition
  const good: string[] = [];
  for (let i = 0; i < 8; i++) {
    const id = idOn(`G${i}`);
    good.push(id);
    await send('rgb', id, frames.encode(await f(id, 'rgb', { captureTime: t0 + 10 * i })));
    await send('ir', id, frames.encode(await f(id, 'ir', { captureTime: t0 + 10 * i })));
  }

  const dlCodec = AvroCodec.local(catalog, 'DeadLetter');
  const want = expect.size + 2 + 1 + 1; // + two non-UTF-8 ids, the big record, the required frame of the wrong size
  const dls: DeadLetter[] = await Promise.all((await consumeN(kafka, config, config.topics.deadLetters, want, 90_000)).map((m) => dlCodec.decode(present(m.value, 'the record value'))));
  for (const [id, re] of expect) {
    const got = dls.filter((d) => d.sampleId === id || d.source.key?.toString() === id).map((d) => `${d.reasonCode}: ${d.message}`);
    assert.equal(got.length, 1, `${id}: ${JSON.stringify(got)}`);
    assert.match(at(got, 0), re, id);
  }
  const utf8 = dls.filter((d) => /not valid UTF-8/.test(d.message));
  assert.deepEqual(utf8.map((d) => d.reasonCode), ['FRAME_INVALID', 'FRAME_INVALID']);
  assert.deepEqual(utf8.map((d) => d.original), badUtf8, 'each dead letter carries its own record');
  const bigDl = present(dls.find((d) => d.source.key?.toString() === idOn('F-big')), 'the dead letter of the big record');
  assert.equal(bigDl.reasonCode, 'CODEC_BAD_MAGIC');
  assert.equal(bigDl.original.length, 0);
  assert.match(bigDl.message, new RegExp(`original of ${big.length} bytes omitted .*SHA-256 [0-9a-f]{64}`));
  assert.ok(dls.some((d) => d.sampleId === req && d.reasonCode === 'FRAME_INCONSISTENT'), 'the unusable required frame is dead-lettered');

  const evCodec = AvroCodec.local(catalog, 'AnomalyEvent');
  // events are keyed by sample id: wait for the parts asserted below to be judged, then read all there is
  const judged = (got: Consumed[]): boolean => [...good, req, retry].every((id) => got.some((m) => m.key?.toString() === id));
  const evs: AnomalyEvent[] = await Promise.all((await consumeUntil(kafka, config, config.topics.events, judged, 'the events of the good parts, the required one and the retry')).map((m) => evCodec.decode(present(m.value, 'the record value'))));
  const by = (id: string): AnomalyEvent[] => evs.filter((e) => e.sampleId === id);
  for (const id of good) assert.deepEqual(by(id).map((e) => [e.verdict, e.model?.id]), [['OK', 'test-rgb-ir']], id);
  const required = by(req);
  assert.deepEqual(required.map((e) => e.verdict), ['UNKNOWN'], 'a required modality that cannot be decoded makes the part UNKNOWN');
  assert.match(required[0]?.reason ?? '', /^FRAME_INCONSISTENT: the required ir frame is unusable/);
  assert.deepEqual(by(retry).map((e) => [e.verdict, e.model?.id]), [['OK', 'test-rgb-ir']], "the station's retry replaced the corrupt frame");
  assert.equal(evs.filter((e) => e.sampleId.startsWith('U-')).length, 0);
  assert.equal(evs.filter((e) => e.sampleId.startsWith('F-') && e.sampleId !== req && e.sampleId !== retry).length, 0);

  const stats = processor.stats();
  assert.equal(stats.taskRestarts, 0, 'no task was rebuilt');
  assert.ok(stats.clockSkew.some((c) => c.station === 'st-1'), 'the station has a clock-skew reading');
  const join0 = processor.joinSnapshot();
  assert.ok(join0.closedSamples <= 5 * P, `closed samples ${join0.closedSamples} within the bound`);
  assert.ok(join0.stats.forgottenEarly > 0, 'the bound forgot the oldest closed samples early');
  assert.deepEqual(processor.status().stalled, []);
  const grown = process.memoryUsage().rss - rssBefore;
  assert.ok(grown < 1024 * 1024 * 1024, `resident memory grew by ${(grown / 1e6).toFixed(0)} MB`);
});
