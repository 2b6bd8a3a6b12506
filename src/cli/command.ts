/**
 * The contract of a CLI subcommand: a name, a one-line summary, its options
 * (node:util parseArgs), a usage text, and run(). Commands are registered in
 * src/cli/main.ts; to add one, copy src/cli/commands/topics.ts.
 */
import type { ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { description: string; placeholder?: string };

export interface CommandContext {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  /** Resolves when SIGINT/SIGTERM arrives (long-running commands await it). */
  shutdown: Promise<string>;
  out: (line: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  /** Extra lines of help after the options. */
  details?: string;
  positionals?: string;
  options: Record<string, OptionSpec>;
  run(ctx: CommandContext): Promise<number>;
}

/** --config, shared by every command that reads the configuration. */
export const CONFIG_OPTION: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    short: 'c',
    description: 'configuration file (YAML or JSON); MMAD_CONFIG by default; environment overrides apply on top',
    placeholder: 'FILE',
  },
};

export function helpText(cmd: Command): string {
  const lines = [`Usage: mmad ${cmd.name} [options]${cmd.positionals === undefined ? '' : ` ${cmd.positionals}`}`, '', cmd.summary, '', 'Options:'];
  const all: Record<string, OptionSpec> = { ...cmd.options, help: { type: 'boolean', short: 'h', description: 'show this help' } };
  for (const [name, spec] of Object.entries(all)) {
    const flag = `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${name}${spec.type === 'string' ? ` <${spec.placeholder ?? 'VALUE'}>` : ''}`;
    const def = spec.default === undefined ? '' : ` (default: ${String(spec.default)})`;
    lines.push(`  ${flag.padEnd(34)} ${spec.description}${def}`);
  }
  if (cmd.details !== undefined) lines.push('', cmd.details);
  return lines.join('\n');
}
