/**
 * The one exponential backoff every retry loop uses (task start-up, committed offsets, a
 * transaction coordinator that is busy, an unreachable broker at start-up).
 */
export interface Backoff {
  /** The wait before the first retry, ms. */
  initialMs: number;
  /** No wait is longer, ms. */
  maxMs: number;
}

/** The wait before retry number `n` (0: the first retry): `initialMs` doubled `n` times, at most `maxMs`. */
export function backoffMs(n: number, { initialMs, maxMs }: Backoff): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, Math.floor(n)), 40));
}
