import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputOffsets } from '../../src/runtime/input-offsets.js';

const rec = (...offsets: number[]): { offset: string }[] => offsets.map((o) => ({ offset: String(o) }));

test('records before the position are dropped; the rest are held until released; the committable offset follows', () => {
  const o = new InputOffsets(3, ['rgb', 'ir']);
  o.startAt('rgb', 10n);
  assert.deepEqual(o.accept('rgb', rec(8, 9, 10, 11)).map((r) => r.offset), ['10', '11'], 'delivered again from before the start');
  assert.deepEqual(o.accept('rgb', rec(10, 11, 12)).map((r) => r.offset), ['12'], 'a rebalance went back: what was taken is not taken twice');
  assert.deepEqual([...o.positions()], [['rgb', 13n]]);
  assert.deepEqual(o.committable(), [{ topic: 'rgb', partition: 3, offset: '10' }], 'ir has read nothing: nothing to commit there');
  o.release([{ topic: 'rgb', offset: '11' }]);
  assert.equal(o.committable()[0]?.offset, '10', 'frame 10 still held');
  o.release([{ topic: 'rgb', offset: '10' }, { topic: 'rgb', offset: '12' }]);
  assert.equal(o.committable()[0]?.offset, '13');
});

test('a forgotten sample is tombstoned once the commit passes every frame read before it forgot, unless its id came again', () => {
  const o = new InputOffsets(0, ['rgb', 'ir']);
  o.taken('rgb', '5');
  o.taken('ir', '7');
  o.forgotten('A');
  o.forgotten('B');
  const at = (rgb: number, ir: number): { topic: string; offset: string }[] => [
    { topic: 'rgb', offset: String(rgb) },
    { topic: 'ir', offset: String(ir) },
  ];
  const none = (): boolean => false;
  assert.deepEqual(o.tombstonesFor(at(6, 7), none), [], 'ir frame 7 could still be read again');
  assert.deepEqual(o.tombstonesFor([{ topic: 'rgb', offset: '9' }], none), [], 'no commit on ir yet');
  assert.deepEqual(o.tombstonesFor(at(6, 8), (id) => id === 'B'), ['A'], 'B is a new part under an old name: its entry stays');
  assert.deepEqual(o.tombstonesFor(at(9, 9), none), [], 'each sample once');
});
