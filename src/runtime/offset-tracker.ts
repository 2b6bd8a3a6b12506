import { present } from '../base/invariant.js';

/**
 * Which offset of an input partition may be committed. A consumed frame is
 * *held* until everything it can still cause has been published: it was
 * dead-lettered, recognised as a duplicate, or its sample closed and the
 * sample's last outputs were produced. The committable offset is the smallest
 * held offset (or, with nothing held, one past the last consumed), so a crash
 * or a task moving to another instance re-reads exactly the frames whose
 * effects are not yet all in Kafka: nothing is lost (at-least-once).
 */
export class OffsetTracker {
  private readonly held = new Set<bigint>();
  private next: bigint | undefined;
  private minCache: bigint | undefined;

  /** A frame at `offset` was consumed and is held. */
  hold(offset: string): void {
    const o = BigInt(offset);
    this.held.add(o);
    if (this.next === undefined || o + 1n > this.next) this.next = o + 1n;
    if (this.minCache !== undefined && o < this.minCache) this.minCache = o;
  }

  /** The frame at `offset` no longer needs to be re-read after a restart. */
  release(offset: string): void {
    const o = BigInt(offset);
    if (this.held.delete(o) && o === this.minCache) this.minCache = undefined;
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** The offset to commit, or undefined when nothing was consumed. */
  committable(): string | undefined {
    if (this.next === undefined) return undefined;
    if (this.held.size === 0) return this.next.toString();
    let min = this.minCache;
    if (min === undefined) {
      for (const o of this.held) if (min === undefined || o < min) min = o;
      this.minCache = min;
    }
    return present(min, 'the smallest held offset').toString();
  }
}
