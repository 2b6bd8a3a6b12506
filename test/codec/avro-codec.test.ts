import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { AvroCodec, SINGLE_OBJECT_MARKER } from '../../src/codec/avro-codec.js';
import { fingerprintBytes } from '../../src/codec/crc64-avro.js';
import { DEFAULT_SCHEMA_DIR, SchemaCatalog, parseSchema } from '../../src/codec/schema-catalog.js';
import type { Frame } from '../../src/codec/records.js';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { plain, sampleAlert, sampleDeadLetter, sampleEvent, sampleFrame, sampleLabel } from '../helpers/records.js';

const catalog = SchemaCatalog.load();

test('every schema in schemas/avro loads, one current version per record', () => {
  assert.deepEqual(catalog.names().sort(), ['Alert', 'AnomalyEvent', 'DeadLetter', 'Frame', 'JoinState', 'Label']);
  for (const n of catalog.names()) assert.ok(catalog.current(n).version >= 1);
});

test('every field of every schema has a doc string', () => {
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) {
      node.forEach((n, i) => walk(n, `${where}[${i}]`));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (o.type === 'record') {
      assert.ok(typeof o.doc === 'string' && o.doc.length > 0, `${where} record ${String(o.name)} has no doc`);
      for (const f of o.fields as Record<string, unknown>[]) {
        assert.ok(typeof f.doc === 'string' && f.doc.length > 0, `${where}.${String(f.name)} has no doc`);
        walk(f.type, `${where}.${String(f.name)}`);
      }
    }
    if (o.type === 'enum') assert.ok(typeof o.doc === 'string', `enum ${String(o.name)} has no doc`);
    for (const k of ['type', 'items', 'values']) if (k in o && typeof o[k] === 'object') walk(o[k], where);
  };
  for (const n of catalog.names()) walk(JSON.parse(catalog.current(n).json), n);
});

test('records of every schema round-trip; dates come back as Dates, bytes as Buffers', () => {
  const cases = [
    ['Frame', sampleFrame()],
    ['AnomalyEvent', sampleEvent()],
    ['Alert', sampleAlert()],
    ['DeadLetter', sampleDeadLetter()],
    ['Label', sampleLabel()],
    ['Label', sampleLabel({ defectType: 'good', mask: null, seed: null, defectPixels: 0 })],
  ] as const;
  for (const [name, value] of cases) {
    const codec = AvroCodec.local(catalog, name);
    const bytes = codec.encode(value);
    assert.deepEqual(bytes.subarray(0, 2), SINGLE_OBJECT_MARKER);
    assert.deepEqual(bytes.subarray(2, 10), fingerprintBytes(catalog.current(name).fingerprint));
    const back = codec.decodeSync(bytes);
    assert.deepEqual(plain(back), value, name);
  }
  const frame = AvroCodec.local(catalog, 'Frame').decodeSync(AvroCodec.local(catalog, 'Frame').encode(sampleFrame()));
  assert.ok(frame.captureTime instanceof Date);
  assert.ok(Buffer.isBuffer(frame.payload));
});

test('encoding a value that does not match the schema names the bad field', () => {
  const codec = AvroCodec.local(catalog, 'Frame');
  assert.throws(
    () => codec.encode({ ...sampleFrame(), width: 'wide' } as never),
    (e: unknown) => e instanceof MmadError && e.code === ErrorCode.CODEC_ENCODE_FAILED && /width/.test(e.message),
  );
});

function withSchema(file: string): { catalog: SchemaCatalog; writer: ReturnType<typeof parseSchema> } {
  const c = SchemaCatalog.load();
  const writer = parseSchema(readFileSync(new URL(`../fixtures/schemas/${file}`, import.meta.url), 'utf8'), 0);
  c.add({ ...writer, version: 0 });
  return { catalog: c, writer };
}

function frameBytes(writer: ReturnType<typeof parseSchema>, value: Record<string, unknown>): Buffer {
  return Buffer.concat([SINGLE_OBJECT_MARKER, fingerprintBytes(writer.fingerprint), writer.type.toBuffer(value)]);
}

test('schema evolution: a record of an older writer reads with the current schema (defaults filled in)', () => {
  const { catalog: c, writer } = withSchema('Frame.v0.avsc');
  const { expectedModalities: _e, attributes: _a, volume: _v, ...old } = sampleFrame();
  const decoded = AvroCodec.local(c, 'Frame').decodeSync(frameBytes(writer, { ...old, modality: 'xyz' }));
  assert.equal(decoded.modality, 'xyz');
  assert.equal(decoded.expectedModalities, null);
  assert.deepEqual(decoded.attributes, {});
  assert.equal(decoded.sampleId, 'S-000123');
});

test('schema evolution: a newer writer with an extra field and a new modality reads as the current schema, modality "unknown"', () => {
  const { catalog: c, writer } = withSchema('Frame.v3.avsc');
  const current = AvroCodec.local(c, 'Frame');
  assert.equal(current.schema.version, 2, 'the fixture registered at version 0 must not become current');
  const decoded = current.decodeSync(frameBytes(writer, { ...sampleFrame(), modality: 'thz', exposureUs: 900 }));
  assert.equal(decoded.modality, 'unknown');
  assert.equal((decoded as unknown as Record<string, unknown>).exposureUs, undefined);
  assert.deepEqual(decoded.payload, sampleFrame().payload);
});

const ctFrame = (): Frame =>
  sampleFrame(Buffer.alloc(4 * 8 * 8 * 2, 3), { modality: 'ct', encoding: 'raw', width: 8, height: 8, channels: 1, dtype: 'uint16', volume: { depth: 4, voxelSizeMm: { x: 0.1, y: 0.1, z: 0.25 } } });
const publishedV1 = (): ReturnType<typeof parseSchema> => parseSchema(readFileSync(join(DEFAULT_SCHEMA_DIR, 'Frame.v1.avsc'), 'utf8'), 1);

test('Frame version 2 (volume): a version-1 writer\'s record reads with the version-2 reader, volume null, every other field as written', () => {
  const v1 = publishedV1();
  assert.equal(catalog.current('Frame').version, 2);
  assert.ok(catalog.byFingerprint(v1.fingerprint) !== undefined, 'version 1 stays a known writer');
  const { volume: _v, ...written } = sampleFrame();
  const decoded = AvroCodec.local(catalog, 'Frame').decodeSync(frameBytes(v1, written));
  assert.deepEqual(plain(decoded), { ...written, volume: null });
  // and a version-1 ct frame (the modality was reserved then) reads, with no volume: the frame reader refuses it for that
  const ct = AvroCodec.local(catalog, 'Frame').decodeSync(frameBytes(v1, { ...written, modality: 'ct' }));
  assert.deepEqual([ct.modality, ct.volume], ['ct', null]);
});

test('Frame version 2 (volume): a version-2 record reads with a version-1 reader that is given the writer schema, the volume skipped', () => {
  const v1 = publishedV1();
  // a reader of before version 2: version 1 is its newest; version 2 is known to it only as a writer (from a registry, or a schemas folder brought up to date)
  const old = new SchemaCatalog();
  old.add(v1);
  old.add({ ...catalog.current('Frame'), version: 0 });
  const reader = AvroCodec.local(old, 'Frame');
  assert.equal(reader.schema.version, 1);
  const bytes = AvroCodec.local(catalog, 'Frame').encode(ctFrame());
  const { volume: _v, ...rest } = ctFrame();
  const decoded = reader.decodeSync(bytes);
  assert.deepEqual(plain(decoded), rest);
  assert.equal((decoded as unknown as Record<string, unknown>).volume, undefined);
  // a version-1 writer still writes what the current reader takes (the writers of both versions coexist on one topic)
  assert.deepEqual(plain(AvroCodec.local(catalog, 'Frame').decodeSync(reader.encode(rest as Frame))), { ...rest, volume: null });
  // without the version-2 schema a version-1 reader cannot resolve it: the fingerprint is unknown (readers first, then writers)
  const unaware = new SchemaCatalog();
  unaware.add(v1);
  assert.equal(codeOf(() => AvroCodec.local(unaware, 'Frame').decodeSync(bytes)), ErrorCode.CODEC_UNKNOWN_SCHEMA);
});

test('Frame version 2: a ct frame with its volume round-trips', () => {
  const codec = AvroCodec.local(catalog, 'Frame');
  assert.deepEqual(plain(codec.decodeSync(codec.encode(ctFrame()))), ctFrame());
});

const publishedEventV1 = (): ReturnType<typeof parseSchema> => parseSchema(readFileSync(join(DEFAULT_SCHEMA_DIR, 'AnomalyEvent.v1.avsc'), 'utf8'), 1);
const eventWithDepth = (): ReturnType<typeof sampleEvent> => ({
  ...sampleEvent(),
  regions: [
    { x: 10, y: 20, width: 30, height: 12, area: 250, peak: 5.5, depthMm: 3.75 },
    { x: 1, y: 2, width: 3, height: 4, area: 9, peak: 4.5, depthMm: null },
  ],
});

test('AnomalyEvent version 2 (Region.depthMm): written by the service; a version-1 record reads with depthMm null', () => {
  const v1 = publishedEventV1();
  assert.equal(catalog.current('AnomalyEvent').version, 2);
  const codec = AvroCodec.local(catalog, 'AnomalyEvent');
  assert.deepEqual(plain(codec.decodeSync(codec.encode(eventWithDepth()))), eventWithDepth());
  const { regions, ...rest } = eventWithDepth();
  const v1Regions = regions.map(({ depthMm: _d, ...r }) => r);
  const decoded = codec.decodeSync(frameBytes(v1, { ...rest, regions: v1Regions }));
  assert.deepEqual(plain(decoded), { ...rest, regions: v1Regions.map((r) => ({ ...r, depthMm: null })) });
});

test('AnomalyEvent version 2: a version-1 reader given the writer schema reads a version-2 record, depthMm skipped', () => {
  const old = new SchemaCatalog();
  old.add(publishedEventV1());
  old.add({ ...catalog.current('AnomalyEvent'), version: 0 });
  const reader = AvroCodec.local(old, 'AnomalyEvent');
  assert.equal(reader.schema.version, 1);
  const decoded = reader.decodeSync(AvroCodec.local(catalog, 'AnomalyEvent').encode(eventWithDepth()));
  const { regions, ...rest } = eventWithDepth();
  assert.deepEqual(plain(decoded), { ...rest, regions: regions.map(({ depthMm: _d, ...r }) => r) });
});

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof MmadError, `expected MmadError, got ${String(e)}`);
    return e.code;
  }
  return 'no error';
}

test('bad bytes of each kind give the typed error, never a crash', () => {
  const codec = AvroCodec.local(catalog, 'Frame');
  const good = codec.encode(sampleFrame(Buffer.alloc(1000, 7)));
  assert.equal(codeOf(() => codec.decodeSync(Buffer.from('{"json": true}'))), ErrorCode.CODEC_BAD_MAGIC);
  assert.equal(codeOf(() => codec.decodeSync(Buffer.alloc(0))), ErrorCode.CODEC_BAD_MAGIC);
  assert.equal(codeOf(() => codec.decodeSync(Buffer.from([0xc3, 0x01, 1, 2]))), ErrorCode.CODEC_TRUNCATED);
  const unknown = Buffer.from(good);
  unknown.writeBigUInt64LE(0x0123456789abcdefn, 2);
  assert.equal(codeOf(() => codec.decodeSync(unknown)), ErrorCode.CODEC_UNKNOWN_SCHEMA);
  for (const cut of [11, 40, good.length - 500, good.length - 1]) {
    assert.equal(codeOf(() => codec.decodeSync(good.subarray(0, cut))), ErrorCode.CODEC_TRUNCATED, `cut at ${cut}`);
  }
  assert.equal(codeOf(() => codec.decodeSync(Buffer.concat([good, Buffer.from([0])]))), ErrorCode.CODEC_INVALID);
  // an Avro record of another schema under Frame's fingerprint
  const alien = Buffer.concat([good.subarray(0, 10), Buffer.from([0x02, 0x61, 0x08])]);
  assert.match(codeOf(() => codec.decodeSync(alien)), /^CODEC_(TRUNCATED|INVALID)$/);
});

test('a forged block count cannot make the decoder loop or allocate', () => {
  const codec = AvroCodec.local(catalog, 'Frame');
  const frame = sampleFrame(Buffer.alloc(0), { expectedModalities: null, attributes: {} });
  const good = codec.encode(frame);
  // the last two bytes are the attributes map's terminating 0 block and the null volume's union index: replace them with a huge count
  assert.deepEqual([...good.subarray(-2)], [0, 0]);
  const huge = Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]); // zig-zag varint ≈ 2^55
  const forged = Buffer.concat([good.subarray(0, good.length - 2), huge]);
  const t0 = performance.now();
  assert.equal(codeOf(() => codec.decodeSync(forged)), ErrorCode.CODEC_TRUNCATED);
  assert.ok(performance.now() - t0 < 1000, 'the guard answers without walking the forged items');
});

test('random corruption of a valid frame never escapes as anything but a typed error', () => {
  const codec = AvroCodec.local(catalog, 'Frame');
  const good = codec.encode(sampleFrame(Buffer.alloc(64, 1)));
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  let typed = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(good);
    const flips = 1 + Math.floor(rnd() * 4);
    for (let f = 0; f < flips; f++) b[10 + Math.floor(rnd() * (b.length - 10))] = Math.floor(rnd() * 256);
    try {
      codec.decodeSync(b);
    } catch (e) {
      assert.ok(e instanceof MmadError, `corruption ${i} escaped as ${String(e)}`);
      typed++;
    }
  }
  assert.ok(typed > 0, 'some corruptions must be detected');
});

test('Confluent-framed records without a registry are an unknown schema, with the id', async () => {
  const codec = AvroCodec.local(catalog, 'Frame');
  const body = catalog.current('Frame').type.toBuffer(sampleFrame());
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 42]), body]);
  await assert.rejects(codec.decode(framed), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.CODEC_UNKNOWN_SCHEMA && /42/.test(e.message));
});
