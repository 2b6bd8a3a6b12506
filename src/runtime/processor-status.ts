/**
 * What the stream processor lets observers see (health checks, metrics),
 * read-only: the shapes of `StreamProcessor.stats()`, `status()`,
 * `joinSnapshot()` and the `onDelivery` hook. Observers never reach into tasks
 * themselves.
 */
import type { StationSkew } from '../input/clock-skew.js';
import type { JoinStats } from '../join/sample-joiner.js';

/** Counters over the whole run (tasks that moved away or were rebuilt included) and the state now. */
export interface ProcessorStats {
  tasks: number[];
  framesRead: number;
  /** Records a kept task was delivered again after a rebalance and dropped. */
  redelivered: number;
  judged: number;
  deadLetters: number;
  keyProblems: number;
  duplicates: number;
  pendingSamples: number;
  paused: number[];
  commits: number;
  taskRestarts: number;
  /** The last capture-time skew seen per station (input/clock-skew.ts). */
  clockSkew: StationSkew[];
  /** Claim-check reads past their deadline that have not returned. */
  stuckClaimReads: number;
}

export interface ProcessorStatus {
  /** Started and not stopping. */
  running: boolean;
  /** The member has had its first assignment and started its tasks (possibly none, when there are more members than partitions). */
  assigned: boolean;
  /** Task numbers (input partition numbers) running here. */
  tasks: number[];
  /** Task numbers being started (fencing, restoring the changelog). */
  starting: number[];
  /** How long ago the broker last answered the consumer (heartbeat or group join); null before the first answer. */
  brokerContactAgoMs: number | null;
  /**
   * Work that has not moved for longer than processing.stallTimeoutMs: a delivery whose
   * reading never ends (task null), or a task with input or judging waiting that took and
   * finished nothing. Liveness fails while this is not empty.
   */
  stalled: { task: number | null; forMs: number; what: string }[];
}

/** The join across every task this member ran, including tasks that moved away or were rebuilt. */
export interface JoinSnapshot {
  stats: JoinStats;
  /** Samples waiting in the joins of the running tasks. */
  pendingSamples: number;
  /** Bytes of frames those samples hold. */
  pendingBytes: number;
  /** Closed samples the running tasks' joins remember (for duplicates and late frames), and their estimated bytes. */
  closedSamples: number;
  closedBytes: number;
}

/** One delivery a task took from one input partition. */
export interface Delivery {
  topic: string;
  partition: number;
  records: number;
  /** Records behind the partition's end (high watermark) after this delivery. */
  lag: number;
}
