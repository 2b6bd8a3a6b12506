/**
 * A schema registry that fails or misbehaves, through the running service on the
 * real broker: frames whose writer schema must be looked up while the registry is
 * down are not dead-lettered but read again after a backoff, and judged once it is
 * back (nothing lost); an id the registry does not know is a dead letter and asked
 * for once per backoff period, not once per frame; an oversized answer is refused.
 * And liveness: while a look-up hangs, the consumer's delivery does not end, and
 * /healthz says so (503) until it does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent, DeadLetter, Frame } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { SchemaRegistryClient } from '../../src/codec/schema-registry.js';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import { FakeRegistry } from '../helpers/fake-registry.js';
import { consumeAll, consumeN, consumeUntil, quietLogger } from '../helpers/kafka.js';
import { makeFrame } from '../helpers/frames.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';

const registry = await FakeRegistry.start();
const config = processorTestConfig((base) => ({
  schemaRegistry: { url: registry.url },
  processing: { ...base.processing, maxTaskIdleMs: 50, tickMs: 20, commitIntervalMs: 100, stallTimeoutMs: 1000 },
  join: { modalities: { rgb: { policy: 'required', timeoutMs: 1000 }, ir: { policy: 'optional', timeoutMs: 500 }, xyz: { policy: 'late', windowMs: 3000 } }, idleAdvanceMs: 300 },
}));
const catalog = SchemaCatalog.load();
const local = AvroCodec.local(catalog, 'Frame');
const telemetry = await Telemetry.start(config, { logger: quietLogger, port: 0 });
const { kafka, registry: models, processor, send } = await serviceUnderTest(config, telemetry.processorOptions(), {
  beforeStop: () => telemetry.stopping(),
  afterStop: async () => {
    await telemetry.shutdown();
    await registry.close();
  },
});
telemetry.attach(processor, models);

/** A frame as a station with its own registration writes it: Confluent framing with schema id `id`. */
function confluent(frame: Frame, id: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return Buffer.concat([head, local.encode(frame).subarray(10)]);
}
test('a registry outage pauses and retries (nothing dead-lettered); unknown ids are asked for once; oversized answers are refused', { timeout: 120_000 }, async () => {
  await processor.start();
  // the station registered the Frame schema as its own text: an id the service has never seen
  const stationId = registry.register(`${catalog.current('Frame').json} `);
  const hugeId = registry.register(`${catalog.current('Frame').json}  `);
  const part = (id: string, m: 'rgb' | 'ir'): Promise<Frame> => makeFrame(id, m, { captureTime: Date.now(), expected: ['rgb', 'ir'] });

  registry.mode = 'down';
  const during = ['R-0', 'R-1', 'R-2'];
  for (const id of during) for (const m of ['rgb', 'ir'] as const) await send(m, id, confluent(await part(id, m), stationId));
  await new Promise((r) => setTimeout(r, 3000));
  const early = await consumeAll(kafka, config, config.topics.deadLetters);
  assert.equal(early.length, 0, 'no frame is dead-lettered for an outage');
  assert.equal(processor.stats().judged, 0, 'nothing can be judged while the writer schema is unknown');
  registry.mode = 'up';

  // an id the registry does not know, twice: two dead letters, one request
  for (const id of ['R-unknown-0', 'R-unknown-1']) await send('rgb', id, confluent(await part(id, 'rgb'), 999));
  // the service's outputs are Confluent-framed with its registry's ids: read them as a consumer would
  const reader = new SchemaRegistryClient(registry.url);
  const dlCodec = await AvroCodec.create(catalog, 'DeadLetter', { registry: reader, subject: 'reader-dl-value' });
  const unknown: DeadLetter[] = await Promise.all((await consumeN(kafka, config, config.topics.deadLetters, 2, 60_000)).map((m) => dlCodec.decode(present(m.value, 'the record value'))));
  assert.deepEqual(unknown.map((d) => d.reasonCode), ['CODEC_UNKNOWN_SCHEMA', 'CODEC_UNKNOWN_SCHEMA']);
  assert.equal(registry.lookups.get(999), 1, 'the unknown id is remembered, not asked for per frame');

  // an answer of 5 MB for a lookup: refused, the frame dead-lettered, the service goes on
  registry.mode = 'huge';
  await send('rgb', 'R-huge', confluent(await part('R-huge', 'rgb'), hugeId));
  const all: DeadLetter[] = await Promise.all((await consumeN(kafka, config, config.topics.deadLetters, 3, 60_000)).map((m) => dlCodec.decode(present(m.value, 'the record value'))));
  const huge = all.find((d) => d.sampleId === 'R-huge' || d.source.key?.toString() === 'R-huge');
  assert.equal(huge?.reasonCode, 'SCHEMA_REGISTRY_FAILED');
  assert.match(huge.message, /larger than 1048576 bytes/);
  registry.mode = 'up';

  for (const m of ['rgb', 'ir'] as const) await send(m, 'R-after', confluent(await part('R-after', m), stationId));
  const evCodec = await AvroCodec.create(catalog, 'AnomalyEvent', { registry: reader, subject: 'reader-ev-value' });
  const events: AnomalyEvent[] = await Promise.all((await consumeN(kafka, config, config.topics.events, 4, 60_000)).map((m) => evCodec.decode(present(m.value, 'the record value'))));
  assert.deepEqual(events.map((e) => e.sampleId).sort(), [...during, 'R-after'].sort(), 'the parts sent during the outage are judged once it is over');
  assert.ok(events.every((e) => e.verdict === 'OK' && e.model?.id === 'test-rgb-ir'));
  const dls = await consumeAll(kafka, config, config.topics.deadLetters);
  assert.equal(dls.length, 3, 'only the unknown ids and the oversized answer were dead-lettered');
  assert.equal(processor.stats().taskRestarts, 0);
});

test('liveness: a delivery whose reading hangs (a registry look-up) fails /healthz until it ends', { timeout: 60_000 }, async () => {
  const healthz = async (): Promise<{ status: number; body: { status: string; checks: Record<string, { ok: boolean; detail?: string }> } }> => {
    const res = await fetch(`http://127.0.0.1:${present(telemetry.port, 'the operations port')}/healthz`);
    return { status: res.status, body: (await res.json()) as never };
  };
  assert.equal((await healthz()).status, 200);
  const id = registry.register(`${catalog.current('Frame').json}   `);
  registry.mode = 'hang';
  await send('rgb', 'L-0', confluent(await makeFrame('L-0', 'rgb', { expected: ['rgb'] }), id));
  let stalled: Awaited<ReturnType<typeof healthz>> | undefined;
  for (let i = 0; i < 80 && stalled === undefined; i++) {
    const h = await healthz();
    if (h.status === 503) stalled = h;
    else await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(stalled !== undefined, '/healthz turned 503 while the look-up hung');
  assert.equal(stalled.body.status, 'stalled');
  assert.match(stalled.body.checks.consumer?.detail ?? '', /reading one delivery of input records has not finished for \d+ s/);
  registry.mode = 'up';
  const evCodec = await AvroCodec.create(catalog, 'AnomalyEvent', { registry: new SchemaRegistryClient(registry.url), subject: 'reader-ev2-value' });
  const judged = await consumeUntil(kafka, config, config.topics.events, (got) => got.some((m) => m.key?.toString() === 'L-0'), 'the event of L-0');
  const events = await Promise.all(judged.map((m) => evCodec.decode(present(m.value, 'the record value'))));
  assert.ok(events.some((e) => e.sampleId === 'L-0'), 'the part is judged once the look-up returns');
  assert.equal((await healthz()).status, 200, 'alive again');
});
