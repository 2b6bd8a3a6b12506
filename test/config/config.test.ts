import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultConfig, loadConfig } from '../../src/config/load-config.js';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { present } from '../../src/base/invariant.js';

function file(text: string, name = 'mmad.yaml'): string {
  const p = join(mkdtempSync(join(tmpdir(), 'mmad-config-')), name);
  writeFileSync(p, text);
  return p;
}

/** The issues a config produces, as "path: message" lines. */
function issues(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof MmadError && e.code === ErrorCode.CONFIG_INVALID, `expected CONFIG_INVALID, got ${String(e)}`);
    return e.details.issues as { path: string; message: string }[];
  }
  assert.fail('the configuration was accepted');
}

test('defaults are complete and valid', () => {
  const c = defaultConfig();
  assert.deepEqual(c.kafka.brokers, []);
  assert.equal(c.topics.inputs.rgb, 'mmad.frames.rgb');
  assert.equal(c.topics.inputs.ct, null);
  assert.equal(c.topics.partitions, 6);
  assert.equal(c.schemaRegistry.url, null);
  assert.ok(c.kafka.maxMessageBytes >= 16 * 1024 * 1024);
});

test('a YAML file overrides defaults, and the environment overrides the file', () => {
  const f = file('kafka:\n  clientId: line-3\ntopics:\n  partitions: 12\n  inputs:\n    xyz: plant.xyz\n');
  const c = loadConfig({
    file: f,
    env: { KAFKA_BROKERS: 'k1:9092, k2:9092', MMAD_TOPICS__PARTITIONS: '24', MMAD_TOPICS__DEAD_LETTERS: 'plant.dlq', MMAD_KAFKA__RETRY__RETRIES: '3' },
  });
  assert.equal(c.kafka.clientId, 'line-3');
  assert.deepEqual(c.kafka.brokers, ['k1:9092', 'k2:9092']);
  assert.equal(c.topics.partitions, 24);
  assert.equal(c.topics.inputs.xyz, 'plant.xyz');
  assert.equal(c.topics.inputs.rgb, 'mmad.frames.rgb');
  assert.equal(c.topics.deadLetters, 'plant.dlq');
  assert.equal(c.kafka.retry.retries, 3);
});

test('JSON files are accepted too', () => {
  const c = loadConfig({ file: file('{"topics": {"events": "ev"}}', 'c.json'), env: {} });
  assert.equal(c.topics.events, 'ev');
});

test('each kind of bad config is named by its path, all at once', () => {
  const found = issues(() =>
    loadConfig({
      file: file(
        [
          'kafka:',
          '  brokers: ["no-port"]',
          '  maxMessageBytes: 10',
          '  clientID: typo',
          'topics:',
          '  partitions: 0',
          '  inputs:',
          '    rgb: "bad topic!"',
          'broker:',
          '  provider: kubernetes',
          'schemaRegistry:',
          '  url: not a url',
          'colour: blue',
        ].join('\n'),
      ),
      env: {},
    }),
  );
  const paths = found.map((i) => i.path).sort();
  assert.deepEqual(paths, [
    'broker.provider',
    'colour',
    'kafka.brokers.0',
    'kafka.clientID',
    'kafka.maxMessageBytes',
    'schemaRegistry.url',
    'topics.inputs.rgb',
    'topics.partitions',
  ]);
  assert.match(present(found.find((i) => i.path === 'kafka.clientID'), 'the kafka.clientID issue').message, /unknown key/);
  assert.match(present(found.find((i) => i.path === 'kafka.brokers.0'), 'the kafka.brokers.0 issue').message, /host:port/);
});

test('wrong types are named with what was expected', () => {
  const found = issues(() => loadConfig({ overrides: { topics: { partitions: 'many' } }, env: {} }));
  assert.equal(found.length, 1);
  assert.equal(found[0]?.path, 'topics.partitions');
  assert.match(present(found[0], 'the issue').message, /number/i);
});

test('an environment variable naming no key is an error naming the variable', () => {
  const found = issues(() => loadConfig({ env: { MMAD_TOPICS__PARTITONS: '3' } }));
  assert.equal(found[0]?.path, 'env MMAD_TOPICS__PARTITONS');
  assert.match(present(found[0], 'the issue').message, /no configuration key topics\.partitons/);
});

test('an unreadable or unparsable file is its own error', () => {
  assert.throws(() => loadConfig({ file: '/nonexistent/mmad.yaml', env: {} }), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.CONFIG_UNREADABLE);
  assert.throws(() => loadConfig({ file: file('kafka: [unclosed'), env: {} }), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.CONFIG_UNREADABLE);
  assert.throws(() => loadConfig({ file: file('- a list'), env: {} }), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.CONFIG_INVALID);
});

test('the line threshold: the manifest by default; a false-alarm rate and values per model from the file or the environment', () => {
  assert.deepEqual(defaultConfig().inference.threshold, { falseAlarmRate: null, overrides: {} });
  const c = loadConfig({
    file: file('inference:\n  threshold:\n    falseAlarmRate: 0.01\n    overrides:\n      crd-rgb: 5.5\n'),
    env: { MMAD_INFERENCE__THRESHOLD__FALSE_ALARM_RATE: '0.002', MMAD_INFERENCE__THRESHOLD__OVERRIDES: '{"crd-ir": 7}' },
  });
  assert.deepEqual(c.inference.threshold, { falseAlarmRate: 0.002, overrides: { 'crd-rgb': 5.5, 'crd-ir': 7 } });
});

test('a false-alarm rate outside (0, 1), a bad model id or value and an unknown threshold key are named by path', () => {
  const found = issues(() =>
    loadConfig({ overrides: { inference: { threshold: { falseAlarmRate: 1, overrides: { 'Crd RGB': 5, 'crd-ir': 'high' }, rate: 0.1 } } }, env: {} }),
  );
  const by = Object.fromEntries(found.map((i) => [i.path, i.message]));
  assert.deepEqual(Object.keys(by).sort(), [
    'inference.threshold.falseAlarmRate',
    'inference.threshold.overrides.Crd RGB',
    'inference.threshold.overrides.crd-ir',
    'inference.threshold.rate',
  ]);
  assert.match(present(by['inference.threshold.overrides.Crd RGB'], 'the Crd RGB issue'), /model id/);
  assert.match(present(by['inference.threshold.rate'], 'the rate issue'), /unknown key/);
  assert.equal(issues(() => loadConfig({ overrides: { inference: { threshold: { falseAlarmRate: 0 } } }, env: {} }))[0]?.path, 'inference.threshold.falseAlarmRate');
});
