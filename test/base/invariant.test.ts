import assert from 'node:assert/strict';
import test from 'node:test';
import { at, outOfRange, present } from '../../src/base/invariant.js';

test('at() reads an item that is there, and throws a RangeError naming the index and the length where there is none', () => {
  assert.equal(at(['a', 'b'], 1), 'b');
  assert.equal(at(new Float32Array([0, 2.5]), 1), 2.5);
  assert.equal(at([0], 0), 0, 'a falsy item is an item');
  assert.throws(() => at(['a', 'b'], 2), { name: 'RangeError', message: 'index 2 is outside a list of 2' });
  assert.throws(() => at(new Uint8Array(3), -1), /index -1 is outside a list of 3/);
});

test('outOfRange() is the same error, for reads written in a loop', () => {
  const list = new Float32Array(4);
  assert.throws(() => list[7] ?? outOfRange(list, 7), { name: 'RangeError', message: 'index 7 is outside a list of 4' });
});

test('present() passes a value through and names what is missing for undefined or null, not for other falsy values', () => {
  assert.equal(present(0, 'the count'), 0);
  assert.equal(present('', 'the name'), '');
  assert.equal(present(false, 'the flag'), false);
  assert.throws(() => present(undefined, 'the threshold of model m'), { message: 'the threshold of model m is missing' });
  assert.throws(() => present(null, 'the score'), { message: 'the score is missing' });
});
