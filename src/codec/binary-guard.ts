/**
 * A bounds-checking walk over Avro binary data, run before the decoder.
 *
 * avsc trusts the counts and lengths it reads: a forged array block count of
 * 2^50 makes it loop (and allocate) long after the buffer has ended. Hostile or
 * corrupt frames must cost no more than their size, so this walk checks every
 * length, block count, union branch and enum index against the bytes actually
 * present, and says precisely what is wrong, before avsc sees the bytes.
 */
import { ErrorCode, MmadError } from '../base/errors.js';

type Schema = string | SchemaObject | Schema[];
interface SchemaObject {
  type: string | Schema;
  name?: string;
  fields?: { name: string; type: Schema }[];
  symbols?: string[];
  items?: Schema;
  values?: Schema;
  size?: number;
}

class Cursor {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
  ) {
    this.pos = start;
  }
  remaining(): number {
    return this.buf.length - this.pos;
  }
  need(n: number, what: string): void {
    if (n > this.remaining()) this.truncated(n, what);
  }
  /** The next byte, taken. */
  byte(what: string): number {
    const b = this.buf[this.pos];
    if (b === undefined) return this.truncated(1, what);
    this.pos++;
    return b;
  }
  private truncated(n: number, what: string): never {
    throw new MmadError(
      ErrorCode.CODEC_TRUNCATED,
      `record truncated: ${what} needs ${n} byte(s) at offset ${this.pos}, ${this.remaining()} left`,
    );
  }
  /**
   * Zig-zag varint, up to 64 bits, as a JS number. Exact below 2^53, which
   * bounds every length and count that can fit a buffer; larger values only
   * need to compare as "too large", which they do.
   */
  long(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        // zig-zag: even → value/2, odd → -(value+1)/2
        return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
      }
      scale *= 128;
    }
    throw new MmadError(ErrorCode.CODEC_INVALID, `invalid varint for ${what} at offset ${this.pos}`);
  }
  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }
}

/** The smallest number of bytes any value of a schema occupies (used to bound block counts). */
function minSize(schema: Schema, named: Map<string, Schema>, depth = 0): number {
  if (depth > 32) return 1;
  if (Array.isArray(schema)) return 1; // union index
  if (typeof schema === 'string') {
    switch (schema) {
      case 'null':
        return 0;
      case 'boolean':
      case 'int':
      case 'long':
      case 'bytes':
      case 'string':
        return 1;
      case 'float':
        return 4;
      case 'double':
        return 8;
      default: {
        const ref = named.get(schema);
        return ref === undefined ? 1 : minSize(ref, named, depth + 1);
      }
    }
  }
  const t = schema.type;
  if (typeof t !== 'string') return minSize(t, named, depth + 1);
  switch (t) {
    case 'record':
    case 'error':
      return (schema.fields ?? []).reduce((s, f) => s + minSize(f.type, named, depth + 1), 0);
    case 'enum':
    case 'array':
    case 'map':
      return 1;
    case 'fixed':
      return schema.size ?? 0;
    default:
      return minSize(t, named, depth + 1);
  }
}

export class BinaryGuard {
  private readonly named = new Map<string, Schema>();
  private readonly root: Schema;

  /** @param canonical the writer schema in Parsing Canonical Form (full names, no defaults). */
  constructor(canonical: string) {
    this.root = JSON.parse(canonical) as Schema;
    this.collect(this.root);
  }

  private collect(schema: Schema): void {
    if (Array.isArray(schema)) {
      schema.forEach((s) => this.collect(s));
      return;
    }
    if (typeof schema === 'string') return;
    if (schema.name !== undefined && typeof schema.type === 'string' && ['record', 'error', 'enum', 'fixed'].includes(schema.type)) {
      this.named.set(schema.name, schema);
    }
    if (typeof schema.type !== 'string') this.collect(schema.type);
    schema.fields?.forEach((f) => this.collect(f.type));
    if (schema.items !== undefined) this.collect(schema.items);
    if (schema.values !== undefined) this.collect(schema.values);
  }

  /** Throws CODEC_TRUNCATED / CODEC_INVALID unless buf[start..] is exactly one valid value. */
  check(buf: Uint8Array, start: number): void {
    const cur = new Cursor(buf, start);
    this.walk(this.root, cur, 'record');
    if (cur.pos !== buf.length) {
      throw new MmadError(
        ErrorCode.CODEC_INVALID,
        `${buf.length - cur.pos} trailing byte(s) after the record (offset ${cur.pos})`,
      );
    }
  }

  private walk(schema: Schema, cur: Cursor, path: string): void {
    if (Array.isArray(schema)) {
      const index = cur.long(`union branch of ${path}`);
      const branch = schema[index];
      if (index < 0 || branch === undefined) {
        throw new MmadError(ErrorCode.CODEC_INVALID, `union branch ${index} out of range for ${path} (${schema.length} branches)`);
      }
      this.walk(branch, cur, path);
      return;
    }
    if (typeof schema === 'string') {
      switch (schema) {
        case 'null':
          return;
        case 'boolean': {
          const b = cur.byte(path);
          if (b > 1) throw new MmadError(ErrorCode.CODEC_INVALID, `invalid boolean byte ${b} for ${path}`);
          return;
        }
        case 'int':
        case 'long':
          cur.long(path);
          return;
        case 'float':
          cur.skip(4, path);
          return;
        case 'double':
          cur.skip(8, path);
          return;
        case 'bytes':
        case 'string': {
          const len = cur.long(`length of ${path}`);
          if (len < 0) throw new MmadError(ErrorCode.CODEC_INVALID, `negative length ${len} for ${path}`);
          cur.skip(len, path);
          return;
        }
        default: {
          const ref = this.named.get(schema);
          if (ref === undefined) throw new MmadError(ErrorCode.CODEC_INVALID, `schema references unknown type ${schema}`);
          this.walk(ref, cur, path);
          return;
        }
      }
    }
    const t = schema.type;
    if (typeof t !== 'string') {
      this.walk(t, cur, path);
      return;
    }
    switch (t) {
      case 'record':
      case 'error':
        for (const f of schema.fields ?? []) this.walk(f.type, cur, path === 'record' ? f.name : `${path}.${f.name}`);
        return;
      case 'enum': {
        const index = cur.long(path);
        const n = schema.symbols?.length ?? 0;
        if (index < 0 || index >= n) throw new MmadError(ErrorCode.CODEC_INVALID, `enum index ${index} out of range for ${path} (${n} symbols)`);
        return;
      }
      case 'fixed':
        cur.skip(schema.size ?? 0, path);
        return;
      case 'array':
      case 'map': {
        const item = (t === 'array' ? schema.items : schema.values) as Schema;
        const perItem = minSize(item, this.named) + (t === 'map' ? 1 : 0);
        for (;;) {
          let count = cur.long(`block count of ${path}`);
          if (count === 0) return;
          if (count < 0) {
            count = -count;
            const size = cur.long(`block size of ${path}`);
            if (size < 0) throw new MmadError(ErrorCode.CODEC_INVALID, `negative block size for ${path}`);
          }
          if (perItem > 0 && count * perItem > cur.remaining()) {
            throw new MmadError(
              ErrorCode.CODEC_TRUNCATED,
              `${path} declares ${count} item(s) but only ${cur.remaining()} byte(s) remain`,
            );
          }
          if (perItem === 0 && count > 1_000_000) {
            throw new MmadError(ErrorCode.CODEC_INVALID, `${path} declares ${count} empty items`);
          }
          for (let i = 0; i < count; i++) {
            if (t === 'map') this.walk('string', cur, `${path} key`);
            this.walk(item, cur, `${path}[]`);
          }
        }
      }
      default:
        this.walk(t, cur, path);
    }
  }
}
