/** The view's bounded memory of the line: parts, revisions, alerts, dead letters. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import type { Alert, AnomalyEvent, DeadLetter } from '../../src/codec/records.js';
import { LineStore, OTHER_REASON, type StoreChange } from '../../src/view/line-store.js';

function event(sampleId: string, revision = 1, o: Partial<AnomalyEvent> = {}): AnomalyEvent {
  return {
    sampleId,
    line: 'line-1',
    station: 'st-1',
    revision,
    final: true,
    captureTime: new Date(1_000),
    verdict: 'OK',
    reason: null,
    score: 1,
    threshold: 2,
    modalitiesUsed: ['rgb'],
    modalitiesMissing: [],
    model: { id: 'm', version: '1', modalities: ['rgb'] },
    heatmap: { png: Buffer.alloc(300, 7), width: 64, height: 64, scale: 2 },
    regions: [],
    timings: { joinWaitMs: 0, preprocessMs: 0, inferenceMs: 0, endToEndMs: 5 },
    sources: [{ modality: 'rgb', topic: 'in.rgb', partition: 0, offset: 3, captureTime: new Date(1_000) }],
    producedAt: new Date(2_000),
    ...o,
  };
}

function deadLetter(reasonCode: string, message = 'bad'): DeadLetter {
  return { reasonCode, message, source: { topic: 'in.rgb', partition: 1, offset: 9, timestamp: new Date(0), key: null }, sampleId: 'S', modality: 'rgb', original: Buffer.alloc(10_000), producedAt: new Date(0) };
}

function alert(sampleId: string): Alert {
  return { sampleId, line: 'l', station: 's', revision: 1, severity: 'CRITICAL', score: 3, threshold: 2, modelId: 'm', modelVersion: '1', modalitiesUsed: ['rgb'], regionCount: 1, message: 'x', captureTime: new Date(0), producedAt: new Date(0) };
}

test('keeps the last maxParts parts, forgetting the one whose latest revision is oldest', () => {
  const store = new LineStore({ maxParts: 3, maxRevisions: 8, maxAlerts: 5, maxDeadLetters: 5, maxReasons: 4 });
  const changes: StoreChange[] = [];
  store.subscribe((c) => changes.push(c));
  for (const id of ['A', 'B', 'C']) store.addEvent(event(id));
  store.addEvent(event('A', 2)); // A refined: now the newest
  store.addEvent(event('D'));
  assert.deepEqual(store.recentParts().map((p) => p.sampleId), ['D', 'A', 'C']);
  assert.equal(store.part('B'), undefined);
  assert.deepEqual(changes.filter((c) => c.kind === 'forget'), [{ kind: 'forget', sampleId: 'B' }]);
  for (let i = 0; i < 1000; i++) store.addEvent(event(`P${i}`));
  assert.equal(store.size.parts, 3);
  assert.deepEqual(store.recentParts().map((p) => p.sampleId), ['P999', 'P998', 'P997']);
});

test('revisions in order, the same revision read again replaced, at most maxRevisions kept', () => {
  const store = new LineStore({ maxParts: 10, maxRevisions: 2, maxAlerts: 5, maxDeadLetters: 5, maxReasons: 4 });
  store.addEvent(event('A', 2, { verdict: 'NOK', final: true }));
  store.addEvent(event('A', 1, { verdict: 'OK', final: false }));
  assert.deepEqual(store.part('A')?.revisions.map((r) => [r.revision, r.verdict, r.final]), [
    [1, 'OK', false],
    [2, 'NOK', true],
  ]);
  store.addEvent(event('A', 2, { verdict: 'NOK', score: 9 }));
  assert.deepEqual(store.part('A')?.revisions.map((r) => [r.revision, r.score]), [
    [1, 1],
    [2, 9],
  ]);
  store.addEvent(event('A', 3));
  assert.deepEqual(store.part('A')?.revisions.map((r) => r.revision), [2, 3]);
  assert.equal(store.taken.staleRevisions, 1);
});

test('the heatmap is copied out of the record it came in', () => {
  const store = new LineStore();
  const backing = Buffer.alloc(1_000_000, 1);
  const e = event('A', 1, { heatmap: { png: backing.subarray(0, 300), width: 64, height: 64, scale: 2 } });
  store.addEvent(e);
  const png = present(store.part('A')?.revisions[0]?.heatmap?.png, 'the stored heatmap');
  assert.equal(png.length, 300);
  assert.notEqual(png.buffer, backing.buffer, 'a view into the fetched batch would keep the whole batch alive');
});

test('alerts and dead letters are bounded; dead letters counted per reason, new reasons past the bound as OTHER', () => {
  const store = new LineStore({ maxParts: 10, maxRevisions: 2, maxAlerts: 3, maxDeadLetters: 2, maxReasons: 2 });
  for (let i = 0; i < 10; i++) store.addAlert(alert(`A${i}`));
  assert.deepEqual(store.alerts().map((a) => a.sampleId), ['A9', 'A8', 'A7']);
  for (let i = 0; i < 5; i++) store.addDeadLetter(deadLetter('FRAME_CORRUPT'));
  store.addDeadLetter(deadLetter('CODEC_BAD_MAGIC', 'x'.repeat(5_000)));
  store.addDeadLetter(deadLetter('FRAME_SHAPE'));
  store.addDeadLetter(deadLetter('FRAME_CLOCK_SKEW'));
  store.addDeadLetter(deadLetter('CODEC_BAD_MAGIC'));
  assert.deepEqual(store.deadLetterCounts(), [
    { reason: 'FRAME_CORRUPT', count: 5 },
    { reason: 'CODEC_BAD_MAGIC', count: 2 },
    { reason: OTHER_REASON, count: 2 },
  ]);
  const recent = store.deadLetters();
  assert.deepEqual(recent.map((d) => d.reasonCode), ['CODEC_BAD_MAGIC', 'FRAME_CLOCK_SKEW']);
  assert.ok(recent.every((d) => !('original' in d)), 'no original bytes kept');
  assert.ok(store.size.deadLetters === 2 && store.size.alerts === 3);
});

test('a long message is cut', () => {
  const store = new LineStore();
  store.addDeadLetter(deadLetter('CODEC_BAD_MAGIC', 'x'.repeat(5_000)));
  assert.ok((store.deadLetters()[0]?.message.length ?? 0) <= 301);
});

test('limits must be positive integers', () => {
  assert.throws(() => new LineStore({ maxParts: 0, maxRevisions: 1, maxAlerts: 1, maxDeadLetters: 1, maxReasons: 1 }), /maxParts/);
});
