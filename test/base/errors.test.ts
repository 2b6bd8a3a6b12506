import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, MmadError, isRetriable } from '../../src/base/errors.js';

test('isRetriable: only an MmadError whose retriable flag is set', () => {
  assert.equal(isRetriable(new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, 'registry down', { retriable: true })), true);
  assert.equal(isRetriable(new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, 'registry answered 422')), false, 'the flag is off unless set');
  assert.equal(isRetriable(new MmadError(ErrorCode.TASK_CLOSED, 'sink given up', { retriable: false })), false);
  // a client library's own flag (kafkajs sets one on its errors) is not read: its retries are its own
  assert.equal(isRetriable(Object.assign(new Error('connection refused'), { retriable: true })), false);
  assert.equal(isRetriable(undefined), false);
  assert.equal(isRetriable('retriable'), false);
});
