import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveLine, progressBar } from '../../src/cli/live-line.js';

function sink(isTTY: boolean, columns?: number) {
  const written: string[] = [];
  const lines: string[] = [];
  const stream = { isTTY, ...(columns !== undefined ? { columns } : {}), write: (s: string) => written.push(s) };
  return { written, lines, line: new LiveLine(stream, (l) => lines.push(l), 10) };
}

test('progressBar fills in proportion and clamps', () => {
  assert.equal(progressBar(0, 4, 8), '[........] 0/4');
  assert.equal(progressBar(2, 4, 8), '[####....] 2/4');
  assert.equal(progressBar(9, 4, 8), '[########] 9/4');
});

test('not a terminal: a line only when the text changed, nothing drawn in place', () => {
  const s = sink(false);
  s.line.update('3 parts judged', 3, 10);
  s.line.update('3 parts judged', 3, 10);
  s.line.update('4 parts judged', 4, 10);
  s.line.update('4 parts judged', 4, 10);
  s.line.end();
  assert.deepEqual(s.lines, ['[###.......] 3/10 3 parts judged', '[####......] 4/10 4 parts judged']);
  assert.deepEqual(s.written, []);
});

test('a terminal: redrawn in place, cut to its width, one newline at the end', () => {
  const s = sink(true, 24);
  s.line.update('a status that is far too long for the terminal');
  s.line.update('short');
  s.line.end();
  s.line.end();
  assert.deepEqual(s.written, ['\r\x1b[2Ka status that is far t…', '\r\x1b[2Kshort', '\n']);
  assert.deepEqual(s.lines, []);
});
