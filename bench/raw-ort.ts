/** A model alone on ready tensors: what onnxruntime-node gives without the service around it. */
import * as ort from 'onnxruntime-node';
import type { ModelRegistry } from '../src/inference/model-registry.js';

export interface RawThroughput {
  samplesPerS: number;
  /** Mean wall time of one session.run at this batch size. */
  batchMs: number;
  /** Process CPU time per sample (all of ONNX Runtime's threads), ms. */
  cpuMsPerSample: number;
}

/** Runs the model batch after batch for about `ms` (after 3 warm-up runs) on deterministic, non-constant inputs. */
export async function rawThroughput(registry: ModelRegistry, modelId: string, batch: number, ms = 3000): Promise<RawThroughput> {
  const m = registry.models.find((x) => x.spec.id === modelId);
  if (m === undefined) throw new Error(`no model ${modelId} in the manifest`);
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of m.spec.inputs) {
    const c = Number(input.shape[1]);
    const data = new Float32Array(batch * c * m.spec.height * m.spec.width);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) % 255;
    feeds[input.name] = new ort.Tensor('float32', data, [batch, c, m.spec.height, m.spec.width]);
  }
  for (let i = 0; i < 3; i++) await m.session.run(feeds);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let runs = 0;
  while (performance.now() - t0 < ms) {
    await m.session.run(feeds);
    runs++;
  }
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  return { samplesPerS: (runs * batch * 1000) / elapsed, batchMs: elapsed / runs, cpuMsPerSample: (cpu.user + cpu.system) / 1000 / (runs * batch) };
}
