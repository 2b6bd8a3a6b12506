import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import type { Judgement } from '../../src/inference/judge.js';
import { ModelRegistry } from '../../src/inference/model-registry.js';
import { WARNING_BAND, buildOutputs } from '../../src/output/event-builder.js';
import { quietLogger } from '../helpers/kafka.js';
import { inferenceConfig } from '../helpers/models.js';

const registry = await ModelRegistry.open(inferenceConfig(), quietLogger);
after(() => registry.close());
const route = present(registry.route(['rgb', 'ir']), 'a model for rgb+ir');

/** A judged part: a 4 × 4 map with one hot cell, from a 40 × 40 frame. */
function judgement(over: Partial<Judgement>): Judgement {
  const data = new Float32Array(16).fill(0.1);
  data[5] = 4;
  return {
    sampleId: 's-1', revision: 1, final: true, line: 'L1', station: 'S1',
    firstCapture: 1_000, firstArrival: 1_010, releasedAt: 1_050,
    verdict: 'NOK', reason: null, route, score: 4, threshold: 2,
    map: { data, height: 4, width: 4 }, sourceSize: { width: 40, height: 40 }, depth: null,
    used: ['rgb', 'ir'], missing: [], frames: [], unusable: [],
    preprocessMs: 1, inferenceMs: 2, batchSize: 1,
    ...over,
  };
}
const options = { heatmapSize: 8, maxRegions: 3 };

test('an alert is CRITICAL from the threshold plus the warning band, a WARNING below it', () => {
  const at = (score: number) => present(buildOutputs(judgement({ score }), options, () => 2_000).alert, `an alert at score ${score}`);
  assert.equal(at(2).severity, 'WARNING');
  assert.equal(at(2 * (1 + WARNING_BAND) - 1e-9).severity, 'WARNING');
  assert.equal(at(2 * (1 + WARNING_BAND)).severity, 'CRITICAL');
  const a = at(4);
  assert.equal(a.severity, 'CRITICAL');
  assert.equal(a.modelId, route.model.spec.id);
  assert.equal(a.regionCount, 1);
  assert.match(a.message, /^CRITICAL: part s-1 on L1\/S1 is NOK \(score 4\.000 ≥ 2\.000, rgb\+ir, 1 region\(s\)\)$/);
  assert.match(present(buildOutputs(judgement({ final: false }), options, () => 2_000).alert, 'the provisional alert').message, /, provisional\)$/);
});

test('the band is 25 % of the threshold, whatever the threshold (README, Alert.severity): WARNING up to 1.25 × threshold, CRITICAL from there', () => {
  const severity = (score: number, threshold: number): string =>
    present(buildOutputs(judgement({ score, threshold }), options, () => 2_000).alert, `an alert at score ${score}, threshold ${threshold}`).severity;
  // at threshold 8 the band ends at 10: a fixed margin (threshold + 0.5, as at threshold 2) would say CRITICAL from 8.5
  assert.equal(severity(8, 8), 'WARNING');
  assert.equal(severity(9.99, 8), 'WARNING');
  assert.equal(severity(10, 8), 'CRITICAL');
  assert.equal(severity(2.4999, 2), 'WARNING');
  assert.equal(severity(2.5, 2), 'CRITICAL');
  // the severity leads the alert's message
  const warning = present(buildOutputs(judgement({ score: 2.2 }), options, () => 2_000).alert, 'the WARNING alert');
  assert.equal(warning.message, 'WARNING: part s-1 on L1/S1 is NOK (score 2.200 ≥ 2.000, rgb+ir, 1 region(s))');
});

test('no alert for a NOK without a score or a threshold to rate it against; the event is there', () => {
  for (const over of [{ score: null }, { threshold: null }]) {
    const out = buildOutputs(judgement(over), options, () => 2_000);
    assert.equal(out.alert, null, JSON.stringify(over));
    assert.equal(out.event?.verdict, 'NOK');
  }
});

test('no alert for OK, UNKNOWN, or a NOK without a model; the event is always there', () => {
  for (const over of [{ verdict: 'OK' as const, score: 1 }, { verdict: 'UNKNOWN' as const, score: null, map: null, route: null }, { route: null }]) {
    const out = buildOutputs(judgement(over), options, () => 2_000);
    assert.equal(out.alert, null, JSON.stringify(over));
    assert.equal(out.event?.verdict, over.verdict ?? 'NOK');
  }
});

test('regions carry depthMm when the model took ct: (slice + 0.5) × source slices per model slice × voxel z, at the region\'s peak; null otherwise', () => {
  const depth = new Float32Array(16).fill(9);
  depth[5] = 3; // the hot cell's column: slice 3 of the model's 8, a source volume of 32 slices of 0.25 mm
  const { event } = buildOutputs(judgement({ depth: { data: depth, sourceDepth: 32, modelDepth: 8, voxelZMm: 0.25 } }), options, () => 2_000);
  assert.deepEqual(event?.regions.map((r) => r.depthMm), [(3 + 0.5) * 4 * 0.25]);
  assert.deepEqual(buildOutputs(judgement({}), options, () => 2_000).event?.regions.map((r) => r.depthMm), [null]);
});

test('the event: timings from arrival to release and to production, regions in frame pixels, the heatmap at its size', () => {
  const { event } = buildOutputs(judgement({}), options, () => 2_000);
  assert.ok(event !== null);
  assert.deepEqual(event.timings, { joinWaitMs: 40, preprocessMs: 1, inferenceMs: 2, endToEndMs: 990 });
  assert.deepEqual(event.captureTime, new Date(1_000));
  assert.equal(event.regions.length, 1);
  const r = present(event.regions[0], 'the region');
  // the hot cell is row 1, column 1 of the 4 × 4 map: pixels 10..20 of the 40 × 40 frame
  assert.ok(r.x <= 10 && r.x + r.width >= 20 && r.y <= 10 && r.y + r.height >= 20, JSON.stringify(r));
  assert.deepEqual([event.heatmap?.width, event.heatmap?.height], [8, 8]);
  const none = present(buildOutputs(judgement({}), { heatmapSize: 0, maxRegions: 0 }, () => 2_000).event, 'the event');
  assert.equal(none.heatmap, null);
  assert.deepEqual(none.regions, []);
});
