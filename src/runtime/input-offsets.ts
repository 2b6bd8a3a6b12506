/**
 * A task's input offsets, one input partition per input topic: where the task
 * stands (records before its position were handed over already: a consumer
 * goes back to the committed offsets after a rebalance), which frames are
 * still held by what they can cause (OffsetTracker), what may be committed,
 * and which changelog entries the committed offsets let go.
 *
 * The join changelog mirrors what the join remembers: a sample's entry is
 * deleted (tombstoned) only after the join forgot the sample and the committed
 * offsets passed every frame read before that. A frame read again after a
 * restart, or read for the first time (a duplicate, a late modality of a
 * closed part), therefore meets the same knowledge of its part as it would
 * have without the restart.
 */
import { present } from '../base/invariant.js';
import { OffsetTracker } from './offset-tracker.js';
import type { OffsetCommit } from './task-sink.js';

/** A sample the join forgot, with how far each input had been read then (every frame of it lies at or before). */
interface ForgottenSample {
  sampleId: string;
  readTo: Map<string, bigint>;
}

export class InputOffsets {
  private readonly trackers = new Map<string, OffsetTracker>();
  /** Per input topic, the offset after the last record accepted (or the start position). */
  private readonly next = new Map<string, bigint>();
  /** Per input topic, the offset of the last frame handed to the join. */
  private readonly readTo = new Map<string, bigint>();
  /**
   * Samples the join forgot, whose changelog entry is deleted once the
   * committed offsets pass every frame read before (none of them can be read
   * again then). An input this task has read nothing from holds nothing back.
   */
  private awaitingTombstone: ForgottenSample[] = [];

  constructor(
    private readonly partition: number,
    topics: string[],
  ) {
    for (const topic of topics) this.trackers.set(topic, new OffsetTracker());
  }

  /** Where this input starts: the committed offset. */
  startAt(topic: string, offset: bigint): void {
    this.next.set(topic, offset);
  }

  /** Per input topic, the next offset the task expects (what it has not been handed yet). */
  positions(): Map<string, bigint> {
    return new Map(this.next);
  }

  /**
   * The records of a delivery at or past the task's position, now held; the
   * others were handed over before and are dropped: taken again, a copy would
   * count as a duplicate of itself and release its frame's offset while the
   * part still needs it.
   */
  accept<T extends { offset: string }>(topic: string, delivered: T[]): T[] {
    const from = this.next.get(topic);
    const items = from === undefined ? delivered : delivered.filter((it) => BigInt(it.offset) >= from);
    const last = items.at(-1);
    if (last !== undefined) this.next.set(topic, BigInt(last.offset) + 1n);
    const tracker = present(this.trackers.get(topic), `the offset tracker of ${topic}`);
    for (const it of items) tracker.hold(it.offset);
    return items;
  }

  /** The merge handed the record at `offset` on to the join. */
  taken(topic: string, offset: string): void {
    this.readTo.set(topic, BigInt(offset));
  }

  /** These frames need not be read again after a restart. */
  release(offsets: { topic: string; offset: string }[]): void {
    for (const { topic, offset } of offsets) this.trackers.get(topic)?.release(offset);
  }

  /** The offsets a commit may make durable now, per input topic that has any. */
  committable(): OffsetCommit[] {
    const out: OffsetCommit[] = [];
    for (const [topic, t] of this.trackers) {
      const offset = t.committable();
      if (offset !== undefined) out.push({ topic, partition: this.partition, offset });
    }
    return out;
  }

  /** The join forgot this sample: its entry goes once nothing read so far can be read again. */
  forgotten(sampleId: string): void {
    this.awaitingTombstone.push({ sampleId, readTo: new Map(this.readTo) });
  }

  /**
   * Forgotten samples none of whose frames can be read again once these
   * offsets are committed; a sample the join `knows` again (a new part under an
   * old name) is dropped from the list: its newer entry must stay.
   */
  tombstonesFor(offsets: { topic: string; offset: string }[], knows: (sampleId: string) => boolean): string[] {
    const committed = new Map(offsets.map((o) => [o.topic, BigInt(o.offset)]));
    const gone: string[] = [];
    this.awaitingTombstone = this.awaitingTombstone.filter((f) => {
      if (knows(f.sampleId)) return false;
      for (const [topic, last] of f.readTo) {
        const at = committed.get(topic);
        if (at === undefined || at <= last) return true;
      }
      gone.push(f.sampleId);
      return false;
    });
    return gone;
  }
}
