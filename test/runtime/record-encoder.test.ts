import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { loadConfig } from '../../src/config/load-config.js';
import { changelogTopic } from '../../src/runtime/join-changelog.js';
import { RecordEncoder } from '../../src/runtime/record-encoder.js';
import { plain, sampleAlert, sampleDeadLetter, sampleEvent } from '../helpers/records.js';

const config = loadConfig({ env: {}, overrides: { kafka: { maxMessageBytes: 1_048_576 }, input: { groupId: 'g' } } });
const catalog = SchemaCatalog.load();

test('a step becomes its event, alert, dead letters and changelog entries, in that order, on their topics', async () => {
  const e = await RecordEncoder.open(config, catalog);
  const state = { sampleId: 'S-000123', revision: 2, modalities: ['rgb', 'ir'], firstCapture: new Date('2026-11-23T08:00:00.123Z'), closed: true, closedAt: 1_000 };
  const records = e.encode({ event: sampleEvent(), alert: sampleAlert(), deadLetters: [sampleDeadLetter()] }, [{ sampleId: 'S-000123', state }, { sampleId: 'S-old', state: null }], 4);
  const t = config.topics;
  assert.deepEqual(
    records.map((r) => [r.topic, String(r.key), r.partition ?? 'by key', r.value === null ? 'tombstone' : 'value']),
    [
      [t.events, 'S-000123', 'by key', 'value'],
      [t.alerts, 'S-000123', 'by key', 'value'],
      [t.deadLetters, 'S-1', 'by key', 'value'],
      [changelogTopic(config), 'S-000123', 4, 'value'],
      [changelogTopic(config), 'S-old', 4, 'tombstone'],
    ],
  );
  const local = (name: 'AnomalyEvent' | 'Alert' | 'DeadLetter' | 'JoinState') => AvroCodec.local(catalog, name);
  const valueOf = (i: number): Buffer => present(at(records, i).value, `the value of record ${i}`);
  assert.deepEqual(plain(local('AnomalyEvent').decodeSync(valueOf(0))), sampleEvent());
  assert.deepEqual(plain(local('Alert').decodeSync(valueOf(1))), sampleAlert());
  assert.deepEqual(plain(local('DeadLetter').decodeSync(valueOf(2))), sampleDeadLetter());
  assert.deepEqual(plain(local('JoinState').decodeSync(valueOf(3))), state);
});

test('nothing to publish: no records; a dead letter over the record limit loses its original, keyed by the sample without a source key', async () => {
  const e = await RecordEncoder.open(config, catalog);
  assert.deepEqual(e.encode({ event: null, alert: null, deadLetters: [] }, [], 0), []);
  const big = { ...sampleDeadLetter(), sampleId: 'S-9', source: { ...sampleDeadLetter().source, key: null }, original: Buffer.alloc(2_000_000) };
  const r = at(e.encode({ event: null, alert: null, deadLetters: [big] }, [], 0), 0);
  assert.equal(String(r.key), 'S-9');
  const d = e.codecs.deadLetter.decodeSync(present(r.value, 'the dead letter value'));
  assert.equal(d.original.length, 0);
  assert.match(d.message, /original of 2000000 bytes omitted/);
});
