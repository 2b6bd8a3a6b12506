/**
 * The inference thread: owns the ONNX Runtime sessions of one SessionHost and
 * runs them. onnxruntime-node's `run` is a blocking call (queued with
 * setImmediate, then synchronous), so on the service's main thread each batch
 * would stall the consumer, the decoders' callbacks and every timer for the
 * length of the model; here it stalls only this thread. Requests and replies
 * are the messages of session-protocol.ts.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { FloatTensor, HostReply, HostRequest } from './session-protocol.js';

const port = parentPort;
if (port === null) throw new Error('session-worker.ts runs as a worker thread of SessionHost');

const sessions = new Map<number, ort.InferenceSession>();

function session(id: number): ort.InferenceSession {
  const s = sessions.get(id);
  if (s === undefined) throw new Error(`no open session ${id}`);
  return s;
}

function tensors(feeds: Record<string, FloatTensor>): Record<string, ort.Tensor> {
  return Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, new ort.Tensor('float32', t.data, [...t.dims])]));
}

function plain(out: ort.InferenceSession.OnnxValueMapType): Record<string, FloatTensor> {
  const result: Record<string, FloatTensor> = {};
  for (const [name, t] of Object.entries(out)) {
    if (t.type !== 'float32') throw new Error(`output ${name} is ${t.type}, expected float32`);
    result[name] = { data: t.data as Float32Array, dims: [...t.dims] };
  }
  return result;
}

async function handle(req: HostRequest): Promise<HostReply> {
  switch (req.type) {
    case 'open': {
      const s = typeof req.model === 'string' ? await ort.InferenceSession.create(req.model, req.options) : await ort.InferenceSession.create(req.model, req.options);
      sessions.set(req.session, s);
      return { id: req.id, ok: true, type: 'open', inputNames: [...s.inputNames], outputNames: [...s.outputNames], inputMetadata: [...s.inputMetadata], outputMetadata: [...s.outputMetadata] };
    }
    case 'run': {
      const feeds = tensors(req.feeds);
      const t0 = performance.now();
      const out = await session(req.session).run(feeds);
      const ms = performance.now() - t0;
      return { id: req.id, ok: true, type: 'run', outputs: plain(out), ...(req.giveBack ? { feeds: req.feeds } : {}), ms };
    }
    case 'repeat': {
      // the model alone, back to back on the same tensors: no messages between runs
      const s = session(req.session);
      const feeds = tensors(req.feeds);
      for (let i = 0; i < req.warmUpRuns; i++) await s.run(feeds);
      const t0 = performance.now();
      let runs = 0;
      while (runs < req.minRuns || performance.now() - t0 < req.ms) {
        await s.run(feeds);
        runs++;
      }
      return { id: req.id, ok: true, type: 'repeat', runs, elapsedMs: performance.now() - t0 };
    }
    case 'release': {
      await sessions.get(req.session)?.release();
      sessions.delete(req.session);
      return { id: req.id, ok: true, type: 'release' };
    }
  }
}

/**
 * The buffers a reply can move instead of copying: a run's outputs (new for each run) and the feeds it
 * hands back. Each once: two tensors may share a buffer, and a buffer listed twice cannot be sent.
 */
function movable(reply: HostReply): ArrayBuffer[] {
  if (!reply.ok || reply.type !== 'run') return [];
  const tensors = [...Object.values(reply.outputs), ...Object.values(reply.feeds ?? {})];
  return [...new Set(tensors.map((t) => t.data.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer))];
}

port.on('message', (req: HostRequest) => {
  handle(req).then(
    (reply) => port.postMessage(reply, movable(reply)),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies HostReply),
  );
});
