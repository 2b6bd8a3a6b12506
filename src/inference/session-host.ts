/**
 * ONNX Runtime sessions on an inference thread of their own.
 *
 * onnxruntime-node runs a model as one blocking call. Made on the service's
 * main thread, every batch would hold up everything else the service does on
 * it — reading the next fetch, the sharp decoders' completions, the join's and
 * the micro-batcher's timers, handing outputs to the producer — for the length
 * of the model, and the latency of every part would include the batches ahead
 * of it twice: once while they block, once while its own frames wait. The host
 * keeps the sessions on a worker thread (session-worker.ts); the main thread
 * posts a batch and goes on.
 *
 * Tensors cross by transfer where the caller allows it (the micro-batcher's
 * own batch buffers, handed back with the outputs so it fills them again
 * instead of allocating a batch's worth of memory per run), else by copy;
 * outputs always by transfer. If the thread dies, what was in flight
 * fails with INFERENCE_FAILED (those parts are UNKNOWN, with the reason) and
 * the next request starts a new thread and opens the sessions again. The
 * thread is only ever ended between runs: onnxruntime-node aborts the process
 * when a thread is terminated inside one.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { rootLogger, type Logger } from '../base/logger.js';
import type { FloatTensor, HostReply, HostRequest } from './session-protocol.js';

export type { FloatTensor } from './session-protocol.js';

export interface RunResult {
  outputs: Record<string, FloatTensor>;
  /** The model's own time for this run, on the inference thread. */
  ms: number;
  /** With `transfer`: the feeds' buffers, back from the inference thread and the caller's again (values unchanged). */
  feeds?: Record<string, FloatTensor>;
}

/** One model's session, as the service sees it. */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly InferenceSession.ValueMetadata[];
  /**
   * Runs the model once. With `transfer`, the feeds' buffers move to the inference thread (unusable
   * here meanwhile) and come back with the outputs as the result's `feeds`, for the caller to fill again.
   */
  run(feeds: Record<string, FloatTensor>, o?: { transfer?: boolean }): Promise<RunResult>;
  /** The model alone: the same feeds back to back on the inference thread, no messages between runs. */
  repeat(feeds: Record<string, FloatTensor>, o: { warmUpRuns: number; minRuns: number; ms: number }): Promise<{ runs: number; elapsedMs: number }>;
  release(): Promise<void>;
}

type Ok<T extends string> = Extract<HostReply, { ok: true; type: T }>;
type Request = HostRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** How the worker starts: from source through tsx (a checkout), or the compiled module (dist/). */
function workerEntry(): { entry: string; tsx: string | undefined } {
  const source = fileURLToPath(import.meta.url).endsWith('.ts');
  return {
    entry: new URL(source ? './session-worker.ts' : './session-worker.js', import.meta.url).href,
    tsx: source ? import.meta.resolve('tsx/esm/api') : undefined,
  };
}

/** Feeds as plain objects: what a message can carry (an ort.Tensor's values sit behind a getter, which a structured clone drops). */
function plainFeeds(feeds: Record<string, FloatTensor>): Record<string, FloatTensor> {
  return Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, { data: t.data, dims: [...t.dims] }]));
}

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})().catch((err) => { console.error('inference thread failed to start:', err); process.exit(1); });
`;

export class SessionHost {
  private worker: Worker | undefined;
  private starting: Promise<Worker> | undefined;
  private nextId = 1;
  private nextSession = 1;
  private readonly pending = new Map<number, { resolve: (r: HostReply) => void; reject: (e: unknown) => void; settled: Promise<unknown> }>();
  /** What each open session was opened with, to open it again on a new thread. */
  private readonly opened = new Map<number, { model: string | Uint8Array; options: InferenceSession.SessionOptions }>();
  private closed = false;
  /** Times the inference thread died and was started again. */
  restarts = 0;

  constructor(private readonly log: Logger = rootLogger.child({ component: 'inference-thread' })) {}

  /** Opens a model from its file's path or its bytes (copied to the inference thread; kept here to open it again after a crash). */
  async open(model: string | Uint8Array, options: InferenceSession.SessionOptions): Promise<ModelSession> {
    const session = this.nextSession++;
    const reply = (await this.request({ type: 'open', session, model, options })) as Ok<'open'>;
    this.opened.set(session, { model, options });
    return {
      inputNames: reply.inputNames,
      outputNames: reply.outputNames,
      inputMetadata: reply.inputMetadata,
      outputMetadata: reply.outputMetadata,
      run: async (feeds, o = {}) => {
        const plain = plainFeeds(feeds);
        const transfer = o.transfer === true ? [...new Set(Object.values(plain).map((t) => t.data.buffer as ArrayBuffer))] : [];
        const r = (await this.request({ type: 'run', session, feeds: plain, giveBack: o.transfer === true }, transfer)) as Ok<'run'>;
        return { outputs: r.outputs, ms: r.ms, ...(r.feeds === undefined ? {} : { feeds: r.feeds }) };
      },
      repeat: async (feeds, o) => {
        const r = (await this.request({ type: 'repeat', session, feeds: plainFeeds(feeds), ...o })) as Ok<'repeat'>;
        return { runs: r.runs, elapsedMs: r.elapsedMs };
      },
      release: async () => {
        if (!this.opened.delete(session) || this.worker === undefined) return;
        await this.request({ type: 'release', session });
      },
    };
  }

  /**
   * Ends the inference thread once the requests in flight are answered
   * (onnxruntime-node aborts the whole process when its thread is ended in
   * the middle of a run); the sessions are released with the thread.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.pending.size > 0) await Promise.allSettled([...this.pending.values()].map((p) => p.settled));
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  /** Sends a request; it counts as in flight (close() waits for it) from this call on, even while a thread starts. */
  private request(req: Request, transfer: ArrayBuffer[] = []): Promise<HostReply> {
    if (this.closed) return Promise.reject(new MmadError(ErrorCode.INFERENCE_FAILED, 'the inference thread is closed'));
    const { id, reply } = this.expect();
    this.ensureWorker().then(
      (worker) => this.send(worker, id, req, transfer),
      (err: unknown) => this.settle(id, { id, ok: false, error: `the inference thread could not start: ${messageOf(err)}` }),
    );
    return reply;
  }

  private expect(): { id: number; reply: Promise<HostReply> } {
    const id = this.nextId++;
    let entry!: { resolve: (r: HostReply) => void; reject: (e: unknown) => void; settled: Promise<unknown> };
    const reply = new Promise<HostReply>((resolve, reject) => (entry = { resolve, reject, settled: Promise.resolve() }));
    entry.settled = reply.catch(() => undefined);
    this.pending.set(id, entry);
    return { id, reply };
  }

  private send(worker: Worker, id: number, req: Request, transfer: ArrayBuffer[] = []): void {
    if (!this.pending.has(id)) return; // failed meanwhile (the thread died)
    worker.ref(); // a reply is awaited: keep the process alive for it
    const message: HostRequest = { ...req, id };
    worker.postMessage(message, transfer);
  }

  private settle(id: number, reply: HostReply): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    if (reply.ok) p.resolve(reply);
    else p.reject(new MmadError(ErrorCode.INFERENCE_FAILED, reply.error));
  }

  private async ensureWorker(): Promise<Worker> {
    if (this.worker !== undefined) return this.worker;
    this.starting ??= this.spawn().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async spawn(): Promise<Worker> {
    const worker = new Worker(BOOTSTRAP, { eval: true, workerData: workerEntry(), name: 'mmad-inference' });
    worker.unref();
    worker.on('message', (reply: HostReply) => {
      this.settle(reply.id, reply);
      if (this.pending.size === 0) worker.unref();
    });
    worker.on('error', (err) => this.log.error('inference thread failed', { error: err }));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined;
      if (this.closed) return;
      this.restarts++;
      const lost = [...this.pending.keys()];
      this.log.error('inference thread stopped; the next request starts a new one', { exitCode: code, requestsFailed: lost.length });
      for (const id of lost) this.settle(id, { id, ok: false, error: `the inference thread stopped (exit code ${code})` });
    });
    // a new thread after a crash: open what was open on the old one, under the same numbers
    for (const [session, { model, options }] of this.opened) {
      const { id, reply } = this.expect();
      this.send(worker, id, { type: 'open', session, model, options });
      await reply;
    }
    this.worker = worker;
    return worker;
  }
}
