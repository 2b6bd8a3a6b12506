/**
 * A minimal Confluent-compatible schema registry in-process (no registry can
 * run on this machine: Confluent's is not on Maven Central, Karapace is not on
 * PyPI): register, schema by id, compatibility config. `mode` makes it
 * misbehave: `down` answers 503 to everything; `huge` answers a lookup with a
 * body of several MB; `hang` answers lookups only once the mode changes again.
 * `lookups` counts GETs by id.
 */
import { createServer, type Server } from 'node:http';

export class FakeRegistry {
  private current: 'up' | 'down' | 'huge' | 'hang' = 'up';
  private held: (() => void)[] = [];
  readonly schemas: string[] = [];
  readonly lookups = new Map<number, number>();
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeRegistry> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const self = new FakeRegistry(server, `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`);
    // answered once the registry exists; nobody knows the port before it is returned
    server.on('request', (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => self.handle(req.method ?? 'GET', req.url ?? '/', body, res));
    });
    return self;
  }

  get mode(): 'up' | 'down' | 'huge' | 'hang' {
    return this.current;
  }

  set mode(m: 'up' | 'down' | 'huge' | 'hang') {
    this.current = m;
    if (m !== 'hang') for (const answer of this.held.splice(0)) answer();
  }

  /** Registers a schema text directly (as another client would); returns its id. */
  register(schema: string): number {
    const at = this.schemas.indexOf(schema);
    return at >= 0 ? at + 1 : this.schemas.push(schema);
  }

  close(): Promise<void> {
    this.mode = 'up';
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private handle(method: string, url: string, body: string, res: import('node:http').ServerResponse): void {
    res.setHeader('content-type', 'application/vnd.schemaregistry.v1+json');
    if (this.mode === 'down') {
      res.statusCode = 503;
      res.end(JSON.stringify({ error_code: 50302, message: 'unavailable' }));
      return;
    }
    const reg = /^\/subjects\/([^/]+)\/versions$/.exec(url);
    const get = /^\/schemas\/ids\/(\d+)/.exec(url);
    if (method === 'POST' && reg !== null) {
      res.end(JSON.stringify({ id: this.register((JSON.parse(body) as { schema: string }).schema) }));
    } else if (method === 'GET' && url.startsWith('/config')) {
      res.end(JSON.stringify({ compatibilityLevel: 'BACKWARD' }));
    } else if (method === 'GET' && get !== null && this.mode === 'hang') {
      this.held.push(() => this.handle(method, url, body, res));
    } else if (method === 'GET' && get !== null) {
      const id = Number(get[1]);
      this.lookups.set(id, (this.lookups.get(id) ?? 0) + 1);
      if (this.mode === 'huge') {
        res.end(JSON.stringify({ schema: ' '.repeat(5_000_000) }));
      } else if (this.schemas[id - 1] !== undefined) {
        res.end(JSON.stringify({ schema: this.schemas[id - 1] }));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
      }
    } else {
      res.statusCode = 404;
      res.end(JSON.stringify({ error_code: 40401, message: 'not found' }));
    }
  }
}
