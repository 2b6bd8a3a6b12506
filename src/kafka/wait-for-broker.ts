/**
 * Start-up against a broker that is not there yet (a plant where the service
 * boots before Kafka, a broker being restarted): probe the cluster with
 * backoff, one clear log line per attempt, until it answers, the deadline
 * (`kafka.startupTimeoutMs`, 0 = wait for ever) passes, or the process is asked
 * to stop. The kafkajs clients created afterwards keep their own retries for
 * trouble later on.
 */
import type { Config } from '../config/config-schema.js';
import { backoffMs } from '../base/backoff.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { createLogger, type Logger } from '../base/logger.js';
import { createKafka } from './kafka-client.js';

export interface BrokerReachable {
  clusterId: string;
  brokers: number;
  attempts: number;
  waitedMs: number;
}

/** Resolves once the cluster answers; rejects with BROKER_UNAVAILABLE at the deadline, or when `stop` resolves first. */
export async function waitForBroker(config: Config, log: Logger, stop?: Promise<unknown>): Promise<BrokerReachable> {
  const { initialRetryTimeMs, maxRetryTimeMs } = config.kafka.retry;
  const deadline = config.kafka.startupTimeoutMs === 0 ? Number.POSITIVE_INFINITY : performance.now() + config.kafka.startupTimeoutMs;
  const t0 = performance.now();
  // set when `stop` resolves (a field: the flow analysis would take a local as always false)
  const wait = { stopped: false };
  void stop?.then(() => (wait.stopped = true));
  // one attempt per probe, its own errors reported here rather than by kafkajs
  const probe = createKafka({ ...config, kafka: { ...config.kafka, retry: { ...config.kafka.retry, retries: 0 } } }, config.kafka.brokers, createLogger({}, 'silent'));
  for (let attempt = 1; ; attempt++) {
    const admin = probe.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      const reachable = { clusterId: cluster.clusterId, brokers: cluster.brokers.length, attempts: attempt, waitedMs: Math.round(performance.now() - t0) };
      // logged only after trouble: a first-try connection is the normal case
      if (attempt > 1) log.info('Kafka reachable', { bootstrap: config.kafka.brokers, ...reachable });
      return reachable;
    } catch (err) {
      const waitMs = backoffMs(attempt - 1, { initialMs: initialRetryTimeMs, maxMs: maxRetryTimeMs });
      if (wait.stopped || performance.now() + waitMs > deadline) {
        throw new MmadError(
          ErrorCode.BROKER_UNAVAILABLE,
          `no Kafka broker reachable at ${config.kafka.brokers.join(',')} after ${attempt} attempts in ${Math.round((performance.now() - t0) / 1000)} s${wait.stopped ? ' (stopped while waiting)' : ' (kafka.startupTimeoutMs)'}: ${messageOf(err)}`,
          { cause: err },
        );
      }
      log.warn('Kafka unreachable at start-up; retrying', { brokers: config.kafka.brokers, attempt, retryInMs: waitMs, error: messageOf(err) });
      await Promise.race([new Promise((r) => setTimeout(r, waitMs)), stop]);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}
