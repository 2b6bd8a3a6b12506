/**
 * Loads the configuration: defaults ← file (YAML or JSON) ← environment.
 *
 * Environment overrides: `MMAD_<SECTION>__<KEY>` (double underscore between
 * levels, single underscores ignored when matching, case-insensitive), e.g.
 * MMAD_TOPICS__PARTITIONS=12 or MMAD_KAFKA__CLIENT_ID=line-3. Values parse as
 * JSON when they can (numbers, booleans, null, arrays), otherwise as strings;
 * a comma-separated string becomes a list where the schema wants one. The
 * conventional KAFKA_BROKERS and SCHEMA_REGISTRY_URL are honoured too.
 * Every problem is reported at once, each with its path.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { ConfigSchema, type Config } from './config-schema.js';
import { at } from '../base/invariant.js';

export interface ConfigIssue {
  path: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

export interface LoadConfigOptions {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Applied last (CLI flags, tests). */
  overrides?: JsonObject;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const issues: ConfigIssue[] = [];
  let raw: JsonObject = {};
  if (options.file !== undefined) raw = readConfigFile(options.file);
  raw = applyEnv(raw, env, issues);
  if (options.overrides !== undefined) raw = deepMerge(raw, options.overrides);
  return validateConfig(raw, issues, options.file);
}

export function validateConfig(raw: unknown, earlier: ConfigIssue[] = [], source?: string): Config {
  const result = ConfigSchema.safeParse(raw);
  const issues = [...earlier];
  if (!result.success) {
    for (const issue of result.error.issues) issues.push(...describeIssue(issue));
  }
  if (issues.length > 0 || !result.success) throw invalidConfig(issues, source);
  return result.data;
}

/**
 * The CONFIG_INVALID error for configuration issues, each named by its path: what validation
 * throws, and what a check made later against something outside the configuration (a model
 * manifest) throws for a setting it cannot serve.
 */
export function invalidConfig(issues: ConfigIssue[], source?: string): MmadError {
  const where = source === undefined ? '' : ` (${source})`;
  return new MmadError(ErrorCode.CONFIG_INVALID, `invalid configuration${where}:\n${issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n')}`, {
    details: { issues },
  });
}

function describeIssue(issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = issue.path.map(String).join('.') || '(root)';
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ path: path === '(root)' ? k : `${path}.${k}`, message: 'unknown key' }));
  }
  if (issue.code === 'invalid_key') {
    // a record's key (inference.threshold.overrides): say what the key should be, not only that it is not
    return [{ path, message: `invalid key: ${issue.issues.map((i) => i.message).join('; ')}` }];
  }
  return [{ path, message: issue.message }];
}

function readConfigFile(file: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MmadError(ErrorCode.CONFIG_UNREADABLE, `cannot read config file ${file}: ${messageOf(err)}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text); // YAML is a superset of JSON
  } catch (err) {
    throw new MmadError(ErrorCode.CONFIG_UNREADABLE, `cannot parse config file ${file}: ${messageOf(err)}`, { cause: err });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new MmadError(ErrorCode.CONFIG_INVALID, `config file ${file} must hold a mapping at the top level`);
  }
  return parsed as JsonObject;
}

const norm = (s: string): string => s.replace(/_/g, '').toLowerCase();

/** Key names of the schema at a path, to map MMAD_TOPICS__DEAD_LETTERS → topics.deadLetters. */
function schemaKeysAt(path: string[]): string[] | undefined {
  let node: unknown = ConfigSchema;
  for (const seg of path) {
    node = unwrap(node);
    const shape = (node as { shape?: Record<string, unknown> }).shape;
    if (shape === undefined || !(seg in shape)) return undefined;
    node = shape[seg];
  }
  const shape = (unwrap(node) as { shape?: Record<string, unknown> }).shape;
  return shape === undefined ? undefined : Object.keys(shape);
}

function unwrap(node: unknown): unknown {
  let n = node as { def?: { innerType?: unknown; type?: string } } | undefined;
  while (n?.def?.innerType !== undefined) n = n.def.innerType as typeof n;
  return n;
}

function leafIsArray(path: string[]): boolean {
  let node: unknown = ConfigSchema;
  for (const seg of path) {
    const shape = (unwrap(node) as { shape?: Record<string, unknown> }).shape;
    if (shape === undefined) return false;
    node = shape[seg];
  }
  return (unwrap(node) as { def?: { type?: string } } | undefined)?.def?.type === 'array';
}

function parseEnvValue(value: string, isArray: boolean): Json {
  let parsed: Json;
  try {
    parsed = JSON.parse(value) as Json;
  } catch {
    parsed = value;
  }
  if (isArray && typeof parsed === 'string') {
    return parsed === '' ? [] : parsed.split(',').map((s) => s.trim());
  }
  return parsed;
}

function applyEnv(raw: JsonObject, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): JsonObject {
  let out = raw;
  const set = (path: string[], value: string): void => {
    out = deepMerge(out, nest(path, parseEnvValue(value, leafIsArray(path))));
  };
  if (env.KAFKA_BROKERS !== undefined && env.KAFKA_BROKERS !== '') set(['kafka', 'brokers'], env.KAFKA_BROKERS);
  if (env.SCHEMA_REGISTRY_URL !== undefined && env.SCHEMA_REGISTRY_URL !== '') {
    set(['schemaRegistry', 'url'], env.SCHEMA_REGISTRY_URL);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MMAD_') || value === undefined) continue;
    if (name === 'MMAD_LOG_LEVEL' || name === 'MMAD_CONFIG') continue; // read elsewhere
    const segments = name.slice(5).split('__');
    const path: string[] = [];
    let ok = true;
    for (const seg of segments) {
      const keys = schemaKeysAt(path);
      const key = keys?.find((k) => norm(k) === norm(seg));
      if (key === undefined) {
        issues.push({ path: `env ${name}`, message: `no configuration key ${[...path, seg.toLowerCase()].join('.')}` });
        ok = false;
        break;
      }
      path.push(key);
    }
    if (ok) set(path, value);
  }
  return out;
}

function nest(path: string[], value: Json): JsonObject {
  const rest = path.slice(1);
  return { [at(path, 0)]: rest.length === 0 ? value : nest(rest, value) };
}

function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v !== null && typeof v === 'object' && !Array.isArray(v) && b !== null && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b, v)
        : v;
  }
  return out;
}

/** The configuration with every default filled in. */
export function defaultConfig(): Config {
  return validateConfig({});
}
