import assert from 'node:assert/strict';
import test from 'node:test';
import { present } from '../../src/base/invariant.js';
import { MinHeap } from '../../src/base/min-heap.js';

interface Item {
  key: number;
  seq: number;
}

test('pops in the order of `less`, ties broken as it breaks them, for pushes and pops interleaved', () => {
  let seed = 7;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const less = (a: Item, b: Item): boolean => a.key < b.key || (a.key === b.key && a.seq < b.seq);
  const heap = new MinHeap<Item>(less);
  const model: Item[] = [];
  const popped: Item[] = [];
  const expected: Item[] = [];
  for (let seq = 0; seq < 2000; seq++) {
    const item = { key: rnd(50), seq };
    heap.push(item);
    model.push(item);
    if (rnd(3) === 0) {
      model.sort((a, b) => (less(a, b) ? -1 : 1));
      expected.push(present(model.shift(), 'the least item'));
      popped.push(present(heap.pop(), 'the least item'));
    }
  }
  assert.equal(heap.size, model.length);
  assert.deepEqual(heap.peek(), [...model].sort((a, b) => (less(a, b) ? -1 : 1))[0]);
  for (let item = heap.pop(); item !== undefined; item = heap.pop()) popped.push(item);
  expected.push(...model.sort((a, b) => (less(a, b) ? -1 : 1)));
  assert.deepEqual(popped, expected);
  assert.equal(heap.size, 0);
  assert.equal(heap.pop(), undefined, 'an empty heap pops nothing');
  assert.equal(heap.peek(), undefined);
});
