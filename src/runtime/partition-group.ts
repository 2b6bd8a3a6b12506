/**
 * The input of one task, merged in event-time order, as Kafka Streams'
 * partition group does. A task reads partition p of every input topic; the
 * consumer delivers them in batches of its own rhythm (catching up on
 * history, one topic's batch can span minutes). Feeding the join in delivery
 * order would let one topic's frames push stream time past the others'
 * deadlines. So each partition gets a queue, and the next frame is the head
 * with the smallest capture time — taken only when every partition has a head,
 * or the empty ones are known to be caught up (their last delivery, or the
 * offsets at task start, reached the high watermark), or the task has waited
 * `maxIdleMs` since its last delivery (then it proceeds without them, as Kafka
 * Streams' max.task.idle.ms). The wait counts from the last delivery, not from
 * the first time the merge blocked: while the consumer is still handing over
 * the batches of one fetch, the missing partition's batch may be the next one.
 * Replays of history therefore join like the live run.
 */

export interface Queued<T> {
  topic: string;
  offset: string;
  /** Event time; -Infinity for items that carry none (unusable records), which go first. */
  time: number;
  bytes: number;
  item: T;
}

interface PartitionQueue<T> {
  items: Queued<T>[];
  head: number;
  /** The last delivery reached the partition's high watermark. */
  caughtUp: boolean;
}

export class PartitionGroup<T> {
  private readonly queues = new Map<string, PartitionQueue<T>>();
  private blockedSince: number | undefined;
  private bytes = 0;
  private count = 0;

  constructor(
    topics: string[],
    private readonly maxIdleMs: number,
  ) {
    for (const t of topics) this.queues.set(t, { items: [], head: 0, caughtUp: false });
  }

  get bufferedBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.count;
  }

  /** Appends one delivery of a partition, in offset order. */
  add(topic: string, items: Queued<T>[], caughtUp: boolean): void {
    const q = this.queues.get(topic);
    if (q === undefined) throw new Error(`topic ${topic} is not an input of this task`);
    for (const it of items) {
      q.items.push(it);
      this.bytes += it.bytes;
    }
    this.count += items.length;
    q.caughtUp = caughtUp;
    this.blockedSince = undefined;
  }

  /** What the offsets said at task start: a partition already at its end is not waited for. */
  setCaughtUp(topic: string, caughtUp: boolean): void {
    const q = this.queues.get(topic);
    if (q !== undefined && q.items.length === q.head) q.caughtUp = caughtUp;
  }

  /** The next item in event-time order, or undefined while the merge must wait. */
  next(wallNow: number): Queued<T> | undefined {
    let best: { q: PartitionQueue<T>; it: Queued<T> } | undefined;
    let waiting = false;
    for (const q of this.queues.values()) {
      const it = q.items[q.head];
      if (it === undefined) {
        if (!q.caughtUp) waiting = true;
        continue;
      }
      if (best === undefined || it.time < best.it.time) best = { q, it };
    }
    if (best === undefined) return undefined;
    if (waiting && best.it.time !== Number.NEGATIVE_INFINITY) {
      this.blockedSince ??= wallNow;
      if (wallNow - this.blockedSince < this.maxIdleMs) return undefined;
    } else {
      this.blockedSince = undefined;
    }
    const { q, it } = best;
    q.head++;
    if (q.head > 1024 && q.head * 2 > q.items.length) {
      q.items.splice(0, q.head);
      q.head = 0;
    }
    this.bytes -= it.bytes;
    this.count--;
    return it;
  }

  /** Drops everything (task revoked). */
  clear(): Queued<T>[] {
    const all: Queued<T>[] = [];
    for (const q of this.queues.values()) {
      all.push(...q.items.slice(q.head));
      q.items = [];
      q.head = 0;
    }
    this.bytes = 0;
    this.count = 0;
    return all;
  }
}
