/**
 * Flags shared by the commands that run a station (`simulate`,
 * `publish-dataset`) and the dataset writer: timing and fault options, run
 * length, identity. Each flag overrides the `simulate` section of the
 * configuration; parsing errors name the flag.
 */
import type { Config } from '../config/config-schema.js';
import { defaultConfig } from '../config/load-config.js';
import { ErrorCode, MmadError } from '../base/errors.js';
import type { TimingOptions } from '../simulate/line-schedule.js';
import type { CommandContext, OptionSpec } from './command.js';

const d = defaultConfig().simulate;

export const TIMING_OPTIONS: Record<string, OptionSpec> = {
  rate: { type: 'string', placeholder: 'N', description: `parts per second passing the station (config simulate.ratePerSecond, default ${d.ratePerSecond})` },
  'ir-jitter': { type: 'string', placeholder: 'DURATION', description: `the IR frame follows the RGB frame by up to this (default ${d.rgbIrJitterMs}ms)` },
  'xyz-fraction': { type: 'string', placeholder: 'F', description: `share of parts that get the slow 3D measurement, 0..1 (default ${d.xyzFraction})` },
  'xyz-delay': {
    type: 'string',
    placeholder: 'MIN..MAX',
    description: `delay of the 3D measurement after the part passed, e.g. 5s..60s or 10s (default ${d.xyzDelayMinMs / 1000}s..${d.xyzDelayMaxMs / 1000}s)`,
  },
  'ct-fraction': {
    type: 'string',
    placeholder: 'F',
    description: `share of parts also sent to the CT, 0..1: a volume ${d.ctDelayMinMs / 60_000}..${d.ctDelayMaxMs / 60_000} min later, ${d.ctMissRate * 100}% never (config simulate.ct*; needs topics.inputs.ct; default ${d.ctFraction})`,
  },
  drop: { type: 'string', placeholder: 'F', description: `probability that a frame is lost (default ${d.dropRate})` },
  duplicate: { type: 'string', placeholder: 'F', description: `probability that a frame is sent twice (default ${d.duplicateRate})` },
  reorder: { type: 'string', placeholder: 'F', description: `probability that a frame is held back and arrives out of order (default ${d.reorderRate})` },
  'reorder-max': { type: 'string', placeholder: 'DURATION', description: `longest hold of an out-of-order frame (default ${d.reorderMaxMs}ms)` },
  skew: { type: 'string', placeholder: 'DURATION', description: `each sensor's clock is off by a constant within ±this (default ${d.clockSkewMs}ms)` },
  'burst-rate': { type: 'string', placeholder: 'F', description: `probability per part that a burst starts (default ${d.burstRate})` },
  'burst-size': { type: 'string', placeholder: 'N', description: `parts in a burst (default ${d.burstSize})` },
  'burst-factor': { type: 'string', placeholder: 'X', description: `a burst comes this many times faster than the rate (default ${d.burstFactor})` },
};

export const RUN_OPTIONS: Record<string, OptionSpec> = {
  count: { type: 'string', short: 'n', placeholder: 'N', description: 'parts to publish (default: until --duration, the end of the data, or Ctrl-C)' },
  duration: { type: 'string', placeholder: 'DURATION', description: 'stop starting new parts after this long, e.g. 30s, 5m' },
  'max-speed': { type: 'boolean', description: 'load test: send in plan order as fast as the broker takes it (event times still follow --rate)' },
  seed: { type: 'string', placeholder: 'N', description: `seed of the plan and of the parts (default ${d.seed})` },
  line: { type: 'string', placeholder: 'NAME', description: `line name in the frames (default ${d.line})` },
  station: { type: 'string', placeholder: 'NAME', description: `station name in the frames (default ${d.station})` },
  'id-prefix': { type: 'string', placeholder: 'TEXT', description: 'prefix of the sample IDs (default: <line>-<start time, base 36>-)' },
  'no-labels': { type: 'boolean', description: 'do not publish the ground truth on the labels topic' },
  'no-hint': { type: 'boolean', description: 'leave expectedModalities unset in the frames' },
};

function flag(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name];
  return typeof v === 'string' ? v : undefined;
}

function usage(name: string, message: string): MmadError {
  return new MmadError(ErrorCode.USAGE, `--${name}: ${message}`);
}

export function numberFlag(ctx: CommandContext, name: string, check: { min?: number; max?: number; integer?: boolean } = {}): number | undefined {
  const raw = flag(ctx, name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) throw usage(name, `'${raw}' is not a number`);
  if (check.integer === true && !Number.isInteger(v)) throw usage(name, `'${raw}' is not a whole number`);
  if (check.min !== undefined && v < check.min) throw usage(name, `${v} is below ${check.min}`);
  if (check.max !== undefined && v > check.max) throw usage(name, `${v} is above ${check.max}`);
  return v;
}

/** '250ms', '5s', '2m', '1h', or a bare number of seconds → milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(raw);
  if (m === null) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

export function durationFlag(ctx: CommandContext, name: string): number | undefined {
  const raw = flag(ctx, name);
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (ms === undefined) throw usage(name, `'${raw}' is not a duration (e.g. 250ms, 5s, 2m)`);
  return ms;
}

export function stringFlag(ctx: CommandContext, name: string): string | undefined {
  return flag(ctx, name);
}

export function listFlag(ctx: CommandContext, name: string): string[] | undefined {
  const raw = flag(ctx, name);
  if (raw === undefined) return undefined;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** '256' or '320x240' → width and height. */
export function sizeFlag(ctx: CommandContext, name: string): { width: number; height: number } | undefined {
  const raw = flag(ctx, name);
  if (raw === undefined) return undefined;
  const m = /^(\d+)(?:x(\d+))?$/.exec(raw.trim());
  if (m === null) throw usage(name, `'${raw}' is not a size (256 or 320x240)`);
  const width = Number(m[1]);
  const height = Number(m[2] ?? m[1]);
  if (width < 16 || height < 16 || width > 4096 || height > 4096) throw usage(name, `${width}x${height} is out of range (16..4096 per side)`);
  return { width, height };
}

/** Timing of the station: the config's simulate section, overridden by flags. */
export function timingFrom(ctx: CommandContext, config: Config): TimingOptions {
  const s = config.simulate;
  const p = { min: 0, max: 1 };
  let xyzMin = s.xyzDelayMinMs;
  let xyzMax = s.xyzDelayMaxMs;
  const delay = flag(ctx, 'xyz-delay');
  if (delay !== undefined) {
    const parts = delay.split('..');
    const lo = parseDuration(parts[0] ?? '');
    const hi = parts.length > 1 ? parseDuration(parts[1] ?? '') : lo;
    if (lo === undefined || hi === undefined || parts.length > 2) throw usage('xyz-delay', `'${delay}' is not a duration or MIN..MAX range (e.g. 5s..60s)`);
    if (hi < lo) throw usage('xyz-delay', `the maximum ${delay} is below the minimum`);
    xyzMin = lo;
    xyzMax = hi;
  }
  return {
    ratePerSecond: numberFlag(ctx, 'rate', { min: 0.001, max: 100_000 }) ?? s.ratePerSecond,
    rgbIrJitterMs: durationFlag(ctx, 'ir-jitter') ?? s.rgbIrJitterMs,
    xyzFraction: numberFlag(ctx, 'xyz-fraction', p) ?? s.xyzFraction,
    xyzDelayMinMs: xyzMin,
    xyzDelayMaxMs: xyzMax,
    dropRate: numberFlag(ctx, 'drop', p) ?? s.dropRate,
    duplicateRate: numberFlag(ctx, 'duplicate', p) ?? s.duplicateRate,
    reorderRate: numberFlag(ctx, 'reorder', p) ?? s.reorderRate,
    reorderMaxMs: durationFlag(ctx, 'reorder-max') ?? s.reorderMaxMs,
    clockSkewMs: durationFlag(ctx, 'skew') ?? s.clockSkewMs,
    burstRate: numberFlag(ctx, 'burst-rate', p) ?? s.burstRate,
    burstSize: numberFlag(ctx, 'burst-size', { min: 1, integer: true }) ?? s.burstSize,
    burstFactor: numberFlag(ctx, 'burst-factor', { min: 1 }) ?? s.burstFactor,
    ctFraction: numberFlag(ctx, 'ct-fraction', p) ?? s.ctFraction,
    ctDelayMinMs: s.ctDelayMinMs,
    ctDelayMaxMs: s.ctDelayMaxMs,
    ctMissRate: s.ctMissRate,
  };
}

export interface RunSettings {
  count: number | undefined;
  durationMs: number | undefined;
  pace: boolean;
  seed: number;
  line: string;
  station: string;
  idPrefix: string;
  labels: boolean;
  announce: boolean;
}

export function runFrom(ctx: CommandContext, config: Config, startTime: number): RunSettings {
  const s = config.simulate;
  const line = stringFlag(ctx, 'line') ?? s.line;
  return {
    count: numberFlag(ctx, 'count', { min: 1, integer: true }),
    durationMs: durationFlag(ctx, 'duration'),
    pace: ctx.values['max-speed'] !== true,
    seed: numberFlag(ctx, 'seed', { min: 0, max: 4_294_967_295, integer: true }) ?? s.seed,
    line,
    station: stringFlag(ctx, 'station') ?? s.station,
    // a fresh prefix per run keeps sample IDs unique when the same topics see several runs
    idPrefix: stringFlag(ctx, 'id-prefix') ?? `${line}-${Math.floor(startTime / 1000).toString(36)}-`,
    labels: ctx.values['no-labels'] !== true,
    announce: ctx.values['no-hint'] !== true,
  };
}
