/** Which threshold each student decides with (src/inference/threshold.ts): no model, no broker. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load-config.js';
import { ErrorCode, MmadError } from '../../src/base/errors.js';
import { present } from '../../src/base/invariant.js';
import type { ModelSpec } from '../../src/inference/model-manifest.js';
import { gumbelQuantile, resolveThresholds, tailQuantile, type ThresholdSettings } from '../../src/inference/threshold.js';

/** A manifest entry with only what the threshold needs; `dist` false: written before schemaVersion 2. */
function spec(id: string, value: number, dist: { location: number; scale: number } | false = { location: 0.5, scale: 0.1 }): ModelSpec {
  const threshold = dist === false ? { value, rule: 'mean + 3 * std', sigmas: 3 } : { value, rule: 'Gumbel', falseAlarmRate: 0.01, distribution: { kind: 'gumbel' as const, ...dist } };
  return { id, version: '0.3.0', threshold } as unknown as ModelSpec;
}

function settings(threshold: Record<string, unknown>): ThresholdSettings {
  return loadConfig({ env: {}, overrides: { inference: { threshold } } as never }).inference.threshold;
}

/** "id value source@rate" per model, in manifest order. */
function resolved(specs: ModelSpec[], threshold: Record<string, unknown>): string {
  const m = resolveThresholds(specs, settings(threshold), 'm.json');
  return specs.map((s) => {
    const t = present(m.get(s.id), `the threshold of ${s.id}`);
    return `${s.id} ${t.value.toFixed(4)} ${t.source}@${String(t.falseAlarmRate)}`;
  }).join('; ');
}

function expectCode(fn: () => unknown, code: ErrorCode, pattern: RegExp): MmadError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof MmadError && e.code === code && pattern.test(e.message), String(e));
    return e;
  }
  assert.fail(`expected ${code}`);
}

test('the Gumbel quantile is the one the export computes (scipy.stats.gumbel_r.ppf)', () => {
  assert.ok(Math.abs(gumbelQuantile({ location: 3, scale: 0.8 }, 0.99) - 6.680119381421264) < 1e-12);
  assert.ok(Math.abs(gumbelQuantile({ location: 3, scale: 0.8 }, 0.999) - 8.525804056418973) < 1e-12);
  assert.ok(Math.abs(gumbelQuantile({ location: -1, scale: 2 }, 0.5) - -0.2669741588366713) < 1e-12);
  assert.equal(gumbelQuantile({ location: 2.5, scale: 0 }, 0.99), 2.5, 'a point mass: its location');
});

const TAIL = { location: 2, scale: 0.7, shape: 0.2, tailFraction: 0.2 };

/** A manifest entry whose threshold comes from a generalized Pareto tail (the export's from 50 calibration scores on). */
function tailSpec(id: string, tail: typeof TAIL = TAIL): ModelSpec {
  const value = tailQuantile(tail, 0.99);
  return { id, version: '0.6.0', threshold: { value, rule: 'tail', falseAlarmRate: 0.01, distribution: { kind: 'pareto-tail', ...tail } } } as unknown as ModelSpec;
}

test('the tail quantile is the one the export computes (location + scipy.stats.genpareto.ppf)', () => {
  assert.ok(Math.abs(tailQuantile(TAIL, 0.99) - 4.871974710591279) < 1e-12);
  assert.ok(Math.abs(tailQuantile({ ...TAIL, shape: -0.3 }, 0.999) - 3.857266652880714) < 1e-12);
  assert.ok(Math.abs(tailQuantile({ ...TAIL, shape: 0 }, 0.99) - 4.097012591487793) < 1e-12, 'shape 0: an exponential tail');
  assert.equal(tailQuantile({ ...TAIL, scale: 0 }, 0.99), 2, 'no spread: its location');
  assert.ok(Number.isNaN(tailQuantile(TAIL, 0.7)), 'a rate beyond the tail is not described');
});

test('falseAlarmRate reads a tail within it, and stops start-up above it unless the model has an override', () => {
  assert.equal(resolved([tailSpec('a'), spec('b', 5, { location: 3, scale: 0.8 })], { falseAlarmRate: 0.01 }), 'a 4.8720 falseAlarmRate@0.01; b 6.6801 falseAlarmRate@0.01');
  assert.equal(resolved([tailSpec('a')], { falseAlarmRate: 0.2 }), 'a 2.0000 falseAlarmRate@0.2', 'at the tail fraction: its location');
  const e = expectCode(
    () => resolveThresholds([tailSpec('a'), spec('b', 1)], settings({ falseAlarmRate: 0.3 }), 'm.json'),
    ErrorCode.CONFIG_INVALID,
    /falseAlarmRate: 0\.3 is above the share of good parts the fitted tail describes for model a \(0\.2\) in the manifest m\.json/,
  );
  assert.deepEqual((e.details.issues as { path: string }[]).map((i) => i.path), ['inference.threshold.falseAlarmRate']);
  assert.equal(resolved([tailSpec('a'), spec('b', 1)], { falseAlarmRate: 0.3, overrides: { a: 9 } }), 'a 9.0000 override@null; b 0.6031 falseAlarmRate@0.3');
});

test('by default every student keeps the threshold of its manifest', () => {
  assert.equal(resolved([spec('a', 0.96), spec('b', 7.1, false)], {}), 'a 0.9600 manifest@0.01; b 7.1000 manifest@null');
});

test("falseAlarmRate recomputes each threshold from the fitted distribution; at the manifest's own rate it is the manifest value", () => {
  assert.equal(resolved([spec('a', 0.96), spec('b', 5, { location: 3, scale: 0.8 })], { falseAlarmRate: 0.001 }), 'a 1.1907 falseAlarmRate@0.001; b 8.5258 falseAlarmRate@0.001');
  const atOwnRate = resolveThresholds([spec('a', 0.960014922677658)], settings({ falseAlarmRate: 0.01 }), 'm.json').get('a');
  assert.ok(atOwnRate !== undefined);
  assert.ok(Math.abs(atOwnRate.value - 0.960014922677658) < 1e-12);
});

test('an override wins over falseAlarmRate and the manifest, for its model only', () => {
  assert.equal(
    resolved([spec('a', 0.96), spec('b', 7.1, false)], { falseAlarmRate: 0.001, overrides: { b: 6.5 } }),
    'a 1.1907 falseAlarmRate@0.001; b 6.5000 override@null',
    'b has no distribution, but its override means none is needed',
  );
  assert.equal(resolved([spec('a', 0.96), spec('b', 7.1)], { overrides: { a: 2 } }), 'a 2.0000 override@null; b 7.1000 manifest@0.01');
});

test('falseAlarmRate with students whose manifest has no distribution stops start-up, naming each of them', () => {
  expectCode(
    () => resolveThresholds([spec('a', 1), spec('b', 2, false), spec('c', 3, false)], settings({ falseAlarmRate: 0.01 }), 'm.json'),
    ErrorCode.MODEL_INVALID,
    /falseAlarmRate is 0\.01, but the manifest m\.json has no fitted distribution .* for model b v0\.3\.0, model c v0\.3\.0: export them again/,
  );
});

test('an override naming no model of the manifest is a configuration error naming its path', () => {
  const e = expectCode(() => resolveThresholds([spec('crd-rgb', 1)], settings({ overrides: { 'crd-rbg': 5 } }), 'm.json'), ErrorCode.CONFIG_INVALID, /no model crd-rbg in the manifest m\.json \(it has crd-rgb\)/);
  assert.deepEqual((e.details.issues as { path: string }[]).map((i) => i.path), ['inference.threshold.overrides.crd-rbg']);
});
