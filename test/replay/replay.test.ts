/**
 * Replay: live run, then the same time range replayed into a topic of its own;
 * the events must be the same decisions. And the diff of two runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import type { Config } from '../../src/config/config-schema.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { parseTime } from '../../src/cli/commands/replay.js';
import { diffRuns, formatDiff, lastRevisions } from '../../src/replay/diff.js';
import { readEventTopic, type EventSummary } from '../../src/replay/event-summary.js';
import { replayRange } from '../../src/replay/replay.js';
import { StreamProcessor } from '../../src/runtime/stream-processor.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopics } from '../../src/simulate/kafka-sink.js';
import { SimulatedPartSource } from '../../src/simulate/line-simulator.js';
import { runStation } from '../../src/simulate/station-publisher.js';
import { consumedAll, quietLogger, testKafka } from '../helpers/kafka.js';
import { processorTestConfig } from '../helpers/models.js';
import { until } from '../helpers/wait.js';

const bin = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');

function ev(sampleId: string, verdict: string, score: number | null, o: Partial<EventSummary> = {}): EventSummary {
  return { sampleId, revision: 1, final: true, verdict, reason: null, score, threshold: 1, model: 'm@1', modalitiesUsed: ['rgb'], captureTime: '2026-01-01T00:00:00.000Z', ...o };
}

test('diff compares each part at its last revision: transitions, changed verdicts, parts only one run has', () => {
  const a = [ev('p1', 'OK', 0.5), ev('p2', 'OK', 0.9), ev('p2', 'NOK', 1.5, { revision: 2, modalitiesUsed: ['rgb', 'xyz'] }), ev('p3', 'NOK', 2), ev('p4', 'OK', 0.1)];
  const b = [ev('p1', 'OK', 0.5), ev('p2', 'OK', 0.8, { revision: 2, modalitiesUsed: ['rgb', 'xyz'] }), ev('p3', 'NOK', 2.5), ev('p5', 'UNKNOWN', null)];
  assert.equal(lastRevisions(a).get('p2')?.verdict, 'NOK');
  const d = diffRuns(a, b);
  assert.deepEqual([d.partsA, d.partsB, d.both], [4, 4, 3]);
  assert.deepEqual([d.onlyA, d.onlyB], [['p4'], ['p5']]);
  assert.deepEqual(d.changed.map((c) => c.sampleId), ['p2']);
  assert.equal(d.transitions.get('NOK')?.get('OK'), 1);
  assert.equal(d.transitions.get('NOK')?.get('NOK'), 1);
  assert.equal(d.transitions.get('OK')?.get('OK'), 1);
  assert.equal(d.identical, 1);
  assert.equal(d.sameVerdictDifferent, 1, 'p3: same verdict, other score');
  assert.ok(Math.abs(present(d.meanAbsScoreDelta, 'the mean score change') - (0 + 0.7 + 0.5) / 3) < 1e-9);
  const text = formatDiff(d, ['old', 'new']);
  assert.match(text, /p2: NOK 1\.500\/1\.000 m@1 \[rgb\+xyz\] → OK 0\.800/);
  assert.throws(() => parseTime('yesterday', 'from'), /ISO-8601/);
  assert.equal(parseTime('2026-01-01T00:00:00Z', 'from'), Date.UTC(2026, 0, 1));
  assert.equal(parseTime('earliest', 'from'), Number.NEGATIVE_INFINITY);
});

test('mmad diff on two replay files: the report, and exit code 1 when a verdict changed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmad-diff-'));
  const fa = join(dir, 'a.jsonl');
  const fb = join(dir, 'b.jsonl');
  writeFileSync(fa, [ev('p1', 'OK', 0.5), ev('p2', 'NOK', 3)].map((e) => JSON.stringify(e)).join('\n'));
  writeFileSync(fb, [ev('p1', 'OK', 0.5), ev('p2', 'OK', 0.7)].map((e) => JSON.stringify(e)).join('\n'));
  const r = spawnSync(process.execPath, [bin, 'diff', fa, fb], { encoding: 'utf8', env: { ...process.env, MMAD_LOG_LEVEL: 'error' } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /verdict changed: 1/);
  const same = spawnSync(process.execPath, [bin, 'diff', fa, fa], { encoding: 'utf8', env: { ...process.env, MMAD_LOG_LEVEL: 'error' } });
  assert.equal(same.status, 0, same.stderr);
  assert.match(same.stdout, /same decision: 2/);
});

test('a replay of a live run publishes the same decisions: sample, revision, modalities, model, score, verdict', { timeout: 240_000 }, async () => {
  const config: Config = processorTestConfig((base) => ({
    join: { modalities: { rgb: { policy: 'required', timeoutMs: 2000 }, ir: { policy: 'optional', timeoutMs: 400 }, xyz: { policy: 'late', windowMs: 3000 } }, idleAdvanceMs: 500 },
    topics: { ...base.topics, partitions: 3 },
  }));
  const kafka = testKafka(config);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, planTopics(config));
  const registry = await ModelRegistry.open(config, quietLogger);
  const live = new StreamProcessor(config, registry, { logger: quietLogger });
  const producer = stationProducer(kafka, config);
  try {
    await live.start();
    await live.assigned;
    const t0 = Date.now();
    await producer.connect();
    const topics = await stationTopics(admin, config);
    const report = await runStation({
      source: await SimulatedPartSource.create({ product: 'battery_lid', width: 32, height: 32, seed: 5, defectRate: 0.3, defects: [], poolSize: 8 }),
      topics,
      sink: new KafkaRecordSink(producer),
      codecs: await stationCodecs(config, topics),
      identity: { line: 'l', station: 's' },
      timing: { ratePerSecond: 12, rgbIrJitterMs: 3, xyzFraction: 0.4, xyzDelayMinMs: 200, xyzDelayMaxMs: 1500, dropRate: 0.05, duplicateRate: 0.05, reorderRate: 0, reorderMaxMs: 0, clockSkewMs: 0, burstRate: 0, burstSize: 1, burstFactor: 1 },
      scheduleSeed: 5,
      count: 36,
      pace: true,
      idPrefix: 'RP-',
      labels: false,
    });
    const inputs = [config.topics.inputs.rgb, config.topics.inputs.ir, config.topics.inputs.xyz];
    await until('the live run to commit every input', () => consumedAll(kafka, config.input.groupId, inputs), 60_000, { everyMs: 500 });
    await live.stop();
    const liveEvents = await readEventTopic(kafka, config, config.topics.events, AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent'));
    assert.ok(liveEvents.length > report.parts, `the live run judged every part, some twice (${liveEvents.length} events, ${report.parts} parts)`);

    const replayTopic = `${config.topics.events}.replay`;
    const replayConfig: Config = {
      ...config,
      input: { ...config.input, groupId: `${config.input.groupId}.replay` },
      topics: { ...config.topics, events: replayTopic, alerts: `${replayTopic}.alerts`, deadLetters: `${replayTopic}.deadletters` },
    };
    const progress: number[] = [];
    const summary = await replayRange(replayConfig, registry, { from: t0 - 1000, to: Date.now() + 1000, logger: quietLogger, onProgress: (p) => progress.push(p.records), progressEveryMs: 100 });
    assert.equal(summary.records, summary.total, 'the whole range was read');
    assert.equal(summary.total, report.frames.rgb + report.frames.ir + report.frames.xyz, 'the range is every frame the line wrote');
    const replayed = await readEventTopic(kafka, replayConfig, replayTopic, AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent'));
    const key = (e: EventSummary): string => `${e.sampleId}#${e.revision} ${e.verdict} ${e.model ?? 'none'} ${[...e.modalitiesUsed].sort().join('+')} ${e.score?.toFixed(5) ?? 'none'}`;
    assert.deepEqual(replayed.map(key).sort(), liveEvents.map(key).sort(), 'every revision, with the same decision');
    assert.deepEqual(summary.eventsOut.map(key).sort(), liveEvents.map(key).sort());
    const d = diffRuns(liveEvents, replayed);
    assert.equal(d.changed.length + d.sameVerdictDifferent + d.onlyA.length + d.onlyB.length, 0, formatDiff(d, ['live', 'replay']));
  } finally {
    await producer.disconnect().catch(() => undefined);
    await registry.close();
    await admin.disconnect();
  }
});
