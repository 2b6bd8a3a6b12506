/**
 * Every version of every schema in schemas/avro, parsed once. The newest
 * version of a name is the one this service writes and reads into; all
 * versions are known writer schemas, looked up by their CRC-64-AVRO
 * fingerprint (single-object encoding).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../config/paths.js';
import avro from 'avsc';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { BinaryGuard } from './binary-guard.js';
import { crc64Avro } from './crc64-avro.js';
import { at } from '../base/invariant.js';

/** schemas/avro at the repository root. */
export const DEFAULT_SCHEMA_DIR = join(REPO_ROOT, 'schemas', 'avro');

/** timestamp-millis ⇄ Date. */
class TimestampMillis extends avro.types.LogicalType {
  override _fromValue(value: number): Date {
    return new Date(value);
  }
  override _toValue(value: unknown): number | undefined {
    if (value instanceof Date) return value.getTime();
    return undefined;
  }
  override _resolve(type: avro.Type): ((v: number) => Date) | undefined {
    if (avro.Type.isType(type, 'long', 'logical:timestamp-millis')) return (v: number) => this._fromValue(v);
    return undefined;
  }
}

/** Fresh options per parse: avsc records named types in `opts.registry`, so a shared object would collide. */
export function avroOptions(): Partial<avro.ForSchemaOptions> {
  return { logicalTypes: { 'timestamp-millis': TimestampMillis } };
}

export interface LoadedSchema {
  /** Full name, e.g. mmad.inspection.Frame. */
  fullName: string;
  /** Short record name, e.g. Frame. */
  name: string;
  /** Version from the file name (Frame.v2.avsc → 2); 0 for schemas registered at run time. */
  version: number;
  type: avro.Type;
  /** Parsing Canonical Form, what the fingerprint is computed over. */
  canonical: string;
  fingerprint: bigint;
  /** The schema as written (with docs and defaults), for a registry. */
  json: string;
  guard: BinaryGuard;
}

export function parseSchema(json: string, version = 0): LoadedSchema {
  let type: avro.Type;
  try {
    type = avro.Type.forSchema(JSON.parse(json) as avro.Schema, avroOptions());
  } catch (err) {
    throw new MmadError(ErrorCode.CODEC_INVALID, `invalid Avro schema: ${messageOf(err)}`, { cause: err });
  }
  // avsc's schema() without exportAttrs is the Parsing Canonical Form (full
  // names, no docs/defaults/logical types, fixed key order).
  const canonical = JSON.stringify(type.schema());
  const fullName = type.name ?? type.typeName;
  return {
    fullName,
    name: fullName.split('.').pop() ?? fullName,
    version,
    type,
    canonical,
    fingerprint: crc64Avro(Buffer.from(canonical, 'utf8')),
    json,
    guard: new BinaryGuard(canonical),
  };
}

export class SchemaCatalog {
  private readonly newest = new Map<string, LoadedSchema>();
  private readonly byPrint = new Map<bigint, LoadedSchema>();

  static load(dir = DEFAULT_SCHEMA_DIR): SchemaCatalog {
    const catalog = new SchemaCatalog();
    for (const file of readdirSync(dir).sort()) {
      const m = /^([A-Za-z][A-Za-z0-9]*)\.v(\d+)\.avsc$/.exec(file);
      if (m === null) continue;
      const loaded = parseSchema(readFileSync(join(dir, file), 'utf8'), Number(m[2]));
      const name = at(m, 1);
      if (loaded.name !== name) {
        throw new MmadError(ErrorCode.CODEC_INVALID, `${file} defines record ${loaded.name}, expected ${name}`);
      }
      catalog.add(loaded);
    }
    return catalog;
  }

  /** Adds a writer schema (an older or newer version); the newest version of its name becomes current. */
  add(schema: LoadedSchema): void {
    this.byPrint.set(schema.fingerprint, schema);
    const cur = this.newest.get(schema.name);
    if (cur === undefined || schema.version > cur.version) this.newest.set(schema.name, schema);
  }

  current(name: string): LoadedSchema {
    const s = this.newest.get(name);
    if (s === undefined) throw new MmadError(ErrorCode.CODEC_UNKNOWN_SCHEMA, `no schema named ${name} in the catalog`);
    return s;
  }

  byFingerprint(fp: bigint): LoadedSchema | undefined {
    return this.byPrint.get(fp);
  }

  names(): string[] {
    return [...this.newest.keys()];
  }
}
