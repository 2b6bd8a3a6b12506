/**
 * The model manifest (schemas/model-manifest.schema.json), read and trusted
 * only after checks: the JSON validates against the schema, every ONNX file
 * exists with the size and SHA-256 the manifest gives, and (once a session is
 * open) the graph's inputs and outputs are what the manifest says. Every
 * failure names the model and the mismatch.
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { InferenceSession } from 'onnxruntime-node';
import { REPO_ROOT, isInside } from '../config/paths.js';
import type { Modality } from '../codec/records.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { at } from '../base/invariant.js';
import type { Roi } from './roi.js';

export const MANIFEST_SCHEMA_FILE = join(REPO_ROOT, 'schemas', 'model-manifest.schema.json');

export type Dim = number | string;

export interface ModelInputSpec {
  name: string;
  modality: Modality;
  /** [batch, channels, height, width] (NCHW), or for ct [batch, 1, depth, height, width] (NCDHW). */
  shape: Dim[];
  dtype: 'float32';
  layout: 'NCHW' | 'NCDHW';
  units: string;
  missing: string | null;
  resize: string;
  normalisation: { inGraph: true; [k: string]: unknown };
  /** Image inputs only: the region of interest the model was trained on (roi.ts); absent: the whole frame. */
  roi?: Roi;
}

export interface ModelOutputSpec {
  name: 'anomaly_map' | 'score' | 'anomaly_depth';
  shape: Dim[];
  dtype: 'float32';
  description: string;
}

/** A Gumbel (max) fitted to all the calibration scores: F(x) = exp(-exp(-(x - location) / scale)). */
export interface GumbelDistribution {
  kind: 'gumbel';
  location: number;
  scale: number;
  fit?: 'maximum-likelihood' | 'moments' | 'degenerate';
}

/**
 * The upper tail of the calibration scores (peaks over threshold): a good part scores above
 * `location` with probability `tailFraction`, and its excess over it follows a generalized
 * Pareto distribution of `scale` and `shape`. Describes exceedance rates up to `tailFraction`.
 */
export interface ParetoTailDistribution {
  kind: 'pareto-tail';
  location: number;
  scale: number;
  shape: number;
  tailFraction: number;
  fit?: 'maximum-likelihood' | 'bounded-shape' | 'exponential' | 'degenerate';
}

/** The distribution fitted to the calibration good parts' scores; the threshold is its quantile at 1 - falseAlarmRate. */
export type ThresholdDistribution = GumbelDistribution | ParetoTailDistribution;

export interface ModelSpec {
  id: string;
  version: string;
  method: 'crd' | 'mtfi';
  modalities: Modality[];
  file: string;
  sha256: string;
  sizeBytes: number;
  opset: number;
  inputs: ModelInputSpec[];
  outputs: ModelOutputSpec[];
  /**
   * falseAlarmRate and distribution are required by the schema from schemaVersion 2 only: a
   * manifest exported before (mean + k std thresholds) still validates and loads, so they are
   * optional here, and whoever needs them (inference.threshold.falseAlarmRate) checks for them.
   */
  threshold: { value: number; rule: string; falseAlarmRate?: number; distribution?: ThresholdDistribution; [k: string]: unknown };
  metrics: { i_auroc: number; p_auroc: number; aupro_0_3: number; f1: number; recall?: number; falseAlarmRate?: number; [k: string]: unknown } | null;
  training: Record<string, unknown>;
  parity: { index: string; [k: string]: unknown };
}

export interface Manifest {
  /** 2: what the export writes now; 1: thresholds of the older rule (see ModelSpec.threshold). */
  schemaVersion: 1 | 2;
  updatedAt?: string;
  models: ModelSpec[];
}

/** A manifest entry with the absolute path of its ONNX file. */
export interface LoadedModelSpec extends ModelSpec {
  path: string;
  /** The ONNX file's bytes as hashed: the session is created from these, not from the file read again. */
  bytes: Uint8Array;
  /** Input height and width (fixed in the manifest): the images' and the anomaly map's. */
  height: number;
  width: number;
  /** The ct input's grid (depth × height × width) when the model takes ct; its volumes are resampled to it, and the model has the anomaly_depth output. */
  volume: VolumeGrid | null;
  /**
   * The region of interest of the image inputs (one for all: they share the frame's geometry), to
   * which every image frame is cropped before it is resized, and on which the anomaly map lies in
   * the frame; null: the whole frame.
   */
  roi: Roi | null;
}

/** A volume's grid: slices, rows, columns. */
export interface VolumeGrid {
  depth: number;
  height: number;
  width: number;
}

/** The layout and rank each modality's input must have (schemas/model-manifest.schema.json). */
function inputLayout(modality: unknown): { layout: 'NCHW' | 'NCDHW'; rank: number; shape: string } {
  return modality === 'ct'
    ? { layout: 'NCDHW', rank: 5, shape: '[batch, 1, depth, height, width]' }
    : { layout: 'NCHW', rank: 4, shape: '[batch, channels, height, width]' };
}

/** An input of a manifest not yet checked against the schema: any field may be missing or of another type. */
interface RawInput {
  modality?: unknown;
  layout?: unknown;
  shape?: unknown;
  name?: unknown;
  roi?: unknown;
}

/** The problems `check` finds in every input of every model of a manifest not yet checked against the schema (`id`: the model's, '?' when it has none). */
function inputProblems(data: unknown, check: (id: string, input: RawInput) => string[]): string[] {
  const models = (data as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) return [];
  const problems: string[] = [];
  for (const m of models as unknown[]) {
    const raw = (m as { id?: unknown } | null)?.id;
    const id = typeof raw === 'string' ? raw : '?';
    const inputs = (m as { inputs?: unknown } | null)?.inputs;
    if (!Array.isArray(inputs)) continue;
    for (const i of inputs as unknown[]) problems.push(...check(id, i ?? {}));
  }
  return problems;
}

/**
 * The inputs' layout and rank, checked before the schema so that a ct input written like an
 * image (or an image like a volume) is named plainly rather than as the schema's if/then failure.
 */
function layoutProblems(data: unknown): string[] {
  return inputProblems(data, (id, { modality, layout, shape, name }) => {
    const want = inputLayout(modality);
    const rank = Array.isArray(shape) ? shape.length : undefined;
    if (layout === want.layout && rank === want.rank) return [];
    return [
      `model ${id}: input ${String(name)} (${String(modality)}) has layout ${String(layout)} and ${rank ?? 'no'} dimensions; a ${String(modality)} input is ${want.layout}, ${want.shape} (${want.rank} dimensions)`,
    ];
  });
}

const ROI_SIDES = ['left', 'top', 'right', 'bottom'] as const;

/**
 * The inputs' regions of interest, checked before the schema for the same reason: a roi on a
 * volume, a side outside 0..1 or a box with no width or height is named plainly.
 */
function roiProblems(data: unknown): string[] {
  return inputProblems(data, (id, { modality, name, roi }) => {
    if (roi === undefined) return [];
    const what = `model ${id}: input ${String(name)} (${String(modality)})`;
    // a volume has a grid of its own, not the cameras' pixels: it is judged whole
    if (modality === 'ct') return [`${what} has a roi; only image inputs (NCHW) have one, a ct volume is judged whole`];
    if (typeof roi !== 'object' || roi === null) return []; // the schema names it
    const r = roi as Record<string, unknown>;
    const bad = ROI_SIDES.filter((k) => r[k] !== undefined && !(typeof r[k] === 'number' && r[k] >= 0 && r[k] <= 1));
    if (bad.length > 0) {
      return [`${what} has a roi with ${bad.map((k) => `${k} ${JSON.stringify(r[k])}`).join(', ')}; every side is a fraction of the frame, 0..1`];
    }
    const { left, top, right, bottom } = r;
    const problems: string[] = [];
    if (typeof left === 'number' && typeof right === 'number' && left >= right) {
      problems.push(`${what} has a roi with left ${left} >= right ${right}; the box must have a width`);
    }
    if (typeof top === 'number' && typeof bottom === 'number' && top >= bottom) {
      problems.push(`${what} has a roi with top ${top} >= bottom ${bottom}; the box must have a height`);
    }
    return problems;
  });
}

/** The one roi of a model's image inputs (null: the whole frame); refused when they differ. */
function imageRoi(m: ModelSpec): Roi | null {
  const images = m.inputs.filter((i) => i.layout === 'NCHW');
  const key = (r: Roi | undefined): string => (r === undefined ? '0,0,1,1' : `${r.left},${r.top},${r.right},${r.bottom}`);
  const keys = new Set(images.map((i) => key(i.roi)));
  if (keys.size > 1) {
    throw new MmadError(
      ErrorCode.MODEL_INVALID,
      `model ${m.id}: its image inputs have different rois (${images.map((i) => `${i.name} ${i.roi === undefined ? 'none' : JSON.stringify(i.roi)}`).join(', ')}); they share the frame's geometry, so they must have the same roi`,
    );
  }
  const roi = images.find((i) => i.roi !== undefined)?.roi;
  if (roi !== undefined && m.inputs.some((i) => i.layout === 'NCDHW')) {
    // the volume covers the whole frame and is projected onto it: a cropped frame would not meet that projection
    throw new MmadError(ErrorCode.MODEL_INVALID, `model ${m.id}: has a roi and a ct input; a model that takes ct judges the whole frame (its volume covers it)`);
  }
  return roi === undefined ? null : { left: roi.left, top: roi.top, right: roi.right, bottom: roi.bottom };
}

let validator: ((data: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null } | undefined;

function validate(data: unknown): { instancePath: string; message?: string }[] {
  if (validator === undefined) {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const addFormats = addFormatsModule as unknown as (a: Ajv2020) => void;
    addFormats(ajv);
    validator = ajv.compile(JSON.parse(readFileSync(MANIFEST_SCHEMA_FILE, 'utf8')) as object);
  }
  return validator(data) ? [] : [...(validator.errors ?? [])];
}

/** Reads and checks a manifest and the files it names. */
export function loadManifest(manifestPath: string): { manifest: Manifest; models: LoadedModelSpec[] } {
  const path = resolve(manifestPath);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new MmadError(ErrorCode.MODEL_INVALID, `cannot read model manifest ${path}: ${messageOf(err)}`, { cause: err });
  }
  const layouts = [...layoutProblems(data), ...roiProblems(data)];
  if (layouts.length > 0) {
    throw new MmadError(ErrorCode.MODEL_INVALID, `model manifest ${path}:\n${layouts.map((p) => `  - ${p}`).join('\n')}`);
  }
  const errors = validate(data);
  if (errors.length > 0) {
    throw new MmadError(
      ErrorCode.MODEL_INVALID,
      `model manifest ${path} does not match schemas/model-manifest.schema.json:\n${errors
        .slice(0, 20)
        .map((e) => `  - ${e.instancePath || '(root)'}: ${e.message ?? 'invalid'}`)
        .join('\n')}`,
    );
  }
  const manifest = data as Manifest;
  const dir = dirname(path);
  const ids = new Set<string>();
  const models = manifest.models.map((m): LoadedModelSpec => {
    if (ids.has(m.id)) throw new MmadError(ErrorCode.MODEL_INVALID, `model manifest ${path} lists model ${m.id} twice`);
    ids.add(m.id);
    const file = join(dir, m.file);
    let size: number;
    try {
      size = statSync(file).size;
    } catch (err) {
      throw new MmadError(ErrorCode.MODEL_MISSING, `model ${m.id}: ONNX file ${file} is missing`, { cause: err });
    }
    // the file must stay in the manifest's folder, also through links: a manifest cannot make the service read any file
    if (!isInside(realpathSync(dir), realpathSync(file))) {
      throw new MmadError(ErrorCode.MODEL_INVALID, `model ${m.id}: file ${m.file} is outside the manifest's folder ${dir}`);
    }
    if (size !== m.sizeBytes) {
      throw new MmadError(ErrorCode.MODEL_CHECKSUM, `model ${m.id}: ${file} has ${size} bytes, the manifest says ${m.sizeBytes}`);
    }
    const bytes = readFileSync(file);
    if (bytes.length !== m.sizeBytes) {
      throw new MmadError(ErrorCode.MODEL_CHECKSUM, `model ${m.id}: ${file} has ${bytes.length} bytes, the manifest says ${m.sizeBytes}`);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== m.sha256) {
      throw new MmadError(ErrorCode.MODEL_CHECKSUM, `model ${m.id}: SHA-256 of ${file} is ${digest}, the manifest says ${m.sha256}`);
    }
    const inputModalities = m.inputs.map((i) => i.modality);
    if (inputModalities.join() !== m.modalities.join()) {
      throw new MmadError(ErrorCode.MODEL_INVALID, `model ${m.id}: inputs are for ${inputModalities.join('+')}, modalities say ${m.modalities.join('+')}`);
    }
    // the images' height x width is the map's; a ct-only model has no image, so the map's shape says it
    const map = m.outputs.find((o) => o.name === 'anomaly_map')?.shape;
    const images = m.inputs.filter((i) => i.layout === 'NCHW');
    const sizes = new Set([...images.map((i) => i.shape), ...(map === undefined ? [] : [map])].map((s) => `${String(s[2])}x${String(s[3])}`));
    const [h, w] = [images[0]?.shape[2] ?? map?.[2], images[0]?.shape[3] ?? map?.[3]];
    if (sizes.size !== 1 || typeof h !== 'number' || typeof w !== 'number') {
      throw new MmadError(ErrorCode.MODEL_INVALID, `model ${m.id}: inputs and anomaly_map must share one fixed height x width, found ${[...sizes].join(', ')}`);
    }
    const cts = m.inputs.filter((i) => i.layout === 'NCDHW');
    let volume: VolumeGrid | null = null;
    if (cts.length > 0) {
      const [, c, d, vh, vw] = at(cts, 0).shape;
      if (cts.length > 1 || c !== 1 || ![d, vh, vw].every((x) => typeof x === 'number')) {
        throw new MmadError(ErrorCode.MODEL_INVALID, `model ${m.id}: a model takes one ct input of shape [batch, 1, depth, height, width], fixed but the batch; found ${cts.map((i) => JSON.stringify(i.shape)).join(', ')}`);
      }
      volume = { depth: d as number, height: vh as number, width: vw as number };
    }
    const names = m.outputs.map((o) => o.name).join();
    const wanted = volume === null ? 'anomaly_map,score' : 'anomaly_map,score,anomaly_depth';
    if (names !== wanted) {
      throw new MmadError(
        ErrorCode.MODEL_INVALID,
        `model ${m.id}: outputs are [${names}], a model ${volume === null ? 'without' : 'with'} a ct input has [${wanted}]`,
      );
    }
    const depthShape = m.outputs.find((o) => o.name === 'anomaly_depth')?.shape;
    if (depthShape !== undefined && `${String(depthShape[2])}x${String(depthShape[3])}` !== `${h}x${w}`) {
      throw new MmadError(ErrorCode.MODEL_INVALID, `model ${m.id}: anomaly_depth is ${JSON.stringify(depthShape)}, it must have the anomaly map's ${h}x${w}`);
    }
    return { ...m, path: file, bytes, height: h, width: w, volume, roi: imageRoi(m) };
  });
  return { manifest, models };
}

/** Compares an opened session's signature with the manifest entry; throws naming the mismatch. */
export function checkSignature(spec: ModelSpec, session: Pick<InferenceSession, 'inputMetadata' | 'outputMetadata'>): void {
  const problems: string[] = [];
  const compare = (kind: 'input' | 'output', want: { name: string; shape: Dim[] }[], got: readonly InferenceSession.ValueMetadata[]): void => {
    const gotNames = got.map((g) => g.name);
    if (gotNames.join() !== want.map((w) => w.name).join()) {
      problems.push(`${kind}s are [${gotNames.join(', ')}], the manifest says [${want.map((w) => w.name).join(', ')}]`);
      return;
    }
    want.forEach((w, i) => {
      const g = at(got, i);
      if (!g.isTensor) {
        problems.push(`${kind} ${w.name} is not a tensor`);
        return;
      }
      if (g.type !== 'float32') problems.push(`${kind} ${w.name} is ${g.type}, expected float32`);
      if (g.shape.length !== w.shape.length) {
        problems.push(`${kind} ${w.name} has rank ${g.shape.length}, the manifest says ${w.shape.length}`);
        return;
      }
      w.shape.forEach((d, k) => {
        const gd = g.shape[k];
        // a fixed size must match; a named (dynamic) axis must be dynamic in the graph too
        if (typeof d === 'number' ? gd !== d : typeof gd === 'number') {
          problems.push(`${kind} ${w.name} dimension ${k} is ${String(gd)}, the manifest says ${String(d)}`);
        }
      });
    });
  };
  compare('input', spec.inputs, session.inputMetadata);
  compare('output', spec.outputs, session.outputMetadata);
  if (problems.length > 0) {
    throw new MmadError(ErrorCode.MODEL_SIGNATURE, `model ${spec.id} v${spec.version} (${spec.file}): ${problems.join('; ')}`);
  }
}
