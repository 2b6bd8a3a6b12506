/**
 * `mmad` — the one CLI. This file only wires: it registers the subcommands,
 * parses arguments, turns errors into a clear message and an exit code.
 * bin/mmad.mjs calls main().
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isMmadError, messageOf } from '../base/errors.js';
import { helpText, type Command, type CommandContext } from './command.js';
import { configCommand } from './commands/config.js';
import { datasetCommand } from './commands/dataset.js';
import { demoCommand } from './commands/demo.js';
import { kafkaCommand } from './commands/kafka.js';
import { runCommand } from './commands/run.js';
import { publishDatasetCommand } from './commands/publish-dataset.js';
import { calibrateCommand, diffCommand, replayCommand } from './commands/replay.js';
import { simulateCommand } from './commands/simulate.js';
import { topicsCommand } from './commands/topics.js';
import { viewCommand } from './commands/view.js';

export const COMMANDS: Command[] = [demoCommand, runCommand, replayCommand, diffCommand, calibrateCommand, kafkaCommand, topicsCommand, configCommand, datasetCommand, simulateCommand, publishDatasetCommand, viewCommand];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: mmad <command> [options]',
    '',
    'In-line multimodal anomaly detection on Kafka.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'mmad <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(mainHelp());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (cmd === undefined) {
    process.stderr.write(`mmad: unknown command '${name}'\n\n${mainHelp()}\n`);
    return 2;
  }
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean', short: 'h' } };
  for (const [k, spec] of Object.entries(cmd.options)) {
    const { description: _d, placeholder: _p, ...opt } = spec;
    options[k] = opt;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`mmad ${cmd.name}: ${messageOf(err)}\n\n${helpText(cmd)}\n`);
    return 2;
  }
  if (parsed.values.help === true) {
    out(helpText(cmd));
    return 0;
  }
  const shutdown = new Promise<string>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(sig));
  });
  const ctx: CommandContext = { values: parsed.values, positionals: parsed.positionals, shutdown, out };
  try {
    return await cmd.run(ctx);
  } catch (err) {
    const text = isMmadError(err) ? err.describe() : (err instanceof Error ? err.stack : undefined) ?? messageOf(err);
    process.stderr.write(`mmad ${cmd.name}: ${text}\n`);
    return 1;
  }
}

