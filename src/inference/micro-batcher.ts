/**
 * Micro-batching for one model, which amortises the per-run cost of ONNX
 * Runtime. One run per session at a time (on the inference thread, so this
 * thread keeps decoding and publishing meanwhile). The batch is formed when
 * the session is free, not before: it takes up to `maxBatchSize` of the
 * samples queued, and goes as soon as it is full or its oldest sample has
 * waited `maxWaitMs`. So what arrives during a run joins the next batch
 * whole — under load batches grow toward the maximum instead of a queue of
 * small ones forming behind the run — and a lone sample on an idle model
 * waits at most `maxWaitMs`.
 */
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import type { LoadedModelSpec } from './model-manifest.js';
import type { FloatTensor, ModelSession } from './session-host.js';
import { at, present } from '../base/invariant.js';

/**
 * A sample's input that writes its values into the batch's tensor when the batch forms (from
 * its decoded frame), so a sample needs no float32 tensor of its own to be copied from.
 */
export interface TensorWriter {
  /** How many values it writes. */
  readonly length: number;
  /** Writes them into `target` from `offset` on. */
  writeTo(target: Float32Array, offset: number): void;
}

/** One sample's input: CHW (a ct volume: C·D·H·W) float32 values, or what writes them. */
export type SampleInput = Float32Array | TensorWriter;

/** One sample's inputs per graph input name. */
export type SampleInputs = Record<string, SampleInput>;

export interface SampleResult {
  /** Anomaly map, height × width of the model (row-major). */
  map: Float32Array;
  score: number;
  /** anomaly_depth, height × width of the model, for a model that takes ct; else null. */
  depth: Float32Array | null;
  /** This sample's share of the batch run, ms. */
  inferenceMs: number;
  batchSize: number;
}

/** Where the batcher reads the time and sets its waits: the real clock, or a test's manual one. */
export interface BatchTimer {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimer: BatchTimer = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface MicroBatcherOptions {
  maxBatchSize: number;
  maxWaitMs: number;
  timer?: BatchTimer;
}

interface Pending {
  inputs: SampleInputs;
  resolve: (r: SampleResult) => void;
  reject: (e: unknown) => void;
  /** When it was submitted (the timer's now()). */
  at: number;
}

export interface BatchStats {
  runs: number;
  samples: number;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private wait: unknown;
  private running: Promise<void> = Promise.resolve();
  private busy = false;
  /** drain(): run what is queued without waiting for batches to fill. */
  private flushing = false;
  private inFlight = 0;
  readonly stats: BatchStats = { runs: 0, samples: 0 };
  /** The model's inputs with the values one sample has in each. */
  private readonly inputs: readonly { name: string; dims: readonly number[]; size: number }[];
  private readonly timer: BatchTimer;
  /**
   * Batch tensors back from the inference thread, per input name, to be filled again: a batch of 8
   * 256² rgb + ir parts is 8 MiB, and a new one per run is memory the garbage collector has to
   * chase (V8 counts it as external memory and marks the whole heap to free it).
   */
  private readonly spare = new Map<string, Float32Array>();

  constructor(
    private readonly spec: LoadedModelSpec,
    private readonly session: ModelSession,
    private readonly options: MicroBatcherOptions,
  ) {
    this.timer = options.timer ?? realTimer;
    this.inputs = spec.inputs.map((i) => {
      // one sample's dimensions after the batch: [C, H, W], or a ct volume's [1, D, Hc, Wc]
      const dims = i.layout === 'NCDHW' && spec.volume !== null ? [Number(i.shape[1]), spec.volume.depth, spec.volume.height, spec.volume.width] : [Number(i.shape[1]), spec.height, spec.width];
      return { name: i.name, dims, size: dims.reduce((a, b) => a * b, 1) };
    });
  }

  submit(inputs: SampleInputs): Promise<SampleResult> {
    for (const input of this.inputs) {
      const t = inputs[input.name];
      if (t === undefined || t.length !== input.size) {
        throw new MmadError(ErrorCode.INFERENCE_FAILED, `model ${this.spec.id}: input ${input.name} needs ${input.size} values, got ${t?.length ?? 'none'}`);
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, resolve, reject, at: this.timer.now() });
      this.inFlight++;
      this.schedule();
    });
  }

  /** One run at batch size 1 with zeros, so the first real sample does not pay for initialisation. */
  async warmUp(): Promise<void> {
    const inputs: SampleInputs = {};
    for (const input of this.inputs) inputs[input.name] = new Float32Array(input.size);
    await this.submit(inputs);
    this.stats.runs = 0;
    this.stats.samples = 0;
  }

  /** Resolves when everything submitted so far has run. */
  async drain(): Promise<void> {
    this.flushing = true;
    try {
      while (this.inFlight > 0) {
        this.schedule();
        await this.running;
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Starts the next batch if the session is free and the batch is full or has waited long enough; else times the wait. */
  private schedule(): void {
    const oldest = this.queue[0];
    if (this.busy || oldest === undefined) return;
    const waited = this.timer.now() - oldest.at;
    if (this.queue.length < this.options.maxBatchSize && waited < this.options.maxWaitMs && !this.flushing) {
      this.wait ??= this.timer.setTimeout(() => {
        this.wait = undefined;
        this.schedule();
      }, this.options.maxWaitMs - waited);
      return;
    }
    if (this.wait !== undefined) {
      this.timer.clearTimeout(this.wait);
      this.wait = undefined;
    }
    const batch = this.queue.splice(0, this.options.maxBatchSize);
    this.busy = true;
    this.running = this.run(batch).finally(() => {
      this.busy = false;
      this.schedule();
    });
  }

  /**
   * A tensor of `length` values for input `name`: the one back from the last run when it has that
   * length (every slot is written before it goes again, so its old values need no clearing), else new.
   */
  private tensor(name: string, length: number): Float32Array {
    const t = this.spare.get(name);
    this.spare.delete(name);
    return t?.length === length ? t : new Float32Array(length);
  }

  private async run(batch: Pending[]): Promise<void> {
    const n = batch.length;
    const { height, width } = this.spec;
    const feeds: Record<string, FloatTensor> = {};
    try {
      for (const { name, dims, size } of this.inputs) {
        const data = this.tensor(name, n * size);
        batch.forEach((p, i) => {
          const t = present(p.inputs[name], `input ${name} of a submitted sample`);
          if (t instanceof Float32Array) data.set(t, i * size);
          else t.writeTo(data, i * size);
        });
        feeds[name] = { data, dims: [n, ...dims] };
      }
      const { outputs, ms, feeds: back } = await this.session.run(feeds, { transfer: true }); // the batch buffers are ours to give away
      for (const [name, t] of Object.entries(back ?? {})) this.spare.set(name, t.data);
      const map = outputs.anomaly_map?.data;
      const score = outputs.score?.data;
      const plane = height * width;
      if (map === undefined || score === undefined || map.length !== n * plane || score.length !== n) {
        throw new Error(`outputs have ${map?.length ?? 0} map values and ${score?.length ?? 0} scores for a batch of ${n} at ${height}x${width}`);
      }
      // a model that takes ct has anomaly_depth (model-manifest.ts checks it at load)
      const takesCt = this.spec.volume !== null;
      const depth = takesCt ? outputs.anomaly_depth?.data : undefined;
      if (takesCt && depth?.length !== n * plane) {
        throw new Error(`outputs have ${depth?.length ?? 0} anomaly_depth values for a batch of ${n} at ${height}x${width}`);
      }
      this.stats.runs++;
      this.stats.samples += n;
      batch.forEach((p, i) =>
        p.resolve({
          map: map.subarray(i * plane, (i + 1) * plane),
          score: at(score, i),
          depth: depth === undefined ? null : depth.subarray(i * plane, (i + 1) * plane),
          inferenceMs: ms / n,
          batchSize: n,
        }),
      );
    } catch (err) {
      const e = new MmadError(ErrorCode.INFERENCE_FAILED, `model ${this.spec.id}: inference failed for a batch of ${n}: ${messageOf(err)}`, { cause: err });
      batch.forEach((p) => p.reject(e));
    } finally {
      this.inFlight -= n;
    }
  }
}
