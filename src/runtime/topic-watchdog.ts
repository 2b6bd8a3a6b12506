/**
 * A topic deleted under the service cannot be worked around: its partitions,
 * offsets and co-partitioning are gone. The watchdog lists the broker's topics
 * every `processing.topicCheckMs` and reports a missing one through `fatal`
 * (TOPIC_MISSING); the processor's owner then aborts. A broker it cannot reach
 * is not a finding: the next check tries again.
 */
import type { Kafka } from 'kafkajs';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import type { Logger } from '../base/logger.js';
import { inputTopics } from '../kafka/topics.js';
import { changelogTopic } from './join-changelog.js';

export class TopicWatchdog {
  private readonly topics: string[];
  private readonly everyMs: number;
  private lastCheck = 0;
  private checking = false;
  private reportFatal!: (err: MmadError) => void;
  /** Resolves with the reason when a topic the processor reads or writes is gone. */
  readonly fatal: Promise<MmadError>;

  constructor(
    config: Config,
    private readonly kafka: Pick<Kafka, 'admin'>,
    private readonly log: Logger,
    private readonly now: () => number,
    /** Once the processor is stopping, a missing topic is not reported. */
    private readonly stopping: () => boolean,
  ) {
    const t = config.topics;
    this.topics = [...inputTopics(config).map((i) => i.topic), t.events, t.alerts, t.deadLetters, changelogTopic(config)];
    this.everyMs = config.processing.topicCheckMs;
    this.fatal = new Promise((r) => (this.reportFatal = r));
  }

  /** Called on the processor's timer: starts a check when one is due and none is running. */
  tick(): void {
    if (!this.checking && this.now() - this.lastCheck >= this.everyMs) void this.check();
  }

  private async check(): Promise<void> {
    this.checking = true;
    this.lastCheck = this.now();
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const have = new Set(await admin.listTopics());
      const missing = this.topics.filter((t) => !have.has(t));
      if (missing.length > 0 && !this.stopping()) {
        const err = new MmadError(
          ErrorCode.TOPIC_MISSING,
          `topic(s) ${missing.join(', ')} no longer exist (deleted while the service ran); stopping. Nothing past the last commit is lost: ` +
            `recreate them ('mmad topics create') and restart, and the uncommitted input is read again`,
          { details: { missing } },
        );
        this.log.error('topics missing', { missing });
        this.reportFatal(err);
      }
    } catch (err) {
      this.log.debug('topic check skipped: broker not reachable', { error: messageOf(err) });
    } finally {
      await admin.disconnect().catch(() => undefined);
      this.checking = false;
    }
  }
}
