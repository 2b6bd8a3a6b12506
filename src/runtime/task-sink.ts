/**
 * Where a task's records go, and how they become durable together with the
 * input offsets — the one place the delivery guarantee is decided.
 *
 *  exactly-once: one transactional producer per task, with the stable
 *    transactional id `<groupId>-task-<p>`. kafkajs implements only version
 *    0 of TxnOffsetCommit (no KIP-447 group-generation fencing), so fencing
 *    comes from the id itself, as in Kafka Streams before EOS v2: when a task
 *    starts on an instance, initialising the producer aborts any transaction
 *    of a previous owner and fences it. Events, alerts, dead letters, the join
 *    changelog and the input offsets commit in one transaction.
 *  at-least-once: one idempotent producer shared by the tasks; offsets are
 *    committed by the consumer after the records are acknowledged. Cheaper
 *    (no transaction markers, no commit round trips); a crash can publish a
 *    revision again.
 *
 * Writes do not wait for each other's acks: a producer's writes go through one
 * RequestQueue (one request in flight, the rest coalesced into the next), and
 * a commit is a barrier in that queue, so it covers exactly what was written
 * before it. A write that fails marks the sink failed: its next commit throws
 * instead of committing offsets past records that were never written.
 */
import type { Consumer, Kafka, Message, Producer, Transaction } from 'kafkajs';
import type { Config } from '../config/config-schema.js';
import { producerConfig } from '../kafka/kafka-client.js';
import { backoffMs } from '../base/backoff.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { RequestQueue } from '../kafka/request-queue.js';

export interface OutRecord {
  topic: string;
  /** Explicit partition (the changelog: the task's own); else the default partitioner on the key. */
  partition?: number;
  key: string | Buffer | null;
  value: Buffer | null;
}

export interface OffsetCommit {
  topic: string;
  partition: number;
  offset: string;
}

export interface TaskSink {
  /**
   * Queues one step's records behind those written before (callers need not
   * wait); resolves when the broker acknowledged them.
   */
  write(records: OutRecord[]): Promise<void>;
  /**
   * Once everything written before this call is acknowledged, makes it durable
   * together with these input offsets; writes made after the call are not covered.
   */
  commit(offsets: OffsetCommit[]): Promise<void>;
  /**
   * Gives up what is not committed (the task's state is rebuilt from Kafka);
   * the sink takes nothing more: writes and commits still queued fail.
   */
  abort(): Promise<void>;
  /** Aborts, then lets the producer go. */
  close(): Promise<void>;
}

function topicMessages(records: OutRecord[]): { topic: string; messages: Message[] }[] {
  const byTopic = new Map<string, Message[]>();
  for (const r of records) {
    const list = byTopic.get(r.topic) ?? [];
    list.push({ key: r.key, value: r.value, ...(r.partition === undefined ? {} : { partition: r.partition }) });
    byTopic.set(r.topic, list);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

const recordBytes = (r: OutRecord): number => (r.value?.length ?? 0) + (r.key?.length ?? 0);

/** A failed write of a sink: remembered so that its next commit refuses to go past it. */
class WriteFailure {
  error: unknown;
  readonly record = (err: unknown): void => {
    this.error ??= err;
  };
  check(): void {
    if (this.error !== undefined) throw new MmadError(ErrorCode.BROKER_UNAVAILABLE, `not committing: an earlier write failed: ${messageOf(this.error)}`, { cause: this.error });
  }
}

/**
 * Refuses what reaches the queue after the sink gave up: it would start a new transaction, or commit offsets past aborted records.
 * TASK_CLOSED, not retriable: the broker is fine, and the task that queued it is gone (a rebuilt task has a new sink).
 */
function checkOpen(closed: boolean): void {
  if (closed) throw new MmadError(ErrorCode.TASK_CLOSED, 'the task gave up its outputs (aborted or closed); nothing more is written or committed');
}

export class TransactionalSink implements TaskSink {
  private txn: Transaction | undefined;
  private closed = false;
  private readonly queue: RequestQueue<OutRecord>;
  private readonly failure = new WriteFailure();
  private constructor(
    private readonly producer: Producer,
    private readonly groupId: string,
  ) {
    this.queue = new RequestQueue((records) => this.send(records), recordBytes);
  }

  static transactionalId(config: Config, partition: number): string {
    return `${config.input.groupId}-task-${partition}`;
  }

  /** Connecting initialises the transactional id: a previous owner of the task is fenced here. */
  static async open(kafka: Kafka, config: Config, partition: number): Promise<TransactionalSink> {
    const base = producerConfig(config);
    const producer = kafka.producer({
      ...base,
      transactionalId: TransactionalSink.transactionalId(config, partition),
      transactionTimeout: 60_000,
      // right after a commit the coordinator is still writing markers (CONCURRENT_TRANSACTIONS): retry soon
      retry: { ...base.retry, initialRetryTime: 25 },
    });
    await producer.connect();
    return new TransactionalSink(producer, config.input.groupId);
  }

  write(records: OutRecord[]): Promise<void> {
    return this.queue.send(records, this.failure.record);
  }

  private async send(records: OutRecord[]): Promise<void> {
    checkOpen(this.closed);
    this.txn ??= await this.producer.transaction();
    await this.txn.sendBatch({ topicMessages: topicMessages(records), acks: -1 });
  }

  commit(offsets: OffsetCommit[]): Promise<void> {
    return this.queue.barrier(() => this.commitNow(offsets));
  }

  private async commitNow(offsets: OffsetCommit[]): Promise<void> {
    checkOpen(this.closed);
    this.failure.check();
    if (this.txn === undefined && offsets.length === 0) return;
    this.txn ??= await this.producer.transaction();
    const txn = this.txn;
    this.txn = undefined;
    try {
      if (offsets.length > 0) {
        const byTopic = new Map<string, { partition: number; offset: string }[]>();
        for (const o of offsets) byTopic.set(o.topic, [...(byTopic.get(o.topic) ?? []), { partition: o.partition, offset: o.offset }]);
        const topics = [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
        await retryTransient(() => txn.sendOffsets({ consumerGroupId: this.groupId, topics }));
      }
      await retryTransient(() => txn.commit());
    } catch (err) {
      await txn.abort().catch(() => undefined);
      throw new MmadError(ErrorCode.BROKER_UNAVAILABLE, `transaction commit failed: ${messageOf(err)}`, { cause: err });
    }
  }

  async abort(): Promise<void> {
    this.closed = true;
    const txn = this.txn;
    this.txn = undefined;
    await txn?.abort().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.abort();
    await this.producer.disconnect().catch(() => undefined);
  }
}

/**
 * kafkajs does not retry every transient transaction error itself: the
 * coordinator still writing the previous transaction's markers
 * (CONCURRENT_TRANSACTIONS) or loading after a restart. Those are retried
 * here with a short backoff; anything else (fencing above all) is not.
 */
const TRANSIENT = new Set(['CONCURRENT_TRANSACTIONS', 'COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_NOT_AVAILABLE', 'NOT_COORDINATOR']);

async function retryTransient<T>(fn: () => Promise<T>, attempts = 20): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const type = (err as { type?: string }).type;
      if (i >= attempts || type === undefined || !TRANSIENT.has(type)) throw err;
      await new Promise((r) => setTimeout(r, backoffMs(i - 1, { initialMs: 40, maxMs: 1000 })));
    }
  }
}

/**
 * At-least-once: the tasks share one idempotent producer and so one request
 * queue (`AtLeastOnceSink.queueFor`); each task has its own sink over it, so a
 * failed write stops only the commits of the task it belonged to.
 */
export class AtLeastOnceSink implements TaskSink {
  private readonly failure = new WriteFailure();
  private closed = false;
  constructor(
    private readonly queue: RequestQueue<OutRecord>,
    private readonly consumer: Consumer,
  ) {}

  /** The one queue of the shared producer. */
  static queueFor(producer: Producer): RequestQueue<OutRecord> {
    return new RequestQueue((records) => producer.sendBatch({ topicMessages: topicMessages(records), acks: -1 }).then(() => undefined), recordBytes);
  }

  write(records: OutRecord[]): Promise<void> {
    return this.queue.send(records, this.failure.record);
  }

  commit(offsets: OffsetCommit[]): Promise<void> {
    return this.queue.barrier(async () => {
      checkOpen(this.closed);
      this.failure.check();
      if (offsets.length > 0) await this.consumer.commitOffsets(offsets);
    });
  }

  /** Records already handed to the shared producer go out (they may be published again: at-least-once); no commit follows. */
  async abort(): Promise<void> {
    this.closed = true;
  }

  async close(): Promise<void> {
    await this.abort();
  }
}
