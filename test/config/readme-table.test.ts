/**
 * README.md's configuration table against the schema: every key of the defaults appears in
 * the table (or under a `section.*` row), every key the table names exists, and every default
 * it prints is the schema's. The table is written by hand for people (several sibling keys to
 * a row, `a` / `b` pairs, `.suffix` shorthand for topic names), so this reads that notation
 * rather than generating the table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';
import { present } from '../../src/base/invariant.js';
import { loadConfig } from '../../src/config/load-config.js';

interface Row {
  keys: string[];
  /** The printed defaults, one per key, or undefined when the cell is prose (`see ...`). */
  defaults: string[] | undefined;
  line: string;
}

const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]*)`/g)].map((m) => present(m[1], 'a ticked name'));

/** The table's rows: `| key | default | meaning |` between the Configuration heading and the next heading. */
function configRows(readme: string): Row[] {
  const lines = readme.split('\n');
  const start = lines.indexOf('## Configuration');
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  const rows: Row[] = [];
  for (const line of lines.slice(start, end < 0 ? undefined : end)) {
    if (!line.startsWith('| `')) continue;
    const [keyCell, defaultCell] = line.split(' | ').map((c) => c.replace(/^\| /, ''));
    const names = ticked(present(keyCell, `the key cell of ${line}`));
    const first = present(names[0], `a key in ${line}`);
    const parent = first.slice(0, first.lastIndexOf('.') + 1);
    const keys = names.map((n, i) => (i === 0 ? n : parent + n));
    const printed = present(defaultCell, `the default cell of ${line}`);
    const values = printed.startsWith('`') ? ticked(printed) : undefined;
    // `mmad.frames.rgb` / `.ir`: a value starting with a dot shares the first value's prefix
    const firstValue = values?.[0] ?? '';
    const shorthand = (v: string): boolean => firstValue.includes('.') && /^\.[A-Za-z]+$/.test(v);
    const expanded = values?.map((v) => (shorthand(v) ? firstValue.slice(0, firstValue.lastIndexOf('.')) + v : v));
    rows.push({ keys, defaults: expanded, line });
  }
  return rows;
}

/** A default in the table's notation: bare strings, `[a, b]`, `{k: v}`. */
function notation(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(notation).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${k}: ${notation(x)}`).join(', ')}}`;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === undefined) return String(v);
  throw new Error(`a default of type ${typeof v} has no notation`);
}

function leaves(v: unknown, path: string, out: Map<string, unknown>): Map<string, unknown> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
    for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
  } else out.set(path, v);
  return out;
}

function at(config: unknown, path: string): { found: boolean; value: unknown } {
  let v: unknown = config;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(part in v)) return { found: false, value: undefined };
    v = (v as Record<string, unknown>)[part];
  }
  return { found: true, value: v };
}

const defaults = loadConfig({ env: {} });
const rows = configRows(readFileSync(new URL('../../README.md', import.meta.url), 'utf8'));

test('the notation reader: siblings, pairs, dotted shorthand and prose cells', () => {
  const parsed = configRows([
    '## Configuration',
    '| `a.b.c`, `d` | `1`, `x` | m |',
    '| `t.in.rgb` / `ir` | `m.f.rgb` / `.ir` | m |',
    '| `s.*` | see `cmd` | m |',
    '## Next',
    '| `z` | `0` | m |',
  ].join('\n'));
  assert.deepEqual(parsed.map((r) => [r.keys, r.defaults]), [
    [['a.b.c', 'a.b.d'], ['1', 'x']],
    [['t.in.rgb', 't.in.ir'], ['m.f.rgb', 'm.f.ir']],
    [['s.*'], undefined],
  ]);
  assert.equal(notation({ policy: 'late', windowMs: 5 }), '{policy: late, windowMs: 5}');
  assert.equal(notation(['mtfi', 'crd']), '[mtfi, crd]');
});

test('every key the README table names exists in the schema, with the default it prints', () => {
  assert.ok(rows.length > 30, `found only ${rows.length} rows: has the table moved?`);
  const wrong: string[] = [];
  for (const row of rows) {
    if (row.defaults !== undefined && row.defaults.length !== row.keys.length) {
      wrong.push(`${row.keys.join(', ')}: ${row.keys.length} keys, ${row.defaults.length} defaults`);
      continue;
    }
    row.keys.forEach((key, i) => {
      const { found, value } = at(defaults, key.replace(/\.\*$/, ''));
      if (!found) wrong.push(`${key}: not in the schema`);
      else if (row.defaults !== undefined) {
        const printed = present(row.defaults[i], `the default of ${key}`);
        if (printed !== notation(value)) wrong.push(`${key}: the README says ${printed}, the schema ${notation(value)}`);
      }
    });
  }
  assert.deepEqual(wrong, []);
});

test('every key of the schema has a row in the README table', () => {
  const named = rows.flatMap((r) => r.keys);
  const covered = (path: string): boolean =>
    named.some((k) => k === path || path.startsWith(`${k.replace(/\.\*$/, '')}.`));
  const missing = [...leaves(defaults, '', new Map()).keys()].filter((p) => !covered(p));
  assert.deepEqual(missing, []);
});
