import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { AvroCodec } from '../../codec/avro-codec.js';
import { SchemaCatalog } from '../../codec/schema-catalog.js';
import type { Kafka } from 'kafkajs';
import type { Config } from '../../config/config-schema.js';
import { ErrorCode, MmadError } from '../../base/errors.js';
import { ModelRegistry } from '../../inference/model-registry.js';
import { createKafka } from '../../kafka/kafka-client.js';
import { waitForBroker } from '../../kafka/wait-for-broker.js';
import { BOOTSTRAP_RESAMPLES, MIN_CALIBRATION_PARTS, calibrateLine, formatCalibration, overridesYaml } from '../../replay/calibrate.js';
import { diffRuns, formatDiff } from '../../replay/diff.js';
import { readEventFile, readEventTopic, readTopicToEnd, type EventSummary } from '../../replay/event-summary.js';
import { replayRange, type ReplayProgress } from '../../replay/replay.js';
import { rootLogger } from '../../base/logger.js';
import { CONFIG_OPTION, type Command, type CommandContext } from '../command.js';
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
    return withEventRuns(ctx, [runA, runB], async ([a = [], b = []]) => {
      const d = diffRuns(a, b);
      ctx.out(formatDiff(d, [runA, runB], Number(ctx.values.list)));
      return d.changed.length === 0 ? 0 : 1;
    });
  },
};

/** An event topic (a name, or 'topic:NAME') or a JSON-lines file from 'replay --out' (.jsonl or .json). */
const isEventFile = (s: string): boolean => /\.jsonl?$/.test(s) && !s.startsWith('topic:');

/**
 * Reads each run (a file, or a topic on the configured broker, started when none is
 * configured and a topic is named) and hands their events to `use`, with the client when
 * one was needed (a topic among the runs, or `needsKafkaBesides`).
 */
async function withEventRuns(
  ctx: CommandContext,
  runs: string[],
  use: (events: EventSummary[][], kafka: Kafka | undefined, config: Config) => Promise<number>,
  needsKafkaBesides = false,
): Promise<number> {
  const base = configOf(ctx);
  const needsKafka = needsKafkaBesides || runs.some((s) => !isEventFile(s));
  const { config, broker } = needsKafka ? await brokerFor(base) : { config: base, broker: undefined };
  try {
    const codec = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');
    const kafka = needsKafka ? createKafka(config, config.kafka.brokers, rootLogger) : undefined;
    // without a client every run is a file (needsKafka)
    const read = (s: string): Promise<EventSummary[]> =>
      kafka === undefined || isEventFile(s) ? readEventFile(s) : readEventTopic(kafka, config, s.replace(/^topic:/, ''), codec);
    return await use(await Promise.all(runs.map(read)), kafka, config);
  } finally {
    await broker?.stop();
  }
}

/** Sample ids, one per line ('#' starts a comment; blank lines are skipped). */
function readIds(path: string): Set<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MmadError(ErrorCode.USAGE, `cannot read the list of sample ids ${path}`, { cause: err });
  }
  return new Set(text.split(/\r?\n/).map((l) => l.replace(/#.*/, '').trim()).filter((l) => l !== ''));
}

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: "Fit each student's threshold to a line's own good parts for a stated false-alarm rate; writes inference.threshold.overrides.",
  positionals: '<EVENTS>',
  details: [
    "EVENTS is an event topic (a name, or 'topic:NAME') or a JSON-lines file from 'replay --out' (.jsonl or",
    '.json): the scores of a period, from the live events or a replay of it (with --manifest, to calibrate new',
    'students before they go live). Per student, each part counts once (its last revision by that student).',
    'Defective parts in the period raise the thresholds: keep only parts known to be good with --good (or those',
    'a labels topic says are good, --labels), or drop those found defective with --exclude. Each threshold is',
    'the quantile at 1 - rate of the generalized Pareto tail fitted to the highest 20 % of the scores (as the',
    `export fits it), with the 5-95 % range over ${BOOTSTRAP_RESAMPLES} bootstrap resamples; a student needs ${MIN_CALIBRATION_PARTS} good parts,`,
    'a 1 % rate a few hundred for a narrow range.',
    'Exit code 0 when every student got a threshold, 1 otherwise.',
  ].join('\n'),
  options: {
    ...CONFIG_OPTION,
    'false-alarm-rate': { type: 'string', description: 'the share of good parts a student may call NOK', placeholder: 'RATE', default: '0.01' },
    good: { type: 'string', description: 'file of the sample ids known to be good, one per line: only these are used', placeholder: 'FILE' },
    exclude: { type: 'string', description: 'file of sample ids found defective, one per line: never used', placeholder: 'FILE' },
    labels: {
      type: 'string',
      description: "a labels topic (Label records: a later inspection's findings, or the simulator's ground truth): only parts labelled good are used",
      placeholder: 'TOPIC',
    },
    out: { type: 'string', description: 'write the thresholds as a configuration file (inference.threshold.overrides) to merge into the line\'s', placeholder: 'FILE' },
  },
  async run(ctx) {
    const [source, ...extra] = ctx.positionals;
    if (source === undefined || extra.length > 0) throw new MmadError(ErrorCode.USAGE, 'calibrate takes one run: mmad calibrate <EVENTS>');
    const rate = Number(ctx.values['false-alarm-rate']);
    if (!(rate > 0 && rate < 1)) throw new MmadError(ErrorCode.USAGE, `--false-alarm-rate ${String(ctx.values['false-alarm-rate'])}: expected a rate strictly between 0 and 1`);
    const listed = typeof ctx.values.good === 'string' ? readIds(ctx.values.good) : undefined;
    const exclude = typeof ctx.values.exclude === 'string' ? readIds(ctx.values.exclude) : undefined;
    const labelTopic = typeof ctx.values.labels === 'string' ? ctx.values.labels : undefined;
    return withEventRuns(ctx, [source], async ([events = []], kafka, config) => {
      let good = listed;
      if (labelTopic !== undefined && kafka !== undefined) {
        const labelled = await readLabels(kafka, config, labelTopic);
        const goodByLabel = [...labelled].filter(([, defect]) => defect === 'good').map(([id]) => id);
        good = new Set(listed === undefined ? goodByLabel : goodByLabel.filter((id) => listed.has(id)));
        ctx.out(`labels in ${labelTopic}: ${labelled.size} parts, ${goodByLabel.length} good`);
      }
      const c = calibrateLine(events, { falseAlarmRate: rate, good, exclude });
      ctx.out(formatCalibration(c, source));
      if (typeof ctx.values.out === 'string') {
        try {
          writeFileSync(ctx.values.out, overridesYaml(c, source, new Date()));
        } catch (err) {
          throw new MmadError(ErrorCode.USAGE, `cannot write the thresholds to ${ctx.values.out}`, { cause: err });
        }
        ctx.out(`\nwritten to ${ctx.values.out}`);
      }
      return c.models.length > 0 && c.models.every((m) => m.threshold !== null) ? 0 : 1;
    }, labelTopic !== undefined);
  },
};

/** Each labelled part's defect type ('good' for a good part), the last label of a part winning (a re-inspection). */
async function readLabels(kafka: Kafka, config: Config, topic: string): Promise<Map<string, string>> {
  const codec = AvroCodec.local(SchemaCatalog.load(), 'Label');
  const out = new Map<string, string>();
  await readTopicToEnd(kafka, config, topic, async (value) => {
    const l = await codec.decode(value);
    out.set(l.sampleId, l.defectType);
  });
  return out;
}
