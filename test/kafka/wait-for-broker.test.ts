/**
 * `waitForBroker`, what `run` and `replay` do before anything else: probe the
 * cluster with backoff until it answers, the start-up deadline passes, or the
 * process is asked to stop. Its deadline is on the monotonic clock: a line
 * PC's time service stepping the wall clock must not end the wait early.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { createLogger } from '../../src/base/logger.js';
import type { Config } from '../../src/config/config-schema.js';
import { waitForBroker } from '../../src/kafka/wait-for-broker.js';
import { testConfig } from '../helpers/kafka.js';
import { freePort } from '../helpers/ports.js';

interface Line {
  msg: string;
  attempt?: number;
  retryInMs?: number;
}

function recorder(): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  return { log: createLogger({}, 'info', (l) => lines.push(JSON.parse(l) as Line)), lines };
}

async function nowhere(startupTimeoutMs: number): Promise<Config> {
  const base = testConfig();
  return { ...base, kafka: { ...base.kafka, brokers: [`127.0.0.1:${await freePort()}`], startupTimeoutMs, retry: { ...base.kafka.retry, initialRetryTimeMs: 100, maxRetryTimeMs: 400 } } };
}

async function rejection(p: Promise<unknown>): Promise<MmadError> {
  const err = await p.then(
    () => assert.fail('resolved without a broker'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MmadError, String(err));
  return err;
}

test('a reachable cluster answers at the first attempt, without a log line', async () => {
  const { log, lines } = recorder();
  const r = await waitForBroker(testConfig(), log);
  assert.equal(r.attempts, 1);
  assert.ok(r.brokers >= 1 && r.clusterId.length > 0, JSON.stringify(r));
  assert.deepEqual(lines, []);
});

test('no broker: one warning per attempt with a growing wait, then BROKER_UNAVAILABLE at kafka.startupTimeoutMs', async () => {
  const config = await nowhere(2000);
  const { log, lines } = recorder();
  const t0 = performance.now();
  const err = await rejection(waitForBroker(config, log));
  const waited = performance.now() - t0;
  assert.equal(err.code, ErrorCode.BROKER_UNAVAILABLE);
  assert.match(err.message, new RegExp(`no Kafka broker reachable at ${config.kafka.brokers.join(',')} after \\d+ attempts .*\\(kafka\\.startupTimeoutMs\\)`));
  // it gives up when the next wait would pass the deadline: at most one wait (400 ms) before it
  assert.ok(waited >= 2000 - 400, `gave up after ${Math.round(waited)} ms`);
  const retries = lines.filter((l) => l.msg === 'Kafka unreachable at start-up; retrying');
  assert.deepEqual(retries.slice(0, 3).map((l) => l.attempt), [1, 2, 3]);
  assert.ok((retries[1]?.retryInMs ?? 0) > (retries[0]?.retryInMs ?? 0), 'the wait grows');
});

test('the wall clock stepped an hour ahead during the wait does not end it early', async () => {
  const config = await nowhere(2000);
  const { log, lines } = recorder();
  const realNow = Date.now;
  // the step comes after the first probe has started: the deadline was taken before it
  const step = setTimeout(() => (Date.now = () => realNow() + 3_600_000), 50);
  try {
    const t0 = performance.now();
    const err = await rejection(waitForBroker(config, log));
    const waited = performance.now() - t0;
    assert.equal(err.code, ErrorCode.BROKER_UNAVAILABLE);
    assert.ok(waited >= 2000 - 400, `gave up after ${Math.round(waited)} ms of real time`);
    assert.ok(lines.filter((l) => l.msg === 'Kafka unreachable at start-up; retrying').length >= 3);
  } finally {
    clearTimeout(step);
    Date.now = realNow;
  }
});

test('a stop while waiting ends the wait with BROKER_UNAVAILABLE saying so', async () => {
  const config = await nowhere(0);
  const { log } = recorder();
  const err = await rejection(waitForBroker(config, log, new Promise((r) => setTimeout(r, 300))));
  assert.equal(err.code, ErrorCode.BROKER_UNAVAILABLE);
  assert.match(err.message, /\(stopped while waiting\)/);
});
