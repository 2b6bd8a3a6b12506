import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at } from '../../src/base/invariant.js';
import { Slots } from '../../src/inference/slots.js';

test('at most `size` holders; the others get a slot in the order they asked, as holders release', async () => {
  const slots = new Slots(2);
  const order: number[] = [];
  const a = await slots.acquire();
  const b = await slots.acquire();
  assert.equal(slots.inUse, 2);
  const waiting = [3, 4, 5].map((id) => slots.acquire().then((free) => (order.push(id), free)));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'nobody past the size');
  b();
  b(); // a second release of the same slot changes nothing
  const c = await at(waiting, 0);
  assert.deepEqual(order, [3]);
  assert.equal(slots.inUse, 2);
  a();
  c();
  const [d, e] = await Promise.all([at(waiting, 1), at(waiting, 2)]);
  assert.deepEqual(order, [3, 4, 5]);
  d();
  e();
  assert.equal(slots.inUse, 0);
  assert.throws(() => new Slots(0), /at least 1/);
});
