/**
 * What a CT adds on the line, with the shipped students on the real broker: a battery lid with
 * a void inside its material (no camera, infrared or 3D sensor sees it) is OK on its in-line
 * verdict (mtfi-rgb-ir) and NOK when its CT volume arrives (mtfi-rgb-ir-ct), the region on the
 * void and its depth within the slab; a good lid stays OK in both revisions.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { present } from '../../src/base/invariant.js';
import { AvroCodec } from '../../src/codec/avro-codec.js';
import type { AnomalyEvent, Modality } from '../../src/codec/records.js';
import { SchemaCatalog } from '../../src/codec/schema-catalog.js';
import { defaultConfig } from '../../src/config/load-config.js';
import { generatePart } from '../../src/simulate/part-generator.js';
import { renderPart, type SimulationOptions } from '../../src/simulate/line-simulator.js';
import { frameRecord } from '../../src/simulate/station-records.js';
import { consumeUntil } from '../helpers/kafka.js';
import { processorTestConfig } from '../helpers/models.js';
import { serviceUnderTest } from '../helpers/service.js';

/** The shipped manifest cut to the two students this line routes to (copies of their files in a folder of its own). */
function twoShippedStudents(): string {
  const shipped = resolve(defaultConfig().inference.manifest);
  const manifest = JSON.parse(readFileSync(shipped, 'utf8')) as { models: { id: string; file: string }[] };
  const dir = mkdtempSync(join(tmpdir(), 'mmad-ct-void-'));
  manifest.models = manifest.models.filter((m) => m.id === 'mtfi-rgb-ir' || m.id === 'mtfi-rgb-ir-ct');
  assert.equal(manifest.models.length, 2, 'the shipped manifest has both students');
  for (const m of manifest.models) copyFileSync(join(dirname(shipped), m.file), join(dir, m.file));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return join(dir, 'manifest.json');
}

const config = processorTestConfig((base) => ({
  topics: { ...base.topics, inputs: { ...base.topics.inputs, ct: base.topics.inputs.rgb.replace(/\.rgb$/, '.ct') } },
  inference: { manifest: twoShippedStudents(), maxBatchWaitMs: 2 },
  join: {
    modalities: { rgb: { policy: 'required', timeoutMs: 1000 }, ir: { policy: 'required', timeoutMs: 1000 }, xyz: { policy: 'late', windowMs: 3000 }, ct: { policy: 'late', windowMs: 6000 } },
    idleAdvanceMs: 300,
  },
}));
const { kafka, processor, send } = await serviceUnderTest(config);
const frames = AvroCodec.local(SchemaCatalog.load(), 'Frame');
const SIM: SimulationOptions = { product: 'battery_lid', width: 256, height: 256, seed: 1, defectRate: 1, defects: ['void'], poolSize: 0, ct: true };

test('a void only the CT sees: OK in-line, NOK in the CT revision, the region on it; a good lid OK in both', { timeout: 180_000 }, async () => {
  await processor.start();
  const t0 = Date.now();
  const expected: Modality[] = ['rgb', 'ir', 'ct'];
  const parts = { VOID: await renderPart(SIM, { seed: 11, defect: 'void' }), GOOD: await renderPart(SIM, { seed: 12, defect: null }) };
  for (const [id, p] of Object.entries(parts)) {
    const base = { id: { line: 'line-1', station: 'st-1' }, sampleId: id, width: 256, height: 256, expected, attributes: {} };
    await send('rgb', id, frames.encode(frameRecord({ ...base, modality: 'rgb', captureTime: new Date(t0), payload: p.encoded.rgb })));
    await send('ir', id, frames.encode(frameRecord({ ...base, modality: 'ir', captureTime: new Date(t0), payload: p.encoded.ir })));
    const ct = present(p.ct, 'the part\'s CT scan');
    await send('ct', id, frames.encode(frameRecord({ ...base, modality: 'ct', captureTime: new Date(t0 + 3000), width: ct.width, height: ct.height, payload: ct.payload, volume: ct.volume })));
  }
  const codec = AvroCodec.local(SchemaCatalog.load(), 'AnomalyEvent');
  const evs: AnomalyEvent[] = [];
  await consumeUntil(kafka, config, config.topics.events, (got) => {
    evs.splice(0, evs.length, ...got.map((m) => codec.decodeSync(present(m.value, 'an event'))));
    return Object.keys(parts).every((id) => evs.some((e) => e.sampleId === id && e.final));
  }, 'the final event of both parts');
  const verdicts = (id: string): unknown[] =>
    evs.filter((e) => e.sampleId === id).sort((a, b) => a.revision - b.revision).map((e) => [e.revision, e.model?.id, e.modalitiesUsed.join('+'), e.verdict]);
  assert.deepEqual(verdicts('VOID'), [[1, 'mtfi-rgb-ir', 'rgb+ir', 'OK'], [2, 'mtfi-rgb-ir-ct', 'rgb+ir+ct', 'NOK']], 'the void is found once the CT volume is in');
  assert.deepEqual(verdicts('GOOD'), [[1, 'mtfi-rgb-ir', 'rgb+ir', 'OK'], [2, 'mtfi-rgb-ir-ct', 'rgb+ir+ct', 'OK']], 'a good lid stays OK');

  // the largest region of the CT revision lies on the void's projection, its peak inside the slab
  const refined = present(evs.find((e) => e.sampleId === 'VOID' && e.revision === 2), 'the CT revision');
  const region = present(refined.regions[0], 'a region');
  const projection = present(generatePart({ product: SIM.product, seed: 11, defect: 'void', width: 256, height: 256, ct: true }).ct, 'the scan').projection;
  let onVoid = 0;
  for (let y = region.y; y < region.y + region.height; y++) for (let x = region.x; x < region.x + region.width; x++) if ((projection[y * 256 + x] ?? 0) > 0) onVoid++;
  assert.ok(onVoid > 0, `the region ${JSON.stringify(region)} overlaps the void`);
  const ct = present(parts.VOID.ct, 'the scan');
  const depth = present(region.depthMm, 'the region\'s depth');
  assert.ok(depth > 0 && depth < ct.volume.depth * ct.volume.voxelSizeMm.z, `the void's depth ${depth} mm lies within the volume`);
});
