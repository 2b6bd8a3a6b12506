#!/usr/bin/env -S node --initial-old-space-size=128
// Entry point of the `mmad` CLI. A source checkout runs the TypeScript through
// tsx, so what a developer edits is what runs; a production image ships only
// the compiled tree (npm run build → dist/) and runs that. The shebang's V8 options are
// src/cli/node-flags.ts's (`node bin/mmad.mjs` runs without them: pass them to node).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'cli', 'main.ts');
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { main } = await import(pathToFileURL(existsSync(source) ? source : join(root, 'dist', 'cli', 'main.js')).href);
process.exitCode = await main(process.argv.slice(2));
