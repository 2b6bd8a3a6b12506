/**
 * Where CPU time goes, per thread of this process and for another process
 * (the local broker), from Linux's /proc. Thread names do not tell Node's
 * threads apart (the main thread, the inference thread, ONNX Runtime's pool,
 * libuv's pool and V8's helpers are all "node"), so callers classify them by
 * what they did: the threads busy while the model ran alone are the model's.
 * Elsewhere than Linux every figure is NaN.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { at } from '../src/base/invariant.js';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on Linux). */
const TICK_MS = 10;

function statCpuMs(path: string): number {
  const fields = at(readFileSync(path, 'utf8').split(') '), 1).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** CPU time so far per thread of this process (thread id → ms); empty where /proc is missing. */
export function threadCpuMs(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) out.set(tid, statCpuMs(`/proc/self/task/${tid}/stat`));
  } catch {
    out.clear();
  }
  return out;
}

/** CPU time so far of another process, ms; NaN when unknown. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    return statCpuMs(`/proc/${pid}/stat`);
  } catch {
    return NaN;
  }
}

/** Per-thread CPU used between two snapshots. */
export function cpuSince(before: Map<string, number>, after: Map<string, number> = threadCpuMs()): Map<string, number> {
  const out = new Map<string, number>();
  for (const [tid, ms] of after) out.set(tid, ms - (before.get(tid) ?? 0));
  return out;
}

/** The threads that did at least `share` of the work in `delta` (e.g. the model's threads while it ran alone). */
export function busyThreads(delta: Map<string, number>, share = 0.05): Set<string> {
  const total = [...delta.values()].reduce((a, b) => a + b, 0);
  return new Set([...delta].filter(([, ms]) => total > 0 && ms >= share * total).map(([tid]) => tid));
}

export interface CpuSplit {
  /** The model's threads (the inference thread and ONNX Runtime's pool). */
  model: number;
  /** The service's main thread (Kafka clients, Avro, join, outputs). */
  main: number;
  /** Every other thread (image decoding in libuv's and libvips' pools, garbage collection). */
  other: number;
}

/** Splits a run's per-thread CPU (ms) by role, divided by `count` (per part). */
export function splitCpu(delta: Map<string, number>, modelThreads: Set<string>, count: number): CpuSplit {
  const split = { model: 0, main: 0, other: 0 };
  if (delta.size === 0) return { model: NaN, main: NaN, other: NaN };
  for (const [tid, ms] of delta) {
    if (tid === String(process.pid)) split.main += ms;
    else if (modelThreads.has(tid)) split.model += ms;
    else split.other += ms;
  }
  return { model: split.model / count, main: split.main / count, other: split.other / count };
}
