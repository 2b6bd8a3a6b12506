import { randomBytes } from 'node:crypto';
import { AvroCodec } from '../../codec/avro-codec.js';
import { SchemaCatalog } from '../../codec/schema-catalog.js';
import type { Config } from '../../config/config-schema.js';
import { ErrorCode, MmadError } from '../../base/errors.js';
import { ModelRegistry } from '../../inference/model-registry.js';
import { createKafka } from '../../kafka/kafka-client.js';
import { waitForBroker } from '../../kafka/wait-for-broker.js';
import { diffRuns, formatDiff } from '../../replay/diff.js';
import { readEventFile, readEventTopic, type EventSummary } from '../../replay/event-summary.js';
import { replayRange, type ReplayProgress } from '../../replay/replay.js';
import { rootLogger } from '../../base/logger.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { brokerFor, configOf } from '../common.js';
import { LiveLine } from '../live-line.js';

/** ISO-8601, epoch milliseconds, `earliest` or `now`. */
export function parseTime(value: string, option: string): number {
  if (value === 'earliest') return Number.NEGATIVE_INFINITY;
  if (value === 'now') return Number.POSITIVE_INFINITY;
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(t)) throw new MmadError(ErrorCode.USAGE, `--${option} ${value}: expected an ISO-8601 time, epoch milliseconds, 'earliest' or 'now'`);
  return t;
}

/** The replay's progress after its bar of frames (LiveLine draws the bar). */
function formatProgress(p: ReplayProgress): string {
  const pct = p.total === 0 ? 100 : (100 * p.records) / p.total;
  const eta = p.etaMs === null ? '?' : `${Math.ceil(p.etaMs / 1000)} s`;
  return `${pct.toFixed(0)}% of the frames, ${p.events} events, ${p.recordsPerSecond.toFixed(0)} frames/s, ETA ${eta}`;
}

export const replayCommand: Command = {
  name: 'replay',
  summary: 'Run a time range of the input topics through the service again (a new model, an audit): own consumer group, own output topics, stops at the end.',
  details: [
    'The range is by record timestamp (when the stations wrote the frames): from the first record at or',
    'after --from to the last before --to, on every input partition. Events go to --events-topic',
    '(alerts and dead letters beside it) and, with --out, to a JSON-lines file; compare two runs with',
    "'mmad diff'. For input that arrived on time a replay with the same models publishes the same events",
    '(sample, revision, modalities, model, score, verdict) as the live run did.',
  ].join('\n'),
  options: {
    ...CONFIG_OPTION,
    from: { type: 'string', description: "start: ISO-8601 time, epoch ms or 'earliest'", placeholder: 'TIME', default: 'earliest' },
    to: { type: 'string', description: "end (exclusive): ISO-8601 time, epoch ms or 'now'", placeholder: 'TIME', default: 'now' },
    manifest: { type: 'string', short: 'm', description: 'model manifest to judge with (overrides inference.manifest)', placeholder: 'FILE' },
    'events-topic': { type: 'string', description: 'output topic for events (default: <topics.events>.replay-<id>); alerts and dead letters go to <name>.alerts / <name>.deadletters', placeholder: 'TOPIC' },
    group: { type: 'string', description: 'consumer group of the replay (default: <input.groupId>.replay-<id>; must not be in use)', placeholder: 'GROUP' },
    out: { type: 'string', short: 'o', description: 'also write the events as JSON lines to this file', placeholder: 'FILE' },
  },
  async run(ctx) {
    const from = parseTime(String(ctx.values.from), 'from');
    const to = parseTime(String(ctx.values.to), 'to');
    const base = configOf(ctx);
    const id = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(2).toString('hex')}`;
    const events = typeof ctx.values['events-topic'] === 'string' ? ctx.values['events-topic'] : `${base.topics.events}.replay-${id}`;
    const config: Config = {
      ...base,
      input: { ...base.input, groupId: typeof ctx.values.group === 'string' ? ctx.values.group : `${base.input.groupId}.replay-${id}` },
      topics: { ...base.topics, events, alerts: `${events}.alerts`, deadLetters: `${events}.deadletters` },
      inference: { ...base.inference, ...(typeof ctx.values.manifest === 'string' ? { manifest: ctx.values.manifest } : {}) },
    };
    const log = rootLogger.child({ component: 'replay' });
    const { config: cfg, broker } = await brokerFor(config);
    let registry: ModelRegistry | undefined;
    try {
      await waitForBroker(cfg, log, ctx.shutdown);
      registry = await ModelRegistry.open(cfg);
      ctx.out(`replay ${Number.isFinite(from) ? new Date(from).toISOString() : 'earliest'} .. ${Number.isFinite(to) ? new Date(to).toISOString() : 'now'} → ${events} (group ${cfg.input.groupId}, models ${registry.models.map((m) => `${m.spec.id}@${m.spec.version}`).join(', ')})`);
      // on stderr: redrawn in place on a terminal, a line per change elsewhere
      const status = new LiveLine(process.stderr, (line) => void process.stderr.write(`${line}\n`), 30);
      const summary = await replayRange(cfg, registry, {
        from,
        to,
        ...(typeof ctx.values.out === 'string' ? { out: ctx.values.out } : {}),
        logger: rootLogger,
        progressEveryMs: process.stderr.isTTY ? 500 : 5000,
        onProgress: (p) => status.update(formatProgress(p), p.records, p.total),
      });
      status.end();
      ctx.out(
        `done: ${summary.records} frames, ${summary.eventsOut.length} events in ${(summary.elapsedMs / 1000).toFixed(1)} s (${summary.recordsPerSecond.toFixed(0)} frames/s)` +
          (typeof ctx.values.out === 'string' ? `; written to ${ctx.values.out}` : ''),
      );
      return 0;
    } finally {
      await registry?.close();
      await broker.stop();
    }
  },
};

export const diffCommand: Command = {
  name: 'diff',
  summary: 'Compare two runs over the same parts (live vs replay, old vs new model): verdict changes, score changes, parts only one run judged.',
  positionals: '<A> <B>',
  details: [
    "A and B are event topics (a name, or 'topic:NAME') or JSON-lines files from 'replay --out' (ending",
    'in .jsonl or .json). Each part is compared at its last revision. Exit code 0 when every part in both',
    'has the same decision, 1 when any verdict changed.',
  ].join('\n'),
  options: { ...CONFIG_OPTION, list: { type: 'string', description: 'changed parts to list', placeholder: 'N', default: '20' } },
  async run(ctx) {
    const [runA, runB, ...extra] = ctx.positionals;
    if (runA === undefined || runB === undefined || extra.length > 0) throw new MmadError(ErrorCode.USAGE, 'diff takes two runs: mmad diff <A> <B>');
    const base = configOf(ctx);
    const isFile = (s: string): boolean => /\.jsonl?$/.test(s) && !s.startsWith('topic:');
    const needsKafka = ctx.positionals.some((s) => !isFile(s));
    const { config, broker } = needsKafka ? await brokerFor(base) : { config: base, broker: undefined };
    try {
      const codec = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');
      const kafka = needsKafka ? createKafka(config, config.kafka.brokers, rootLogger) : undefined;
      // without a client every run is a file (needsKafka)
      const read = (s: string): Promise<EventSummary[]> =>
        kafka === undefined || isFile(s) ? readEventFile(s) : readEventTopic(kafka, config, s.replace(/^topic:/, ''), codec);
      const [a, b] = await Promise.all([read(runA), read(runB)]);
      const d = diffRuns(a, b);
      ctx.out(formatDiff(d, [runA, runB], Number(ctx.values.list)));
      return d.changed.length === 0 ? 0 : 1;
    } finally {
      await broker?.stop();
    }
  },
};
