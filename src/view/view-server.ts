/**
 * The web view's HTTP server (node:http, read only: GET and HEAD, nothing else):
 *
 *   /                      the live page;  /parts/<sampleId>  a part's page
 *   /search                the search page (sample id, time range, NOK only)
 *   /api/search?sampleId=&from=&to=&nok=1
 *                          parts found in memory or read back from the events
 *                          topic (EventHistory), bounded, with notices
 *   /static/<file>         the pages' own CSS and JS (no external assets)
 *   /api/state             the store as JSON (parts, alerts, dead letters)
 *   /api/parts/<id>[?from=&to=]
 *                          one part with its revisions; a part the store has
 *                          forgotten is read back from the events topic within
 *                          [from, to) (the window a search result's link carries),
 *                          and so are its frames' URLs below (same query)
 *   /api/parts/<id>/revisions/<n>/frames/<modality>.png[?overlay=0]
 *                          the frame as a person sees it, the heatmap over it
 *                          unless overlay=0; the range shown in X-Frame-Legend;
 *                          410 with the reason when the frame is no longer in its topic
 *   /api/parts/<id>/revisions/<n>/heatmap.png   the heatmap alone
 *   /events                Server-Sent Events: a snapshot first, then every change;
 *                          `health` (coverage, latency percentiles, consumer lag) at
 *                          most every `healthMs` when the parts or the lag changed
 *   /diff, /api/diff       with a replay to compare (RunComparison): the parts whose
 *                          verdict changed, live beside replay, and the counts
 *
 * A client whose event stream backs up past `maxClientBufferBytes` is
 * disconnected (its EventSource reconnects and starts from a new snapshot), so a
 * stalled browser never grows the server.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fromRoot } from '../config/paths.js';
import { messageOf } from '../base/errors.js';
import type { Logger } from '../base/logger.js';
import type { EventHistory, SearchQuery } from './event-history.js';
import type { FrameRenderer, Rendered } from './frame-renderer.js';
import { coverageOf, latencyOf, type Health, type LagReport } from './line-health.js';
import { partJson, type LineStore, type PartView, type StoreChange } from './line-store.js';
import type { RunComparison } from './run-comparison.js';

const STATIC_DIR = fromRoot('src/view/static');
const STATIC_FILES: Record<string, string> = {
  'view.css': 'text/css; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'live.js': 'text/javascript; charset=utf-8',
  'part.js': 'text/javascript; charset=utf-8',
  'live.html': 'text/html; charset=utf-8',
  'part.html': 'text/html; charset=utf-8',
  'search.js': 'text/javascript; charset=utf-8',
  'search.html': 'text/html; charset=utf-8',
  'diff.js': 'text/javascript; charset=utf-8',
  'diff.html': 'text/html; charset=utf-8',
};

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export interface ViewServerOptions {
  host: string;
  port: number;
  /** Shown in the page header. */
  title: string;
  /** Named in messages about parts read back. */
  eventsTopic?: string;
  /** A replay to compare the live run with: /diff and /api/diff, linked from the pages' headers. */
  comparison?: RunComparison;
  maxClientBufferBytes?: number;
  heartbeatMs?: number;
  /** The least time between two `health` events (default 1 s). */
  healthMs?: number;
}

export class ViewServer {
  private readonly server: Server;
  private readonly assets = new Map<string, Buffer>();
  private readonly clients = new Set<ServerResponse>();
  private heartbeat: NodeJS.Timeout | undefined;
  private eventId = 0;
  private lag: LagReport | null = null;
  private healthTimer: NodeJS.Timeout | undefined;
  /** Event-stream clients dropped because they did not keep up. */
  slowClientsDropped = 0;

  constructor(
    private readonly store: LineStore,
    private readonly frames: FrameRenderer,
    private readonly history: EventHistory,
    private readonly o: ViewServerOptions,
    private readonly log: Logger,
  ) {
    for (const name of Object.keys(STATIC_FILES)) this.assets.set(name, readFileSync(`${STATIC_DIR}/${name}`));
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.warn('view request failed', { url: req.url, error: messageOf(err) });
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${messageOf(err)}`);
        else res.destroy();
      });
    });
    store.subscribe((change) => this.broadcast(change));
  }

  /** Listens; resolves with the URL. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) c.write(': ping\n\n');
    }, this.o.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
    return this.url;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${a.port}/`;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The service's consumer lag, as the poller last read it: sent with the next `health` event. */
  setLag(report: LagReport): void {
    this.lag = report;
    this.healthSoon();
  }

  /** Coverage and latency over the parts kept now, and the last lag read. */
  health(): Health {
    const parts = this.store.recentParts();
    return { window: { parts: parts.length, maxParts: this.store.limits.maxParts }, coverage: coverageOf(parts), latency: latencyOf(parts), lag: this.lag };
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    clearTimeout(this.healthTimer);
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'the view is read only');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://view');
    if (url.pathname === '/events') {
      this.stream(req, res);
      return;
    }
    const reply = await this.route(url);
    send(res, reply.status, reply.type, reply.body, reply.headers);
  }

  private async route(url: URL): Promise<Reply> {
    const path = url.pathname;
    if (path === '/' || path === '/index.html') return this.asset('live.html');
    if (path.startsWith('/static/')) return this.asset(path.slice('/static/'.length));
    if (path === '/api/state') return json(this.state());
    if (path === '/search' || path === '/search/') return this.asset('search.html');
    if (path === '/api/search') return await this.search(url.searchParams);
    if (path === '/diff' || path === '/diff/' || path === '/api/diff') {
      const c = this.o.comparison;
      if (c === undefined) return text(404, 'no replay to compare with: start the view with --compare FILE or --compare-topic TOPIC');
      return path === '/api/diff' ? json(await c.diff()) : this.asset('diff.html');
    }
    if (/^\/parts\/[^/]+\/?$/.test(path)) return this.asset('part.html');
    const api = /^\/api\/parts\/([^/]+)(?:\/revisions\/(\d+)\/(?:frames\/([a-z]+)\.png|(heatmap)\.png))?$/.exec(path);
    if (api === null) return text(404, 'not found');
    const [, rawId, revision, modality, heatmap] = api;
    let sampleId: string;
    try {
      sampleId = decodeURIComponent(rawId ?? '');
    } catch {
      return text(400, 'malformed sample id');
    }
    const window = windowOf(url.searchParams);
    if (typeof window === 'string') return text(400, window);
    let p: PartView | undefined = this.store.part(sampleId);
    if (p === undefined && window.from !== undefined && window.to !== undefined) {
      p = await this.history.part(sampleId, window.from, window.to);
      if (p === undefined) return text(404, `part ${sampleId} has no event in ${this.o.eventsTopic ?? 'the events topic'} between ${new Date(window.from).toISOString()} and ${new Date(window.to).toISOString()} (or they have left the topic's retention)`);
    }
    if (p === undefined) return text(404, `part ${sampleId} is not among the last ${this.store.limits.maxParts} parts this view has seen: search for it (/search)`);
    if (revision === undefined) return json(partJson(p));
    const rev = p.revisions.find((r) => r.revision === Number(revision));
    if (rev === undefined) return text(404, `part ${sampleId} has no revision ${revision} here`);
    const rendered = heatmap !== undefined ? await this.frames.heatmap(rev) : await this.frames.render(sampleId, rev, modality ?? '', url.searchParams.get('overlay') !== '0');
    return image(rendered);
  }

  private async search(params: URLSearchParams): Promise<Reply> {
    const window = windowOf(params);
    if (typeof window === 'string') return text(400, window);
    const sampleId = params.get('sampleId')?.trim() ?? '';
    const q: SearchQuery = { nokOnly: params.get('nok') === '1', ...window, ...(sampleId === '' ? {} : { sampleId }) };
    if (q.sampleId === undefined && q.from === undefined && q.to === undefined && !q.nokOnly) return text(400, 'give a sample id, a time range or NOK only');
    return json({ query: q, ...(await this.history.search(q)) });
  }

  private state(): unknown {
    return {
      limits: this.store.limits,
      taken: this.store.taken,
      parts: this.store.recentParts().map(partJson),
      alerts: this.store.alerts(),
      deadLetters: { counts: this.store.deadLetterCounts(), recent: this.store.deadLetters() },
      health: this.health(),
    };
  }

  private asset(name: string): Reply {
    const type = STATIC_FILES[name];
    const body = this.assets.get(name);
    if (type === undefined || body === undefined) return text(404, 'not found');
    const page = name.endsWith('.html')
      ? Buffer.from(
          body
            .toString('utf8')
            .replaceAll('{{title}}', escapeHtml(this.o.title))
            .replaceAll('{{maxResults}}', String(this.history.limits.maxResults))
            .replaceAll('{{maxScanned}}', String(this.history.limits.maxScanned))
            .replaceAll('{{diffNav}}', this.o.comparison === undefined ? '' : ' <a href="/diff" id="diff-link">diff vs replay</a>')
            .replaceAll('{{compareSource}}', escapeHtml(this.o.comparison?.source ?? ''))
            .replaceAll('{{diffListMax}}', String(this.o.comparison?.listMax ?? 0)),
        )
      : body;
    return { status: 200, type, body: page, headers: { 'cache-control': 'no-cache' } };
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write('retry: 2000\n\n');
    // the snapshot and the changes after it go down the same stream: nothing between them is missed
    res.write(this.frame('snapshot', this.state()));
    this.clients.add(res);
    const drop = (): void => void this.clients.delete(res);
    req.on('close', drop);
    res.on('error', drop);
  }

  /** One `health` event after `healthMs`, however many changes come before it. */
  private healthSoon(): void {
    if (this.healthTimer !== undefined || this.clients.size === 0) return;
    this.healthTimer = setTimeout(() => {
      this.healthTimer = undefined;
      this.send(this.frame('health', this.health()));
    }, this.o.healthMs ?? 1_000);
    this.healthTimer.unref();
  }

  private broadcast(change: StoreChange): void {
    if (this.clients.size === 0) return;
    if (change.kind === 'part' || change.kind === 'forget') this.healthSoon();
    const data =
      change.kind === 'part'
        ? this.frame('part', partJson(change.part))
        : change.kind === 'forget'
          ? this.frame('forget', { sampleId: change.sampleId })
          : change.kind === 'alert'
            ? this.frame('alert', change.alert)
            : this.frame('deadletter', { deadLetter: change.deadLetter, counts: this.store.deadLetterCounts() });
    this.send(data);
  }

  private send(data: string): void {
    const limit = this.o.maxClientBufferBytes ?? 4 * 1024 * 1024;
    for (const c of this.clients) {
      if (c.writableLength > limit) {
        this.slowClientsDropped++;
        this.clients.delete(c);
        c.destroy();
        continue;
      }
      c.write(data);
    }
  }

  private frame(event: string, data: unknown): string {
    return `id: ${++this.eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': String(bytes.length), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : bytes);
}

interface Reply {
  status: number;
  type: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

/** `from` and `to` (epoch ms or ISO-8601) of a query, or what is wrong with them. */
function windowOf(params: URLSearchParams): { from?: number; to?: number } | string {
  const out: { from?: number; to?: number } = {};
  for (const k of ['from', 'to'] as const) {
    const v = params.get(k)?.trim() ?? '';
    if (v === '') continue;
    const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (!Number.isFinite(t)) return `${k}=${v}: expected epoch milliseconds or an ISO-8601 time`;
    out[k] = t;
  }
  return out;
}

function text(status: number, body: string): Reply {
  return { status, type: 'text/plain; charset=utf-8', body, headers: { 'cache-control': 'no-store' } };
}

function json(value: unknown): Reply {
  return { status: 200, type: 'application/json; charset=utf-8', body: JSON.stringify(value), headers: { 'cache-control': 'no-store' } };
}

function image(r: Rendered): Reply {
  if (!r.ok) return { ...text(r.status, r.message) };
  const headers: Record<string, string> = { 'cache-control': 'private, max-age=3600', 'x-frame-size': `${r.width}x${r.height}` };
  if (r.legend !== null) headers['x-frame-legend'] = encodeURIComponent(r.legend);
  return { status: 200, type: 'image/png', body: r.png, headers };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
