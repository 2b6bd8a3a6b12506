/**
 * The processor's counters over the whole run: what the running tasks count
 * now plus what the tasks no longer running here (moved away or rebuilt)
 * counted before they went, so `stats()` and `joinSnapshot()` never go back.
 */
import { addJoinStats, emptyJoinStats } from '../join/sample-joiner.js';
import type { JoinSnapshot, ProcessorStats } from './processor-status.js';
import type { Task } from './task.js';

/** What stats() reads from outside the tasks. */
export interface ProcessorState {
  paused: number[];
  clockSkew: ProcessorStats['clockSkew'];
  stuckClaimReads: number;
}

export class StatsRollup {
  /** Counters of tasks no longer running here. */
  private readonly retired = { framesRead: 0, redelivered: 0, judged: 0, deadLetters: 0, keyProblems: 0, duplicates: 0, commits: 0 };
  /** Join statistics of tasks no longer running here. */
  private readonly retiredJoin = emptyJoinStats();
  private restarts = 0;

  /** A task failed and is rebuilt. */
  restarted(): void {
    this.restarts++;
  }

  /** A task stops running here: its counts are kept. */
  retire(task: Task): void {
    const r = this.retired;
    r.framesRead += task.stats.framesRead;
    r.redelivered += task.stats.redelivered;
    r.judged += task.stats.judged;
    r.deadLetters += task.stats.deadLetters;
    r.keyProblems += task.stats.keyProblems;
    r.duplicates += task.joiner.stats.duplicates;
    r.commits += task.stats.commits;
    addJoinStats(this.retiredJoin, task.joiner.stats);
  }

  stats(tasks: Task[], state: ProcessorState): ProcessorStats {
    const sum = (f: (t: Task) => number): number => tasks.reduce((s, t) => s + f(t), 0);
    const r = this.retired;
    return {
      tasks: tasks.map((t) => t.partition).sort((a, b) => a - b),
      framesRead: r.framesRead + sum((t) => t.stats.framesRead),
      redelivered: r.redelivered + sum((t) => t.stats.redelivered),
      judged: r.judged + sum((t) => t.stats.judged),
      deadLetters: r.deadLetters + sum((t) => t.stats.deadLetters),
      keyProblems: r.keyProblems + sum((t) => t.stats.keyProblems),
      duplicates: r.duplicates + sum((t) => t.joiner.stats.duplicates),
      pendingSamples: sum((t) => t.joiner.pendingCount),
      paused: state.paused,
      commits: r.commits + sum((t) => t.stats.commits),
      taskRestarts: this.restarts,
      clockSkew: state.clockSkew,
      stuckClaimReads: state.stuckClaimReads,
    };
  }

  /** The join of every task this member ran. */
  joinSnapshot(tasks: Task[]): JoinSnapshot {
    const stats = addJoinStats(emptyJoinStats(), this.retiredJoin);
    let pendingSamples = 0;
    let pendingBytes = 0;
    let closedSamples = 0;
    let closedBytes = 0;
    for (const t of tasks) {
      addJoinStats(stats, t.joiner.stats);
      pendingSamples += t.joiner.pendingCount;
      pendingBytes += t.joiner.bytesHeld;
      closedSamples += t.joiner.closedMemory.samples;
      closedBytes += t.joiner.closedMemory.bytes;
    }
    return { stats, pendingSamples, pendingBytes, closedSamples, closedBytes };
  }
}
