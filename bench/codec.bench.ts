/**
 * Codec figures, side by side in one run: encode and decode of frames of
 * several payload sizes, and what the bounds-checking guard costs on decode
 * (guarded decode vs avsc alone). Run: npm run bench -- codec
 */
import { randomBytes } from 'node:crypto';
import { AvroCodec } from '../src/codec/avro-codec.js';
import { SchemaCatalog } from '../src/codec/schema-catalog.js';
import { sampleEvent, sampleFrame } from '../test/helpers/records.js';
import { measure, printTable } from './harness.js';

const catalog = SchemaCatalog.load();
const frames = AvroCodec.local(catalog, 'Frame');
const events = AvroCodec.local(catalog, 'AnomalyEvent');
const frameType = catalog.current('Frame').type;

const rows: Record<string, string | number>[] = [];
for (const size of [64 * 1024, 1024 * 1024, 12 * 1024 * 1024]) {
  const value = sampleFrame(randomBytes(size));
  const bytes = frames.encode(value);
  const body = bytes.subarray(10);
  const enc = measure(() => frames.encode(value));
  const dec = measure(() => frames.decodeSync(bytes));
  const raw = measure(() => frameType.decode(body, 0));
  rows.push({
    record: `Frame ${(size / 1024).toFixed(0)} KiB payload`,
    'encode µs': enc.micros.toFixed(1),
    'decode µs': dec.micros.toFixed(1),
    'avsc alone µs': raw.micros.toFixed(1),
    'guard overhead': `${(dec.micros / raw.micros).toFixed(2)}×`,
    'encode MB/s': ((bytes.length / enc.micros) * 1e6 / 1e6).toFixed(0),
  });
}
const ev = sampleEvent();
const evBytes = events.encode(ev);
const evType = catalog.current('AnomalyEvent').type;
const encE = measure(() => events.encode(ev));
const decE = measure(() => events.decodeSync(evBytes));
const rawE = measure(() => evType.decode(evBytes.subarray(10), 0));
rows.push({
  record: `AnomalyEvent (${evBytes.length} B)`,
  'encode µs': encE.micros.toFixed(1),
  'decode µs': decE.micros.toFixed(1),
  'avsc alone µs': rawE.micros.toFixed(1),
  'guard overhead': `${(decE.micros / rawE.micros).toFixed(2)}×`,
  'encode MB/s': ((evBytes.length / encE.micros) * 1e6 / 1e6).toFixed(0),
});
printTable('codec (per record, median of repeated runs)', rows);
