/**
 * The web view of a line, wired: the bounded store, the feed that fills it
 * from the output topics, the fetcher and renderer of the parts' frames from
 * the input topics, and the HTTP server. `mmad view` and `mmad demo` start it.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../base/logger.js';
import { AvroCodec } from '../codec/avro-codec.js';
import { SchemaCatalog } from '../codec/schema-catalog.js';
import { SchemaRegistryClient } from '../codec/schema-registry.js';
import type { Config } from '../config/config-schema.js';
import { createKafka } from '../kafka/kafka-client.js';
import { DEFAULT_HISTORY_LIMITS, EventHistory, type HistoryLimits } from './event-history.js';
import { FrameRenderer } from './frame-renderer.js';
import { LineFeed } from './line-feed.js';
import { LagPoller } from './line-health.js';
import { DEFAULT_LIMITS, LineStore, type StoreLimits } from './line-store.js';
import { RecordFetcher } from './record-fetcher.js';
import { RunComparison, type CompareSource } from './run-comparison.js';
import { ViewServer } from './view-server.js';

export interface LineViewOptions {
  host: string;
  port: number;
  /** Consumer group of the view; a unique `mmad-view-<hex>` by default (it commits nothing). */
  groupId?: string;
  limits?: Partial<StoreLimits>;
  /** Records per output partition read back at start. */
  history?: number;
  /** Bounds of a search (results, events read) and of the parts read back for pages. */
  search?: Partial<HistoryLimits>;
  /** A replay's output to compare the live run with on /diff; read at start (a bad one fails the start). */
  compare?: CompareSource;
  /** How often the service's consumer lag on its input topics is read (default 5 s). */
  lagPollMs?: number;
  /** The least time between two `health` events on the live page's stream (default 1 s). */
  healthMs?: number;
  logger: Logger;
}

export interface LineView {
  url: string;
  store: LineStore;
  server: ViewServer;
  feed: LineFeed;
  history: EventHistory;
  comparison: RunComparison | undefined;
  lag: LagPoller;
  close(): Promise<void>;
}

export async function startLineView(config: Config, o: LineViewOptions): Promise<LineView> {
  const groupId = o.groupId ?? `mmad-view-${randomBytes(4).toString('hex')}`;
  if (groupId === config.input.groupId) throw new Error(`the view's consumer group must differ from the service's (input.groupId = ${groupId})`);
  const kafka = createKafka(config, config.kafka.brokers, o.logger);
  const catalog = SchemaCatalog.load();
  const registry = config.schemaRegistry.url === null ? undefined : new SchemaRegistryClient(config.schemaRegistry.url);
  const codec = async <N extends 'AnomalyEvent' | 'Alert' | 'DeadLetter' | 'Frame'>(name: N): Promise<AvroCodec<N>> =>
    registry === undefined ? AvroCodec.local(catalog, name) : await AvroCodec.create(catalog, name, { registry });
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  const store = new LineStore(limits);
  const feed = new LineFeed(kafka, config, store, { events: await codec('AnomalyEvent'), alerts: await codec('Alert'), deadLetters: await codec('DeadLetter') }, groupId, o.history ?? limits.maxParts, o.logger);
  const inputs = Object.values(config.topics.inputs).filter((t): t is string => t !== null);
  const fetcher = new RecordFetcher(kafka, config, inputs, `${groupId}-frames`, o.logger);
  const renderer = new FrameRenderer(fetcher, await codec('Frame'), config);
  const history = new EventHistory(kafka, config, store, await codec('AnomalyEvent'), groupId, { ...DEFAULT_HISTORY_LIMITS, ...o.search });
  const comparison = o.compare === undefined ? undefined : await RunComparison.load(kafka, config, await codec('AnomalyEvent'), o.compare, history);
  const server = new ViewServer(store, renderer, history, { host: o.host, port: o.port, title: `mmad · ${config.topics.events}`, eventsTopic: config.topics.events, ...(o.healthMs === undefined ? {} : { healthMs: o.healthMs }), ...(comparison === undefined ? {} : { comparison }) }, o.logger);
  const lag = new LagPoller(kafka, config.input.groupId, inputs, o.lagPollMs ?? 5_000, (r) => server.setLag(r), o.logger);
  const close = async (): Promise<void> => {
    await lag.stop();
    await server.close().catch(() => undefined);
    await feed.stop();
    await fetcher.stop();
  };
  try {
    await feed.start();
    await fetcher.start();
    const url = await server.listen();
    lag.start();
    return { url, store, server, feed, history, comparison, lag, close };
  } catch (err) {
    await close();
    throw err;
  }
}
