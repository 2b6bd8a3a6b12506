/**
 * The web view's diff page on the real broker: a replay's output (a `replay
 * --out` file) in which one part's verdict changed, one part's model changed,
 * one part was not judged live and one live part was not replayed, compared with the live events topic; the
 * changed part is listed with both verdicts and links to its live page, the
 * others are counted and not listed; a compare file that cannot be read fails
 * the start with the reason; the page in headless Chromium.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { js, launchChromium } from '../helpers/browser.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { lastRevisions } from '../../src/replay/diff.js';
import { readEventTopic, type EventSummary } from '../../src/replay/event-summary.js';
import { startLineView } from '../../src/view/line-view.js';
import { makeFrame } from '../helpers/frames.js';
import { consumeAll, quietLogger, testKafka } from '../helpers/kafka.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';
import { until } from '../helpers/wait.js';

const config = processorTestConfig(() => ({
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1500 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 60_000 } }, idleAdvanceMs: 300 },
}));
const { processor, send, admin, producer } = await serviceUnderTest(config);
const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
const dir = mkdtempSync(join(tmpdir(), 'mmad-view-diff-'));
after(() => rmSync(dir, { recursive: true, force: true }));

await processor.start();
// four parts, D-1 NOK (a bright square), the others OK
const IDS = ['D-1', 'D-2', 'D-3', 'D-4'];
const t0 = Date.now();
for (const [i, id] of IDS.entries()) {
  const extra = id === 'D-1' ? { square: [20, 10, 16] as [number, number, number] } : {};
  await send('rgb', id, frames.encode(await makeFrame(id, 'rgb', { captureTime: t0 + i * 10, size: 64, ...extra })));
  await send('ir', id, frames.encode(await makeFrame(id, 'ir', { captureTime: t0 + i * 10 + 1, size: 64 })));
}
const codec = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');
const kafka = testKafka(config);
let live = new Map<string, EventSummary>();
await until(
  `the live run to judge ${IDS.length} parts`,
  async () => (live = lastRevisions(await readEventTopic(kafka, config, config.topics.events, codec))).size >= IDS.length,
  60_000,
  { everyMs: 200, detail: () => `it judged ${live.size}` },
);
const liveOf = (id: string): EventSummary => {
  const e = live.get(id);
  if (e === undefined) throw new Error(`no live event of ${id}`);
  return e;
};
assert.equal(liveOf('D-1').verdict, 'NOK');
assert.equal(liveOf('D-2').verdict, 'OK');

// the replay: D-1 the same, D-2's verdict changed, D-3 judged by another model (same verdict), D-9 judged only by
// the replay; D-4 it did not cover, so the live D-4 is not compared
const replay: EventSummary[] = [
  liveOf('D-1'),
  { ...liveOf('D-2'), verdict: 'NOK', score: (liveOf('D-2').threshold ?? 1) * 3 },
  { ...liveOf('D-3'), model: 'other-student@2' },
  { ...liveOf('D-4'), sampleId: 'D-9' },
];
const file = join(dir, 'replay.jsonl');
writeFileSync(file, replay.map((e) => JSON.stringify(e)).join('\n') + '\n');

const view = await startLineView(config, { host: '127.0.0.1', port: 0, logger: quietLogger, history: 100, compare: { file } });
after(() => view.close());
const base = view.url.replace(/\/$/, '');

interface Side {
  verdict: string;
  score: number | null;
  model: string | null;
}
interface Diff {
  counts: Record<string, number | null>;
  transitions: { live: string; replay: string; parts: number }[];
  changed: { sampleId: string; live: Side; replay: Side; href: string }[];
  onlyReplay: string[];
  live: { scanned: number; maxScanned: number; complete: boolean };
  notices: string[];
}

test('/api/diff: the part whose verdict changed is listed with both sides, the others are counted', async () => {
  const res = await fetch(`${base}/api/diff`);
  assert.equal(res.status, 200, await res.clone().text());
  const d = (await res.json()) as Diff;
  assert.deepEqual(
    { ...d.counts, meanAbsScoreDelta: null },
    { partsLive: 3, partsReplay: 4, both: 3, onlyLive: 0, onlyReplay: 1, identical: 1, sameVerdictDifferent: 1, changed: 1, meanAbsScoreDelta: null },
  );
  assert.ok((d.counts.meanAbsScoreDelta ?? 0) > 0);
  assert.deepEqual(
    d.changed.map((c) => [c.sampleId, c.live.verdict, c.replay.verdict, c.live.score, c.replay.score, c.live.model, c.replay.model]),
    [['D-2', 'OK', 'NOK', liveOf('D-2').score, replay[1]?.score, liveOf('D-2').model, liveOf('D-2').model]],
  );
  assert.deepEqual(d.onlyReplay, ['D-9']);
  assert.deepEqual(
    d.transitions.map((t) => `${t.live}>${t.replay}:${t.parts}`).sort(),
    ['NOK>NOK:1', 'OK>NOK:1', 'OK>OK:1'],
  );
  assert.equal(d.live.complete, true);
  assert.equal(d.live.maxScanned, 20_000);
  // D-4's live event is read (same topic, same time) but not compared
  assert.ok(d.live.scanned >= IDS.length);
  assert.ok(d.notices.some((n) => /1 replayed part/.test(n)), d.notices.join('; '));
  // the link opens the live part
  const href = d.changed[0]?.href ?? '';
  assert.match(href, /^\/parts\/D-2\?from=\d+&to=\d+$/);
  const part = (await (await fetch(`${base}/api${href}`)).json()) as { sampleId: string; revisions: { verdict: string }[] };
  assert.deepEqual([part.sampleId, part.revisions.map((r) => r.verdict)], ['D-2', ['OK']]);
});

test('/diff is linked from the live page, served with the CSP, and states its bound; a view without a replay has none', async () => {
  const page = await fetch(`${base}/diff`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const html = await page.text();
  assert.match(html, /at most 20000 events/);
  assert.ok(html.includes(file), 'names the compare file');
  assert.doesNotMatch(html, /https?:\/\//, 'no external asset');
  assert.match(await (await fetch(`${base}/`)).text(), /<a href="\/diff" id="diff-link">/);
  const plain = await startLineView(config, { host: '127.0.0.1', port: 0, logger: quietLogger, history: 0 });
  try {
    const url = plain.url.replace(/\/$/, '');
    assert.doesNotMatch(await (await fetch(`${url}/`)).text(), /diff-link/);
    const none = await fetch(`${url}/api/diff`);
    assert.equal(none.status, 404);
    assert.match(await none.text(), /--compare FILE/);
  } finally {
    await plain.close();
  }
});

test('a compare file that cannot be read fails the start with the reason', async () => {
  const write = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const start = (compare: { file?: string; topic?: string }): Promise<unknown> => startLineView(config, { host: '127.0.0.1', port: 0, logger: quietLogger, compare });
  await assert.rejects(start({ file: join(dir, 'missing.jsonl') }), /--compare .*missing\.jsonl: .*no such file/i);
  await assert.rejects(start({ file: write('garbage.jsonl', '{"sampleId": "D-1"\n') }), /--compare .*garbage\.jsonl: .*:1 is not a JSON line/);
  await assert.rejects(start({ file: write('shape.jsonl', `${JSON.stringify(liveOf('D-1'))}\n${JSON.stringify({ ...liveOf('D-2'), verdict: 3 })}\n`) }), /shape\.jsonl: event 2 is not an event summary .*verdict should be a string/);
  await assert.rejects(start({ file: write('array.jsonl', '[1, 2]\n') }), /event 1 is not an event summary/);
  await assert.rejects(start({ file: write('empty.jsonl', '\n') }), /empty\.jsonl: holds no events/);
  await assert.rejects(start({ topic: `${config.topics.events}.no-such-replay` }), /--compare-topic .*no-such-replay: .*does not exist/);
  await assert.rejects(start({ topic: config.topics.events }), /is the live events topic/);
  await assert.rejects(start({ file, topic: 'x' }), /not both/);
});

test('--compare-topic: a replay topic holding the live events again (the same models) has no change', async () => {
  const topic = `${config.topics.events}.replay-same`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  after(() => admin.deleteTopics({ topics: [topic] }).catch(() => undefined));
  const records = await consumeAll(kafka, config, config.topics.events);
  assert.ok(records.length >= IDS.length);
  await producer.send({ topic, messages: records.map((r) => ({ key: r.key, value: r.value })) });
  const same = await startLineView(config, { host: '127.0.0.1', port: 0, logger: quietLogger, history: 0, compare: { topic } });
  try {
    assert.equal(same.comparison?.source, `topic ${topic}`);
    const d = (await (await fetch(`${same.url}api/diff`)).json()) as Diff;
    assert.deepEqual(
      [d.counts.partsLive, d.counts.partsReplay, d.counts.both, d.counts.identical, d.counts.changed, d.counts.onlyReplay, d.changed],
      [IDS.length, IDS.length, IDS.length, IDS.length, 0, 0, []],
    );
  } finally {
    await same.close();
  }
});



test('in Chromium: from the live page to the diff, the changed part side by side, its link to the live part', { timeout: 120_000 }, async () => {
  const browser = await launchChromium();
  after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // every request the pages make succeeds (the browser's own favicon request aside)
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(`${base}/`);
  await Promise.all([page.waitForNavigation(), page.click('#diff-link')]);
  await page.waitForSelector('#counts[data-state="done"]', { timeout: 30_000 });
  assert.equal(await js(page, `document.querySelector('[data-testid="decisions"]').textContent`), 'same decision: 1; same verdict, other score/model/modalities: 1; verdict changed: 1');
  const rows = (await js(page, `[...document.querySelectorAll('#changed tbody tr')].map((tr) => [tr.dataset.sampleId, ...[...tr.cells].map((td) => td.textContent)])`)) as string[][];
  const d2 = liveOf('D-2');
  const rev = `${d2.revision}${d2.final ? '' : ' (provisional)'}`;
  // sample; live verdict, score / threshold, model, revision; the same for the replay
  assert.deepEqual(
    rows.map((r) => [r[0], r[1], r[2], r[4], r[5], r[6], r[8], r[9]]),
    [['D-2', 'D-2', 'OK', d2.model, rev, 'NOK', d2.model, rev]],
  );
  const [liveScore, replayScore] = [rows[0]?.[3] ?? '', rows[0]?.[7] ?? ''];
  assert.match(liveScore, /^\d.* \/ \d/);
  assert.match(replayScore, /^\d.* \/ \d/);
  assert.notEqual(liveScore, replayScore);
  const matrix = await js(page, `[...document.querySelectorAll('#transitions tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent))`);
  assert.deepEqual(matrix, [
    ['NOK', '1', '0'],
    ['OK', '1', '1'],
  ]);
  await Promise.all([page.waitForNavigation(), page.click('#changed a.part-link')]);
  await page.waitForSelector('.verdict-banner[data-verdict="OK"]', { timeout: 30_000 });
  assert.match(String(await js(page, 'location.pathname')), /^\/parts\/D-2$/);
  assert.deepEqual(errors, []);
});
