/**
 * A bounded run (replay): per input partition, where the range starts and the
 * first offset past it. Records from the end on are not taken; a partition at
 * its end stays paused and counts as caught up for the merge; once every
 * partition is there and nothing is buffered, every wait expires (the joins
 * are flushed), the outputs commit and `finished` resolves.
 */
import type { Task } from './task.js';

export interface InputRange {
  /** Where the range starts (the group's committed offsets must be set there), keyed `${topic}:${partition}`. */
  start: Map<string, bigint>;
  /** The first offset past the range, same keys. */
  end: Map<string, bigint>;
}

export interface RangeProgress {
  /** Records read of the range, and its size. */
  done: number;
  total: number;
  partitionsDone: number;
  partitions: number;
}

const key = (topic: string, partition: number): string => `${topic}:${partition}`;

export class BoundedRange {
  /** Input partitions that reached the end of the range. */
  private readonly reached = new Set<string>();
  /** The next offset to read, per input partition. */
  private readonly positions = new Map<string, bigint>();
  private finishing = false;
  private reportFinished!: () => void;
  /** Resolves once the whole range is judged and committed. */
  readonly finished: Promise<void>;

  constructor(private readonly range: InputRange) {
    this.finished = new Promise((r) => (this.reportFinished = r));
  }

  /** The end of the range for this input partition (a partition the range does not name has none to read). */
  end(topic: string, partition: number): bigint {
    return this.range.end.get(key(topic, partition)) ?? 0n;
  }

  /** This input partition has nothing more to read in the range. */
  done(topic: string, partition: number): boolean {
    return this.reached.has(key(topic, partition));
  }

  /** Where a task starts reading this input partition (its committed offset), and whether that is the end already. */
  startAt(topic: string, partition: number, offset: bigint, atEnd: boolean): void {
    if (atEnd) this.reached.add(key(topic, partition));
    this.positions.set(key(topic, partition), offset);
  }

  /** A delivery was read up to `next` (the offset after its last record), or stopped at the end (`pastEnd`). */
  delivered(topic: string, partition: number, next: bigint, pastEnd: boolean): void {
    const stop = this.end(topic, partition);
    this.positions.set(key(topic, partition), pastEnd ? stop : next);
    if (pastEnd || next >= stop) this.reached.add(key(topic, partition));
  }

  /** How far the range is read (records), for progress reports. */
  progress(): RangeProgress {
    let done = 0;
    let total = 0;
    for (const [k, end] of this.range.end) {
      const start = this.range.start.get(k) ?? end;
      total += Number(end - start);
      const at = this.positions.get(k) ?? start;
      done += Number((at < end ? at : end) - start);
    }
    return { done: Math.max(0, done), total, partitionsDone: this.reached.size, partitions: this.range.end.size };
  }

  /**
   * Once every partition reached its end and every one of them belongs to a
   * running task (`inputs` topics each) with nothing buffered: flush the joins,
   * commit, and resolve `finished`. A task that failed meanwhile is being
   * rebuilt and reads its rest again: the next call tries again.
   */
  async finishIfDone(tasks: Task[], inputs: number): Promise<void> {
    if (this.finishing) return;
    for (const k of this.range.end.keys()) if (!this.reached.has(k)) return;
    if (tasks.length * inputs < this.range.end.size || tasks.some((t) => t.buffered > 0)) return;
    this.finishing = true;
    for (const t of tasks) t.flush();
    await Promise.all(tasks.map((t) => t.commit()));
    await Promise.all(tasks.map((t) => t.idle()));
    if (tasks.some((t) => t.failed)) {
      this.finishing = false;
      return;
    }
    this.reportFinished();
  }
}
