/**
 * What the benchmarks that judge a published backlog share: the topic names of
 * one run, the simulated station's timing, publishing parts to a config's input
 * topics with the project's station (the same records a real line writes), and
 * creating a config's topics.
 */
import type { Config } from '../src/config/config-schema.js';
import type { Logger } from '../src/base/logger.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { ensureTopics, planTopics } from '../src/kafka/topics.js';
import { KafkaRecordSink, stationCodecs, stationProducer, stationTopics } from '../src/simulate/kafka-sink.js';
import type { SimulatedPartSource } from '../src/simulate/line-simulator.js';
import type { TimingOptions } from '../src/simulate/line-schedule.js';
import { runStation } from '../src/simulate/station-publisher.js';

/** A run's topic names (for `loadConfig`'s overrides), all after `prefix`: inputs `<prefix>.rgb|ir|xyz`, outputs `<prefix>.events|alerts|dlq|labels`. */
export function benchTopics(prefix: string): { inputs: { rgb: string; ir: string; xyz: string }; events: string; alerts: string; deadLetters: string; labels: string } {
  const p = prefix;
  return { inputs: { rgb: `${p}.rgb`, ir: `${p}.ir`, xyz: `${p}.xyz` }, events: `${p}.events`, alerts: `${p}.alerts`, deadLetters: `${p}.dlq`, labels: `${p}.labels` };
}

/** A steady station at 50 parts/s: no drops, duplicates, reordering, skew or bursts; rgb and ir 3 ms apart; no xyz unless `overrides` say. */
export function steadyTiming(overrides: Partial<TimingOptions> = {}): TimingOptions {
  return {
    ratePerSecond: 50,
    rgbIrJitterMs: 3,
    xyzFraction: 0,
    xyzDelayMinMs: 0,
    xyzDelayMaxMs: 0,
    dropRate: 0,
    duplicateRate: 0,
    reorderRate: 0,
    reorderMaxMs: 0,
    clockSkewMs: 0,
    burstRate: 0,
    burstSize: 1,
    burstFactor: 1,
    ...overrides,
  };
}

export interface PublishOptions {
  source: SimulatedPartSource;
  count: number;
  /** Keep the timing's rate (a live line), or publish as fast as the broker takes it (a backlog). */
  pace: boolean;
  timing: TimingOptions;
  logger: Logger;
}

/**
 * `count` parts to `config`'s input topics from the simulated station, sample ids prefixed with
 * `<input.groupId>-`, each frame announcing the modalities its part gets; no labels.
 */
export async function publishParts(config: Config, o: PublishOptions): Promise<void> {
  const kafka = createKafka(config, config.kafka.brokers, o.logger);
  const admin = kafka.admin();
  const producer = stationProducer(kafka, config);
  await admin.connect();
  await producer.connect();
  try {
    const topics = await stationTopics(admin, config);
    await runStation({
      source: o.source,
      topics,
      sink: new KafkaRecordSink(producer),
      codecs: await stationCodecs(config, topics),
      identity: { line: 'bench', station: 'bench' },
      timing: o.timing,
      scheduleSeed: 1,
      count: o.count,
      pace: o.pace,
      idPrefix: `${config.input.groupId}-`,
      announceModalities: true,
      labels: false,
    });
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
}

/** Creates the topics `config` reads and writes (inputs, outputs), where missing. */
export async function createTopics(config: Config, logger: Logger): Promise<void> {
  const admin = createKafka(config, config.kafka.brokers, logger).admin();
  await admin.connect();
  try {
    await ensureTopics(admin, planTopics(config));
  } finally {
    await admin.disconnect();
  }
}
