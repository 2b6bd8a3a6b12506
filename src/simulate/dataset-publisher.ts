/**
 * A recorded dataset folder as a station: the real MVTec 3D-AD, a dataset our
 * writer generated, or a user's own inspections in that layout, streamed to
 * the input topics with the same timing options as the simulated line.
 *
 * Files travel as they are on disk whenever they already are what the frame
 * schema asks (8-bit RGB PNG, 16-bit grey PNG, 3-sample float32 TIFF, a CT
 * volume's multi-page 16-bit TIFF with the sidecar's voxel size); an RGB
 * image of another PNG flavour (palette, alpha, 16-bit) is re-encoded to 8-bit
 * sRGB, and anything that cannot be a frame of its modality is an error that
 * names the file.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, MmadError, isMmadError, messageOf } from '../base/errors.js';
import { at } from '../base/invariant.js';
import type { VisibilityLevel } from '../codec/records.js';
import { isDefectName, type SensorModality, type VisibilityModality } from './defects.js';
import type { Split } from './dataset-layout.js';
import { commonModalities, scanDataset, type DatasetCategory, type DatasetSample } from './dataset-reader.js';
import { sampleSeed } from './dataset-writer.js';
import { pngHeader } from '../codec/png.js';
import { decodeMask, decodeRgb, encodeMaskPng, encodeRgbPng } from './image-codec.js';
import { Rng } from '../base/prng.js';
import type { PartSource, SourcedPart } from './station-publisher.js';
import { decodeXyzTiff, tiffPages } from '../codec/tiff-reader.js';

export interface DatasetSourceOptions {
  root: string;
  categories?: readonly string[];
  splits: readonly Split[];
  /** 'shuffled' interleaves good and defective parts as a line would (seeded); 'sorted' keeps folder order. */
  order: 'shuffled' | 'sorted';
  seed: number;
}

export class DatasetPartSource implements PartSource {
  readonly modalities: readonly VisibilityModality[];
  readonly size: number;
  private readonly cache = new Map<number, Promise<SourcedPart>>();

  private constructor(
    readonly categories: DatasetCategory[],
    private readonly samples: { sample: DatasetSample; category: DatasetCategory }[],
  ) {
    this.modalities = commonModalities(samples.map((s) => s.sample));
    this.size = samples.length;
    if (!this.modalities.includes('rgb') && !this.modalities.includes('xyz')) {
      throw new MmadError(ErrorCode.DATASET_INVALID, 'the samples share neither rgb/ nor xyz/ files: nothing a station could publish');
    }
  }

  static open(o: DatasetSourceOptions): DatasetPartSource {
    const categories = scanDataset(o.root, { categories: o.categories, splits: o.splits });
    const samples = categories.flatMap((category) => category.samples.map((sample) => ({ sample, category })));
    if (samples.length === 0) {
      throw new MmadError(ErrorCode.DATASET_INVALID, `no samples in ${o.root} for split(s) ${o.splits.join(', ')}`);
    }
    if (o.order === 'shuffled') {
      const r = Rng.fromSeed(`dataset-order/${o.seed}`);
      for (let i = samples.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        const picked = at(samples, j);
        samples[j] = at(samples, i);
        samples[i] = picked;
      }
    }
    return new DatasetPartSource(categories, samples);
  }

  sampleAt(index: number): DatasetSample {
    return at(this.samples, index).sample;
  }

  get(index: number): Promise<SourcedPart> {
    let p = this.cache.get(index);
    if (p === undefined) {
      p = this.load(index);
      this.cache.set(index, p);
      // read ahead: file I/O of the next sample overlaps this one's publishing
      if (index + 1 < this.size && !this.cache.has(index + 1)) {
        const next = this.load(index + 1);
        next.catch(() => undefined);
        this.cache.set(index + 1, next);
      }
    }
    return p;
  }

  release(index: number): void {
    this.cache.delete(index);
  }

  private async load(index: number): Promise<SourcedPart> {
    const { sample: s, category } = at(this.samples, index);
    const where = `${category.name}/${s.split}/${s.defect}/${s.stem}`;
    try {
      const read = async (m: 'rgb' | 'ir' | 'xyz' | 'gt'): Promise<Buffer | undefined> =>
        this.modalities.includes(m as SensorModality) || m === 'gt' ? (s.files[m] === undefined ? undefined : readFile(s.files[m])) : undefined;
      const [rgbFile, irFile, xyzFile, gtFile] = await Promise.all([read('rgb'), read('ir'), read('xyz'), read('gt')]);
      const payloads: Partial<Record<VisibilityModality, Buffer>> = {};
      const sizes: { what: string; width: number; height: number }[] = [];
      if (rgbFile !== undefined) {
        const h = pngHeader(rgbFile);
        if (h.bitDepth === 8 && h.colourType === 2) payloads.rgb = rgbFile;
        else {
          const d = await decodeRgb(rgbFile);
          payloads.rgb = await encodeRgbPng(d.rgb, d.width, d.height);
        }
        sizes.push({ what: 'rgb', width: h.width, height: h.height });
      }
      if (irFile !== undefined) {
        const h = pngHeader(irFile);
        if (h.bitDepth !== 16 || h.colourType !== 0) {
          throw new MmadError(ErrorCode.DATASET_INVALID, `ir image must be a 16-bit grey PNG, found ${h.bitDepth}-bit colour type ${h.colourType}`);
        }
        payloads.ir = irFile;
        sizes.push({ what: 'ir', width: h.width, height: h.height });
      }
      if (xyzFile !== undefined) {
        const t = decodeXyzTiff(xyzFile); // validates: H×W×3 float32
        payloads.xyz = xyzFile;
        sizes.push({ what: 'xyz', width: t.width, height: t.height });
      }
      let mask: Buffer | null = null;
      let defectPixels = 0;
      if (gtFile !== undefined && s.defect !== 'good') {
        const m = await decodeMask(gtFile);
        for (const v of m.mask) if (v > 127) defectPixels++;
        const h = pngHeader(gtFile);
        mask = h.bitDepth === 8 && h.colourType === 0 ? gtFile : await encodeMaskPng(m.mask, m.width, m.height);
        sizes.push({ what: 'gt', width: m.width, height: m.height });
      }
      const first = sizes[0];
      if (first === undefined) throw new MmadError(ErrorCode.DATASET_INVALID, `no image of modality ${this.modalities.join(', ')}`);
      const odd = sizes.find((x) => x.width !== first.width || x.height !== first.height);
      if (odd !== undefined) {
        throw new MmadError(ErrorCode.DATASET_INVALID, `modalities are not pixel-aligned: ${sizes.map((x) => `${x.what} ${x.width}x${x.height}`).join(', ')}`);
      }
      const meta = category.meta;
      // a CT volume travels as it is on disk; its voxel size is the sidecar's (a volume's TIFF does not carry one)
      let ct: SourcedPart['ct'];
      const ctFile = this.modalities.includes('ct') && s.files.ct !== undefined ? await readFile(s.files.ct) : undefined;
      if (ctFile !== undefined) {
        if (meta?.ct === undefined) throw new MmadError(ErrorCode.DATASET_INVALID, `a ct volume without the voxel size (the sidecar's ct entry)`);
        const pages = tiffPages(ctFile, meta.ct.depth).pages;
        const page = at(pages, 0);
        if (pages.length !== meta.ct.depth || page.dtype !== 'uint16' || page.samplesPerPixel !== 1) {
          throw new MmadError(ErrorCode.DATASET_INVALID, `the ct volume has ${pages.length} pages of ${page.samplesPerPixel} × ${page.dtype}, the sidecar says ${meta.ct.depth} slices of 16-bit grey`);
        }
        payloads.ct = ctFile;
        ct = { width: page.width, height: page.height, volume: { depth: pages.length, voxelSizeMm: meta.ct.voxelSizeMm } };
      }
      let visibility: Partial<Record<VisibilityModality, VisibilityLevel>> = {};
      if (s.defect === 'good') visibility = { rgb: 'none', ir: 'none', xyz: 'none', ct: 'none' };
      else {
        const known = meta !== null && isDefectName(s.defect) ? meta.defects[s.defect] : undefined;
        if (known !== undefined) visibility = known.visibility;
      }
      const seed = meta !== null && /^\d+$/.test(s.stem) ? sampleSeed(meta.seed, meta.product, s.split, s.defect, Number(s.stem)) : null;
      return {
        name: `${category.name}-${s.split}-${s.defect}-${s.stem}`,
        productType: category.name,
        defectType: s.defect,
        visibility,
        width: first.width,
        height: first.height,
        defectPixels,
        payloads,
        ...(ct === undefined ? {} : { ct }),
        mask,
        seed,
        source: `dataset:${where}`,
        frameAttributes: { product: category.name },
      };
    } catch (err) {
      if (isMmadError(err)) throw new MmadError(err.code, `${where}: ${err.message}`, { cause: err });
      throw new MmadError(ErrorCode.DATASET_INVALID, `${where}: ${messageOf(err)}`, { cause: err });
    }
  }
}
