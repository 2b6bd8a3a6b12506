/**
 * The simulated line's parts: which part comes next (good, or with which
 * defect) is drawn from the seed and the part's index; its data is rendered by
 * the part generator and encoded as the sensors would send it.
 *
 * With a pool, `poolSize` parts are rendered up front and re-published under
 * fresh sample IDs — rendering costs tens of milliseconds a part, publishing a
 * fraction of that, so a pool is how the simulator outruns the service in a
 * load test. Without one (poolSize 0) every part is rendered fresh. Either way
 * whether part i is good or which defect it has is drawn per part, so the
 * defect rate holds however small the pool; the pool only bounds the variety
 * of images. A short run that should show distinct parts, as a real line's are,
 * renders them up front instead (`prerender`, no pool).
 */
import type { Volume } from '../codec/records.js';
import { encodeVolumeTiff } from '../codec/tiff-writer.js';
import { DEFAULT_DEFECT_PARAMS, SENSOR_MODALITIES, type DefectName, type DefectParams, type VisibilityModality } from './defects.js';
import { encodePart, rawPart, rawSamples, type EncodedPart } from './image-codec.js';
import { generatePart } from './part-generator.js';
import { Rng } from '../base/prng.js';
import { productByName } from './products/index.js';
import type { PartSource, SourcedPart } from './station-publisher.js';
import { at } from '../base/invariant.js';

export interface SimulationOptions {
  product: string;
  width: number;
  height: number;
  seed: number;
  /** Share of parts with a defect. */
  defectRate: number;
  /** Defects to draw from; empty means every defect the product can have. */
  defects: readonly DefectName[];
  defectParams?: Partial<DefectParams>;
  /** Parts rendered up front and reused under fresh IDs; 0 renders every part. */
  poolSize: number;
  /**
   * Without a pool: the line's first `prerender` parts rendered up front (each its own part,
   * held until published), the rest as the line reaches them.
   */
  prerender?: number;
  pngCompressionLevel?: number;
  /**
   * Scan every part with the CT too (a volume per part, 1 MiB at 256², about 0.2 s of CPU to
   * render), so the parts the schedule sends to the CT (`ctFraction`) have one.
   */
  ct?: boolean;
  /**
   * Send every frame as raw samples (`encoding: raw`), as cameras streaming uncompressed frames
   * do, instead of PNG (rgb, ir) and TIFF (xyz, ct) files.
   */
  rawFrames?: boolean;
}

/** A rendered part: its encoded files (or raw samples), its seed, and its CT volume when the line has a CT. */
interface RenderedPart {
  encoded: EncodedPart;
  raw: boolean;
  seed: number;
  ct?: { payload: Buffer; width: number; height: number; volume: Volume };
}

/** What part number `index` of a line is: its generator seed and its defect (null = good). */
export function partChoice(o: SimulationOptions, index: number): { seed: number; defect: DefectName | null } {
  const product = productByName(o.product);
  const defects = o.defects.length > 0 ? o.defects : product.defects;
  for (const d of defects) {
    // a defect inside the material (only a CT sees it) is drawn only when named
    if (!product.defects.includes(d) && !product.interiorDefects.includes(d)) throw new RangeError(`product ${product.name} has no defect '${d}'`);
  }
  const r = Rng.fromSeed(`line/${o.product}/${o.seed}`).fork(index);
  const seed = r.uint32();
  const defective = r.chance(o.defectRate);
  const defect = r.pick(defects);
  return { seed, defect: defective ? defect : null };
}

/** Renders and encodes one part of the line. */
export async function renderPart(o: SimulationOptions, choice: { seed: number; defect: DefectName | null }): Promise<RenderedPart> {
  const part = generatePart({
    product: o.product,
    seed: choice.seed,
    defect: choice.defect,
    width: o.width,
    height: o.height,
    defectParams: { ...DEFAULT_DEFECT_PARAMS, ...o.defectParams },
    ct: o.ct === true,
  });
  const raw = o.rawFrames === true;
  const png = { compressionLevel: o.pngCompressionLevel };
  const encoded = raw ? await rawPart(part, png) : await encodePart(part, png);
  const scan = part.ct;
  if (scan === undefined) return { encoded, raw, seed: choice.seed };
  return {
    encoded,
    raw,
    seed: choice.seed,
    ct: {
      payload: raw ? rawSamples(scan.volume) : encodeVolumeTiff(scan.volume, scan.width, scan.height, scan.depth),
      width: scan.width,
      height: scan.height,
      volume: { depth: scan.depth, voxelSizeMm: scan.voxelSizeMm },
    },
  };
}

/**
 * What the pool holds: good parts and defective ones in the line's proportion,
 * at least one of each kind the rate asks for, defects taken in turn so that
 * every defect type is in the pool when it is large enough.
 */
export function poolPlan(o: SimulationOptions): { seed: number; defect: DefectName | null }[] {
  const product = productByName(o.product);
  const defects = o.defects.length > 0 ? o.defects : product.defects;
  let bad = Math.round(o.poolSize * o.defectRate);
  if (o.defectRate > 0) bad = Math.max(1, bad);
  if (o.defectRate < 1) bad = Math.min(bad, o.poolSize - 1);
  const r = Rng.fromSeed(`pool/${o.product}/${o.seed}`);
  const out: { seed: number; defect: DefectName | null }[] = [];
  for (let k = 0; k < o.poolSize; k++) out.push({ seed: r.uint32(), defect: k < bad ? at(defects, k % defects.length) : null });
  return out;
}

function sourced(name: string, { encoded: e, raw, seed, ct }: RenderedPart): SourcedPart {
  return {
    name,
    productType: e.product,
    defectType: e.defect,
    visibility: e.visibility,
    width: e.width,
    height: e.height,
    defectPixels: e.defectPixels,
    payloads: { rgb: e.rgb, ir: e.ir, xyz: e.xyz, ...(ct === undefined ? {} : { ct: ct.payload }) },
    raw,
    ...(ct === undefined ? {} : { ct: { width: ct.width, height: ct.height, volume: ct.volume } }),
    mask: e.defect === 'good' ? null : e.gt,
    seed,
    source: 'simulator',
    frameAttributes: { product: e.product },
  };
}

export class SimulatedPartSource implements PartSource {
  readonly modalities: readonly VisibilityModality[];
  readonly size = undefined;
  /** Wall time spent rendering the pool (or the prerendered parts), ms. */
  poolMs = 0;
  private pool: RenderedPart[] = [];
  private readonly live = new Map<number, Promise<RenderedPart>>();

  private constructor(private readonly o: SimulationOptions) {
    partChoice(o, 0); // validates product and defects before anything runs
    this.modalities = o.ct === true ? [...SENSOR_MODALITIES, 'ct'] : SENSOR_MODALITIES;
  }

  static async create(o: SimulationOptions, onPool?: (done: number, total: number) => void): Promise<SimulatedPartSource> {
    const s = new SimulatedPartSource(o);
    const t0 = performance.now();
    const plan = poolPlan(o);
    for (const [k, part] of plan.entries()) {
      s.pool.push(await renderPart(o, part));
      onPool?.(k + 1, plan.length);
    }
    const ahead = o.poolSize > 0 ? 0 : (o.prerender ?? 0);
    for (let i = 0; i < ahead; i++) {
      await s.render(i);
      onPool?.(i + 1, ahead);
    }
    s.poolMs = performance.now() - t0;
    return s;
  }

  /** Sample names are the part's index, so IDs stay unique when pool parts repeat. */
  static nameOf(index: number): string {
    return String(index).padStart(8, '0');
  }

  async get(index: number): Promise<SourcedPart> {
    if (this.pool.length > 0) {
      const want = partChoice(this.o, index).defect ?? 'good';
      let candidates = this.pool.filter((p) => p.encoded.defect === want);
      if (candidates.length === 0) candidates = this.pool.filter((p) => (want === 'good') === (p.encoded.defect === 'good'));
      if (candidates.length === 0) candidates = this.pool;
      const p = at(candidates, index % candidates.length);
      return sourced(SimulatedPartSource.nameOf(index), p);
    }
    const p = this.render(index);
    // the next part's encoding overlaps this one's publishing; its failure surfaces when it is awaited
    this.render(index + 1).catch(() => undefined);
    return sourced(SimulatedPartSource.nameOf(index), await p);
  }

  release(index: number): void {
    this.live.delete(index);
  }

  private render(index: number): Promise<RenderedPart> {
    let p = this.live.get(index);
    if (p === undefined) {
      p = renderPart(this.o, partChoice(this.o, index));
      this.live.set(index, p);
    }
    return p;
  }
}
