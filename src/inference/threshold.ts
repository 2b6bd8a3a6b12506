/**
 * The threshold each student decides with (a part is NOK when its score is at or above
 * it), resolved once for all students when the models load, from `inference.threshold`:
 *
 *   1. `override`: `overrides[<model id>]`, a value set for this line;
 *   2. `falseAlarmRate`: the quantile at 1 − rate of the distribution the manifest fitted to
 *      the student's calibration good scores (a Gumbel of all of them, or the generalized
 *      Pareto tail of the highest), so every student flags the same share of good parts;
 *   3. `manifest`: the manifest's `threshold.value` (calibrated at the manifest's own rate).
 *
 * The resolved value is what events and alerts carry as `threshold`.
 */
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError } from '../base/errors.js';
import { invalidConfig } from '../config/load-config.js';
import type { GumbelDistribution, ModelSpec, ParetoTailDistribution, ThresholdDistribution } from './model-manifest.js';

export type ThresholdSettings = Config['inference']['threshold'];
export type ThresholdSource = 'override' | 'falseAlarmRate' | 'manifest';

export interface ResolvedThreshold {
  value: number;
  source: ThresholdSource;
  /** The false-alarm rate the value was calibrated for; null when none is known (an override, a schemaVersion 1 manifest). */
  falseAlarmRate: number | null;
}

/**
 * Quantile at p of a Gumbel (max) distribution, F(x) = exp(−exp(−(x − location) / scale)):
 * the same formula as the export's (models/mmad_models/metrics.py gumbel_quantile). A scale of
 * 0 (a point mass, fitted to scores without spread) gives the location.
 */
export function gumbelQuantile(d: Pick<GumbelDistribution, 'location' | 'scale'>, p: number): number {
  return d.location - d.scale * Math.log(-Math.log(p));
}

/**
 * Quantile at p of a generalized Pareto tail, for an exceedance rate r = 1 − p of at most its
 * tailFraction z: location + scale / shape · ((r / z)^−shape − 1), location + scale · ln(z / r)
 * for shape 0 (models/mmad_models/metrics.py tail_quantile). Undefined (NaN) for a rate
 * beyond the tail: resolveThresholds refuses it before.
 */
export function tailQuantile(d: Omit<ParetoTailDistribution, 'kind' | 'fit'>, p: number): number {
  const r = 1 - p;
  if (!(r > 0 && r <= d.tailFraction)) return Number.NaN;
  if (d.scale === 0) return d.location;
  if (Math.abs(d.shape) < 1e-9) return d.location + d.scale * Math.log(d.tailFraction / r);
  return d.location + (d.scale / d.shape) * ((r / d.tailFraction) ** -d.shape - 1);
}

/** The quantile at p of either kind of fitted distribution. */
export function distributionQuantile(d: ThresholdDistribution, p: number): number {
  return d.kind === 'pareto-tail' ? tailQuantile(d, p) : gumbelQuantile(d, p);
}

/**
 * Every model's threshold by the rule above, keyed by model id. Throws at start-up rather
 * than deciding with a threshold nobody chose: CONFIG_INVALID for an override naming no model
 * of the manifest (a typo, or a model renamed in an upgrade) or a falseAlarmRate above what a
 * model's fitted tail describes, MODEL_INVALID naming every model
 * whose manifest entry has no fitted distribution when falseAlarmRate asks for one.
 */
export function resolveThresholds(specs: readonly ModelSpec[], settings: ThresholdSettings, manifest: string): Map<string, ResolvedThreshold> {
  const ids = new Set(specs.map((s) => s.id));
  const unknown = Object.keys(settings.overrides).filter((id) => !ids.has(id));
  if (unknown.length > 0) {
    throw invalidConfig(
      unknown.map((id) => ({
        path: `inference.threshold.overrides.${id}`,
        message: `no model ${id} in the manifest ${manifest} (it has ${[...ids].sort().join(', ')})`,
      })),
    );
  }
  const rate = settings.falseAlarmRate;
  const lacking = rate === null ? [] : specs.filter((s) => settings.overrides[s.id] === undefined && s.threshold.distribution === undefined);
  if (lacking.length > 0) {
    throw new MmadError(
      ErrorCode.MODEL_INVALID,
      `inference.threshold.falseAlarmRate is ${String(rate)}, but the manifest ${manifest} has no fitted distribution (threshold.distribution) ` +
        `for ${lacking.map((s) => `model ${s.id} v${s.version}`).join(', ')}: export them again (manifest schemaVersion 2), ` +
        `or give their thresholds in inference.threshold.overrides`,
    );
  }
  // a tail describes the rates up to its tailFraction only: a higher rate would be read off the body it never fitted
  const beyond = specs.flatMap((s) => {
    const d = s.threshold.distribution;
    return rate !== null && settings.overrides[s.id] === undefined && d?.kind === 'pareto-tail' && rate > d.tailFraction
      ? [`model ${s.id} (${String(d.tailFraction)})`]
      : [];
  });
  if (beyond.length > 0) {
    throw invalidConfig([{
      path: 'inference.threshold.falseAlarmRate',
      message: `${String(rate)} is above the share of good parts the fitted tail describes for ${beyond.join(', ')} in the manifest ${manifest}: ` +
        'state a lower rate, or give those thresholds in inference.threshold.overrides',
    }]);
  }
  const out = new Map<string, ResolvedThreshold>();
  for (const s of specs) {
    const override = settings.overrides[s.id];
    const dist = s.threshold.distribution;
    if (override !== undefined) out.set(s.id, { value: override, source: 'override', falseAlarmRate: null });
    else if (rate !== null && dist !== undefined) out.set(s.id, { value: distributionQuantile(dist, 1 - rate), source: 'falseAlarmRate', falseAlarmRate: rate });
    else out.set(s.id, { value: s.threshold.value, source: 'manifest', falseAlarmRate: s.threshold.falseAlarmRate ?? null });
  }
  return out;
}
