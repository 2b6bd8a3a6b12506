/**
 * kafkajs clients configured from the one config: retries with backoff for a
 * broker that is down or restarting, kafkajs' logs routed into ours, and fetch
 * sizes that fit image frames (kafkajs' default 1 MiB per partition does not).
 */
import { Kafka, Partitioners, logLevel, type Consumer, type ConsumerConfig, type LogEntry, type ProducerConfig } from 'kafkajs';
import type { Config } from '../config/config-schema.js';
import { rootLogger, type Logger } from '../base/logger.js';

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
        // kafkajs logs every error response of the protocol, and every send it retries, at ERROR
        // (a coordinator still loading, a transaction's markers being written): those are debug
        const retried = msg.startsWith('Response ') || fields.retryCount !== undefined;
        if (level <= logLevel.ERROR && !retried) log.error(msg, fields);
        else if (level <= logLevel.ERROR) log.debug(msg, fields);
        else if (level === logLevel.WARN) log.warn(msg, fields);
        else log.debug(msg, fields);
      },
  });
}

/**
 * A kafkajs consumer that stays stopped once its owner stops or disconnects it.
 * kafkajs restarts a consumer after a retriable crash on a timer; a crash that lands
 * while its owner is disconnecting (a fetch or join cut off by the disconnect itself)
 * sets that timer after `stop()` cleared it, and the consumer starts again on its own:
 * on a deleted topic it then crashes and restarts for ever, keeping its process alive.
 * Every consumer of the project is made here, so none restarts after its owner ended it.
 */
export function createConsumer(kafka: Kafka, consumerConfig: ConsumerConfig): Consumer {
  let ended = false;
  const restartOnFailure = consumerConfig.retry?.restartOnFailure;
  const consumer = kafka.consumer({
    ...consumerConfig,
    // `retries: 5` is kafkajs' own default for a consumer given no retry settings, which a retry
    // object with only restartOnFailure would replace by the client's
    retry: { retries: 5, ...consumerConfig.retry, restartOnFailure: async (e) => !ended && (restartOnFailure === undefined || (await restartOnFailure(e))) },
  });
  return {
    ...consumer,
    run: async (runConfig) => {
      ended = false;
      await consumer.run(runConfig);
    },
    stop: async () => {
      ended = true;
      await consumer.stop();
    },
    disconnect: async () => {
      ended = true;
      await consumer.disconnect();
    },
  };
}

/** Consumer settings for frames of several MiB. */
export function frameConsumerConfig(config: Config, groupId: string): ConsumerConfig {
  return {
    groupId,
    maxBytesPerPartition: config.kafka.maxMessageBytes,
    maxBytes: 2 * config.kafka.maxMessageBytes,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: Math.min(3_000, Math.floor(config.kafka.sessionTimeoutMs / 3)),
    // kafkajs fetches all partitions of a broker in one long poll: a partition resumed
    // (after backpressure or a task start) waits for the poll in flight, so keep it short
    maxWaitTimeInMs: 100,
  };
}

/**
 * Producer settings of the service: Kafka's default (murmur2) key partitioner,
 * explicitly; idempotent, one request in flight (order kept per partition),
 * and — as an idempotent producer requires — retries without a count limit,
 * backing off up to kafka.retry.maxRetryTimeMs while a broker is away.
 */
export function producerConfig(config: Config, extra: ProducerConfig = {}): ProducerConfig {
  return {
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    retry: { initialRetryTime: config.kafka.retry.initialRetryTimeMs, maxRetryTime: config.kafka.retry.maxRetryTimeMs, retries: Number.MAX_SAFE_INTEGER },
    ...extra,
  };
}

/**
 * Calls `fail` when the consumer crashes for good. kafkajs also reports a crash on a retriable
 * error (a group coordinator still loading on a broker just started, a rebalance) and then
 * restarts the consumer itself (`restart`); that one is only logged (kafkajs' own log). A
 * consumer of `createConsumer` is not restarted once its owner stopped it, so a crash during
 * that stop also comes here: settle what `fail` ends before stopping the consumer.
 */
export function onFatalCrash(consumer: Consumer, fail: (error: Error) => void): void {
  consumer.on(consumer.events.CRASH, (e) => {
    if (!e.payload.restart) fail(e.payload.error);
  });
}

/** A group join's assignment: partitions per topic. */
export type GroupAssignment = Record<string, number[]>;

/**
 * Calls `handler` with the consumer's assignment on each group join, until the function it
 * returns is called: call that before stopping the consumer. A join can complete after the
 * consumer was stopped (stopped while joining: a reader closed right after it started, or a
 * slow coordinator); kafkajs reports it all the same, and a handler that seeks or pauses there
 * throws ("consumer#run must be called first") inside kafkajs' event emitter, where nothing of
 * ours can catch it. kafkajs' own STOP event cannot tell that case: it also stops a consumer to
 * restart it after a retriable crash, and then joins again, and that join must be handled.
 */
export function onGroupJoin(consumer: Consumer, handler: (assignment: GroupAssignment) => void): () => void {
  let ended = false;
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    if (!ended) handler(payload.memberAssignment);
  });
  return () => {
    ended = true;
  };
}
