/**
 * The students the service can run: one ONNX Runtime session per model of the
 * manifest, opened, checked against the manifest and warmed up at start-up,
 * and the routing rule that picks one for the modalities a sample has.
 *
 * Routing rule (recorded in every event):
 *   1. exact — a model whose modality set equals the usable modalities;
 *   2. subset — else the model covering the largest subset of them;
 *   ties are broken by taking ct (a part's ct revision exists for its volume: between
 *   rgb+ir+xyz and rgb+ir+ct students, a part with all four is judged with its volume), then
 *   by `inference.preferMethods`, then by model id.
 *   No model covering any subset → the sample is UNKNOWN (MODEL_NOT_AVAILABLE).
 *
 * The sessions live on one inference thread (SessionHost), so the service's
 * main thread never blocks on a model; runs of all models take turns there.
 *
 * Each model's threshold is resolved here, before any session opens, from the manifest and
 * `inference.threshold` (threshold.ts), and logged with its source when the model is ready.
 */
import type { InferenceSession } from 'onnxruntime-node';
import type { Config } from '../config/config-schema.js';
import { fromRoot } from '../config/paths.js';
import type { Modality } from '../codec/records.js';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { rootLogger, type Logger } from '../base/logger.js';
import { MicroBatcher } from './micro-batcher.js';
import { checkSignature, loadManifest, type LoadedModelSpec } from './model-manifest.js';
import { SessionHost, type ModelSession } from './session-host.js';
import { resolveThresholds, type ResolvedThreshold } from './threshold.js';
import { at, present } from '../base/invariant.js';

export interface LoadedModel {
  spec: LoadedModelSpec;
  session: ModelSession;
  /** The execution provider the session really runs on. */
  provider: string;
  batcher: MicroBatcher;
  /** The threshold this line decides with (NOK when score ≥ threshold.value). */
  threshold: ResolvedThreshold;
}

export interface Route {
  model: LoadedModel;
  match: 'exact' | 'subset';
  /** Usable modalities the chosen model does not take. */
  unused: Modality[];
}

export class ModelRegistry {
  private constructor(
    readonly models: LoadedModel[],
    private readonly preferMethods: string[],
    /** The inference thread the sessions run on. */
    readonly host: SessionHost,
  ) {}

  /** Loads every model of the manifest; any problem stops start-up with a message naming the model. */
  static async open(config: Config, logger: Logger = rootLogger): Promise<ModelRegistry> {
    const log = logger.child({ component: 'models' });
    const { models: specs } = loadManifest(fromRoot(config.inference.manifest));
    if (specs.length === 0) throw new MmadError(ErrorCode.MODEL_INVALID, `the manifest ${config.inference.manifest} lists no model`);
    const thresholds = resolveThresholds(specs, config.inference.threshold, config.inference.manifest);
    const host = new SessionHost(log.child({ component: 'inference-thread' }));
    const loaded: LoadedModel[] = [];
    try {
      for (const spec of specs) loaded.push(await openModel(host, spec, present(thresholds.get(spec.id), `the threshold of model ${spec.id}`), config, log));
    } catch (err) {
      await host.close();
      throw err;
    }
    return new ModelRegistry(loaded, config.inference.preferMethods, host);
  }

  /** The model for these usable modalities, by the routing rule; undefined when none covers any of them. */
  route(present: readonly Modality[]): Route | undefined {
    const have = new Set(present);
    const covering = this.models.filter((m) => m.spec.modalities.every((x) => have.has(x)));
    if (covering.length === 0) return undefined;
    const rank = (m: LoadedModel): number => {
      const i = this.preferMethods.indexOf(m.spec.method);
      return i < 0 ? this.preferMethods.length : i;
    };
    const ct = (m: LoadedModel): number => (m.spec.modalities.includes('ct') ? 1 : 0);
    covering.sort(
      (a, b) =>
        b.spec.modalities.length - a.spec.modalities.length ||
        ct(b) - ct(a) ||
        rank(a) - rank(b) ||
        (a.spec.id < b.spec.id ? -1 : a.spec.id > b.spec.id ? 1 : 0),
    );
    const model = at(covering, 0);
    const unused = present.filter((x) => !model.spec.modalities.includes(x));
    return { model, match: unused.length === 0 ? 'exact' : 'subset', unused };
  }

  async close(): Promise<void> {
    for (const m of this.models) {
      await m.batcher.drain();
      await m.session.release();
    }
    await this.host.close();
  }
}

async function openModel(host: SessionHost, spec: LoadedModelSpec, threshold: ResolvedThreshold, config: Config, log: Logger): Promise<LoadedModel> {
  const { session, provider } = await openSession(host, spec, config, log);
  checkSignature(spec, session);
  const model: LoadedModel = {
    spec,
    session,
    provider,
    batcher: new MicroBatcher(spec, session, { maxBatchSize: config.inference.maxBatchSize, maxWaitMs: config.inference.maxBatchWaitMs }),
    threshold,
  };
  const t0 = performance.now();
  await model.batcher.warmUp();
  log.info('model ready', {
    model: spec.id,
    version: spec.version,
    modalities: spec.modalities,
    provider,
    input: `${spec.height}x${spec.width}`,
    ...(spec.volume === null ? {} : { volume: `${spec.volume.depth}x${spec.volume.height}x${spec.volume.width}` }),
    threshold: threshold.value,
    thresholdSource: threshold.source,
    ...(threshold.falseAlarmRate === null ? {} : { falseAlarmRate: threshold.falseAlarmRate }),
    ...(threshold.source === 'manifest' ? {} : { manifestThreshold: spec.threshold.value }),
    warmUpMs: Math.round(performance.now() - t0),
  });
  return model;
}

async function openSession(host: SessionHost, spec: LoadedModelSpec, config: Config, log: Logger): Promise<{ session: ModelSession; provider: string }> {
  const base: InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    ...(config.inference.intraOpThreads > 0 ? { intraOpNumThreads: config.inference.intraOpThreads } : {}),
    ...(config.inference.spinWait ? {} : { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }),
  };
  const wanted = config.inference.executionProviders;
  try {
    const session = await host.open(spec.bytes, { ...base, executionProviders: [...wanted] });
    return { session, provider: at(wanted, 0) };
  } catch (err) {
    let failure = err;
    const gpu = wanted.some((p) => p !== 'cpu');
    if (gpu && config.inference.cpuFallback) {
      log.warn('GPU execution provider unavailable; falling back to CPU', { model: spec.id, wanted, error: messageOf(err) });
      try {
        const session = await host.open(spec.bytes, { ...base, executionProviders: ['cpu'] });
        return { session, provider: 'cpu' };
      } catch (cpuErr) {
        failure = cpuErr;
      }
    }
    throw new MmadError(
      ErrorCode.MODEL_INVALID,
      `model ${spec.id} v${spec.version}: ONNX Runtime cannot open ${spec.path} with ${wanted.join(', ')}: ${messageOf(failure)}`,
      { cause: failure },
    );
  }
}
