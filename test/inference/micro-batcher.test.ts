/**
 * When batches form. The model is a stand-in session whose runs end when the
 * test says so (the real sessions are run in models.test.ts and
 * shipped-models.test.ts), and time is a manual timer the test advances; what
 * is checked is the scheduling: a batch is formed when the session is free,
 * from everything queued, up to the maximum.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, present } from '../../src/base/invariant.js';
import { MicroBatcher, type BatchTimer } from '../../src/inference/micro-batcher.js';
import { loadManifest } from '../../src/inference/model-manifest.js';
import type { FloatTensor, ModelSession, RunResult } from '../../src/inference/session-host.js';
import { TEST_MANIFEST } from '../helpers/models.js';

const spec = present(loadManifest(TEST_MANIFEST).models.find((m) => m.id === 'test-rgb'), 'model test-rgb');
const PLANE = spec.height * spec.width;

/** A session whose runs wait for `finish()`; each run's batch is recorded by the first pixel of each sample. */
function heldSession(): { session: ModelSession; batches: number[][]; finish: () => void } {
  const batches: number[][] = [];
  const waiting: (() => void)[] = [];
  const session = {
    run: (feeds: Record<string, FloatTensor>): Promise<RunResult> => {
      const { data, dims } = present(feeds.rgb, 'the rgb input');
      const n = at(dims, 0);
      const ids = Array.from({ length: n }, (_, i) => at(data, i * 3 * PLANE));
      batches.push(ids);
      return new Promise((resolve) =>
        waiting.push(() => resolve({ ms: 1, outputs: { anomaly_map: { data: new Float32Array(n * PLANE), dims: [n, 1, spec.height, spec.width] }, score: { data: Float32Array.from(ids), dims: [n] } } })),
      );
    },
  } as unknown as ModelSession;
  return { session, batches, finish: () => present(waiting.shift(), 'a run waiting to finish')() };
}

/** Time that moves only when the test advances it; due callbacks fire in order. */
function manualTimer(): BatchTimer & { advance: (ms: number) => void; pending: () => number } {
  let now = 0;
  let waits: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const w = { at: now + ms, fn };
      waits.push(w);
      return w;
    },
    clearTimeout: (handle) => {
      waits = waits.filter((w) => w !== handle);
    },
    advance: (ms) => {
      now += ms;
      for (let due = waits.filter((w) => w.at <= now); due.length > 0; due = waits.filter((w) => w.at <= now)) {
        waits = waits.filter((w) => !due.includes(w));
        due.sort((a, b) => a.at - b.at).forEach((w) => w.fn());
      }
    },
    pending: () => waits.length,
  };
}

const sample = (id: number): { rgb: Float32Array } => ({ rgb: new Float32Array(3 * PLANE).fill(id) });
/** Lets the batcher's promise callbacks run until `cond` holds; fails after 2 s of real time. */
const until = async (cond: () => boolean, what: string): Promise<void> => {
  const deadline = performance.now() + 2000;
  while (!cond()) {
    if (performance.now() > deadline) assert.fail(`still waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
};

/** A batcher on a held session, timed by a manual timer. */
function heldBatcher(options: { maxBatchSize: number; maxWaitMs: number }) {
  const held = heldSession();
  const timer = manualTimer();
  return { ...held, timer, b: new MicroBatcher(spec, held.session, { ...options, timer }) };
}

test('what arrives during a run goes whole into the next batch (up to the maximum), not into a queue of small batches', async () => {
  const { batches, finish, timer, b } = heldBatcher({ maxBatchSize: 4, maxWaitMs: 5 });
  const results = [b.submit(sample(1))];
  timer.advance(4);
  assert.deepEqual(batches, [], 'a lone sample on an idle model waits for company');
  timer.advance(1);
  assert.deepEqual(batches, [[1]], 'and goes after maxWaitMs');
  for (let id = 2; id <= 7; id++) {
    results.push(b.submit(sample(id)));
    timer.advance(8); // each waits longer than maxWaitMs, while the run is held
  }
  assert.deepEqual(batches, [[1]], 'nothing else runs while the session is busy');
  assert.equal(timer.pending(), 0, 'and no wait is set while it is');
  finish();
  await until(() => batches.length === 2, 'the second batch');
  assert.deepEqual(batches[1], [2, 3, 4, 5], 'the next batch is full, in arrival order');
  finish();
  await until(() => batches.length === 3, 'the third batch');
  assert.deepEqual(batches[2], [6, 7]);
  finish();
  const scores = (await Promise.all(results)).map((r) => [r.score, r.batchSize]);
  assert.deepEqual(scores, [[1, 1], [2, 4], [3, 4], [4, 4], [5, 4], [6, 2], [7, 2]], 'each sample gets its own result');
  assert.deepEqual(b.stats, { runs: 3, samples: 7 });
});

test('on an idle model a full batch goes at once; a partial one waits maxWaitMs; drain() runs what is left', async () => {
  const { batches, finish, timer, b } = heldBatcher({ maxBatchSize: 2, maxWaitMs: 60_000 });
  const full = [b.submit(sample(1)), b.submit(sample(2))];
  assert.deepEqual(batches, [[1, 2]], 'full: no wait');
  finish();
  await Promise.all(full);
  const lone = b.submit(sample(3));
  timer.advance(59_999);
  assert.equal(batches.length, 1, 'a partial batch waits for company (here: a minute)');
  const drained = b.drain();
  await until(() => batches.length === 2, 'the drained batch');
  assert.equal(timer.pending(), 0, 'drain() cancelled the wait');
  finish();
  await drained;
  assert.equal((await lone).score, 3);
});

test('a partial batch whose wait ends goes without drain()', async () => {
  const { batches, finish, timer, b } = heldBatcher({ maxBatchSize: 8, maxWaitMs: 50 });
  const results = [b.submit(sample(1))];
  timer.advance(30);
  results.push(b.submit(sample(2))); // joins the wait of the first, which is measured from the oldest
  timer.advance(19);
  assert.deepEqual(batches, []);
  timer.advance(1);
  assert.deepEqual(batches, [[1, 2]]);
  finish();
  assert.deepEqual((await Promise.all(results)).map((r) => r.batchSize), [2, 2]);
});

test('an input that writes itself is written into its slot of the batch tensor, beside inputs given as arrays; a wrong length is refused at submit', async () => {
  const { batches, finish, timer, b } = heldBatcher({ maxBatchSize: 3, maxWaitMs: 5 });
  const writes: number[] = [];
  const writer = (id: number) => ({
    rgb: {
      length: 3 * PLANE,
      writeTo: (target: Float32Array, offset: number) => {
        writes.push(offset);
        target.fill(id, offset, offset + 3 * PLANE);
      },
    },
  });
  const results = [b.submit(sample(1)), b.submit(writer(2)), b.submit(writer(3))];
  timer.advance(0);
  assert.deepEqual(batches, [[1, 2, 3]]);
  assert.deepEqual(writes, [3 * PLANE, 6 * PLANE], 'each writer wrote at its own slot, once the batch formed');
  finish();
  assert.deepEqual((await Promise.all(results)).map((r) => r.score), [1, 2, 3]);
  assert.throws(() => b.submit({ rgb: { length: PLANE, writeTo: () => undefined } }), /input rgb needs/);
});

test('a batch tensor handed back with the outputs is filled again by the next batch of its size; another size gets a new one', async () => {
  const seen: { data: Float32Array; ids: number[] }[] = [];
  const session = {
    // as SessionHost with transfer: the feeds come back with the outputs
    run: (feeds: Record<string, FloatTensor>, o?: { transfer?: boolean }): Promise<RunResult> => {
      const { data, dims } = present(feeds.rgb, 'the rgb input');
      const n = at(dims, 0);
      const ids = Array.from({ length: n }, (_, i) => at(data, i * 3 * PLANE));
      seen.push({ data, ids });
      const outputs = { anomaly_map: { data: new Float32Array(n * PLANE), dims: [n, 1, spec.height, spec.width] }, score: { data: Float32Array.from(ids), dims: [n] } };
      return Promise.resolve({ ms: 1, outputs, ...(o?.transfer === true ? { feeds } : {}) });
    },
  } as unknown as ModelSession;
  const b = new MicroBatcher(spec, session, { maxBatchSize: 2, maxWaitMs: 5, timer: manualTimer() });
  assert.deepEqual((await Promise.all([b.submit(sample(1)), b.submit(sample(2))])).map((r) => r.score), [1, 2]);
  assert.deepEqual((await Promise.all([b.submit(sample(3)), b.submit(sample(4))])).map((r) => r.score), [3, 4]);
  const lone = b.submit(sample(5));
  await b.drain();
  assert.equal((await lone).score, 5);
  assert.deepEqual(seen.map((s) => s.ids), [[1, 2], [3, 4], [5]], 'every slot written anew');
  assert.equal(at(seen, 1).data, at(seen, 0).data, 'the second batch of two filled the first one\'s tensor');
  assert.notEqual(at(seen, 2).data, at(seen, 1).data, 'a batch of one, a tensor of its own');
  assert.ok(at(seen, 1).data.every((v, i) => v === (i < 3 * PLANE ? 3 : 4)), 'no value of the first batch left');
});
