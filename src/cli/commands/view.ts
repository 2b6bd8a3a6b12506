import { ErrorCode, MmadError } from '../../base/errors.js';
import { createLogger } from '../../base/logger.js';
import { startLineView } from '../../view/line-view.js';
import { CONFIG_OPTION, type Command, type OptionSpec } from '../command.js';
import { configOf } from '../common.js';

/** The view's options, shared with `demo`, which starts the view too. */
export const VIEW_OPTIONS: Record<string, OptionSpec> = {
  host: { type: 'string', description: 'address the web view binds (0.0.0.0: every interface; it has no authentication)', placeholder: 'HOST', default: '127.0.0.1' },
  port: { type: 'string', description: 'port of the web view (0: any free port)', placeholder: 'PORT', default: '8080' },
  'view-parts': { type: 'string', description: 'parts the view keeps (the oldest are forgotten)', placeholder: 'N', default: '200' },
};

/**
 * `mmad view`: a read-only web page of the line (src/view/): the latest parts,
 * NOK parts, alerts and dead letters live, and each part's frames with its
 * heatmap and regions.
 */
export const viewCommand: Command = {
  name: 'view',
  summary: 'A read-only web view of the line: latest parts, NOK parts, alerts and dead letters live; each part\'s frames with its heatmap, regions and revisions.',
  details: [
    'Reads the events, alerts and dead-letter topics (read committed) with a consumer group of its own that',
    'commits nothing (a unique mmad-view-<hex> unless --group), starting --history records before the end of',
    'each partition, and reads a part\'s frames back from the input topics at the offsets its event recorded.',
    'Needs a broker: KAFKA_BROKERS or kafka.brokers. Memory is bounded: --view-parts parts (8 revisions each),',
    'the last 100 alerts and 50 dead letters, dead-letter counts per reason, 32 MB of rendered frames.',
    'Pages: / (live), /parts/<sampleId>, /search (by sample id, time range, NOK only; parts no longer kept are',
    'read back from the events topic: at most 100 parts and 20000 events a query);',
    'With --compare FILE (a \'replay --out\' file) or --compare-topic TOPIC (a replay\'s events topic), read at',
    'start: /diff, the replay beside the live run (each part at its last revision, as \'mmad diff\' compares),',
    'the counts and the parts whose verdict changed; the live side is the events topic read back for the',
    'replayed parts, from a minute before their earliest capture time, at most 20000 events a load.',
    'JSON: /api/state, /api/parts/<sampleId>, /api/search, /api/diff; events: /events (SSE).',
  ].join('\n'),
  options: {
    ...CONFIG_OPTION,
    ...VIEW_OPTIONS,
    group: { type: 'string', description: "the view's consumer group (must not be the service's input.groupId)", placeholder: 'ID' },
    history: { type: 'string', description: 'records per output partition read back at start (default: --view-parts)', placeholder: 'N' },
    compare: { type: 'string', description: "a 'replay --out' file to compare the live run with on /diff", placeholder: 'FILE' },
    'compare-topic': { type: 'string', description: "a replay's events topic to compare the live run with on /diff", placeholder: 'TOPIC' },
  },
  async run(ctx) {
    const config = configOf(ctx);
    if (config.kafka.brokers.length === 0) {
      throw new MmadError(ErrorCode.USAGE, 'the view reads a running line: set KAFKA_BROKERS (or kafka.brokers) to its cluster');
    }
    const o = viewOptionsOf(ctx.values);
    const group = ctx.values.group as string | undefined;
    if (group === config.input.groupId) throw new MmadError(ErrorCode.USAGE, `--group must not be the service's consumer group (${group})`);
    const history = ctx.values.history === undefined ? o.parts : count(ctx.values.history, 'history', 0);
    const compare = { ...(typeof ctx.values.compare === 'string' ? { file: ctx.values.compare } : {}), ...(typeof ctx.values['compare-topic'] === 'string' ? { topic: ctx.values['compare-topic'] } : {}) };
    const view = await startLineView(config, {
      host: o.host,
      port: o.port,
      limits: { maxParts: o.parts },
      history,
      logger: createLogger({ component: 'view' }),
      ...(group === undefined ? {} : { groupId: group }),
      ...(Object.keys(compare).length === 0 ? {} : { compare }),
    });
    ctx.out(`view: ${view.url} (group ${view.feed.groupId}; Ctrl-C stops)`);
    if (view.comparison !== undefined) ctx.out(`diff vs ${view.comparison.source}: ${view.url}diff`);
    await ctx.shutdown;
    await view.close();
    return 0;
  },
};

export function viewOptionsOf(values: Record<string, unknown>): { host: string; port: number; parts: number } {
  const port = count(values.port, 'port', 0);
  if (port > 65535) throw new MmadError(ErrorCode.USAGE, '--port must be at most 65535');
  const host = String(values.host);
  if (host === '') throw new MmadError(ErrorCode.USAGE, '--host must not be empty');
  return { host, port, parts: count(values['view-parts'], 'view-parts', 1) };
}

function count(v: unknown, name: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new MmadError(ErrorCode.USAGE, `--${name} must be an integer of at least ${min}`);
  return n;
}
