/**
 * A model alone on ready tensors: what onnxruntime-node gives without the
 * service around it. Runs on the service's own session, back to back on its
 * inference thread (no messages between runs), so it is the same session,
 * options and thread the pipeline uses.
 */
import type { ModelRegistry } from '../src/inference/model-registry.js';
import type { FloatTensor } from '../src/inference/session-host.js';

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
  const feeds: Record<string, FloatTensor> = {};
  for (const input of m.spec.inputs) {
    const c = Number(input.shape[1]);
    // a ct input is a volume on the model's grid (NCDHW); the images are NCHW
    const v = input.name === 'ct' ? m.spec.volume : null;
    const dims = v === null ? [batch, c, m.spec.height, m.spec.width] : [batch, c, v.depth, v.height, v.width];
    const data = new Float32Array(dims.reduce((a, d) => a * d, 1));
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) % 255;
    feeds[input.name] = { data, dims };
  }
  const c0 = process.cpuUsage();
  const { runs, elapsedMs } = await m.session.repeat(feeds, { warmUpRuns: 3, minRuns: 1, ms });
  const cpu = process.cpuUsage(c0);
  // the warm-up runs' CPU is in the figure too: count them (their time is not in elapsedMs, so per sample only)
  return { samplesPerS: (runs * batch * 1000) / elapsedMs, batchMs: elapsedMs / runs, cpuMsPerSample: (cpu.user + cpu.system) / 1000 / ((runs + 3) * batch) };
}
