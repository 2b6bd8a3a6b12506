/**
 * Judging one released sample: route it to the student for its modalities,
 * decode its frames at that student's input size, run it (micro-batched) and
 * say OK / NOK — or UNKNOWN with the reason when it cannot be judged.
 *
 * A frame that fails to decode (corrupt payload, size disagreeing with the
 * sample's other frames) is set aside with its reason (the caller dead-letters
 * it) and the sample is routed again without it, so the rest of the sample is
 * still judged when a student covers what is left.
 *
 * A student that takes ct gets the volume resampled to its grid (volume.ts resampleVolume)
 * and gives anomaly_depth besides the map; the judgement carries it with what turns a slice
 * into millimetres, for the regions' depthMm (output/event-builder.ts).
 *
 * A student with a region of interest (roi.ts) gets its image frames cropped to it, and its map,
 * which covers only the roi, is placed on a canvas of the frame's geometry: the judgement's map is
 * always the frame's, so regions and the heatmap are in frame coordinates.
 */
import type { Modality } from '../codec/records.js';
import { ErrorCode, MmadError, isMmadError, messageOf } from '../base/errors.js';
import type { FramePayload } from '../codec/frame-payload.js';
import type { JoinInput, JoinOutput } from '../join/sample-joiner.js';
import type { ModelRegistry, Route } from './model-registry.js';
import { decodeFrame, writeCHW, type DecodeLimits, type DecodedImage } from './preprocess.js';
import { resampleVolume } from './volume.js';
import { isWholeFrame, placeOnFrame, roiBox } from './roi.js';
import { Slots } from './slots.js';
import type { SampleInputs } from './micro-batcher.js';
import { at, present } from '../base/invariant.js';

/** An UNKNOWN event's reason: the error code, then what happened ("FRAME_SHAPE: the required ir frame is unusable (…)"). */
function reasonOf(code: ErrorCode, text: string): string {
  return `${code}: ${text}`;
}

export interface UnusableFrame {
  input: JoinInput<FramePayload>;
  /** The dead letter's reason. */
  code: ErrorCode;
  message: string;
}

export interface Judgement {
  sampleId: string;
  revision: number;
  final: boolean;
  line: string;
  station: string;
  firstCapture: number;
  firstArrival: number;
  /** Wall clock when the join released the sample. */
  releasedAt: number;
  verdict: 'OK' | 'NOK' | 'UNKNOWN';
  reason: string | null;
  route: Route | null;
  score: number | null;
  threshold: number | null;
  /**
   * The anomaly map, when a model ran: at the model's input size, or for a model with a roi
   * placed on a canvas of the frame's geometry (roi.ts placeOnFrame; 0 outside the roi).
   */
  map: { data: Float32Array; height: number; width: number } | null;
  /** Size of the frames (source pixels), for region coordinates. */
  sourceSize: { width: number; height: number } | null;
  /**
   * A model that takes ct: its anomaly_depth (height × width of the map, slices of the model's
   * grid) and what turns a slice into millimetres (volume.ts depthMm); else null.
   */
  depth: { data: Float32Array; sourceDepth: number; modelDepth: number; voxelZMm: number } | null;
  used: Modality[];
  missing: Modality[];
  /** Frames the verdict was computed from. */
  frames: JoinInput<FramePayload>[];
  unusable: UnusableFrame[];
  preprocessMs: number;
  inferenceMs: number;
  batchSize: number;
}

type JudgementBase = Pick<Judgement, 'sampleId' | 'revision' | 'final' | 'line' | 'station' | 'firstCapture' | 'firstArrival' | 'releasedAt'>;

export type Released = Exclude<JoinOutput<FramePayload>, { type: 'rejected' }>;

export class SampleJudge {
  /**
   * Samples decoded and not yet run by their model: two full batches (one
   * running, one ready), more would only hold decoded tensors in memory while
   * the model catches up.
   */
  private readonly decoding: Slots;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly limits: DecodeLimits,
    /** The modalities the line joins (to list what a verdict is missing). */
    private readonly joined: Modality[],
    private readonly now: () => number = Date.now,
    maxBatchSize = 8,
    /** Modalities whose policy is `required`: a sample whose frame of one is unusable is UNKNOWN, never judged without it. */
    private readonly required: Modality[] = [],
  ) {
    this.decoding = new Slots(2 * maxBatchSize);
  }

  async judge(release: Released): Promise<Judgement> {
    const base = this.baseOf(release);
    const unusable: UnusableFrame[] = [];
    const frames = this.consistent(release.frames, unusable);
    if (release.type === 'unknown') {
      return this.unknown(base, release.reason, frames, unusable, 0);
    }
    const free = await this.decoding.acquire();
    try {
      return await this.run(base, frames, unusable);
    } finally {
      free();
    }
  }

  /** Routes, decodes and runs a sample (the caller holds a decoding slot), routing again without frames that fail to decode. */
  private async run(base: JudgementBase, frames: JoinInput<FramePayload>[], unusable: UnusableFrame[]): Promise<Judgement> {
    const t0 = performance.now();
    for (;;) {
      // the first required modality without a frame but with an unusable one
      const u = this.required
        .filter((m) => !frames.some((f) => f.modality === m))
        .map((m) => unusable.find((x) => x.input.modality === m))
        .find((x) => x !== undefined);
      if (u !== undefined) {
        return this.unknown(base, reasonOf(u.code, `the required ${u.input.modality} frame is unusable (${u.message})`), frames, unusable, performance.now() - t0);
      }
      const route = this.registry.route(frames.map((f) => f.modality));
      if (route === undefined) {
        const have = frames.map((f) => f.modality).join('+') || 'no usable frame';
        return this.unknown(base, reasonOf(ErrorCode.MODEL_NOT_AVAILABLE, `no model covers ${have}`), frames, unusable, performance.now() - t0);
      }
      const { spec } = route.model;
      const needed = frames.filter((f) => spec.modalities.includes(f.modality));
      const decoded: DecodedImage[] = [];
      let failed = false;
      for (const f of needed) {
        try {
          decoded.push(await decodeFrame(f.payload.frame, f.payload.payload, this.limits, { height: spec.height, width: spec.width }, spec.roi));
        } catch (err) {
          unusable.push({ input: f, code: isMmadError(err) ? err.code : ErrorCode.FRAME_CORRUPT, message: messageOf(err) });
          frames = frames.filter((x) => x !== f);
          failed = true;
        }
      }
      if (failed) continue; // route again without the unusable frame(s)
      const inputs: SampleInputs = {};
      let volume: { depth: number; voxelZMm: number } | null = null;
      for (const input of spec.inputs) {
        const img = present(decoded.find((d) => d.modality === input.modality), `the decoded ${input.modality} frame for model ${spec.id}`);
        if (img.volume !== undefined && spec.volume !== null) {
          // raw counts on the model's grid; the decoded uint16 volume is garbage once resampled
          const v = img.volume;
          inputs[input.name] = resampleVolume(img.data as Uint16Array, { depth: v.depth, height: img.height, width: img.width }, spec.volume);
          volume = { depth: v.depth, voxelZMm: v.voxelSizeMm.z };
          continue;
        }
        // written straight into the batch's tensor when the batch forms: no tensor of its own
        inputs[input.name] = { length: img.data.length, writeTo: (target, offset) => writeCHW(img, target, offset) };
      }
      const preprocessMs = performance.now() - t0;
      const result = await route.model.batcher.submit(inputs);
      const threshold = route.model.threshold.value; // the line's (inference.threshold), not always the manifest's
      // regions are in the cameras' pixels, also for a model that takes ct alone (a volume's grid is its own)
      const source = (frames.find((f) => f.modality !== 'ct') ?? at(needed, 0)).payload.frame;
      if (!Number.isFinite(result.score)) {
        throw new MmadError(ErrorCode.INFERENCE_FAILED, `model ${spec.id} returned a non-finite score (${result.score}) for sample ${base.sampleId}`);
      }
      // the map covers the roi's box of the frame: placed on the frame (a model that takes ct, the one
      // with anomaly_depth, has no roi: model-manifest.ts)
      let map = { data: result.map, height: spec.height, width: spec.width };
      const box = roiBox(spec.roi, source.width, source.height);
      if (!isWholeFrame(box, source.width, source.height)) {
        map = placeOnFrame(result.map, spec.height, spec.width, box, source.width, source.height);
      }
      return {
        ...base,
        verdict: result.score >= threshold ? 'NOK' : 'OK',
        reason: null,
        route,
        score: result.score,
        threshold,
        map,
        sourceSize: { width: source.width, height: source.height },
        depth:
          result.depth === null || volume === null || spec.volume === null
            ? null
            : { data: result.depth, sourceDepth: volume.depth, modelDepth: spec.volume.depth, voxelZMm: volume.voxelZMm },
        used: [...spec.modalities],
        missing: this.joined.filter((m) => !spec.modalities.includes(m)),
        frames: needed,
        unusable,
        preprocessMs,
        inferenceMs: result.inferenceMs,
        batchSize: result.batchSize,
      };
    }
  }

  /** The judgement of a sample whose judging failed (e.g. inference kept failing): UNKNOWN, with the error as the reason. */
  failed(release: Released, err: unknown): Judgement {
    return this.unknown(
      this.baseOf(release),
      isMmadError(err) ? reasonOf(err.code, err.message) : reasonOf(ErrorCode.INFERENCE_FAILED, messageOf(err)),
      release.frames,
      [],
      0,
    );
  }

  /**
   * Frames whose size disagrees with the sample's first frame (modality order: rgb first) cannot be pixel-aligned.
   * A ct volume has a grid of its own (a reconstruction's voxels, not the cameras' pixels), so it is not compared.
   */
  private consistent(frames: JoinInput<FramePayload>[], unusable: UnusableFrame[]): JoinInput<FramePayload>[] {
    const ref = frames.find((f) => f.modality !== 'ct')?.payload.frame;
    if (ref === undefined) return frames;
    return frames.filter((f) => {
      const fr = f.payload.frame;
      if (f.modality === 'ct' || (fr.width === ref.width && fr.height === ref.height)) return true;
      unusable.push({
        input: f,
        code: ErrorCode.FRAME_INCONSISTENT,
        message: `${fr.modality} frame is ${fr.width}×${fr.height}, the sample's ${ref.modality} frame is ${ref.width}×${ref.height}; modalities of a sample must be pixel-aligned`,
      });
      return false;
    });
  }

  /** What every judgement of this release says, whatever the verdict; released now. */
  private baseOf(release: Released): JudgementBase {
    const first = at(release.frames, 0).payload.frame;
    return {
      sampleId: release.sampleId,
      revision: release.revision,
      final: release.final,
      line: first.line,
      station: first.station,
      firstCapture: release.firstCapture,
      firstArrival: release.firstArrival,
      releasedAt: this.now(),
    };
  }

  private unknown(
    base: JudgementBase,
    reason: string,
    frames: JoinInput<FramePayload>[],
    unusable: UnusableFrame[],
    preprocessMs: number,
  ): Judgement {
    return {
      ...base,
      verdict: 'UNKNOWN',
      reason,
      route: null,
      score: null,
      threshold: null,
      map: null,
      sourceSize: null,
      depth: null,
      used: [],
      missing: [...this.joined],
      frames,
      unusable,
      preprocessMs,
      inferenceMs: 0,
      batchSize: 0,
    };
  }
}
