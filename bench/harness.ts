/**
 * Tiny benchmark harness: run a function repeatedly for a time budget, report
 * the median per-call time; print rows side by side. Figures are compared as
 * ratios within one run, never asserted (machines are shared and noisy).
 */
import { at } from '../src/base/invariant.js';
export interface Measurement {
  micros: number;
  runs: number;
}

export function measure(fn: () => unknown, budgetMs = 400, batches = 15): Measurement {
  // warm-up: JIT and caches
  const warmEnd = performance.now() + budgetMs / 4;
  let perBatch = 1;
  while (performance.now() < warmEnd) {
    fn();
    perBatch++;
  }
  perBatch = Math.max(1, Math.round(perBatch / 4));
  const samples: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < perBatch; i++) fn();
    samples.push(((performance.now() - t0) * 1000) / perBatch);
  }
  return { micros: median(samples), runs: perBatch * batches };
}

/** The median of timings (sorted here). */
function median(samples: number[]): number {
  samples.sort((a, b) => a - b);
  return at(samples, Math.floor(samples.length / 2));
}

export async function measureAsync(fn: () => Promise<unknown>, runs: number): Promise<Measurement> {
  for (let i = 0; i < Math.min(5, runs); i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push((performance.now() - t0) * 1000);
  }
  return { micros: median(samples), runs };
}

/** The q-quantile (0..1) of `xs` by rank (floor(q × n), capped at the last): the benchmarks' p50/p99. */
export function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return at(s, Math.min(s.length - 1, Math.floor(q * s.length)));
}

export function printTable(title: string, rows: Record<string, string | number>[]): void {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(at(width, i))).join('  ').trimEnd();
  process.stdout.write(`\n${title}\n${line(cols)}\n${line(width.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => String(r[c] ?? '')))}\n`);
}
