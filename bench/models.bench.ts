/**
 * The shipped students on this CPU, side by side in one run: per model, the time per part
 * at batch 1 and at batch 8 (onnxruntime-node on ready tensors, the service's session
 * options), the batching speed-up, and each model's cost relative to the cheapest.
 * Loading (checksum, session creation, warm-up) is timed too. With --baseline, the students of
 * a second manifest (an earlier version) are timed in the same run, model after model
 * alternating with the first, and each model's cost is printed as a ratio to its namesake.
 *
 *   node --import tsx bench/models.bench.ts [--manifest models/exported/manifest.json] [--baseline OTHER/manifest.json] [--batches 1,8] [--ms 3000]
 *
 * The service's configuration comes from the environment as for `mmad run` (e.g.
 * MMAD_INFERENCE__EXECUTIONPROVIDERS=cuda to time the students on a GPU).
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load-config.js';
import { ModelRegistry } from '../src/inference/model-registry.js';
import { createLogger } from '../src/base/logger.js';
import { at, present } from '../src/base/invariant.js';
import { printTable } from './harness.js';
import { rawThroughput, type RawThroughput } from './raw-ort.js';

const { values } = parseArgs({
  options: {
    manifest: { type: 'string', default: 'models/exported/manifest.json' },
    baseline: { type: 'string' },
    batches: { type: 'string', default: '1,8' },
    ms: { type: 'string', default: '3000' },
  },
});
const BATCHES = values.batches.split(',').map(Number);
const open = async (manifest: string): Promise<{ registry: ModelRegistry; loadMs: number }> => {
  const config = loadConfig({ overrides: { inference: { manifest } } });
  const t0 = performance.now();
  const registry = await ModelRegistry.open(config, createLogger({}, 'error'));
  return { registry, loadMs: performance.now() - t0 };
};
const measure = async (registry: ModelRegistry, id: string): Promise<Map<number, RawThroughput>> => {
  const row = new Map<number, RawThroughput>();
  for (const b of BATCHES) row.set(b, await rawThroughput(registry, id, b, Number(values.ms)));
  return row;
};

const main = await open(values.manifest);
const base = values.baseline === undefined ? undefined : { manifest: values.baseline, ...(await open(values.baseline)) };
const { intraOpThreads, executionProviders } = loadConfig().inference;
const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`students of ${values.manifest} on ${cpu} (${cpus().length} logical cores), execution providers ${executionProviders.join(', ')}, intra-op threads ${intraOpThreads || 'default'}; all ${main.registry.models.length} loaded and warmed up in ${main.loadMs.toFixed(0)} ms`);
if (base) console.log(`baseline: ${base.manifest}, ${base.registry.models.length} loaded in ${base.loadMs.toFixed(0)} ms`);

try {
  const figures = new Map<string, Map<number, RawThroughput>>();
  const baseFigures = new Map<string, Map<number, RawThroughput>>();
  const twins = new Map(base?.registry.models.map((x) => [x.spec.id, x.spec]));
  for (const m of main.registry.models) {
    figures.set(m.spec.id, await measure(main.registry, m.spec.id));
    if (base && twins.has(m.spec.id)) baseFigures.set(m.spec.id, await measure(base.registry, m.spec.id));
  }
  const first = at(BATCHES, 0);
  const last = at(BATCHES, BATCHES.length - 1);
  const figure = (f: Map<string, Map<number, RawThroughput>>, id: string, b: number): RawThroughput => present(f.get(id)?.get(b), `${id} at batch ${b}`);
  const perPart = (f: Map<string, Map<number, RawThroughput>>, id: string, b: number): number => figure(f, id, b).batchMs / b;
  const cheapest = Math.min(...main.registry.models.map((m) => perPart(figures, m.spec.id, first)));
  printTable(
    'ms per part (one session.run of the batch / batch size)',
    main.registry.models.map((m) => {
      const id = m.spec.id;
      const twin = twins.get(id);
      return {
        model: id,
        input: `${m.spec.height}×${m.spec.width}`,
        MB: (m.spec.sizeBytes / 1e6).toFixed(2),
        ...Object.fromEntries(BATCHES.map((b) => [`batch ${b}`, perPart(figures, id, b).toFixed(1)])),
        ...Object.fromEntries(BATCHES.map((b) => [`parts/s @${b}`, figure(figures, id, b).samplesPerS.toFixed(1)])),
        [`speed-up ${last} vs ${first}`]: `${(perPart(figures, id, first) / perPart(figures, id, last)).toFixed(2)}×`,
        [`cost vs cheapest @${first}`]: `${(perPart(figures, id, first) / cheapest).toFixed(2)}×`,
        ...(base === undefined ? {} : {
          baseline: twin ? `${twin.version} ${twin.height}×${twin.width}` : 'none',
          ...Object.fromEntries(BATCHES.map((b) => [`vs baseline @${b}`, twin
            ? `${(perPart(figures, id, b) / perPart(baseFigures, id, b)).toFixed(2)}× (${perPart(baseFigures, id, b).toFixed(1)})` : '-'])),
        }),
      };
    }),
  );
} finally {
  await main.registry.close();
  await base?.registry.close();
}
