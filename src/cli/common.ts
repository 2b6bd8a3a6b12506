/** Helpers shared by the subcommands: configuration and broker for a command. */
import type { Config } from '../config/config-schema.js';
import { loadConfig } from '../config/load-config.js';
import { provideBroker, type ProvidedBroker } from '../kafka/provide-broker.js';
import type { CommandContext } from './command.js';

export function configOf(ctx: CommandContext): Config {
  const file = (ctx.values.config as string | undefined) ?? process.env.MMAD_CONFIG;
  return loadConfig({ file: file === '' ? undefined : file });
}

/** The configured broker, or one started for this command (stopped by the caller). */
export async function brokerFor(config: Config): Promise<{ config: Config; broker: ProvidedBroker }> {
  const broker = await provideBroker(config);
  return { config: { ...config, kafka: { ...config.kafka, brokers: broker.brokers } }, broker };
}
