/**
 * Client of a Confluent-compatible schema registry (REST): registers the
 * writer schema under `<topic>-value` and resolves the schema ids found in
 * Confluent-framed records. Ids are immutable, so found schemas are cached
 * for ever.
 *
 * A registry is another service that can fail or misbehave, and a record can
 * name any id, so:
 *  - a response is read up to `maxResponseBytes` (1 MiB: the largest schema
 *    this project's catalogue would hold is a few kB); a larger one fails;
 *  - an id the registry does not know (404) is `CODEC_UNKNOWN_SCHEMA` and is
 *    remembered as unknown for a while (30 s, doubling per repeat up to 10 min),
 *    so a station sending garbage ids costs one request per id and period;
 *  - a registry that does not answer (network, timeout, 5xx) is
 *    `SCHEMA_REGISTRY_FAILED` with `retriable` set, and for a backoff after it
 *    (0.5 s doubling to 30 s) look-ups fail at once the same way: the caller
 *    pauses and retries (the stream processor seeks back and waits; nothing is
 *    dead-lettered for an outage).
 */
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

export interface SchemaRegistryOptions {
  timeoutMs?: number;
  maxResponseBytes?: number;
  /** Clock (tests). */
  now?: () => number;
}

export class SchemaRegistryClient {
  private readonly byId = new Map<number, Promise<string>>();
  private readonly bySubjectSchema = new Map<string, Promise<number>>();
  /** Ids the registry said it does not know: until when, and the period for the next time. */
  private readonly unknownIds = new Map<number, { until: number; periodMs: number }>();
  private outage: { until: number; periodMs: number; error: string } | undefined;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly now: () => number;

  constructor(
    readonly url: string,
    options: SchemaRegistryOptions | number = {},
  ) {
    const o = typeof options === 'number' ? { timeoutMs: options } : options;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.maxResponseBytes = o.maxResponseBytes ?? 1_048_576;
    this.now = o.now ?? Date.now;
  }

  /** Registers (or finds) `schema` under `subject`; returns its id. */
  register(subject: string, schema: string): Promise<number> {
    const key = `${subject}\u0000${schema}`;
    let p = this.bySubjectSchema.get(key);
    if (p === undefined) {
      p = this.request<{ id: number }>('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema }).then((r) => {
        if (!Number.isSafeInteger(r.id)) throw new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry answered a registration without an id`);
        return r.id;
      });
      p.catch(() => this.bySubjectSchema.delete(key));
      this.bySubjectSchema.set(key, p);
    }
    return p;
  }

  /** The schema (JSON text) with this id. */
  schemaById(id: number): Promise<string> {
    const cached = this.byId.get(id);
    if (cached !== undefined) return cached;
    const unknown = this.unknownIds.get(id);
    const now = this.now();
    if (unknown !== undefined && now < unknown.until) {
      return Promise.reject(this.unknownId(id, `remembered for ${Math.ceil((unknown.until - now) / 1000)} s more`));
    }
    const p = this.request<{ schema: string }>('GET', `/schemas/ids/${id}`).then(
      (r) => {
        if (typeof r.schema !== 'string') throw new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry answered id ${id} without a schema`);
        this.unknownIds.delete(id);
        return r.schema;
      },
      (err: unknown) => {
        if (err instanceof MmadError && err.details.status === 404) {
          const periodMs = Math.min(600_000, unknown === undefined ? 30_000 : unknown.periodMs * 2);
          this.unknownIds.set(id, { until: this.now() + periodMs, periodMs });
          const oldest = this.unknownIds.keys().next();
          if (this.unknownIds.size > 10_000 && !oldest.done) this.unknownIds.delete(oldest.value);
          throw this.unknownId(id, `the registry does not know it; asked again in ${periodMs / 1000} s at the earliest`);
        }
        throw err;
      },
    );
    p.catch(() => this.byId.delete(id));
    this.byId.set(id, p);
    return p;
  }

  private unknownId(id: number, why: string): MmadError {
    return new MmadError(ErrorCode.CODEC_UNKNOWN_SCHEMA, `schema id ${id} is unknown (${why})`, { details: { schemaId: id } });
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.url.replace(/\/+$/, '')}${path}`;
    const now = this.now();
    if (this.outage !== undefined && now < this.outage.until) {
      throw new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry unavailable (${this.outage.error}); retrying in ${this.outage.until - now} ms`, {
        retriable: true,
        details: { retryAfterMs: this.outage.until - now },
      });
    }
    const down = (why: string, cause?: unknown): MmadError => {
      const periodMs = Math.min(30_000, this.outage === undefined ? 500 : this.outage.periodMs * 2);
      this.outage = { until: this.now() + periodMs, periodMs, error: why };
      return new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry ${method} ${url} failed: ${why}`, { cause, retriable: true, details: { retryAfterMs: periodMs } });
    };
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers: { 'content-type': CONTENT_TYPE, accept: CONTENT_TYPE },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await this.boundedText(res);
    } catch (err) {
      if (err instanceof MmadError) throw err;
      throw down(messageOf(err), err);
    }
    if (res.status >= 500) throw down(`answered ${res.status}: ${text.slice(0, 300)}`);
    this.outage = undefined;
    if (!res.ok) {
      throw new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry ${method} ${url} answered ${res.status}: ${text.slice(0, 300)}`, {
        details: { status: res.status },
      });
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry ${method} ${url} answered something that is not JSON: ${messageOf(err)}`, { cause: err });
    }
  }

  /** The response body as text, refusing one over `maxResponseBytes` (counted as it streams in). */
  private async boundedText(res: Response): Promise<string> {
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    const tooLarge = (): MmadError =>
      new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry response larger than ${this.maxResponseBytes} bytes; refused`);
    if (declared > this.maxResponseBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge();
    }
    if (res.body === null) return '';
    const chunks: Uint8Array[] = [];
    let n = 0;
    const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > this.maxResponseBytes) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks, n).toString('utf8');
  }
}
