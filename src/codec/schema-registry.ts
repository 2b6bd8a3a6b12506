/**
 * Client of a Confluent-compatible schema registry (REST): registers the
 * writer schema under `<topic>-value` and resolves the schema ids found in
 * Confluent-framed records. Ids are immutable, so lookups are cached forever.
 */
import { ErrorCode, MmadError, messageOf } from '../errors/errors.js';

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

export class SchemaRegistryClient {
  private readonly byId = new Map<number, Promise<string>>();
  private readonly bySubjectSchema = new Map<string, Promise<number>>();

  constructor(
    readonly url: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /** Registers (or finds) `schema` under `subject`; returns its id. */
  register(subject: string, schema: string): Promise<number> {
    const key = `${subject}\u0000${schema}`;
    let p = this.bySubjectSchema.get(key);
    if (p === undefined) {
      p = this.request<{ id: number }>('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema }).then(
        (r) => r.id,
      );
      p.catch(() => this.bySubjectSchema.delete(key));
      this.bySubjectSchema.set(key, p);
    }
    return p;
  }

  /** The schema (JSON text) with this id. */
  schemaById(id: number): Promise<string> {
    let p = this.byId.get(id);
    if (p === undefined) {
      p = this.request<{ schema: string }>('GET', `/schemas/ids/${id}`).then((r) => r.schema);
      p.catch(() => this.byId.delete(id));
      this.byId.set(id, p);
    }
    return p;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.url.replace(/\/+$/, '')}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { 'content-type': CONTENT_TYPE, accept: CONTENT_TYPE },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new MmadError(ErrorCode.SCHEMA_REGISTRY_FAILED, `schema registry ${method} ${url} failed: ${messageOf(err)}`, {
        cause: err,
        retriable: true,
      });
    }
    const text = await res.text();
    if (!res.ok) {
      throw new MmadError(
        ErrorCode.SCHEMA_REGISTRY_FAILED,
        `schema registry ${method} ${url} answered ${res.status}: ${text.slice(0, 300)}`,
        { retriable: res.status >= 500, details: { status: res.status } },
      );
    }
    return JSON.parse(text) as T;
  }
}
