/**
 * Which input partitions the consumer fetches, per task: every input topic's
 * partition p is paused or resumed as a task's needs say (starting, at a
 * bound, a claim check that does not fit yet), and a partition at the end of a
 * bounded range stays paused whatever they say.
 */
import type { Consumer } from 'kafkajs';
import type { BoundedRange } from './bounded-range.js';

export class PartitionPauses {
  /** Paused input topics per task number. */
  private readonly paused = new Map<number, Set<string>>();

  constructor(
    private readonly consumer: Pick<Consumer, 'pause' | 'resume'>,
    private readonly topics: string[],
    private readonly range: BoundedRange | undefined,
  ) {}

  /** All of task `p`'s input partitions. */
  pauseTask(p: number): void {
    this.set(p, this.topics);
  }

  resumeTask(p: number): void {
    this.set(p, []);
  }

  /** Pauses exactly `topics` of task `p` and resumes its others. */
  set(p: number, topics: string[]): void {
    const now = this.paused.get(p) ?? new Set<string>();
    const want = new Set(topics);
    for (const topic of this.topics) if (this.range?.done(topic, p)) want.add(topic);
    const pause = [...want].filter((t) => !now.has(t));
    const resume = [...now].filter((t) => !want.has(t));
    if (pause.length > 0) this.consumer.pause(pause.map((topic) => ({ topic, partitions: [p] })));
    if (resume.length > 0) this.consumer.resume(resume.map((topic) => ({ topic, partitions: [p] })));
    if (want.size > 0) this.paused.set(p, want);
    else this.paused.delete(p);
  }

  /** Task numbers with a paused input partition, in order. */
  tasks(): number[] {
    return [...this.paused.keys()].sort((a, b) => a - b);
  }
}
