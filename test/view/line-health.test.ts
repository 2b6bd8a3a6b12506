/** The live page's health figures: coverage shares, latency percentiles, consumer lag. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coverageOf, lagOf, latencyOf, percentile } from '../../src/view/line-health.js';
import type { PartView, RevisionView } from '../../src/view/line-store.js';

function rev(revision: number, used: string[], missing: string[], endToEndMs: number): RevisionView {
  return {
    revision,
    final: true,
    verdict: 'OK',
    reason: null,
    score: 1,
    threshold: 2,
    modalitiesUsed: used,
    modalitiesMissing: missing,
    model: null,
    regions: [],
    heatmap: null,
    sources: [],
    captureTime: 0,
    producedAt: 0,
    endToEndMs,
  };
}

function part(sampleId: string, ...revisions: RevisionView[]): PartView {
  return { sampleId, line: 'l', station: 's', revisions, firstSeen: 0, updatedAt: 0 };
}

test('percentile: nearest rank on sorted data', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.deepEqual([percentile(hundred, 50), percentile(hundred, 90), percentile(hundred, 99), percentile(hundred, 100)], [50, 90, 99, 100]);
  assert.deepEqual([percentile([7], 50), percentile([7], 99)], [7, 7]);
  // four values: p50 is the 2nd, p90 and p99 the 4th
  assert.deepEqual([percentile([10, 20, 30, 40], 50), percentile([10, 20, 30, 40], 90), percentile([10, 20, 30, 40], 99)], [20, 40, 40]);
  assert.equal(percentile([], 50), null);
  assert.throws(() => percentile([1], 0), RangeError);
  assert.throws(() => percentile([1], 101), RangeError);
});

test('coverage: shares of parts by their latest revision, in the modalities\' order', () => {
  const parts = [
    // provisional without xyz, refined with it: only the latest counts
    part('A', rev(1, ['rgb', 'ir'], ['xyz'], 10), rev(2, ['rgb', 'ir', 'xyz'], [], 900)),
    part('B', rev(1, ['rgb'], ['ir', 'xyz'], 20)),
    part('C', rev(1, ['rgb', 'xyz'], ['ir'], 30)),
    part('D', rev(1, ['rgb', 'ir'], ['xyz'], 40)),
  ];
  assert.deepEqual(coverageOf(parts), [
    { modality: 'rgb', used: 1, missing: 0 },
    { modality: 'ir', used: 0.5, missing: 0.5 },
    { modality: 'xyz', used: 0.5, missing: 0.5 },
  ]);
  assert.deepEqual(coverageOf([]), []);
  // a modality this reader does not know comes after the known ones
  assert.deepEqual(
    coverageOf([part('E', rev(1, ['unknown', 'rgb'], [], 1))]).map((c) => c.modality),
    ['rgb', 'unknown'],
  );
});

test('latency: percentiles over every kept revision of the parts', () => {
  const parts = [part('A', rev(1, ['rgb'], [], 10), rev(2, ['rgb'], [], 900)), part('B', rev(1, ['rgb'], [], 20)), part('C', rev(1, ['rgb'], [], 30))];
  assert.deepEqual(latencyOf(parts), { events: 4, p50: 20, p90: 900, p99: 900 });
  assert.deepEqual(latencyOf([]), { events: 0, p50: null, p90: null, p99: null });
});

test('lag: end offsets less committed ones, per topic and in total; an uncommitted partition from its low offset', () => {
  const ends = [
    { topic: 'in.rgb', partitions: [{ partition: 0, low: '0', high: '10' }, { partition: 1, low: '0', high: '7' }] },
    { topic: 'in.ir', partitions: [{ partition: 0, low: '3', high: '8' }] },
    { topic: 'in.xyz', partitions: [{ partition: 0, low: '0', high: '4' }] },
  ];
  const committed = [
    { topic: 'in.rgb', partitions: [{ partition: 0, offset: '10' }, { partition: 1, offset: '2' }] },
    { topic: 'in.ir', partitions: [{ partition: 0, offset: '-1' }] },
    { topic: 'in.xyz', partitions: [{ partition: 0, offset: '4' }] },
  ];
  assert.deepEqual(lagOf(committed, ends), {
    total: 10,
    topics: [
      { topic: 'in.rgb', lag: 5, uncommitted: 0 },
      { topic: 'in.ir', lag: 5, uncommitted: 1 },
      { topic: 'in.xyz', lag: 0, uncommitted: 0 },
    ],
  });
  // a topic the group never read counts whole
  assert.deepEqual(lagOf([], [{ topic: 't', partitions: [{ partition: 0, low: '2', high: '9' }] }]), { total: 7, topics: [{ topic: 't', lag: 7, uncommitted: 1 }] });
});
