/**
 * Telemetry of a real stream processor on the test broker: a simulated line
 * (the station publisher, tracing each frame's send) plus a few hand-made
 * frames go through the service; the metrics, read with an in-memory reader,
 * must agree with what the service really published (read back from Kafka),
 * the traces must link each sample to its frames' producer spans, and the
 * operations server must answer /healthz, /readyz (not ready before the
 * assignment, ready after) and /metrics (every metric name, with its buckets).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import type { Histogram } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { at, present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { Alert, AnomalyEvent, DeadLetter } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import type { ProcessorStats } from '../../src/runtime/processor-status.js';
import { StreamProcessor } from '../../src/runtime/stream-processor.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopics } from '../../src/simulate/kafka-sink.js';
import { SimulatedPartSource } from '../../src/simulate/line-simulator.js';
import { runStation, type PublishReport } from '../../src/simulate/station-publisher.js';
import { BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, METRICS, STAGE_BUCKETS_S, allSeriesNames } from '../../src/telemetry/metrics.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import { makeFrame } from '../helpers/frames.js';
import { consumeUntil, deleteTopics, quietLogger, testKafka, type Consumed } from '../helpers/kafka.js';
import { processorTestConfig } from '../helpers/models.js';
import { until } from '../helpers/wait.js';
import { CollectingReader, collectPoints, get, sumOf, type Point } from './helpers.js';

const config = processorTestConfig(() => ({
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1500 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 4000 } }, idleAdvanceMs: 300 },
}));
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const plans = planTopics(config);
await ensureTopics(admin, plans);
const reader = new CollectingReader();
const spans = new InMemorySpanExporter();
const telemetry = await Telemetry.start(config, { logger: quietLogger, port: 0, metricReaders: [reader], spanExporters: [spans] });
const base = `http://127.0.0.1:${present(telemetry.port, 'the operations port')}`;
const registry = await ModelRegistry.open(config, quietLogger);
const processor = new StreamProcessor(config, registry, { logger: quietLogger, ...telemetry.processorOptions() });
telemetry.attach(processor, registry);
const producer = stationProducer(kafka, config);
await producer.connect();
after(async () => {
  telemetry.stopping();
  await processor.stop();
  await telemetry.shutdown();
  await registry.close();
  await producer.disconnect();
  await deleteTopics(admin, plans.map((p) => p.name));
  await admin.disconnect();
});

const catalog = SchemaCatalog.load();
const frameCodec = AvroCodec.local(catalog, 'Frame');

/**
 * Everything committed on the output topics, once each (the service's truth to compare the metrics with):
 * read to the end once the processor's own counts of verdicts and dead letters are there.
 */
async function published(): Promise<{ events: AnomalyEvent[]; alerts: Alert[]; deadLetters: DeadLetter[] }> {
  const t = config.topics;
  const want = processor.stats();
  const on = (got: Consumed[], topic: string): Buffer[] =>
    got.filter((m) => m.topic === topic).map((m) => present(m.value, `the value of ${topic}/${m.partition}/${m.offset}`));
  const got = await consumeUntil(
    kafka,
    config,
    [t.events, t.alerts, t.deadLetters],
    (g) => on(g, t.events).length >= want.judged && on(g, t.deadLetters).length >= want.deadLetters,
    'the published records',
    30_000,
  );
  return {
    events: await Promise.all(on(got, t.events).map((v) => AvroCodec.local(catalog, 'AnomalyEvent').decode(v))),
    alerts: await Promise.all(on(got, t.alerts).map((v) => AvroCodec.local(catalog, 'Alert').decode(v))),
    deadLetters: await Promise.all(on(got, t.deadLetters).map((v) => AvroCodec.local(catalog, 'DeadLetter').decode(v))),
  };
}

function tally<T>(items: T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of items) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
}

/** The counter's values by the listed labels, as "a|b" keys, leaving out zeros. */
function byLabels(points: Map<string, Point[]>, name: string, labels: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of points.get(name) ?? []) {
    const v = p.value as number;
    if (v === 0) continue;
    const k = labels.map((l) => String(p.attributes[l])).join('|');
    m.set(k, (m.get(k) ?? 0) + v);
  }
  return m;
}

const sorted = (m: Map<string, number>): [string, number][] => [...m].sort(([a], [b]) => a.localeCompare(b));
const ms = (t: ReadableSpan['startTime']): number => hrTimeToMilliseconds(t);

/** The processor is started once, by whichever test needs it first. */
let started: Promise<void> | undefined;
const start = (): Promise<void> => (started ??= processor.start());

test('/healthz answers and /readyz is not ready before the processor has its assignment, ready after', { timeout: 60_000 }, async () => {
  const health = await get(`${base}/healthz`);
  assert.equal(health.status, 200);
  const before = await get(`${base}/readyz`);
  assert.equal(before.status, 503);
  const b = JSON.parse(before.body) as { checks: Record<string, { ok: boolean; detail: string }> };
  assert.equal(b.checks.consumer?.ok, false);
  assert.equal(b.checks.models?.ok, true, 'the students are loaded');
  assert.match(b.checks.models.detail, /test-rgb-ir@0\.0\.1/);

  await start();
  // right after start the member is (almost always) still joining: whatever /readyz says must agree with the processor
  const early = await get(`${base}/readyz`);
  assert.equal(early.status === 200, processor.status().assigned && processor.status().brokerContactAgoMs !== null);

  await processor.assigned;
  await until('/readyz to say ready', async () => (await get(`${base}/readyz`)).status === 200, 15_000);
  const ready = JSON.parse((await get(`${base}/readyz`)).body) as { status: string; checks: Record<string, { ok: boolean; detail: string }> };
  assert.equal(ready.status, 'ready');
  assert.match(present(ready.checks.consumer, 'the consumer check').detail, /tasks 0,1,2/);
  assert.ok(ready.checks.broker?.ok);
  assert.equal((await get(`${base}/nothing`)).status, 404);
});

/** A simulated line through the processor, and what the tests below compare once it has ended. */
interface LineRun {
  /** What the station sent. */
  report: PublishReport;
  /** Frames this test sent by hand, per modality. */
  extraFrames: Record<'rgb' | 'ir' | 'xyz', number>;
  /** What the service published (read committed). */
  out: Awaited<ReturnType<typeof published>>;
  /** The metrics, collected once after the line ended and its outputs were read. */
  points: Map<string, Point[]>;
  /** The processor's own counts, taken right after the metrics. */
  stats: ProcessorStats;
  /** The spans finished by then. */
  finished: ReadableSpan[];
}

let lineRun: Promise<LineRun> | undefined;
/** Runs the line once, for whichever test asks first; the others share it. */
const line = (): Promise<LineRun> => (lineRun ??= runLine());

async function runLine(): Promise<LineRun> {
  await start();
  await processor.assigned;
  const topics = await stationTopics(admin, config);
  const source = await SimulatedPartSource.create({ product: 'battery_lid', width: 32, height: 32, seed: 11, defectRate: 0.3, defects: [], poolSize: 6 });
  const report = await runStation({
    source,
    topics,
    sink: new KafkaRecordSink(producer),
    codecs: await stationCodecs(config, topics, catalog),
    identity: { line: 'line-t', station: 'st-t' },
    timing: {
      ratePerSecond: 20,
      rgbIrJitterMs: 3,
      xyzFraction: 0.5,
      xyzDelayMinMs: 300,
      xyzDelayMaxMs: 1000,
      dropRate: 0.1,
      duplicateRate: 0.15,
      reorderRate: 0,
      reorderMaxMs: 0,
      clockSkewMs: 0,
      burstRate: 0,
      burstSize: 1,
      burstFactor: 1,
    },
    scheduleSeed: 5,
    count: 16,
    pace: false,
    idPrefix: 'sim-',
    labels: false,
    tracer: present(telemetry.tracer, 'the tracer'),
  });
  // hand-made cases the random line may not produce: a NOK with an alert, a duplicate, ir timing out, an unreadable record
  const P = config.topics.partitions;
  const send = async (m: 'rgb' | 'ir' | 'xyz', id: string, value: Buffer): Promise<void> => {
    await producer.send({ topic: config.topics.inputs[m], messages: [{ key: id, value, partition: partitionFor(id, P) }] });
  };
  const t0 = Date.now();
  const nok = frameCodec.encode(await makeFrame('hand-nok', 'rgb', { captureTime: t0, square: [8, 4, 6], expected: ['rgb', 'ir'] }));
  await send('rgb', 'hand-nok', nok);
  await send('rgb', 'hand-nok', nok);
  await send('ir', 'hand-nok', frameCodec.encode(await makeFrame('hand-nok', 'ir', { captureTime: t0 + 2, expected: ['rgb', 'ir'] })));
  await send('rgb', 'hand-noir', frameCodec.encode(await makeFrame('hand-noir', 'rgb', { captureTime: t0 + 5, expected: ['rgb', 'ir'] })));
  await send('rgb', 'hand-garbage', Buffer.from('not a frame'));
  // a scan no student takes with rgb alone: the refinement is judged by test-rgb, the xyz frame unused
  await send('rgb', 'hand-rgbxyz', frameCodec.encode(await makeFrame('hand-rgbxyz', 'rgb', { captureTime: t0 + 7, expected: ['rgb', 'xyz'] })));
  await send('xyz', 'hand-rgbxyz', frameCodec.encode(await makeFrame('hand-rgbxyz', 'xyz', { captureTime: t0 + 400, expected: ['rgb', 'xyz'] })));
  const extraFrames = { rgb: 5, ir: 1, xyz: 1 };

  // every record read, every sample judged and closed (late windows expire once the idle timer moves stream time)
  const sentTotal = report.frames.rgb + report.frames.ir + report.frames.xyz + extraFrames.rgb + extraFrames.ir + extraFrames.xyz;
  await until('every record read and every sample closed', () => processor.stats().framesRead === sentTotal && processor.joinSnapshot().pendingSamples === 0, 60_000);
  await new Promise((r) => setTimeout(r, 3 * config.processing.commitIntervalMs + 200));
  const out = await published();
  const points = await collectPoints(reader);
  return { report, extraFrames, out, points, stats: processor.stats(), finished: spans.getFinishedSpans() };
}

const M = METRICS;
const LINE = { timeout: 120_000 };

test('records read, per modality: what the station and the test sent', LINE, async () => {
  const { report, extraFrames, points } = await line();
  for (const m of ['rgb', 'ir', 'xyz'] as const) {
    const sent = present(report.perTopic[config.topics.inputs[m]], `the ${m} records sent`).reduce((a, b) => a + b, 0) + extraFrames[m];
    assert.equal(sumOf(points, M.framesRead.name, { modality: m }), sent, `${m} records read`);
  }
});

test('verdicts by model, version, verdict and revision, and coverage by the modalities used: exactly the events on the topic', LINE, async () => {
  const { out, points } = await line();
  const events = out.events;
  assert.ok(events.length >= 16, `${events.length} events`);
  assert.deepEqual(
    sorted(byLabels(points, M.verdicts.name, ['model', 'model_version', 'verdict', 'revision'])),
    sorted(tally(events, (e) => `${e.model?.id ?? 'none'}|${e.model?.version ?? 'none'}|${e.verdict}|${e.revision === 1 ? 'first' : 'refined'}`)),
  );
  assert.ok(events.some((e) => e.sampleId === 'hand-nok' && e.verdict === 'NOK'));
  assert.deepEqual(
    sorted(byLabels(points, M.modalityCoverage.name, ['modalities'])),
    sorted(tally(events, (e) => (e.modalitiesUsed.length === 0 ? 'none' : e.modalitiesUsed.join('+')))),
  );
  // the hand-made part had an xyz frame its student (test-rgb) does not take: judged with rgb alone, whether the
  // scan joined before its first revision was released or refined it (both frames are sent at once, so either happens)
  const hand = events.filter((e) => e.sampleId === 'hand-rgbxyz');
  assert.ok(hand.length >= 1, 'the part with a scan was judged');
  assert.deepEqual([...new Set(hand.map((e) => `${e.model?.id ?? 'none'} ${e.modalitiesUsed.join('+')}`))], ['test-rgb rgb']);
  assert.ok(hand.some((e) => e.final), 'and closed');
  assert.ok(sumOf(points, M.modalitiesUnused.name, { modality: 'xyz' }) >= 1, 'unused xyz frames counted');
  assert.equal(sumOf(points, M.modalitiesUnused.name, { modality: 'rgb' }), 0, 'a frame its student takes is not counted');
});

test('dead letters by reason and alerts by severity: exactly those on their topics', LINE, async () => {
  const { out, points } = await line();
  assert.deepEqual(sorted(byLabels(points, M.deadLetters.name, ['reason'])), sorted(tally(out.deadLetters, (d) => d.reasonCode)));
  assert.ok(out.deadLetters.some((d) => d.reasonCode === 'CODEC_BAD_MAGIC'));
  assert.deepEqual(sorted(byLabels(points, M.alerts.name, ['severity'])), sorted(tally(out.alerts, (a) => a.severity)));
  assert.ok(out.alerts.length >= 1);
});

test('join outcomes: first revisions, refinements, missing required modalities, too-late frames, duplicates, timeouts', LINE, async () => {
  const { out, points, stats } = await line();
  const events = out.events;
  const outcome = (o: string): number => sumOf(points, M.joinOutcomes.name, { outcome: o });
  assert.equal(outcome('complete') + outcome('provisional') + outcome('timed_out') + outcome('unknown'), events.filter((e) => e.revision === 1).length);
  assert.equal(outcome('late'), events.filter((e) => e.revision > 1).length);
  assert.equal(outcome('unknown'), events.filter((e) => e.verdict === 'UNKNOWN' && /required modality/.test(e.reason ?? '')).length);
  assert.equal(outcome('too_late'), out.deadLetters.filter((d) => d.reasonCode === 'JOIN_TOO_LATE').length);
  assert.equal(outcome('duplicate'), stats.duplicates);
  assert.ok(outcome('duplicate') >= 1 && outcome('timed_out') >= 1, 'the hand-made duplicate and ir timeout are counted');
  assert.ok(sumOf(points, M.joinTimeouts.name, { modality: 'ir' }) >= 1);
});

test('latency and stage histograms: one observation per event (per modelled event for the stages), with the declared buckets', LINE, async () => {
  const { out, points } = await line();
  const events = out.events;
  const hist = (name: string): Histogram[] => (points.get(name) ?? []).map((p) => p.value as Histogram);
  const count = (name: string): number => hist(name).reduce((s, h) => s + h.count, 0);
  assert.equal(count(M.joinWait.name), events.length);
  assert.equal(count(M.endToEnd.name), events.length);
  const modelled = events.filter((e) => e.model !== null);
  assert.equal(count(M.preprocess.name), modelled.length);
  assert.equal(count(M.inference.name), modelled.length);
  assert.equal(count(M.batchSize.name), modelled.length);
  assert.deepEqual(hist(M.endToEnd.name)[0]?.buckets.boundaries, [...LATENCY_BUCKETS_S]);
  assert.deepEqual(hist(M.preprocess.name)[0]?.buckets.boundaries, [...STAGE_BUCKETS_S]);
  assert.deepEqual(hist(M.batchSize.name)[0]?.buckets.boundaries, [...BATCH_SIZE_BUCKETS]);
  // the histogram measures to the write, the event's own timing to when it was built: never less in total
  const e2eSum = hist(M.endToEnd.name).reduce((s, h) => s + (h.sum ?? 0), 0);
  assert.ok(e2eSum * 1000 >= events.reduce((s, e) => s + e.timings.endToEndMs, 0) - events.length, `end-to-end ${e2eSum} s in total`);
});

test("the micro-batchers' counts: one inference sample per modelled event, at most as many runs", LINE, async () => {
  const { out, points } = await line();
  const modelled = out.events.filter((e) => e.model !== null);
  assert.equal(sumOf(points, M.inferenceSamples.name), modelled.length);
  assert.ok(sumOf(points, M.inferenceRuns.name) >= 1 && sumOf(points, M.inferenceRuns.name) <= modelled.length);
});

test('gauges at the end of the line: lag per task and modality for every task, all caught up; nothing pending; three tasks running; commits', LINE, async () => {
  const { points, stats } = await line();
  const lag = points.get(M.consumerLag.name) ?? [];
  assert.deepEqual([...new Set(lag.map((p) => p.attributes.task))].sort(), ['0', '1', '2']);
  assert.ok(lag.every((p) => p.value === 0), `lag ${JSON.stringify(lag)}`);
  assert.equal(sumOf(points, M.pendingSamples.name), 0);
  assert.equal(sumOf(points, M.tasks.name, { state: 'running' }), 3);
  const commits = sumOf(points, M.commits.name);
  assert.ok(commits >= 1 && commits <= stats.commits, `${commits} commits`);
});

test('traces: a sample span per event, its stages inside it, linked to the producer spans of its frames', LINE, async () => {
  const { report, out, finished } = await line();
  const roots = finished.filter((s) => s.name === 'judge sample');
  assert.equal(roots.length, out.events.length);
  const sends = new Map(finished.filter((s) => s.kind === SpanKind.PRODUCER).map((s) => [s.spanContext().spanId, s]));
  assert.equal(sends.size, report.frames.rgb + report.frames.ir + report.frames.xyz, 'one send span per simulated frame');
  let linked = 0;
  for (const root of roots) {
    const id = root.attributes['mmad.sample_id'] as string;
    const children = finished.filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId);
    const names = children.map((c) => c.name).sort();
    assert.deepEqual(names, root.attributes['mmad.model.id'] === undefined ? ['join wait', 'publish'] : ['inference', 'join wait', 'preprocess', 'publish'], id);
    for (const c of children) {
      assert.equal(c.spanContext().traceId, root.spanContext().traceId);
      assert.ok(ms(c.startTime) >= ms(root.startTime) - 1 && ms(c.endTime) <= ms(root.endTime) + 1, `${c.name} of ${id} inside its sample span`);
    }
    for (const link of root.links) {
      const send = sends.get(link.context.spanId);
      assert.ok(send !== undefined, `a link of ${id} resolves to a producer span`);
      assert.equal(send.spanContext().traceId, link.context.traceId);
      assert.equal(send.attributes['mmad.sample_id'], id);
      assert.equal(send.attributes['mmad.modality'], link.attributes?.['mmad.modality']);
      linked++;
    }
    if (id.startsWith('hand-')) assert.equal(root.links.length, 0, 'frames without trace headers give no links');
    else assert.ok(root.links.length >= 1, `${id} links to its frames`);
  }
  assert.ok(linked >= 16);
});

test("a sample span's verdict is its event's verdict", LINE, async () => {
  const { out, finished } = await line();
  const roots = finished.filter((s) => s.name === 'judge sample');
  for (const e of out.events) {
    const r = roots.find((s) => s.attributes['mmad.sample_id'] === e.sampleId && s.attributes['mmad.revision'] === e.revision);
    assert.equal(r?.attributes['mmad.verdict'], e.verdict, `${e.sampleId} r${e.revision}`);
  }
});

test('/metrics is a Prometheus scrape with every metric the service declares, histogram buckets included', LINE, async () => {
  await line(); // every metric has data points once the line has run
  const scrape = await get(`${base}/metrics`);
  assert.equal(scrape.status, 200);
  assert.match(scrape.type ?? '', /^text\/plain/);
  const series = new Set(
    scrape.body
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => at(l.split(/[{\s]/), 0)),
  );
  const missing = allSeriesNames().filter((n) => !series.has(n));
  assert.deepEqual(missing, [], 'every declared series is exported');
  const undeclared = [...series].filter((n) => n.startsWith('mmad_') && !allSeriesNames().includes(n));
  assert.deepEqual(undeclared, [], 'nothing exported that README and the dashboards do not know');
  const les = [...scrape.body.matchAll(/^mmad_end_to_end_seconds_bucket\{[^}]*le="([^"]+)"/gm)].map((m) => m[1]);
  assert.deepEqual(les, [...LATENCY_BUCKETS_S.map(String), '+Inf']);
  assert.match(scrape.body, /^mmad_frames_read_total\{modality="rgb",service_name="mmad"\} \d+$/m);
});
