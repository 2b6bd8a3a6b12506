/**
 * Our codec against independent implementations: Apache Avro's Python library
 * (record bodies both ways) and @kafkajs/confluent-schema-registry (the
 * Confluent wire format both ways, through a schema registry).
 */
import assert from 'node:assert/strict';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { DEFAULT_SCHEMA_DIR, SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { SchemaRegistryClient } from '../../src/codec/schema-registry.js';
import type { RecordName } from '../../src/codec/records.js';
import { plain, sampleAlert, sampleDeadLetter, sampleEvent, sampleFrame } from '../helpers/records.js';

const catalog = SchemaCatalog.load();
const script = join(fileURLToPath(new URL('.', import.meta.url)), 'python-avro-interop.py');
const cases: [RecordName, object][] = [
  ['Frame', sampleFrame(Buffer.from([0, 1, 2, 250, 255]))],
  // a ct frame: the volume record (Frame version 2) through Apache Avro's own implementation
  ['Frame', sampleFrame(Buffer.from([7, 0, 9, 0]), { modality: 'ct', encoding: 'raw', width: 1, height: 1, channels: 1, dtype: 'uint16', volume: { depth: 2, voxelSizeMm: { x: 0.05, y: 0.05, z: 0.125 } } })],
  ['AnomalyEvent', sampleEvent()],
  ['Alert', sampleAlert()],
  ['DeadLetter', sampleDeadLetter()],
];

/** JSON with the conventions of python-avro-interop.py. */
function toInteropJson(v: unknown): unknown {
  if (v instanceof Date) return { $ms: v.getTime() };
  if (Buffer.isBuffer(v)) return { $hex: v.toString('hex') };
  if (Array.isArray(v)) return v.map(toInteropJson);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toInteropJson(x)]));
  return v;
}

function python(mode: 'read' | 'write', name: RecordName, input: Buffer | string): Buffer {
  // Debian's python3-avro (installed by scripts/bootstrap.sh) lives with the system interpreter
  const r = spawnSync('/usr/bin/python3', [script, mode, join(DEFAULT_SCHEMA_DIR, `${name}.v${catalog.current(name).version}.avsc`)], { input });
  assert.equal(r.status, 0, `python avro ${mode} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

test('Apache Avro (Python) reads the records we write', () => {
  for (const [name, value] of cases) {
    const bytes = AvroCodec.local(catalog, name).encode(value as never);
    const decoded = JSON.parse(python('read', name, bytes.subarray(10)).toString()) as unknown;
    assert.deepEqual(decoded, toInteropJson(value), name);
  }
});

test('we read the records Apache Avro (Python) writes', () => {
  for (const [name, value] of cases) {
    const body = python('write', name, JSON.stringify(toInteropJson(value)));
    const codec = AvroCodec.local(catalog, name);
    const framed = Buffer.concat([codec.encode(value as never).subarray(0, 10), body]);
    assert.deepEqual(plain(codec.decodeSync(framed)), value, name);
  }
});

// No Confluent-compatible registry can run on this machine (Confluent's is not
// on Maven Central, Karapace is not on PyPI), so a minimal in-process server
// implements the REST calls both clients use (register, schema by id, compatibility config); the framing under test is
// checked against an independent client library.
let server: Server;
let url = '';
before(async () => {
  const schemas: string[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      res.setHeader('content-type', 'application/vnd.schemaregistry.v1+json');
      const reg = /^\/subjects\/([^/]+)\/versions$/.exec(req.url ?? '');
      const get = /^\/schemas\/ids\/(\d+)/.exec(req.url ?? '');
      if (req.method === 'POST' && reg !== null) {
        const schema = (JSON.parse(body) as { schema: string }).schema;
        let id = schemas.indexOf(schema) + 1;
        if (id === 0) id = schemas.push(schema);
        res.end(JSON.stringify({ id }));
      } else if (req.method === 'GET' && (req.url ?? '').startsWith('/config')) {
        res.end(JSON.stringify({ compatibilityLevel: 'BACKWARD' }));
      } else if (req.method === 'GET' && get !== null && schemas[Number(get[1]) - 1] !== undefined) {
        res.end(JSON.stringify({ schema: schemas[Number(get[1]) - 1] }));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
});
after(() => server.close());

test('Confluent wire format: an independent client reads ours and we read its', async () => {
  const registry = new SchemaRegistryClient(url);
  const ours = await AvroCodec.create(catalog, 'Alert', { registry, subject: 'alerts-value' });
  const theirs = new SchemaRegistry({ host: url });
  const written = ours.encode(sampleAlert());
  assert.equal(written[0], 0);
  const readByThem = (await theirs.decode(written)) as Record<string, unknown>;
  assert.equal(readByThem.sampleId, 'S-000123');
  assert.equal(readByThem.score, 3.75);

  const { id } = await theirs.register({ type: SchemaType.AVRO, schema: catalog.current('Frame').json }, { subject: 'frames-value' });
  const theirBytes = await theirs.encode(id, { ...sampleFrame(), captureTime: sampleFrame().captureTime.getTime() });
  const fresh = await AvroCodec.create(catalog, 'Frame', { registry: new SchemaRegistryClient(url), subject: 'other-value' });
  const frame = await fresh.decode(theirBytes);
  assert.equal(frame.sampleId, 'S-000123');
  assert.deepEqual(frame.captureTime, sampleFrame().captureTime);
  assert.deepEqual(frame.payload, sampleFrame().payload);
});

test('a schema id the registry does not know is CODEC_UNKNOWN_SCHEMA, remembered for a while (not asked for per record)', async () => {
  let now = 1_000_000;
  const client = new SchemaRegistryClient(url, { now: () => now });
  const codec = await AvroCodec.create(catalog, 'Frame', { registry: client });
  const bytes = Buffer.concat([Buffer.from([0, 0, 0, 0x7f, 0xff]), Buffer.from([2, 0x41])]);
  const unknown = (e: unknown): boolean => e instanceof MmadError && e.code === ErrorCode.CODEC_UNKNOWN_SCHEMA;
  await assert.rejects(codec.decode(bytes), (e: unknown) => unknown(e) && /schema id 32767 is unknown \(the registry does not know it; asked again in 30 s/.test((e as Error).message));
  await assert.rejects(codec.decode(bytes), (e: unknown) => unknown(e) && /remembered for 30 s more/.test((e as Error).message));
  now += 31_000;
  await assert.rejects(codec.decode(bytes), (e: unknown) => unknown(e) && /asked again in 60 s/.test((e as Error).message), 'asked again after the period, which doubles');
});
