/**
 * Runs benchmark programs: `npm run bench` runs all of bench/*.bench.ts,
 * `npm run bench -- codec` only bench/codec.bench.ts.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const all = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort();
const chosen = wanted.length === 0 ? all : all.filter((f) => wanted.some((w) => f.startsWith(`${w}.`)));
if (chosen.length === 0) {
  console.error(`no benchmark matches ${wanted.join(', ')}; have: ${all.join(', ')}`);
  process.exit(2);
}
for (const f of chosen) {
  process.stdout.write(`\n=== ${f} ===\n`);
  await import(pathToFileURL(join(here, f)).href);
}
