/**
 * The shipped students on this CPU, side by side in one run: per model, the time per part
 * at batch 1 and at batch 8 (onnxruntime-node on ready tensors, the service's session
 * options), the batching speed-up, and each model's cost relative to the cheapest.
 * Loading (checksum, session creation, warm-up) is timed too.
 *
 *   node --import tsx bench/models.bench.ts [--manifest models/exported/manifest.json] [--batches 1,8] [--ms 3000]
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load-config.js';
import { ModelRegistry } from '../src/inference/model-registry.js';
import { createLogger } from '../src/telemetry/logger.js';
import { printTable } from './harness.js';
import { rawThroughput, type RawThroughput } from './raw-ort.js';

const { values } = parseArgs({
  options: {
    manifest: { type: 'string', default: 'models/exported/manifest.json' },
    batches: { type: 'string', default: '1,8' },
    ms: { type: 'string', default: '3000' },
  },
});
const BATCHES = values.batches.split(',').map(Number);
const config = loadConfig({ env: {}, overrides: { inference: { manifest: values.manifest } } as never });
const t0 = performance.now();
const registry = await ModelRegistry.open(config, createLogger({}, 'error'));
const loadMs = performance.now() - t0;
const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`students of ${values.manifest} on ${cpu} (${cpus().length} logical cores), intra-op threads ${config.inference.intraOpThreads || 'default'}; all ${registry.models.length} loaded and warmed up in ${loadMs.toFixed(0)} ms`);

try {
  const figures = new Map<string, Map<number, RawThroughput>>();
  for (const m of registry.models) {
    const row = new Map<number, RawThroughput>();
    for (const b of BATCHES) row.set(b, await rawThroughput(registry, m.spec.id, b, Number(values.ms)));
    figures.set(m.spec.id, row);
  }
  const first = BATCHES[0]!;
  const last = BATCHES.at(-1)!;
  const perPart = (id: string, b: number): number => figures.get(id)!.get(b)!.batchMs / b;
  const cheapest = Math.min(...registry.models.map((m) => perPart(m.spec.id, first)));
  printTable(
    'ms per part (one session.run of the batch / batch size)',
    registry.models.map((m) => ({
      model: m.spec.id,
      input: `${m.spec.height}×${m.spec.width}`,
      MB: (m.spec.sizeBytes / 1e6).toFixed(2),
      ...Object.fromEntries(BATCHES.map((b) => [`batch ${b}`, perPart(m.spec.id, b).toFixed(1)])),
      ...Object.fromEntries(BATCHES.map((b) => [`parts/s @${b}`, figures.get(m.spec.id)!.get(b)!.samplesPerS.toFixed(1)])),
      [`speed-up ${last} vs ${first}`]: `${(perPart(m.spec.id, first) / perPart(m.spec.id, last)).toFixed(2)}×`,
      [`cost vs cheapest @${first}`]: `${(perPart(m.spec.id, first) / cheapest).toFixed(2)}×`,
    })),
  );
} finally {
  await registry.close();
}
