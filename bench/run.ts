/**
 * Runs benchmark programs: `npm run bench` runs all of bench/*.bench.ts,
 * `npm run bench -- codec` only bench/codec.bench.ts. Options after the names go to the
 * benchmarks (`npm run bench -- pipeline --batches 4`).
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const firstOption = args.findIndex((a) => a.startsWith('-'));
const wanted = firstOption < 0 ? args : args.slice(0, firstOption);
process.argv = [...process.argv.slice(0, 2), ...(firstOption < 0 ? [] : args.slice(firstOption))];
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
