/**
 * One place that answers "which Kafka do we talk to?" for the CLI, the tests
 * and the demo:
 *   1. kafka.brokers configured (or KAFKA_BROKERS) → use them, start nothing;
 *   2. else a container runtime reachable (provider auto|container) → testcontainers;
 *   3. else → a local single-node KRaft broker from Maven Central jars.
 */
import type { Config } from '../config/config-schema.js';
import { rootLogger, type Logger } from '../base/logger.js';
import { containerRuntimeReachable, startContainerBroker } from './container-broker.js';
import { LocalKraftBroker } from './local-kraft.js';

export type BrokerKind = 'external' | 'container' | 'local';

export interface ProvidedBroker {
  kind: BrokerKind;
  brokers: string[];
  /** Stops what was started (nothing for an external broker). */
  stop(): Promise<void>;
  /** The local broker, when that is what was started (its timings and log file). */
  local?: LocalKraftBroker;
}

export interface ProvideBrokerOptions {
  logger?: Logger;
  /** Persistent data directory for a local broker (developer broker). */
  dataDir?: string;
  port?: number;
}

export async function provideBroker(config: Config, options: ProvideBrokerOptions = {}): Promise<ProvidedBroker> {
  const log = (options.logger ?? rootLogger).child({ component: 'broker' });
  if (config.kafka.brokers.length > 0) {
    log.info('using configured Kafka brokers', { brokers: config.kafka.brokers });
    return { kind: 'external', brokers: config.kafka.brokers, stop: async () => {} };
  }
  const { provider } = config.broker;
  if (provider === 'container' || (provider === 'auto' && (await containerRuntimeReachable()))) {
    try {
      const c = await startContainerBroker(config.broker.containerImage, config.kafka.maxMessageBytes);
      log.info('started a Kafka container', { bootstrap: c.bootstrap });
      return { kind: 'container', brokers: [c.bootstrap], stop: c.stop };
    } catch (err) {
      if (provider === 'container') throw err;
      log.warn('container runtime present but the Kafka container did not start; using a local broker', { error: err });
    }
  }
  const local = new LocalKraftBroker({
    kafkaVersion: config.broker.kafkaVersion,
    cacheDir: config.broker.cacheDir,
    heapMb: config.broker.heapMb,
    maxMessageBytes: config.kafka.maxMessageBytes,
    startTimeoutMs: config.broker.startTimeoutMs,
    dataDir: options.dataDir,
    port: options.port,
    logger: log,
  });
  const bootstrap = await local.start();
  return { kind: 'local', brokers: [bootstrap], stop: () => local.stop(), local };
}
