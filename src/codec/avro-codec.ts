/**
 * Typed Avro codec for one record name (Frame, AnomalyEvent, Alert, DeadLetter, Label).
 *
 * Encodes with the newest schema version, framed with Avro single-object
 * encoding (C3 01 + CRC-64-AVRO fingerprint) or, when a schema registry is
 * configured, the Confluent wire format (00 + 4-byte schema id). Decodes
 * either framing, resolving the writer schema into the reader schema (Avro
 * schema resolution), so records of older and newer writers decode. Every
 * failure is an MmadError with a CODEC_* code; nothing in the bytes can crash
 * the caller or make it loop.
 */
import avro from 'avsc';
import { ErrorCode, MmadError, isMmadError, messageOf } from '../base/errors.js';
import { fingerprintBytes } from './crc64-avro.js';
import type { RecordName, RecordTypes } from './records.js';
import { SchemaCatalog, parseSchema, type LoadedSchema } from './schema-catalog.js';
import type { SchemaRegistryClient } from './schema-registry.js';

export const SINGLE_OBJECT_MARKER = Buffer.from([0xc3, 0x01]);
const SINGLE_OBJECT_HEADER = 10;
const CONFLUENT_MAGIC = 0x00;
const CONFLUENT_HEADER = 5;

interface Reader {
  writer: LoadedSchema;
  /** undefined when the writer schema is the reader schema. */
  resolver: avro.Resolver | undefined;
}

export interface CodecOptions {
  /** Confluent framing through this registry; single-object encoding when absent. */
  registry?: SchemaRegistryClient;
  /** Registry subject for the writer schema (Confluent convention: `<topic>-value`). */
  subject?: string;
}

export class AvroCodec<N extends RecordName> {
  readonly schema: LoadedSchema;
  private header: Buffer;
  private readonly readers = new Map<string, Reader>();

  private constructor(
    private readonly catalog: SchemaCatalog,
    readonly name: N,
    private readonly options: CodecOptions,
  ) {
    this.schema = catalog.current(name);
    this.header = Buffer.concat([SINGLE_OBJECT_MARKER, fingerprintBytes(this.schema.fingerprint)]);
  }

  /** A codec ready to use; with a registry, the writer schema is registered first. */
  static async create<N extends RecordName>(
    catalog: SchemaCatalog,
    name: N,
    options: CodecOptions = {},
  ): Promise<AvroCodec<N>> {
    const codec = new AvroCodec(catalog, name, options);
    if (options.registry !== undefined) {
      const subject = options.subject ?? `${codec.schema.fullName}-value`;
      const id = await options.registry.register(subject, codec.schema.json);
      const header = Buffer.alloc(CONFLUENT_HEADER);
      header.writeUInt8(CONFLUENT_MAGIC, 0);
      header.writeUInt32BE(id, 1);
      codec.header = header;
      codec.readers.set(`id:${id}`, { writer: codec.schema, resolver: undefined });
    }
    return codec;
  }

  /** Single-object codec without a registry, synchronously (tests, tools). */
  static local<N extends RecordName>(catalog: SchemaCatalog, name: N): AvroCodec<N> {
    return new AvroCodec(catalog, name, {});
  }

  encode(value: RecordTypes[N]): Buffer {
    const problems: string[] = [];
    const ok = this.schema.type.isValid(value, {
      errorHook: (path: string[], v: unknown) => {
        if (problems.length < 5) problems.push(`${path.join('.') || '(root)'} = ${describeValue(v)}`);
      },
    });
    if (!ok) {
      throw new MmadError(ErrorCode.CODEC_ENCODE_FAILED, `${this.name} does not match its schema: ${problems.join('; ')}`);
    }
    const body = this.schema.type.toBuffer(value);
    return Buffer.concat([this.header, body], this.header.length + body.length);
  }

  /** Decodes either framing. Async only because a Confluent schema id may need a registry lookup. */
  async decode(bytes: Buffer): Promise<RecordTypes[N]> {
    const known = this.tryReader(bytes);
    if (known !== undefined) return this.read(bytes, known.reader, known.offset);
    const id = bytes.readUInt32BE(1);
    const registry = this.options.registry;
    if (registry === undefined) {
      throw new MmadError(
        ErrorCode.CODEC_UNKNOWN_SCHEMA,
        `record is Confluent-framed with schema id ${id}, but no schema registry is configured`,
        { details: { schemaId: id } },
      );
    }
    const json = await registry.schemaById(id);
    const reader = this.readerFor(`id:${id}`, parseSchema(json));
    return this.read(bytes, reader, CONFLUENT_HEADER);
  }

  /** Decodes a single-object-encoded record synchronously (no registry involved). */
  decodeSync(bytes: Buffer): RecordTypes[N] {
    const known = this.tryReader(bytes);
    if (known === undefined) {
      throw new MmadError(ErrorCode.CODEC_UNKNOWN_SCHEMA, `schema id ${bytes.readUInt32BE(1)} is not cached`);
    }
    return this.read(bytes, known.reader, known.offset);
  }

  /** The reader for the framing found in `bytes`, when known without I/O. */
  private tryReader(bytes: Buffer): { reader: Reader; offset: number } | undefined {
    if (bytes.length >= 2 && bytes[0] === SINGLE_OBJECT_MARKER[0] && bytes[1] === SINGLE_OBJECT_MARKER[1]) {
      if (bytes.length < SINGLE_OBJECT_HEADER) {
        throw new MmadError(ErrorCode.CODEC_TRUNCATED, `single-object header truncated (${bytes.length} bytes)`);
      }
      const fp = bytes.readBigUInt64LE(2);
      const key = `fp:${fp.toString(16)}`;
      let reader = this.readers.get(key);
      if (reader === undefined) {
        const writer = this.catalog.byFingerprint(fp);
        if (writer === undefined) {
          throw new MmadError(
            ErrorCode.CODEC_UNKNOWN_SCHEMA,
            `unknown writer schema fingerprint ${fp.toString(16).padStart(16, '0')} (not a known version of any schema)`,
            { details: { fingerprint: fp.toString(16) } },
          );
        }
        reader = this.readerFor(key, writer);
      }
      return { reader, offset: SINGLE_OBJECT_HEADER };
    }
    if (bytes.length >= 1 && bytes[0] === CONFLUENT_MAGIC) {
      if (bytes.length < CONFLUENT_HEADER) {
        throw new MmadError(ErrorCode.CODEC_TRUNCATED, `Confluent header truncated (${bytes.length} bytes)`);
      }
      const reader = this.readers.get(`id:${bytes.readUInt32BE(1)}`);
      return reader === undefined ? undefined : { reader, offset: CONFLUENT_HEADER };
    }
    const head = bytes.subarray(0, 4).toString('hex') || '(empty)';
    throw new MmadError(
      ErrorCode.CODEC_BAD_MAGIC,
      `not an Avro record: starts with ${head}, expected c301 (single-object) or 00 (Confluent)`,
    );
  }

  private readerFor(key: string, writer: LoadedSchema): Reader {
    let resolver: avro.Resolver | undefined;
    if (writer.fingerprint !== this.schema.fingerprint) {
      try {
        resolver = this.schema.type.createResolver(writer.type);
      } catch (err) {
        throw new MmadError(
          ErrorCode.CODEC_UNKNOWN_SCHEMA,
          `writer schema ${writer.fullName} cannot be read as ${this.schema.fullName} v${this.schema.version}: ${messageOf(err)}`,
          { cause: err },
        );
      }
    }
    const reader = { writer, resolver };
    this.readers.set(key, reader);
    return reader;
  }

  private read(bytes: Buffer, reader: Reader, offset: number): RecordTypes[N] {
    reader.writer.guard.check(bytes, offset);
    try {
      const decoded: { value: unknown; offset: number } = this.schema.type.decode(bytes, offset, reader.resolver);
      if (decoded.offset < 0) throw new MmadError(ErrorCode.CODEC_TRUNCATED, 'record truncated');
      return decoded.value as RecordTypes[N];
    } catch (err) {
      if (isMmadError(err)) throw err;
      throw new MmadError(ErrorCode.CODEC_INVALID, `invalid ${this.name} record: ${messageOf(err)}`, { cause: err });
    }
  }
}

function describeValue(v: unknown): string {
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}
