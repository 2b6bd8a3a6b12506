/** A CLI context for running a command in a test. */
import type { CommandContext } from '../../src/cli/command.js';

/** A CLI context that collects the command's output lines. */
export function cliContext(values: CommandContext['values'], positionals: string[] = []): { ctx: CommandContext; lines: string[] } {
  const lines: string[] = [];
  return { ctx: { values, positionals, shutdown: new Promise(() => undefined), out: (l) => lines.push(l) }, lines };
}
