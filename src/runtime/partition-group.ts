/**
 * The input of one task, merged in event-time order, as Kafka Streams'
 * partition group does. A task reads partition p of every input topic; the
 * consumer delivers them in batches of its own rhythm (catching up on
 * history, one topic's batch can span minutes). Feeding the join in delivery
 * order would let one topic's frames push stream time past the others'
 * deadlines. So each partition gets a queue, and the next frame is the head
 * with the smallest capture time, taken only when no partition can still
 * hand over an earlier frame:
 *
 * - a partition with nothing buffered that is known to have unread records
 *   (its last delivery, or the offsets at task start, stopped short of the
 *   high watermark) is always waited for: the records exist and the consumer
 *   is fetching them, so the merge never depends on fetch timing;
 * - a partition with nothing buffered that is caught up is waited for at most
 *   `maxIdleMs` (Kafka Streams' max.task.idle.ms; 0 = not at all), counted
 *   from the last delivery to the task.
 *
 * A replay of history therefore joins exactly as the live run did, whatever
 * the batch sizes and fetch order (KIP-695's rule). The wait for a partition
 * with unread records only ends when they arrive: the processor never pauses
 * a partition whose queue is empty, and `blockedOn` names what is awaited so
 * a stall is visible in the logs.
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
  /** From `head` on: what is buffered; before it: taken (cleared) slots awaiting compaction. */
  items: (Queued<T> | undefined)[];
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

  /** A delivery without usable records (only transaction markers) still tells where the partition stands. */
  position(topic: string, caughtUp: boolean): void {
    const q = this.queues.get(topic);
    if (q !== undefined) q.caughtUp = caughtUp;
  }

  /** Nothing buffered and every partition at its end: the input has really stopped. */
  get drained(): boolean {
    if (this.count > 0) return false;
    for (const q of this.queues.values()) if (!q.caughtUp) return false;
    return true;
  }

  /** Topics with frames buffered (the ones to pause when the buffer is full; the others must keep fetching). */
  bufferedTopics(): string[] {
    return [...this.queues].filter(([, q]) => q.head < q.items.length).map(([t]) => t);
  }

  /** Topics the merge is waiting for because they have unread records and nothing buffered. */
  get blockedOn(): string[] {
    return [...this.queues].filter(([, q]) => q.head === q.items.length && !q.caughtUp).map(([t]) => t);
  }

  /** The next item in event-time order, or undefined while the merge must wait. */
  next(wallNow: number): Queued<T> | undefined {
    let best: { q: PartitionQueue<T>; it: Queued<T> } | undefined;
    let behind = false;
    let idle = false;
    for (const q of this.queues.values()) {
      const it = q.items[q.head];
      if (it === undefined) {
        if (q.caughtUp) idle = true;
        else behind = true;
        continue;
      }
      if (best === undefined || it.time < best.it.time) best = { q, it };
    }
    if (best === undefined) return undefined;
    const unusable = best.it.time === Number.NEGATIVE_INFINITY;
    if (behind && !unusable) return undefined;
    if (idle && !unusable && this.maxIdleMs > 0) {
      this.blockedSince ??= wallNow;
      if (wallNow - this.blockedSince < this.maxIdleMs) return undefined;
    } else {
      this.blockedSince = undefined;
    }
    const { q, it } = best;
    // the slot is cleared as it is taken: a taken frame (its payload) must not stay reachable from
    // the queue until the next compaction, which on a steady line would hold the last thousand
    // frames of every input partition
    q.items[q.head] = undefined;
    q.head++;
    if (q.head === q.items.length) {
      q.items = [];
      q.head = 0;
    } else if (q.head > 1024 && q.head * 2 > q.items.length) {
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
      all.push(...(q.items.slice(q.head) as Queued<T>[]));
      q.items = [];
      q.head = 0;
    }
    this.bytes = 0;
    this.count = 0;
    return all;
  }
}
