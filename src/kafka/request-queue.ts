/**
 * The writes of one idempotent (or transactional) kafkajs producer, one
 * request at a time and in call order.
 *
 * kafkajs numbers an idempotent producer's records per partition when it
 * builds a request, so two sendBatch calls in flight at once can reach the
 * broker in the other order (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal for the
 * producer). Waiting for each caller's ack before the next caller may send
 * keeps the order but makes every record wait for all the round trips ahead
 * of it. Here callers hand records in without waiting: what arrives while a
 * request is in flight goes out together in the next one (up to
 * `maxRequestBytes`), so a record waits for at most the request ahead of it.
 *
 * A barrier (a transaction's commit, an offset commit) runs after everything
 * queued before it was acknowledged and before anything queued after it is
 * sent — the point where "what was written so far" is well defined.
 */
import { at } from '../base/invariant.js';

type Job<R> =
  | { kind: 'send'; records: R[]; bytes: number; resolve: () => void; reject: (err: unknown) => void; onFailure: ((err: unknown) => void) | undefined }
  | { kind: 'barrier'; run: () => Promise<void> };

export class RequestQueue<R> {
  private queue: Job<R>[] = [];
  private draining = false;
  private queuedRecords = 0;

  constructor(
    /** Sends one request's records (in order) and resolves on the broker's acknowledgement. */
    private readonly write: (records: R[]) => Promise<void>,
    private readonly sizeOf: (record: R) => number,
    private readonly maxRequestBytes = 8 * 1024 * 1024,
  ) {}

  /** Records handed in and not yet acknowledged (queued or in flight). */
  get pending(): number {
    return this.queuedRecords;
  }

  /**
   * Queues records behind everything queued so far; resolves when they are
   * acknowledged. `onFailure` is called, before anything queued later runs,
   * with the error of a request that carried them (so a later barrier can
   * refuse to commit past records that were never written).
   */
  send(records: R[], onFailure?: (err: unknown) => void): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const bytes = records.reduce((n, r) => n + this.sizeOf(r), 0);
      this.queuedRecords += records.length;
      this.queue.push({ kind: 'send', records, bytes, resolve, reject, onFailure });
      this.kick();
    });
  }

  /** Runs `fn` once everything queued before it is acknowledged (or failed), before anything queued after it. */
  barrier<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'barrier', run: () => fn().then(resolve, reject) });
      this.kick();
    });
  }

  private kick(): void {
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
        if (head.kind === 'barrier') {
          this.queue.shift();
          await head.run();
          continue;
        }
        // the run of sends at the head, as far as one request may carry
        let take = 1;
        let bytes = head.bytes;
        for (; take < this.queue.length; take++) {
          const next = at(this.queue, take);
          if (next.kind !== 'send' || bytes + next.bytes > this.maxRequestBytes) break;
          bytes += next.bytes;
        }
        const jobs = this.queue.splice(0, take) as Extract<Job<R>, { kind: 'send' }>[];
        try {
          await this.write(jobs.flatMap((j) => j.records));
          for (const j of jobs) j.resolve();
        } catch (err) {
          for (const j of jobs) j.onFailure?.(err);
          for (const j of jobs) j.reject(err);
        } finally {
          for (const j of jobs) this.queuedRecords -= j.records.length;
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
