/**
 * The web view against a running line on the real broker: the stream processor
 * with the test students judges parts, the view reads its outputs and the input
 * frames back. Its HTTP and Server-Sent Events endpoints are checked with fetch,
 * and the pages in headless Chromium (puppeteer-core; Debian's chromium, which
 * scripts/bootstrap.sh installs): a NOK part with its heatmap and boxes, the
 * refined revision replacing the provisional one, a dead letter with its reason,
 * a frame no longer in its topic. Screenshots go to out/view/ (git-ignored).
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type Browser, type Page } from 'puppeteer-core';
import { js, launchChromium } from '../helpers/browser.js';
import sharp from 'sharp';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { fromRoot } from '../../src/config/paths.js';
import { partitionFor } from '../../src/kafka/partitioner.js';
import { startLineView } from '../../src/view/line-view.js';
import { makeFrame } from '../helpers/frames.js';
import { quietLogger } from '../helpers/kafka.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';

const config = processorTestConfig(() => ({
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1500 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 60_000 } }, idleAdvanceMs: 300 },
}));
const { processor, send, admin } = await serviceUnderTest(config);
const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
const SHOTS = fromRoot('out/view');
mkdirSync(SHOTS, { recursive: true });

await processor.start();
const view = await startLineView(config, { host: '127.0.0.1', port: 0, logger: quietLogger, history: 100, lagPollMs: 300, healthMs: 100 });
after(() => view.close());
const base = view.url.replace(/\/$/, '');

async function sendFrame(id: string, modality: 'rgb' | 'ir' | 'xyz', captureTime: number, square?: [number, number, number]): Promise<void> {
  await send(modality, id, frames.encode(await makeFrame(id, modality, { captureTime, size: 64, ...(square === undefined ? {} : { square }) })));
}

/** An SSE client: the events it has seen, and a wait for one that matches. */
async function sseClient(url: string): Promise<{ events: { event: string; data: unknown; at: number }[]; until: (pred: (e: { event: string; data: unknown }) => boolean, ms?: number) => Promise<{ at: number }>; close: () => void }> {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const events: { event: string; data: unknown; at: number }[] = [];
  const body = res.body;
  assert.ok(body !== null);
  const reader = body.getReader();
  const decoder = new TextDecoder();
  void (async () => {
    let buf = '';
    for (;;) {
      let chunk: Uint8Array | undefined;
      try {
        const r = (await reader.read()) as { value?: Uint8Array; done: boolean };
        if (r.done) return;
        chunk = r.value;
      } catch {
        return; // closed by the test
      }
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) as unknown, at: Date.now() });
      }
    }
  })();
  const until = async (pred: (e: { event: string; data: unknown }) => boolean, ms = 30_000): Promise<{ at: number }> => {
    const deadline = performance.now() + ms;
    for (;;) {
      const hit = events.find(pred);
      if (hit !== undefined) return hit;
      if (performance.now() > deadline) throw new Error(`no such event in ${ms} ms; saw ${events.map((e) => e.event).join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { events, until, close: () => abort.abort() };
}

interface HealthData {
  window: { parts: number; maxParts: number };
  coverage: { modality: string; used: number; missing: number }[];
  latency: { events: number; p50: number | null; p90: number | null; p99: number | null };
  lag: { state: string; groupId: string; total?: number; topics?: { topic: string; lag: number; uncommitted: number }[] } | null;
}

const isPart = (id: string, pred: (p: { revisions: { revision: number; verdict: string; final: boolean }[] }) => boolean = () => true) => (e: { event: string; data: unknown }): boolean =>
  e.event === 'part' && (e.data as { sampleId: string }).sampleId === id && pred(e.data as never);

test('HTTP and SSE: snapshot then each change; read only; part JSON; frames as PNG with the heatmap over them', { timeout: 120_000 }, async () => {
  const sse = await sseClient(`${base}/events`);
  await sse.until((e) => e.event === 'snapshot');
  const t0 = Date.now();
  await sendFrame('H-nok', 'rgb', t0, [20, 10, 16]);
  await sendFrame('H-nok', 'ir', t0 + 2);
  const got = await sse.until(isPart('H-nok'));
  const part = (sse.events.find(isPart('H-nok'))?.data ?? {}) as { revisions: { verdict: string; final: boolean; producedAt: number; endToEndMs: number; regions: unknown[]; modalitiesMissing: string[] }[] };
  const rev = part.revisions[0];
  assert.ok(rev !== undefined);
  assert.deepEqual([rev.verdict, rev.final, rev.modalitiesMissing], ['NOK', false, ['xyz']]);
  assert.ok(rev.regions.length >= 1);
  // how long from the service publishing the event to the page's stream carrying it (one machine, one clock)
  console.log(`view: event published → SSE delivered in ${got.at - rev.producedAt} ms (includes the ${config.processing.commitIntervalMs} ms commit interval)`);
  await sse.until((e) => e.event === 'alert' && (e.data as { sampleId: string }).sampleId === 'H-nok');
  const snapshot = sse.events.find((e) => e.event === 'snapshot')?.data as { health?: HealthData } | undefined;
  assert.ok(snapshot?.health !== undefined, 'the snapshot carries the health figures');

  // line health, pushed as `health` events: H-nok, the only part so far, was judged on rgb + ir
  // without xyz; the latencies are the event's own; the service's lag drains to 0
  const drained = (e: { event: string; data: unknown }): boolean => {
    const h = e.data as HealthData;
    // the service commits its input offsets only past frames its join no longer holds: H-nok's rgb and
    // ir stay held for xyz's 60 s late window, so its lag stays at those 2 records within this test
    return e.event === 'health' && h.window.parts >= 1 && h.lag?.state === 'ok' && (h.lag.total ?? 99) <= 2;
  };
  await sse.until(drained, 30_000).catch((err: unknown) => {
    const last = [...sse.events].reverse().find((e) => e.event === 'health')?.data;
    throw new Error(`${String(err).slice(0, 200)}; last health: ${JSON.stringify(last)}`);
  });
  const health = [...sse.events].reverse().find(drained)?.data as HealthData;
  assert.equal(health.window.maxParts, view.store.limits.maxParts);
  assert.deepEqual(health.coverage, [
    { modality: 'rgb', used: 1, missing: 0 },
    { modality: 'ir', used: 1, missing: 0 },
    { modality: 'xyz', used: 0, missing: 1 },
  ]);
  const { p50, p90, p99, events } = health.latency;
  assert.ok(events >= 1);
  assert.ok(p50 !== null && p90 !== null && p99 !== null);
  assert.ok(p50 >= 0 && p50 <= p90 && p90 <= p99 && p99 < 60_000, `plausible end-to-end latencies ${p50}/${p90}/${p99} ms`);
  assert.equal(p50, rev.endToEndMs, 'one event: every percentile is its end to end');
  const lag = health.lag;
  assert.ok(lag !== null);
  assert.equal(lag.groupId, config.input.groupId);
  assert.ok((lag.topics ?? []).every((t) => t.lag <= 1), 'at most the held frame per input topic');
  assert.deepEqual(
    lag.topics?.map((t) => [t.topic, t.lag]).sort(),
    Object.values(config.topics.inputs)
      .filter((t): t is string => t !== null)
      .map((t) => [t, t === config.topics.inputs.xyz ? 0 : (lag.topics?.find((x) => x.topic === t)?.lag ?? -1)])
      .sort(),
  );
  const stateHealth = ((await (await fetch(`${base}/api/state`)).json()) as { health: HealthData }).health;
  assert.equal(stateHealth.coverage.find((c) => c.modality === 'rgb')?.used, 1);

  const state = (await (await fetch(`${base}/api/state`)).json()) as { parts: { sampleId: string }[] };
  assert.ok(state.parts.some((p) => p.sampleId === 'H-nok'));
  const post = await fetch(`${base}/api/state`, { method: 'POST' });
  assert.equal(post.status, 405);
  const page = await fetch(`${base}/`);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const html = await page.text();
  assert.doesNotMatch(html, /https?:\/\//, 'no external asset');
  assert.equal((await fetch(`${base}/api/parts/nope`)).status, 404);
  assert.equal((await fetch(`${base}/static/../../package.json`)).status, 404);

  const overlaid = await fetch(`${base}/api/parts/H-nok/revisions/1/frames/rgb.png`);
  assert.equal(overlaid.status, 200);
  assert.equal(overlaid.headers.get('content-type'), 'image/png');
  assert.equal(overlaid.headers.get('x-frame-size'), '64x64');
  const plain = await fetch(`${base}/api/parts/H-nok/revisions/1/frames/rgb.png?overlay=0`);
  const a = await sharp(Buffer.from(await overlaid.arrayBuffer())).raw().toBuffer();
  const b = await sharp(Buffer.from(await plain.arrayBuffer())).raw().toBuffer();
  // the plain frame is the station's: grey 128 with the bright square
  assert.deepEqual([b[0], b[(15 * 64 + 25) * 3]], [128, 250]);
  const changed = (x: number, y: number): boolean => a[(y * 64 + x) * 3] !== b[(y * 64 + x) * 3] || a[(y * 64 + x) * 3 + 1] !== b[(y * 64 + x) * 3 + 1];
  assert.ok(changed(27, 17), 'the heatmap colours the defect');
  assert.ok(!changed(60, 60), 'and not the far corner');
  const ir = await fetch(`${base}/api/parts/H-nok/revisions/1/frames/ir.png`);
  assert.equal(ir.status, 200);
  assert.match(decodeURIComponent(ir.headers.get('x-frame-legend') ?? ''), /^ir 30000\.\.30000/);
  assert.equal((await fetch(`${base}/api/parts/H-nok/revisions/1/frames/xyz.png`)).status, 404, 'judged without xyz');
  assert.equal((await fetch(`${base}/api/parts/H-nok/revisions/1/heatmap.png`)).status, 200);
  sse.close();
});



async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

test('in Chromium: a NOK part with its heatmap and boxes, the refined revision replacing the provisional one, a dead letter and its reason, a frame gone', { timeout: 180_000 }, async () => {
  const browser: Browser = await launchChromium();
  after(() => browser.close());
  const live = await browser.newPage();
  await live.setViewport({ width: 1280, height: 800 });
  const errors: string[] = [];
  live.on('pageerror', (e) => errors.push(String(e)));
  await live.goto(`${base}/`);
  await live.waitForSelector('#connection[data-state="live"]');

  const t0 = Date.now();
  await sendFrame('B-ok', 'rgb', t0);
  await sendFrame('B-ok', 'ir', t0 + 1);
  await sendFrame('B-nok', 'rgb', t0 + 10, [20, 10, 16]);
  await sendFrame('B-nok', 'ir', t0 + 12);
  await send('rgb', 'B-garbage', Buffer.from('definitely not avro'));

  await live.waitForSelector('.card[data-sample-id="B-nok"][data-verdict="NOK"][data-state="provisional"]', { timeout: 30_000 });
  await live.waitForSelector('.card[data-sample-id="B-ok"][data-verdict="OK"]', { timeout: 30_000 });
  await live.waitForSelector('#dl-counts tr[data-reason="CODEC_BAD_MAGIC"]', { timeout: 30_000 });
  await live.waitForSelector('#alerts li[data-sample-id="B-nok"]', { timeout: 30_000 });
  await live.waitForSelector('#nok li[data-sample-id="B-nok"]');
  const dlCount = await js(live, `document.querySelector('#dl-counts tr[data-reason="CODEC_BAD_MAGIC"] td.num').textContent`);
  assert.ok(Number(dlCount) >= 1);
  // every part on this line has rgb; the service's lag is read (not 0: the join holds frames for xyz's late window)
  await live.waitForSelector('#coverage tr[data-modality="rgb"][data-used="1"]', { timeout: 10_000 });
  await live.waitForSelector('#latency tr[data-p50]', { timeout: 10_000 });
  await live.waitForSelector('#lag-summary[data-state="ok"][data-total]', { timeout: 30_000 });
  assert.match(String(await js(live, `document.getElementById('health-window').textContent`)), /last \d+ parts/);
  await shot(live, 'live');

  const partPage = await browser.newPage();
  await partPage.setViewport({ width: 1280, height: 900 });
  partPage.on('pageerror', (e) => errors.push(String(e)));
  await partPage.goto(`${base}/parts/B-nok`);
  await partPage.waitForSelector('.verdict-banner[data-verdict="NOK"][data-state="provisional"]');
  await partPage.waitForSelector('figure[data-modality="rgb"].loaded');
  await partPage.waitForSelector('figure[data-modality="ir"].loaded');
  const boxes = (await js(partPage, `[...document.querySelectorAll('figure[data-modality="rgb"] svg rect.region')].map((r) => ['x', 'y', 'width', 'height'].map((k) => Number(r.getAttribute(k))))`)) as number[][];
  assert.ok(boxes.length >= 1, 'region boxes drawn over the rgb frame');
  const [bx = -1, by = -1, bw = 0, bh = 0] = boxes[0] ?? [];
  assert.ok(bx <= 22 && by <= 12 && bx + bw >= 34 && by + bh >= 24, `the box ${String(boxes[0])} covers the square at 20,10 (16 px)`);
  const natural = await js(partPage, `(() => { const img = document.querySelector('figure[data-modality="rgb"] img'); return [img.naturalWidth, img.complete]; })()`);
  assert.deepEqual(natural, [64, true]);
  await shot(partPage, 'part-provisional');

  // the late xyz frame: revision 2, refined, replaces the provisional one on the open page
  await sendFrame('B-nok', 'xyz', t0 + 2_000);
  await partPage.waitForSelector('.verdict-banner[data-revision="2"][data-state="refined"]', { timeout: 30_000 });
  await partPage.waitForSelector('figure[data-modality="xyz"].loaded', { timeout: 30_000 });
  const rows = await js(partPage, `[...document.querySelectorAll('#revisions tbody tr')].map((tr) => [tr.dataset.revision, tr.dataset.state])`);
  assert.deepEqual(rows, [
    ['2', 'refined'],
    ['1', 'provisional'],
  ]);
  await live.waitForSelector('.card[data-sample-id="B-nok"][data-state="refined"]', { timeout: 10_000 });
  await shot(partPage, 'part-refined');
  await partPage.screenshot({ path: fromRoot('out/view/part-refined-frames.png'), clip: { x: 0, y: 0, width: 1100, height: 620 } });

  // a frame no longer in its topic: the records of B-gone's rgb partition are deleted
  await sendFrame('B-gone', 'rgb', t0 + 20);
  await sendFrame('B-gone', 'ir', t0 + 21);
  await live.waitForSelector('.card[data-sample-id="B-gone"]', { timeout: 30_000 });
  const p = partitionFor('B-gone', config.topics.partitions);
  const high = (await admin.fetchTopicOffsets(config.topics.inputs.rgb)).find((o) => o.partition === p)?.high ?? '0';
  await admin.deleteTopicRecords({ topic: config.topics.inputs.rgb, partitions: [{ partition: p, offset: high }] });
  await partPage.goto(`${base}/parts/B-gone`);
  await partPage.waitForSelector('figure[data-modality="rgb"].gone');
  const message = await js(partPage, `document.querySelector('figure[data-modality="rgb"] .frame-error').textContent`);
  assert.match(String(message), /no longer in the topic/);
  await partPage.waitForSelector('figure[data-modality="ir"].loaded');
  await shot(partPage, 'part-frame-gone');
  assert.deepEqual(errors, [], 'no script errors on the pages');
});
