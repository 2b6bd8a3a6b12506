/**
 * The exporters and endpoints as an operator meets them: OTLP/HTTP export to
 * a collector (here a local HTTP receiver), and `mmad run` serving /healthz,
 * /readyz and /metrics on telemetry.prometheus.port.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SpanKind } from '@opentelemetry/api';
import { at, present } from '../../src/base/invariant.js';
import { loadConfig } from '../../src/config/load-config.js';
import { ensureTopics, planTopics } from '../../src/kafka/topics.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import { deleteTopics, quietLogger, serviceEnv, testConfig, testKafka } from '../helpers/kafka.js';
import { TEST_MANIFEST } from '../helpers/models.js';
import { freePort } from '../helpers/ports.js';
import { until } from '../helpers/wait.js';
import { get } from './helpers.js';

test('with telemetry.otlp.endpoint set, traces and metrics go to <endpoint>/v1/traces and /v1/metrics', async () => {
  const received: { path: string; type: string; body: Buffer }[] = [];
  const collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  try {
    const port = (collector.address() as { port: number }).port;
    const config = loadConfig({
      env: {},
      overrides: { telemetry: { serviceName: 'mmad-otlp-check', otlp: { endpoint: `http://127.0.0.1:${port}/`, metricIntervalMs: 60_000 } } },
    });
    const telemetry = await Telemetry.start(config, { logger: quietLogger, server: false });
    assert.equal(telemetry.port, undefined, 'no operations server was asked for');
    assert.ok(telemetry.tracer !== null, 'an OTLP endpoint gives a tracer');
    telemetry.tracer.startSpan('send rgb frame', { kind: SpanKind.PRODUCER }).end();
    telemetry.processorOptions().onDelivery({ topic: config.topics.inputs.rgb, partition: 0, records: 3, lag: 0 });
    await telemetry.shutdown(); // flushes both
    const traces = received.filter((r) => r.path === '/v1/traces');
    const metrics = received.filter((r) => r.path === '/v1/metrics');
    assert.equal(traces.length, 1, `requests: ${received.map((r) => r.path).join(', ')}`);
    assert.ok(metrics.length >= 1);
    // OTLP/HTTP with JSON bodies (what an OpenTelemetry collector's otlp receiver takes on :4318)
    for (const r of [...traces, ...metrics]) assert.equal(r.type, 'application/json');
    type Resource = { resource: { attributes: { key: string; value: { stringValue?: string } }[] } };
    const serviceOf = (r: Resource): string | undefined => r.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
    const t = JSON.parse(at(traces, 0).body.toString()) as { resourceSpans: (Resource & { scopeSpans: { spans: { name: string; kind: number }[] }[] })[] };
    assert.equal(serviceOf(at(t.resourceSpans, 0)), 'mmad-otlp-check');
    assert.deepEqual(at(t.resourceSpans, 0).scopeSpans.flatMap((s) => s.spans.map((x) => x.name)), ['send rgb frame']);
    const names = metrics.flatMap((m) => {
      const body = JSON.parse(m.body.toString()) as { resourceMetrics: (Resource & { scopeMetrics: { metrics: { name: string }[] }[] })[] };
      assert.equal(serviceOf(at(body.resourceMetrics, 0)), 'mmad-otlp-check');
      return body.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.map((x) => x.name)));
    });
    assert.ok(names.includes('mmad_frames_read'), `metrics sent: ${names.join(', ')}`);
  } finally {
    collector.close();
  }
});

const bin = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'mmad.mjs');
const config = testConfig();
const kafka = testKafka(config);
const admin = kafka.admin();
await admin.connect();
const plans = planTopics(config);
await ensureTopics(admin, plans);
after(async () => {
  await deleteTopics(admin, plans.map((p) => p.name));
  await admin.disconnect();
});

test('mmad run serves /healthz, /readyz (ready once it has its tasks) and /metrics on telemetry.prometheus.port', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const env = { ...process.env, MMAD_LOG_LEVEL: 'warn', ...serviceEnv(config), MMAD_TELEMETRY__PROMETHEUS__PORT: String(port), MMAD_TELEMETRY__PROMETHEUS__HOST: '127.0.0.1' };
  const child = spawn(process.execPath, [bin, 'run', '--manifest', TEST_MANIFEST], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const base = `http://127.0.0.1:${port}`;
  try {
    await until('/healthz', async () => (await get(`${base}/healthz`).catch(() => ({ status: 0 }))).status === 200, 60_000, { everyMs: 200 });
    const statuses: number[] = [];
    await until(
      '/readyz to say ready',
      async () => {
        statuses.push((await get(`${base}/readyz`)).status);
        return statuses.at(-1) === 200;
      },
      60_000,
      { everyMs: 50 },
    );
    // the server is up before the models and the consumer: the first answers say not ready
    assert.equal(statuses[0], 503, `readiness answers: ${statuses.join(',')}`);
    const ready = JSON.parse((await get(`${base}/readyz`)).body) as { checks: Record<string, { ok: boolean; detail: string }> };
    assert.match(present(ready.checks.consumer, 'the consumer check').detail, /tasks 0,1,2/);
    const metrics = await get(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^mmad_tasks\{state="running",service_name="mmad"\} 3$/m);
    assert.match(metrics.body, /^mmad_inference_runs_total\{model="test-rgb-ir",service_name="mmad"\} 0$/m);
    assert.match(metrics.body, /^target_info\{.*service_name="mmad".*\} 1$/m);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, err);
  await assert.rejects(get(`${base}/healthz`), 'the server is closed when the process stops');
});
