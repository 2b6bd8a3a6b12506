/**
 * kafkajs clients configured from the one config: retries with backoff for a
 * broker that is down or restarting, kafkajs' logs routed into ours, and fetch
 * sizes that fit image frames (kafkajs' default 1 MiB per partition does not).
 */
import { Kafka, logLevel, type ConsumerConfig, type LogEntry } from 'kafkajs';
import type { Config } from '../config/config-schema.js';
import { rootLogger, type Logger } from '../telemetry/logger.js';

export function createKafka(config: Config, brokers: string[] = config.kafka.brokers, logger: Logger = rootLogger): Kafka {
  const log = logger.child({ component: 'kafkajs' });
  return new Kafka({
    clientId: config.kafka.clientId,
    brokers,
    connectionTimeout: config.kafka.connectionTimeoutMs,
    requestTimeout: config.kafka.requestTimeoutMs,
    retry: {
      initialRetryTime: config.kafka.retry.initialRetryTimeMs,
      maxRetryTime: config.kafka.retry.maxRetryTimeMs,
      retries: config.kafka.retry.retries,
    },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, timestamp: _ts, logger: _l, ...fields } = entry as unknown as Record<string, unknown>;
        const msg = String(message);
        if (level <= logLevel.ERROR) log.error(msg, fields);
        else if (level === logLevel.WARN) log.warn(msg, fields);
        else log.debug(msg, fields);
      },
  });
}

/** Consumer settings for frames of several MiB. */
export function frameConsumerConfig(config: Config, groupId: string): ConsumerConfig {
  return {
    groupId,
    maxBytesPerPartition: config.kafka.maxMessageBytes,
    maxBytes: 2 * config.kafka.maxMessageBytes,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
  };
}
