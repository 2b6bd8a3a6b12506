import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AnomalyEvent, Modality } from '../../src/codec/records.js';
import { LineSummary } from '../../src/output/line-summary.js';
import { sampleEvent, sampleLabel } from '../helpers/records.js';

function event(sampleId: string, revision: number, verdict: AnomalyEvent['verdict'], used: Modality[], final: boolean): AnomalyEvent {
  return { ...sampleEvent(), sampleId, revision, verdict, modalitiesUsed: used, final };
}

test('the report names the defective parts found only once their CT volume came', () => {
  const s = new LineSummary();
  for (const [id, defectType] of [['V', 'void'], ['P', 'porosity'], ['D', 'dent'], ['G', 'good'], ['N', 'void']] as const) s.addLabel(sampleLabel({ sampleId: id, defectType }));
  // a void: OK in-line, NOK with its volume (the revisions arrive out of order)
  s.addEvent(event('V', 2, 'NOK', ['rgb', 'ir', 'ct'], true));
  s.addEvent(event('V', 1, 'OK', ['rgb', 'ir'], false));
  // porosity the CT did not find; a dent found in-line and confirmed with the CT; a good part scanned and OK
  s.addEvent(event('P', 1, 'OK', ['rgb', 'ir'], false));
  s.addEvent(event('P', 2, 'OK', ['rgb', 'ir', 'ct'], true));
  s.addEvent(event('D', 1, 'NOK', ['rgb', 'ir'], false));
  s.addEvent(event('D', 2, 'NOK', ['rgb', 'ir', 'ct'], true));
  s.addEvent(event('G', 1, 'OK', ['rgb', 'ir'], false));
  s.addEvent(event('G', 2, 'OK', ['rgb', 'ir', 'ct'], true));
  // a void never scanned: the in-line verdict is all there is
  s.addEvent(event('N', 1, 'OK', ['rgb', 'ir'], true));

  assert.deepEqual(['V', 'P', 'D', 'G', 'N'].map((id) => s.foundByCt(id)), [true, false, false, false, false]);
  assert.deepEqual(s.confusion(), { truePositive: 2, falsePositive: 0, trueNegative: 1, falseNegative: 2, unknown: 0 });
  const report = s.report();
  const row = (d: string): number[] => (report.find((l) => l.trim().startsWith(`${d} `)) ?? '').trim().split(/\s+/).slice(1).map(Number);
  // parts, found, CT scanned, found only after CT
  assert.deepEqual(row('void'), [2, 1, 1, 1]);
  assert.deepEqual(row('porosity'), [1, 0, 1, 0]);
  assert.deepEqual(row('dent'), [1, 1, 1, 0]);
  assert.deepEqual(row('good'), [1, 0, 1, 0]);
  assert.ok(report.includes('found only once their CT volume came (OK in-line): 1 defective part(s): void 1'), report.join('\n'));
});

test('without a CT the report says nothing of it', () => {
  const s = new LineSummary();
  s.addLabel(sampleLabel({ sampleId: 'A', defectType: 'dent' }));
  s.addEvent(event('A', 1, 'OK', ['rgb', 'ir'], false));
  s.addEvent(event('A', 2, 'NOK', ['rgb', 'ir', 'xyz'], true));
  assert.equal(s.foundByCt('A'), false, 'a late xyz is not a CT');
  assert.ok(!s.report().some((l) => l.startsWith('found only once')));
});
