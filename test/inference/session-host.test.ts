/**
 * The inference thread: sessions run off the main thread (which keeps its
 * timers and I/O going during a run), a run's feeds can be transferred or
 * copied, and a thread that dies fails what was in flight and is replaced
 * with the sessions opened again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { SessionHost } from '../../src/inference/session-host.js';
import { quietLogger } from '../helpers/kafka.js';
import { TEST_MODELS_DIR } from '../helpers/models.js';

const host = new SessionHost(quietLogger);
after(() => host.close());
const rgb = await host.open(join(TEST_MODELS_DIR, 'test-rgb.onnx'), {});
/** A heavy run: the largest shipped student on a batch of 16 takes a good part of a second on a CPU. */
const heavy = await host.open(new URL('../../models/exported/mtfi-rgb-ir-xyz.onnx', import.meta.url).pathname, {});

function feedsFor(session: typeof heavy, batch: number): Record<string, { data: Float32Array; dims: number[] }> {
  return Object.fromEntries(
    session.inputMetadata.map((m) => {
      const shape = (m as unknown as { shape: (number | string)[] }).shape.map((d) => (typeof d === 'number' ? d : batch));
      return [m.name, { data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1), dims: shape }];
    }),
  );
}

test('the main thread keeps running while a model runs', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const t0 = performance.now();
  const { outputs, ms } = await heavy.run(feedsFor(heavy, 16), { transfer: true });
  const elapsed = performance.now() - t0;
  clearInterval(timer);
  assert.equal(outputs.score?.data.length, 16);
  assert.ok(ms > 0 && ms <= elapsed, `model time ${ms} ms within the round trip ${elapsed} ms`);
  // on the main thread the run would block: no timer could fire before it resolved
  assert.ok(ticks >= 5, `${ticks} timer ticks during a ${elapsed.toFixed(0)} ms run`);
});

test('feeds are copied unless transfer is asked for', async () => {
  const kept = { rgb: { data: new Float32Array(3 * 32 * 32).fill(128), dims: [1, 3, 32, 32] } };
  await rgb.run(kept);
  assert.equal(kept.rgb.data.length, 3 * 32 * 32, 'still usable after a copying run');
  const given = { rgb: { data: new Float32Array(3 * 32 * 32).fill(128), dims: [1, 3, 32, 32] } };
  const { outputs, feeds } = await rgb.run(given, { transfer: true });
  assert.equal(given.rgb.data.length, 0, 'transferred: detached here');
  assert.equal(outputs.anomaly_map?.dims.join('x'), '1x1x32x32');
  const back = feeds?.rgb;
  assert.ok(back !== undefined && back.data.length === 3 * 32 * 32 && back.data.every((v) => v === 128), 'handed back with the outputs, values unchanged');
  assert.deepEqual(back.dims, [1, 3, 32, 32]);
  const again = await rgb.run({ rgb: back }, { transfer: true });
  assert.equal(again.outputs.score?.data[0], outputs.score?.data[0], 'and runs again: the same score');
  assert.equal((await rgb.run(kept)).feeds, undefined, 'a copying run hands nothing back');
});

test('a bad feed fails that run with INFERENCE_FAILED and the reason; the session goes on', async () => {
  await assert.rejects(rgb.run({ rgb: { data: new Float32Array(5), dims: [1, 3, 32, 32] } }), (e: unknown) => e instanceof MmadError && e.code === ErrorCode.INFERENCE_FAILED);
  const { outputs } = await rgb.run({ rgb: { data: new Float32Array(3 * 32 * 32), dims: [1, 3, 32, 32] } });
  assert.equal(outputs.score?.data.length, 1);
});

test('a thread that dies is replaced by the next run, with the sessions open again under the same numbers', async () => {
  // (ended between runs: onnxruntime-node aborts the process if its thread is ended inside a run, so close() waits for runs)
  await (host as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  await new Promise((r) => setImmediate(r));
  assert.equal(host.restarts, 1);
  const again = await rgb.run({ rgb: { data: new Float32Array(3 * 32 * 32).fill(128), dims: [1, 3, 32, 32] } });
  assert.equal(again.outputs.score?.data.length, 1);
  const h = await heavy.run(feedsFor(heavy, 1));
  assert.equal(h.outputs.score?.data.length, 1);
});

test('close() waits for the runs in flight, then ends the thread', async () => {
  const other = new SessionHost(quietLogger);
  const s = await other.open(new URL('../../models/exported/mtfi-rgb-ir-xyz.onnx', import.meta.url).pathname, {});
  const running = s.run(feedsFor(s, 8));
  await other.close();
  assert.equal((await running).outputs.score?.data.length, 8, 'the run in flight finished');
  await assert.rejects(s.run(feedsFor(s, 1)), /inference thread is closed/);
});

test('a closed host refuses runs with a clear error', async () => {
  const other = new SessionHost(quietLogger);
  const s = await other.open(join(TEST_MODELS_DIR, 'test-rgb.onnx'), {});
  await other.close();
  await assert.rejects(s.run({ rgb: { data: new Float32Array(3 * 32 * 32), dims: [1, 3, 32, 32] } }), /inference thread is closed/);
});
