/**
 * What a read frame keeps in memory. kafkajs hands out record values and keys
 * as views into the fetch response, and avsc decodes an Avro `bytes` field
 * into a copy of its own; a frame the join holds must keep its payload bytes
 * once, in a buffer of its own, so that the bytes the join and buffer bounds
 * count are the bytes it really retains. Dead letters still carry the record
 * as read, byte for byte.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import sharp from 'sharp';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { Frame } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { FrameReader, type FrameReaderOptions, type ReadDeferred, type ReadResult } from '../../src/input/frame-reader.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { makeFrame } from '../helpers/frames.js';

const PARTITIONS = 3;
const codec = AvroCodec.local(SchemaCatalog.load(), 'Frame');
const claimCheckDir = mkdtempSync(join(tmpdir(), 'mmad-claims-'));
const options: FrameReaderOptions = {
  topics: new Map([
    ['in.rgb', 'rgb'],
    ['in.ir', 'ir'],
  ]),
  partitions: PARTITIONS,
  limits: { maxPixels: 4096 * 4096 },
  claimCheckRoots: [claimCheckDir],
  maxSampleIdBytes: 128,
  maxFieldBytes: 64,
  clock: { maxLeadMs: 10_000, maxLagMs: 3_600_000 },
  claimCheck: { timeoutMs: 500, maxStuckReads: 2 },
  verifyImageData: true,
};
const reader = new FrameReader(codec, options);

/** An rgb frame whose PNG does not compress to almost nothing (noise), so its buffers are not pooled slices. */
async function noisyRgb(sampleId: string, n = 96): Promise<Frame> {
  const frame = await makeFrame(sampleId, 'rgb', { size: n });
  const payload = await sharp(randomBytes(n * n * 3), { raw: { width: n, height: n, channels: 3 } }).png().toBuffer();
  assert.ok(payload.length > 16_384);
  return { ...frame, payload };
}

/**
 * The record as kafkajs delivers it: key and value are views into one fetch
 * response that also holds other records (here: a filler before and after).
 */
function delivered(sampleId: string, value: Buffer): { message: KafkaMessage; response: ArrayBuffer } {
  const key = Buffer.from(sampleId);
  const filler = randomBytes(50_000);
  const response = Buffer.concat([filler, key, value, filler]);
  const message = {
    key: response.subarray(filler.length, filler.length + key.length),
    value: response.subarray(filler.length + key.length, filler.length + key.length + value.length),
    timestamp: String(Date.now()),
    attributes: 0,
    offset: '7',
    headers: {},
  } as unknown as KafkaMessage;
  return { message, response: response.buffer };
}

/** Every distinct ArrayBuffer an object graph reaches (through properties, arrays, buffers and typed arrays). */
function reachableArrayBuffers(root: unknown): Set<ArrayBufferLike> {
  const found = new Set<ArrayBufferLike>();
  const seen = new Set<object>();
  const visit = (x: unknown): void => {
    if (x === null || (typeof x !== 'object' && typeof x !== 'function')) return;
    if (seen.has(x)) return;
    seen.add(x);
    if (x instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && x instanceof SharedArrayBuffer)) {
      found.add(x);
      return;
    }
    if (ArrayBuffer.isView(x)) {
      found.add(x.buffer);
      return;
    }
    if (x instanceof Map) {
      for (const [k, v] of x) {
        visit(k);
        visit(v);
      }
    }
    if (x instanceof Set) for (const v of x) visit(v);
    for (const k of Reflect.ownKeys(x)) visit((x as Record<string | symbol, unknown>)[k]);
  };
  visit(root);
  return found;
}

/** The reachable ArrayBuffers whose bytes contain `needle`. */
function holders(buffers: Set<ArrayBufferLike>, needle: Buffer): ArrayBufferLike[] {
  return [...buffers].filter((b) => Buffer.from(b as ArrayBuffer).indexOf(needle) >= 0);
}

function accepted(r: ReadResult): Extract<ReadResult, { ok: true }> {
  assert.ok(r.ok, r.ok ? '' : `${r.code}: ${r.message}`);
  return r;
}

test('a frame the join holds keeps its payload bytes once, in a buffer of its own, and counts exactly those', async () => {
  const frame = await noisyRgb('S-mem-1');
  const value = codec.encode(frame);
  const partition = partitionFor(frame.sampleId, PARTITIONS);
  const { message, response } = delivered(frame.sampleId, value);
  const { input } = accepted(await reader.read('in.rgb', partition, message, Date.now()));

  const buffers = reachableArrayBuffers(input);
  const payloadHolders = holders(buffers, present(frame.payload, 'the payload'));
  assert.equal(payloadHolders.length, 1, `the payload bytes are held ${payloadHolders.length} times (the record and a decoded copy?)`);
  assert.ok(!buffers.has(response), 'nothing the frame keeps is a view into the fetch response (it would keep the whole response alive)');
  assert.equal(input.payload.payload.buffer, input.payload.raw.buffer, 'the payload is a view into the record');
  assert.equal('payload' in input.payload.frame, false, 'the decoded record, with its copy of the payload, is not kept');

  // the bytes counted for the frame are what it holds: its record (exactly sized) and its key
  const own = [...buffers].filter((b) => b.byteLength > Buffer.poolSize); // small keys share node's pool slab
  assert.equal(
    own.reduce((s, b) => s + b.byteLength, 0),
    value.length,
    'the only large buffer is the record, sized to it',
  );
  assert.equal(input.bytes, value.length + frame.sampleId.length);

  // what judging and events read of the frame is still there
  const f = input.payload.frame;
  assert.deepEqual(
    { line: f.line, station: f.station, modality: f.modality, encoding: f.encoding, width: f.width, height: f.height, channels: f.channels, dtype: f.dtype },
    { line: frame.line, station: frame.station, modality: 'rgb', encoding: 'png', width: frame.width, height: frame.height, channels: 3, dtype: 'uint8' },
  );
  // a dead letter of this frame (unusable when judged) carries the record as read, byte for byte
  assert.ok(input.payload.raw.equals(value));
  assert.ok(input.payload.key?.equals(Buffer.from(frame.sampleId)));
});

test('a rejected record keeps its bytes for the dead letter, not the fetch response they came in', async () => {
  const frame = await noisyRgb('S-mem-2');
  const value = codec.encode(frame);
  const { message, response } = delivered(frame.sampleId, value);
  const r = await reader.read('in.ir', partitionFor(frame.sampleId, PARTITIONS), message, Date.now()); // an rgb frame on the ir topic
  assert.ok(!r.ok);
  assert.ok(r.record.value.equals(value), 'the dead letter carries the record byte for byte');
  assert.ok(r.record.key?.equals(Buffer.from(frame.sampleId)));
  assert.ok(!reachableArrayBuffers(r).has(response));
});

test('a claim-checked payload is held beside its record, and counted beside it', async () => {
  const frame = await noisyRgb('S-mem-3');
  const payload = present(frame.payload, 'the payload');
  const file = join(claimCheckDir, 'S-mem-3.png');
  writeFileSync(file, payload);
  const ref: Frame = { ...frame, payload: null, payloadRef: { uri: pathToFileURL(file).href, sizeBytes: payload.length, sha256: null } };
  const value = codec.encode(ref);
  const { message, response } = delivered(frame.sampleId, value);
  const { input } = accepted(await reader.read('in.rgb', partitionFor(frame.sampleId, PARTITIONS), message, Date.now()));
  const buffers = reachableArrayBuffers(input);
  assert.equal(holders(buffers, payload).length, 1);
  assert.ok(!buffers.has(response));
  assert.ok(input.payload.payload.equals(payload));
  assert.equal(input.bytes, value.length + frame.sampleId.length + payload.length);
});

test('a PNG payload is checked from its bytes at read time: header CRC, declared size, chunks complete to IEND', async () => {
  const frame = await noisyRgb('S-png', 96);
  const png = present(frame.payload, 'the payload');
  const read = async (payload: Buffer, f: Partial<Frame> = {}): Promise<ReadResult> =>
    reader.read('in.rgb', partitionFor('S-png', PARTITIONS), delivered('S-png', codec.encode({ ...frame, ...f, payload })).message, Date.now());
  accepted(await read(png));
  const rejected = async (payload: Buffer, f: Partial<Frame> = {}): Promise<string> => {
    const r = await read(payload, f);
    assert.ok(!r.ok, 'rejected');
    return `${r.code}: ${r.message}`;
  };
  assert.match(await rejected(png.subarray(0, png.length - 100)), /^FRAME_CORRUPT: .*cut short/);
  assert.match(await rejected(Buffer.concat([png, Buffer.from('trailing garbage')])), /^FRAME_CORRUPT: .*16 bytes after its IEND/);
  const damaged = Buffer.from(png);
  damaged[17] = at(damaged, 17) ^ 0x01; // width, without fixing the CRC
  assert.match(await rejected(damaged), /^FRAME_CORRUPT: .*CRC/);
  assert.match(await rejected(png, { width: 63 }), /^FRAME_SHAPE: rgb payload is a 96×96 png, the frame declares a 63×96 png/);
});

test('a frame keyed other than by its sample id, or read from a partition its key does not hash to, is reported as FRAME_KEY_MISMATCH and still joined', async () => {
  const frame = await noisyRgb('S-key-1');
  const value = codec.encode(frame);
  const home = partitionFor(frame.sampleId, PARTITIONS);

  const right = accepted(await reader.read('in.rgb', home, delivered(frame.sampleId, value).message, Date.now()));
  assert.equal(right.keyProblem, undefined, 'a frame keyed by its sample id on its own partition has no key problem');

  const misKeyed = { ...delivered(frame.sampleId, value).message, key: Buffer.from('line-7') } as KafkaMessage;
  const wrongKey = accepted(await reader.read('in.rgb', home, misKeyed, Date.now()));
  assert.equal(wrongKey.keyProblem?.code, 'FRAME_KEY_MISMATCH');
  assert.match(wrongKey.keyProblem.message, /record key "line-7" is not the sample id "S-key-1"/);
  assert.equal(wrongKey.input.sampleId, 'S-key-1', 'the frame is still joined under its sample id');

  const elsewhere = (home + 1) % PARTITIONS;
  const moved = accepted(await reader.read('in.rgb', elsewhere, delivered(frame.sampleId, value).message, Date.now()));
  assert.equal(moved.keyProblem?.code, 'FRAME_KEY_MISMATCH');
  assert.match(moved.keyProblem.message, new RegExp(`hashes to partition ${home}, but the frame was read from partition ${elsewhere}`));
});

test('a read that fails retriably (the registry does not answer) is deferred for a caller that can wait; otherwise, or not retriable, it is a dead letter', async () => {
  let failure = new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, 'schema registry unavailable', { retriable: true, details: { retryAfterMs: 2000 } });
  // a Confluent-framed record whose writer schema must be looked up: the look-up fails
  const failing = { decode: () => Promise.reject(failure) } as unknown as AvroCodec<'Frame'>;
  const r = new FrameReader(failing, options);
  const { message } = delivered('S-reg', Buffer.from([0, 0, 0, 0, 7, 1, 2, 3]));
  const read = (budgetBytes?: number): Promise<ReadResult | ReadDeferred> =>
    budgetBytes === undefined ? r.read('in.rgb', 0, message, Date.now()) : r.read('in.rgb', 0, message, Date.now(), budgetBytes);

  assert.deepEqual(await read(1 << 20), { deferred: true, bytes: 0, retryAfterMs: 2000, reason: 'schema registry unavailable' });
  const noBudget = await read();
  assert.ok('ok' in noBudget && !noBudget.ok, 'a caller without a budget cannot wait: a dead letter');
  assert.equal(noBudget.code, ErrorCode.SCHEMA_REGISTRY_FAILED);

  failure = new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, 'schema registry answered 422');
  const refused = await read(1 << 20);
  assert.ok('ok' in refused && !refused.ok, 'an answer that is not retriable is not waited for');
  assert.equal(refused.code, ErrorCode.SCHEMA_REGISTRY_FAILED);
});
