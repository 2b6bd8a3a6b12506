export interface UntilOptions {
  /** How often `cond` is asked (default 100 ms). */
  everyMs?: number;
  /** Appended to the failure, e.g. a child process's log. */
  detail?: () => string;
}

/**
 * Asks `cond` until it holds; fails after `timeoutMs` of real time, naming
 * `what`. Timed on the monotonic clock: a step of the machine's wall clock
 * while a test waits neither ends the wait early nor stretches it.
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, options: UntilOptions = {}): Promise<void> {
  const { everyMs = 100, detail } = options;
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail === undefined ? '' : `\n${detail()}`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
