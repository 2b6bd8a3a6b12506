/** The messages between SessionHost (service thread) and session-worker.ts (inference thread). */
import type { InferenceSession } from 'onnxruntime-node';

/** A float32 tensor as it crosses threads: its values and its shape. */
export interface FloatTensor {
  data: Float32Array;
  dims: readonly number[];
}

export type HostRequest =
  /** `model`: the ONNX file's path, or its bytes (as checked against the manifest: what is hashed is what runs). */
  | { id: number; type: 'open'; session: number; model: string | Uint8Array; options: InferenceSession.SessionOptions }
  /** `giveBack`: the feeds came by transfer; the reply hands their buffers back (so the caller can fill them again). */
  | { id: number; type: 'run'; session: number; feeds: Record<string, FloatTensor>; giveBack: boolean }
  /** Runs the model on the same feeds until both `minRuns` and `ms` are reached (after `warmUpRuns`): the model alone. */
  | { id: number; type: 'repeat'; session: number; feeds: Record<string, FloatTensor>; warmUpRuns: number; minRuns: number; ms: number }
  | { id: number; type: 'release'; session: number };

export type HostReply =
  | {
      id: number;
      ok: true;
      type: 'open';
      inputNames: string[];
      outputNames: string[];
      inputMetadata: InferenceSession.ValueMetadata[];
      outputMetadata: InferenceSession.ValueMetadata[];
    }
  /** The outputs come by transfer; `feeds` are the request's, handed back when it asked for them (`giveBack`). */
  | { id: number; ok: true; type: 'run'; outputs: Record<string, FloatTensor>; feeds?: Record<string, FloatTensor>; ms: number }
  | { id: number; ok: true; type: 'repeat'; runs: number; elapsedMs: number }
  | { id: number; ok: true; type: 'release' }
  | { id: number; ok: false; error: string };
