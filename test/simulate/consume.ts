/**
 * Reads every record of several topics (with partition and offset) with a
 * fresh consumer group. A group's first rebalance can deliver records twice
 * (at-least-once, nothing committed yet), so records are kept once per
 * topic, partition and offset: what the test sees is what the log holds.
 */
import type { Kafka } from 'kafkajs';
import { present } from '../../src/base/invariant.js';
import type { Config } from '../../src/config/config-schema.js';
import type { CommandContext } from '../../src/cli/command.js';
import { frameConsumerConfig } from '../../src/kafka/kafka-client.js';
import { uniqueName } from '../helpers/kafka.js';

export interface Consumed {
  topic: string;
  partition: number;
  key: string;
  value: Buffer;
  timestamp: number;
  offset: string;
}

export async function consumeAll(kafka: Kafka, config: Config, topics: string[], count: number, timeoutMs = 30_000): Promise<Consumed[]> {
  const consumer = kafka.consumer(frameConsumerConfig(config, uniqueName('g')));
  const got: Consumed[] = [];
  const seen = new Set<string>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${count} records from ${topics.join(', ')}`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const at = `${topic}/${partition}/${message.offset}`;
          if (seen.has(at)) return;
          seen.add(at);
          got.push({ topic, partition, key: present(message.key, `the key of ${at}`).toString(), value: present(message.value, `the value of ${at}`), timestamp: Number(message.timestamp), offset: message.offset });
          if (got.length >= count) {
            clearTimeout(timer);
            // a little longer: anything beyond the expected count would be a bug worth seeing
            setTimeout(resolve, 500);
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** A CLI context that collects the command's output lines. */
export function cliContext(values: CommandContext['values'], positionals: string[] = []): { ctx: CommandContext; lines: string[] } {
  const lines: string[] = [];
  return { ctx: { values, positionals, shutdown: new Promise(() => undefined), out: (l) => lines.push(l) }, lines };
}
