import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc64Avro } from '../../src/codec/crc64-avro.js';
import { parseSchema } from '../../src/codec/schema-catalog.js';

// Canonical forms and fingerprints from Apache Avro's shared test data
// (share/test/data/schema-tests.txt), cross-checked there against the Java
// implementation; fingerprints are signed 64-bit decimals.
const VECTORS: [string, string, bigint][] = [
  ['"null"', '"null"', 7195948357588979594n],
  ['"int"', '"int"', 8247732601305521295n],
  ['{"type":"long"}', '"long"', -3434872931120570953n],
  ['"string"', '"string"', -8142146995180207161n],
  ['{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}', '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771n],
  [
    '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
    '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
    -4860222112080293046n,
  ],
  ['{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}', '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245n],
  ['{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059n],
  ['{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990n],
];

const unsigned = (n: bigint): bigint => BigInt.asUintN(64, n);

test('CRC-64-AVRO matches the Avro specification test vectors', () => {
  for (const [, canonical, fp] of VECTORS) {
    assert.equal(crc64Avro(Buffer.from(canonical)), unsigned(fp), canonical);
  }
});

test('parsing canonical form matches the specification for named and complex types', () => {
  for (const [input, canonical, fp] of VECTORS.filter(([i]) => i.startsWith('{') && i.includes('"name"'))) {
    const s = parseSchema(input);
    assert.equal(s.canonical, canonical);
    assert.equal(s.fingerprint, unsigned(fp));
  }
});

test('logical types are stripped from the canonical form (timestamp-millis is a long)', () => {
  const s = parseSchema('{"type":"record","name":"r","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}}]}');
  assert.equal(s.canonical, '{"name":"r","type":"record","fields":[{"name":"t","type":"long"}]}');
});
