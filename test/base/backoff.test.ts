import assert from 'node:assert/strict';
import test from 'node:test';
import { backoffMs } from '../../src/base/backoff.js';

test('the wait doubles from initialMs and stops at maxMs, even after very many retries', () => {
  const policy = { initialMs: 500, maxMs: 30_000 };
  assert.deepEqual([0, 1, 2, 5, 6, 7].map((n) => backoffMs(n, policy)), [500, 1000, 2000, 16_000, 30_000, 30_000]);
  assert.equal(backoffMs(10_000, policy), 30_000, 'no overflow to Infinity or NaN');
  assert.equal(backoffMs(-1, policy), 500, 'a negative count is the first retry');
});
