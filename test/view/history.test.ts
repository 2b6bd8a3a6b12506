/**
 * The web view's search and history on the real broker: a view that keeps only
 * two parts, so the older ones are found by reading the events topic back
 * (offsets for times); by sample id, by time range, NOK only; the bound on the
 * results; a found part's page (JSON, frames, and in headless Chromium from the
 * search page); a range whose records have left the topic.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { js, launchChromium } from '../helpers/browser.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { startLineView } from '../../src/view/line-view.js';
import { makeFrame } from '../helpers/frames.js';
import { quietLogger } from '../helpers/kafka.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';
import { until } from '../helpers/wait.js';

const config = processorTestConfig(() => ({
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1500 }, ir: { policy: 'optional', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 60_000 } }, idleAdvanceMs: 300 },
}));
const { processor, send, admin } = await serviceUnderTest(config);
const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');

await processor.start();
const view = await startLineView(config, { host: '127.0.0.1', port: 0, logger: quietLogger, history: 100, limits: { maxParts: 2 }, search: { maxResults: 3 } });
after(() => view.close());
const base = view.url.replace(/\/$/, '');

interface Hit {
  sampleId: string;
  firstAt: number;
  verdict: string;
  inMemory: boolean;
  href: string;
}
interface Result {
  hits: Hit[];
  truncated: boolean;
  source: string;
  scanned: number;
  maxResults: number;
  notices: string[];
}

async function search(params: Record<string, string | number>): Promise<Result> {
  const res = await fetch(`${base}/api/search?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString()}`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Result;
}

// six parts, the odd ones NOK (a bright square), each with rgb and ir; the view keeps the last two
const IDS = ['S-1', 'S-2', 'S-3', 'S-4', 'S-5', 'S-6'];
const NOK = new Set(['S-1', 'S-3', 'S-5']);
const t0 = Date.now();
for (const [i, id] of IDS.entries()) {
  const extra = NOK.has(id) ? { square: [20, 10, 16] as [number, number, number] } : {};
  await send('rgb', id, frames.encode(await makeFrame(id, 'rgb', { captureTime: t0 + i * 10, size: 64, ...extra })));
  await send('ir', id, frames.encode(await makeFrame(id, 'ir', { captureTime: t0 + i * 10 + 1, size: 64 })));
}
await until(`the view to take ${IDS.length} events`, () => view.store.taken.events >= IDS.length, 60_000, { everyMs: 50, detail: () => `it took ${view.store.taken.events}` });
const t1 = Date.now() + 1;
// the events come in the order the joins close, not that of sending: which parts are forgotten is read from the store
const kept = IDS.filter((id) => view.store.part(id) !== undefined);
const forgottenNok = IDS.find((id) => NOK.has(id) && !kept.includes(id)) ?? 'none';
const forgottenOk = IDS.find((id) => !NOK.has(id) && !kept.includes(id)) ?? 'none';
const keptId = kept[0] ?? 'none';

test('the store keeps two parts: a forgotten part\'s page says so without a window', async () => {
  assert.equal(kept.length, 2);
  // three NOK and three OK parts, two kept: at least one of each is forgotten
  assert.ok(forgottenNok !== 'none' && forgottenOk !== 'none');
  const res = await fetch(`${base}/api/parts/${forgottenNok}`);
  assert.equal(res.status, 404);
  assert.match(await res.text(), /search for it/);
});

test('by sample id: a forgotten part is read back from the events topic, and its page opens from the link', async () => {
  const r = await search({ sampleId: forgottenNok });
  assert.equal(r.source, 'topic');
  assert.ok(r.scanned >= 1);
  assert.deepEqual(
    r.hits.map((h) => [h.sampleId, h.verdict, h.inMemory]),
    [[forgottenNok, 'NOK', false]],
  );
  const href = r.hits[0]?.href ?? '';
  assert.match(href, new RegExp(`^/parts/${forgottenNok}\\?from=\\d+&to=\\d+$`));
  const api = `${base}/api${href.replace('?', '/revisions/1/frames/rgb.png?')}`;
  const part = (await (await fetch(`${base}/api${href}`)).json()) as { sampleId: string; revisions: { revision: number; verdict: string; regions: unknown[] }[] };
  assert.equal(part.sampleId, forgottenNok);
  assert.deepEqual(
    part.revisions.map((x) => [x.revision, x.verdict]),
    [[1, 'NOK']],
  );
  assert.ok((part.revisions[0]?.regions.length ?? 0) >= 1);
  const png = await fetch(api);
  assert.equal(png.status, 200, await png.clone().text());
  assert.equal(png.headers.get('content-type'), 'image/png');
  // a part still in memory is answered from memory
  const mem = await search({ sampleId: keptId });
  assert.deepEqual([mem.source, mem.hits.map((h) => [h.sampleId, h.inMemory])], ['memory', [[keptId, true]]]);
  // an id never seen: nothing, and NOK only filters an OK part out
  assert.deepEqual((await search({ sampleId: 'S-none' })).hits, []);
  assert.deepEqual((await search({ sampleId: forgottenOk, nok: 1 })).hits, []);
  assert.deepEqual(
    (await search({ sampleId: forgottenOk })).hits.map((h) => [h.sampleId, h.verdict]),
    [[forgottenOk, 'OK']],
  );
});

test('by time range: oldest first, at most maxResults parts, the rest said; NOK only', async () => {
  const all = await search({ from: t0, to: t1 });
  assert.equal(all.maxResults, 3);
  assert.equal(all.hits.length, 3, 'six parts in the range, three returned');
  assert.equal(new Set(all.hits.map((h) => h.sampleId)).size, 3);
  assert.ok(all.hits.every((h) => IDS.includes(h.sampleId)));
  const firsts = all.hits.map((h) => h.firstAt);
  assert.deepEqual(firsts, [...firsts].sort((a, b) => a - b), 'oldest first');
  assert.equal(all.truncated, true);
  // the three returned are those whose first event is oldest (ties by sample id)
  const firstOf = new Map<string, number>();
  for (const id of IDS) firstOf.set(id, (await search({ sampleId: id, from: t0, to: t1 })).hits[0]?.firstAt ?? NaN);
  const oldest = [...IDS].sort((x, y) => (firstOf.get(x) ?? 0) - (firstOf.get(y) ?? 0) || (x < y ? -1 : 1)).slice(0, 3);
  assert.deepEqual(
    all.hits.map((h) => h.sampleId),
    oldest,
  );
  assert.deepEqual(
    all.hits.map((h) => h.inMemory),
    all.hits.map((h) => kept.includes(h.sampleId)),
  );
  assert.ok(all.scanned >= IDS.length);
  const nok = await search({ from: t0, to: t1, nok: 1 });
  assert.deepEqual(nok.hits.map((h) => [h.sampleId, h.verdict]).sort(), [
    ['S-1', 'NOK'],
    ['S-3', 'NOK'],
    ['S-5', 'NOK'],
  ]);
  assert.equal(nok.truncated, false);
  assert.deepEqual((await search({ from: t1, to: t1 + 60_000 })).hits, [], 'a range after every event finds nothing');
  assert.deepEqual((await search({ from: t0 - 60_000, to: t0 })).hits, [], 'and one before every event');
  const found = (await search({ sampleId: forgottenOk, from: t0, to: t1 })).hits.find((h) => h.sampleId === forgottenOk);
  assert.ok(found !== undefined && !found.inMemory);
  assert.equal((await fetch(`${base}/api${found.href}`)).status, 200);
  assert.equal((await fetch(`${base}/api/search?from=yesterday`)).status, 400);
  assert.equal((await fetch(`${base}/api/search`)).status, 400);
  const page = await (await fetch(`${base}/search`)).text();
  assert.match(page, /at most\s+3 parts per query/);
});



test('in Chromium: the search form finds a forgotten NOK part and its link opens the part page with its frame', { timeout: 120_000 }, async () => {
  const browser = await launchChromium();
  after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/search`);
  await page.type('#q-sample', forgottenNok);
  await page.click('#q-nok');
  await page.click('#q-go');
  await page.waitForSelector('#summary[data-state="done"]', { timeout: 30_000 });
  const rows = await js(page, `[...document.querySelectorAll('#results tbody tr')].map((tr) => [tr.dataset.sampleId, tr.dataset.verdict])`);
  assert.deepEqual(rows, [[forgottenNok, 'NOK']]);
  assert.equal(await js(page, 'location.search'), `?sampleId=${forgottenNok}&nok=1`);
  await Promise.all([page.waitForNavigation(), page.click('#results a.part-link')]);
  await page.waitForSelector('.verdict-banner[data-verdict="NOK"]', { timeout: 30_000 });
  await page.waitForSelector('figure[data-modality="rgb"].loaded', { timeout: 30_000 });
  const boxes = await js(page, `document.querySelectorAll('figure[data-modality="rgb"] svg rect.region').length`);
  assert.ok(Number(boxes) >= 1);
  assert.deepEqual(errors, []);
});

test('a range whose events have left the topic says so', async () => {
  for (const o of await admin.fetchTopicOffsets(config.topics.events)) {
    await admin.deleteTopicRecords({ topic: config.topics.events, partitions: [{ partition: o.partition, offset: o.high }] });
  }
  const r = await search({ from: t0, to: t1 });
  assert.deepEqual(r.hits, []);
  assert.ok(
    r.notices.some((n) => /left the topic's retention/.test(n)),
    r.notices.join('; '),
  );
});
