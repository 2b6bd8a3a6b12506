/**
 * What a task's step becomes on the wire: its event, alert and dead letters
 * and its join changelog entries, encoded as the records the sink writes
 * (topic, key, value; the changelog on the task's own partition). The one
 * encoding of the outputs: the processor's tasks and the test driver's use it.
 */
import { AvroCodec } from '../codec/avro-codec.js';
import type { JoinState } from '../codec/records.js';
import type { SchemaCatalog } from '../codec/schema-catalog.js';
import type { SchemaRegistryClient } from '../codec/schema-registry.js';
import type { Config } from '../config/config-schema.js';
import { fitDeadLetter, type Outputs } from '../output/event-builder.js';
import { changelogTopic } from './join-changelog.js';
import type { OutRecord } from './task-sink.js';

/** A sample's join changelog entry: its state, or null to delete it (a tombstone). */
export interface ChangelogEntry {
  sampleId: string;
  state: JoinState | null;
}

/** The codecs of the records a task writes. */
export interface SinkCodecs {
  event: AvroCodec<'AnomalyEvent'>;
  alert: AvroCodec<'Alert'>;
  deadLetter: AvroCodec<'DeadLetter'>;
  joinState: AvroCodec<'JoinState'>;
}

export class RecordEncoder {
  private readonly topics: { events: string; alerts: string; deadLetters: string; changelog: string };
  private readonly maxMessageBytes: number;

  constructor(
    config: Config,
    readonly codecs: SinkCodecs,
  ) {
    const t = config.topics;
    this.topics = { events: t.events, alerts: t.alerts, deadLetters: t.deadLetters, changelog: changelogTopic(config) };
    this.maxMessageBytes = config.kafka.maxMessageBytes;
  }

  /** With a registry, each writer schema is registered under its topic's subject (`<topic>-value`) first. */
  static async open(config: Config, catalog: SchemaCatalog, registry?: SchemaRegistryClient): Promise<RecordEncoder> {
    const t = config.topics;
    const opts = (topic: string): { registry?: SchemaRegistryClient; subject: string } => ({ ...(registry ? { registry } : {}), subject: `${topic}-value` });
    return new RecordEncoder(config, {
      event: await AvroCodec.create(catalog, 'AnomalyEvent', opts(t.events)),
      alert: await AvroCodec.create(catalog, 'Alert', opts(t.alerts)),
      deadLetter: await AvroCodec.create(catalog, 'DeadLetter', opts(t.deadLetters)),
      joinState: await AvroCodec.create(catalog, 'JoinState', opts(changelogTopic(config))),
    });
  }

  /** One step's records, in this order: event, alert, dead letters, changelog entries (on `partition`). */
  encode(outputs: Outputs, changelog: ChangelogEntry[], partition: number): OutRecord[] {
    const t = this.topics;
    const c = this.codecs;
    const records: OutRecord[] = [];
    if (outputs.event !== null) records.push({ topic: t.events, key: outputs.event.sampleId, value: c.event.encode(outputs.event) });
    if (outputs.alert !== null) records.push({ topic: t.alerts, key: outputs.alert.sampleId, value: c.alert.encode(outputs.alert) });
    for (const raw of outputs.deadLetters) {
      const d = fitDeadLetter(raw, this.maxMessageBytes);
      records.push({ topic: t.deadLetters, key: d.source.key ?? d.sampleId ?? null, value: c.deadLetter.encode(d) });
    }
    for (const e of changelog) records.push({ topic: t.changelog, partition, key: e.sampleId, value: e.state === null ? null : c.joinState.encode(e.state) });
    return records;
  }
}
