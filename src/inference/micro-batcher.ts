/**
 * Micro-batching for one model: samples submitted within `maxWaitMs` of each
 * other (up to `maxBatchSize`) run as one batch, which amortises the per-run
 * cost of ONNX Runtime; a lone sample waits at most `maxWaitMs`. One run per
 * session at a time; the next batch fills while it runs.
 */
import type { InferenceSession } from 'onnxruntime-node';
import * as ort from 'onnxruntime-node';
import { ErrorCode, MmadError, messageOf } from '../errors/errors.js';
import type { LoadedModelSpec } from './model-manifest.js';

/** One sample's inputs: CHW float32 per graph input name. */
export type SampleInputs = Record<string, Float32Array>;

export interface SampleResult {
  /** Anomaly map, height × width of the model (row-major). */
  map: Float32Array;
  score: number;
  /** This sample's share of the batch run, ms. */
  inferenceMs: number;
  batchSize: number;
}

interface Pending {
  inputs: SampleInputs;
  resolve: (r: SampleResult) => void;
  reject: (e: unknown) => void;
}

export interface BatchStats {
  runs: number;
  samples: number;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private inFlight = 0;
  readonly stats: BatchStats = { runs: 0, samples: 0 };
  private readonly sizes: number[];

  constructor(
    private readonly spec: LoadedModelSpec,
    private readonly session: InferenceSession,
    private readonly options: { maxBatchSize: number; maxWaitMs: number },
  ) {
    this.sizes = spec.inputs.map((i) => Number(i.shape[1]) * spec.height * spec.width);
  }

  submit(inputs: SampleInputs): Promise<SampleResult> {
    this.spec.inputs.forEach((input, k) => {
      const t = inputs[input.name];
      if (t === undefined || t.length !== this.sizes[k]) {
        throw new MmadError(ErrorCode.INFERENCE_FAILED, `model ${this.spec.id}: input ${input.name} needs ${this.sizes[k]} values, got ${t?.length ?? 'none'}`);
      }
    });
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, resolve, reject });
      this.inFlight++;
      if (this.queue.length >= this.options.maxBatchSize) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.options.maxWaitMs);
    });
  }

  /** One run at batch size 1 with zeros, so the first real sample does not pay for initialisation. */
  async warmUp(): Promise<void> {
    const inputs: SampleInputs = {};
    this.spec.inputs.forEach((input, k) => (inputs[input.name] = new Float32Array(this.sizes[k]!)));
    await this.submit(inputs);
    this.stats.runs = 0;
    this.stats.samples = 0;
  }

  /** Resolves when everything submitted so far has run. */
  async drain(): Promise<void> {
    while (this.inFlight > 0) {
      this.flush();
      await this.running;
      await new Promise((r) => setImmediate(r));
    }
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatchSize);
    if (this.queue.length > 0) this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
    this.running = this.running.then(() => this.run(batch));
  }

  private async run(batch: Pending[]): Promise<void> {
    const n = batch.length;
    const { height, width } = this.spec;
    const feeds: Record<string, ort.Tensor> = {};
    this.spec.inputs.forEach((input, k) => {
      const size = this.sizes[k]!;
      const data = new Float32Array(n * size);
      batch.forEach((p, i) => data.set(p.inputs[input.name]!, i * size));
      feeds[input.name] = new ort.Tensor('float32', data, [n, Number(input.shape[1]), height, width]);
    });
    const t0 = performance.now();
    try {
      const out = await this.session.run(feeds);
      const ms = performance.now() - t0;
      const map = out.anomaly_map?.data as Float32Array | undefined;
      const score = out.score?.data as Float32Array | undefined;
      const plane = height * width;
      if (map === undefined || score === undefined || map.length !== n * plane || score.length !== n) {
        throw new Error(`outputs have ${map?.length ?? 0} map values and ${score?.length ?? 0} scores for a batch of ${n} at ${height}x${width}`);
      }
      this.stats.runs++;
      this.stats.samples += n;
      batch.forEach((p, i) => p.resolve({ map: map.slice(i * plane, (i + 1) * plane), score: score[i]!, inferenceMs: ms / n, batchSize: n }));
    } catch (err) {
      const e = new MmadError(ErrorCode.INFERENCE_FAILED, `model ${this.spec.id}: inference failed for a batch of ${n}: ${messageOf(err)}`, { cause: err, retriable: true });
      batch.forEach((p) => p.reject(e));
    } finally {
      this.inFlight -= n;
    }
  }
}
