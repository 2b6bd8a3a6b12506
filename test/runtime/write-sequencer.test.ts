import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at } from '../../src/base/invariant.js';
import type { AnomalyEvent } from '../../src/codec/records.js';
import type { OffsetCommit, OutRecord, TaskSink } from '../../src/runtime/task-sink.js';
import { NO_OUTPUTS, WriteSequencer, type StepOutputs, type WriteSequencerOptions } from '../../src/runtime/write-sequencer.js';

/** A sink that logs what it is handed and answers when told to (the broker's acks). */
function heldSink(): { sink: TaskSink; log: string[]; ack: (i: number) => void; fail: (i: number) => void; closed: () => boolean } {
  const log: string[] = [];
  const answers: { resolve: () => void; reject: (e: Error) => void }[] = [];
  let closed = false;
  const held = (entry: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      log.push(entry);
      answers.push({ resolve, reject });
    });
  return {
    log,
    ack: (i) => at(answers, i).resolve(),
    fail: (i) => at(answers, i).reject(new Error(`request ${i} failed`)),
    closed: () => closed,
    sink: {
      write: (records: OutRecord[]) => held(`write ${records.map((r) => String(r.key)).join('+') || '-'}`),
      commit: (offsets: OffsetCommit[]) => held(`commit ${offsets.map((o) => `${o.topic}@${o.offset}`).join(',')}`),
      abort: async () => undefined,
      close: async () => {
        closed = true;
      },
    },
  };
}

/** A step whose outputs are an event of `sampleId`, decided when `decide()` is called. */
function pending(sampleId: string): { work: Promise<StepOutputs>; decide: () => void } {
  let decide!: () => void;
  const work = new Promise<StepOutputs>((r) => (decide = () => r({ j: null, outputs: { ...NO_OUTPUTS, event: { sampleId } as AnomalyEvent } })));
  return { work, decide };
}

const decided = (sampleId: string): Promise<StepOutputs> => Promise.resolve({ j: null, outputs: { ...NO_OUTPUTS, event: { sampleId } as AnomalyEvent } });

function sequencer(sink: TaskSink, o: Partial<WriteSequencerOptions> = {}): { seq: WriteSequencer; written: string[]; failures: unknown[] } {
  const written: string[] = [];
  const failures: unknown[] = [];
  const seq = new WriteSequencer({
    sink,
    // one record per event and per changelog entry, keyed by the sample
    encode: (outputs, changelog) => [
      ...(outputs.event === null ? [] : [{ topic: 'events', key: outputs.event.sampleId, value: null }]),
      ...changelog.map((c) => ({ topic: 'changelog', key: `~${c.sampleId}`, value: null })),
    ],
    maxInFlight: 8,
    onWritten: (_j, outputs) => written.push(outputs.event?.sampleId ?? '-'),
    onFailure: (err) => failures.push(err),
    ...o,
  });
  return { seq, written, failures };
}

const tick = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

test('steps are handed to the sink in sequence order, whatever order their work ends in; what waits for a step runs once it is handed in', async () => {
  const s = heldSink();
  const { seq } = sequencer(s.sink);
  const a = pending('A');
  const b = pending('B');
  const seqA = seq.enqueue(a.work, []);
  const seqB = seq.enqueue(b.work, [{ sampleId: 'B', state: null }]);
  assert.deepEqual([seqA, seqB], [1, 2]);
  const released: string[] = [];
  seq.whenHandedIn(0, () => released.push('before any step'));
  seq.whenHandedIn(seqB, () => released.push('after B'));
  seq.whenHandedIn(seqA, () => released.push('after A'));
  assert.deepEqual(released, ['before any step'], 'sequence number 0 waits for nothing');
  assert.equal(seq.inFlight, 2);
  b.decide();
  await tick();
  assert.deepEqual(s.log, [], 'B is decided but A, before it, is not');
  a.decide();
  await tick();
  assert.deepEqual(s.log, ['write A', 'write B+~B']);
  assert.deepEqual(released, ['before any step', 'after A', 'after B']);
  assert.equal(seq.inFlight, 0);
});

test('handing in does not wait for acks until maxInFlight steps wait for them; onWritten runs at each ack', async () => {
  const s = heldSink();
  const { seq, written } = sequencer(s.sink, { maxInFlight: 2 });
  for (const id of ['A', 'B', 'C']) seq.enqueue(decided(id), []);
  await tick();
  assert.deepEqual(s.log, ['write A', 'write B'], 'two unacknowledged steps: the third waits');
  s.ack(0);
  await tick();
  assert.deepEqual(written, ['A']);
  assert.deepEqual(s.log, ['write A', 'write B'], 'the sequence waits for the step that reached the bound');
  s.ack(1);
  await tick();
  assert.deepEqual(s.log, ['write A', 'write B', 'write C']);
  s.ack(2);
  await seq.idle();
  assert.deepEqual(written, ['A', 'B', 'C']);
});

test('a commit covers what was handed in before it; steps go on being handed in while it is in flight', async () => {
  const s = heldSink();
  const { seq } = sequencer(s.sink);
  seq.enqueue(decided('A'), []);
  const committed: string[] = [];
  const commit = seq.commit(() => ({ offsets: [{ topic: 'rgb', partition: 0, offset: '4' }], changelog: [{ sampleId: 'old', state: null }], committed: () => committed.push('first') }));
  seq.enqueue(decided('B'), []);
  await tick();
  assert.deepEqual(s.log, ['write A', 'write ~old', 'commit rgb@4', 'write B'], 'tombstones just before the commit; B behind it');
  assert.equal(seq.committing, true);
  assert.equal(seq.wroteSinceCommit, true, 'B goes in the next commit');
  for (let i = 0; i < 4; i++) s.ack(i);
  await commit;
  assert.deepEqual(committed, ['first']);
  assert.equal(seq.committing, false);
  let asked = false;
  await seq.commit(() => {
    asked = true;
    return undefined;
  });
  assert.ok(asked);
  assert.equal(s.log.length, 4, 'nothing to commit: nothing handed to the sink');
});

test('the first failed write stops the sequence: onFailure once, nothing more handed in or committed', async () => {
  const s = heldSink();
  const { seq, failures } = sequencer(s.sink);
  seq.enqueue(decided('A'), []);
  seq.enqueue(decided('B'), []);
  await tick();
  s.fail(0);
  s.fail(1);
  await tick();
  assert.equal(failures.length, 1);
  assert.equal(seq.stopped, true);
  seq.enqueue(decided('C'), []);
  let asked = false;
  await seq.commit(() => {
    asked = true;
    return undefined;
  });
  await seq.idle();
  assert.equal(asked, false);
  assert.deepEqual(s.log, ['write A', 'write B']);
});

test('a failed commit stops the sequence; close() gives the sink up', async () => {
  const s = heldSink();
  const { seq, failures } = sequencer(s.sink);
  const commit = seq.commit(() => ({ offsets: [{ topic: 'rgb', partition: 0, offset: '1' }], changelog: [], committed: () => assert.fail('not committed') }));
  await tick();
  s.fail(0);
  await commit;
  assert.equal(failures.length, 1);
  assert.equal(seq.committing, false);
  await seq.close();
  assert.ok(s.closed());
});
