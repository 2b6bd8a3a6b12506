/**
 * Writes a generated dataset in the MVTec 3D-AD layout (see dataset-layout.ts).
 * Every sample's seed is derived from the dataset seed and the sample's place
 * (category, split, defect, index), so a sample is the same whatever the
 * counts are, and two runs with one seed write identical bytes.
 *
 * Rendering is synchronous CPU work and PNG encoding runs on libvips' threads,
 * so two samples are kept in flight: one renders while the other encodes and
 * writes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFECTS, type DefectName } from './defects.js';
import { META_FILE, sampleFileName, type DatasetMeta, type Split } from './dataset-layout.js';
import { encodeCtFiles, encodePart } from './image-codec.js';
import { generatePart } from './part-generator.js';
import { hash32 } from '../base/prng.js';
import { productByName, visibilityOf } from './products/index.js';

export interface DatasetWriteOptions {
  root: string;
  product: string;
  seed: number;
  width: number;
  height: number;
  train: number;
  validation: number;
  /** Test samples per defect, and as many good ones (test/good). */
  test: number;
  /** Defects to write test folders for; empty means all the product has. */
  defects: readonly DefectName[];
  defectSize: number;
  defectContrast: number;
  pngCompressionLevel: number;
  /** Also write each sample's CT volume (ct/) and, for test samples, its 3D mask and projection (gt_ct/, gt_ct_2d/); the product's interior defects are then among the defaults. */
  ct?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface DatasetWriteSummary {
  category: string;
  path: string;
  samples: number;
  files: number;
  bytes: number;
  elapsedMs: number;
}

interface Job {
  split: Split;
  defect: DefectName | 'good';
  index: number;
}

/** The seed of one sample of a dataset. */
export function sampleSeed(datasetSeed: number, product: string, split: Split, defect: string, index: number): number {
  return hash32(`${product}/${split}/${defect}/${index}`, datasetSeed >>> 0);
}

export async function writeDataset(o: DatasetWriteOptions): Promise<DatasetWriteSummary> {
  const product = productByName(o.product);
  const ct = o.ct === true;
  // defects inside the material are only worth a test folder when the dataset has the CT that sees them
  const known = ct ? [...product.defects, ...product.interiorDefects] : [...product.defects];
  const defects = o.defects.length > 0 ? [...o.defects] : known;
  for (const d of defects) {
    if (!known.includes(d)) throw new RangeError(`product ${product.name} has no defect '${d}'${product.interiorDefects.includes(d) ? ' without CT volumes (ct)' : ''}`);
  }
  let ctMeta: DatasetMeta['ct'];
  const category = join(o.root, product.name);
  const jobs: Job[] = [];
  for (let i = 0; i < o.train; i++) jobs.push({ split: 'train', defect: 'good', index: i });
  for (let i = 0; i < o.validation; i++) jobs.push({ split: 'validation', defect: 'good', index: i });
  for (const d of ['good' as const, ...defects]) for (let i = 0; i < o.test; i++) jobs.push({ split: 'test', defect: d, index: i });

  const t0 = performance.now();
  let files = 0;
  let bytes = 0;
  const made = new Set<string>();
  const ensureDir = async (dir: string): Promise<void> => {
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  const put = async (dir: string, name: string, data: Buffer): Promise<void> => {
    await ensureDir(dir);
    await writeFile(join(dir, name), data);
    files++;
    bytes += data.length;
  };

  const writeJob = async (job: Job): Promise<void> => {
    const part = generatePart({
      product,
      seed: sampleSeed(o.seed, product.name, job.split, job.defect, job.index),
      defect: job.defect === 'good' ? null : job.defect,
      width: o.width,
      height: o.height,
      defectParams: { size: o.defectSize, contrast: o.defectContrast },
      ct,
    });
    const enc = await encodePart(part, { compressionLevel: o.pngCompressionLevel });
    const dir = join(category, job.split, job.defect);
    const scan = part.ct;
    if (scan !== undefined) {
      ctMeta ??= { width: scan.width, height: scan.height, depth: scan.depth, voxelSizeMm: scan.voxelSizeMm, bytesPerVolume: scan.volume.byteLength };
      const volumes = await encodeCtFiles(scan, part.width, part.height, o.pngCompressionLevel);
      await Promise.all([
        put(join(dir, 'ct'), sampleFileName(job.index, 'ct'), volumes.ct),
        job.split === 'test' ? put(join(dir, 'gt_ct'), sampleFileName(job.index, 'gt_ct'), volumes.mask) : Promise.resolve(),
        job.split === 'test' ? put(join(dir, 'gt_ct_2d'), sampleFileName(job.index, 'gt_ct_2d'), volumes.projection) : Promise.resolve(),
      ]);
    }
    await Promise.all([
      put(join(dir, 'rgb'), sampleFileName(job.index, 'rgb'), enc.rgb),
      put(join(dir, 'ir'), sampleFileName(job.index, 'ir'), enc.ir),
      put(join(dir, 'xyz'), sampleFileName(job.index, 'xyz'), enc.xyz),
      // like MVTec 3D-AD: masks for every test sample (all black for test/good), none for train/validation
      job.split === 'test' ? put(join(dir, 'gt'), sampleFileName(job.index, 'gt'), enc.gt) : Promise.resolve(),
    ]);
  };

  let done = 0;
  let previous: Promise<void> | undefined;
  for (const job of jobs) {
    // renders this sample (synchronously) while the previous one is still encoding and writing
    const current = writeJob(job);
    current.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
    if (previous !== undefined) {
      await previous;
      o.onProgress?.(++done, jobs.length);
    }
    previous = current;
  }
  if (previous !== undefined) {
    await previous;
    o.onProgress?.(done + 1, jobs.length);
  }

  const meta: DatasetMeta = {
    format: 'mmad-simulated-mvtec3d',
    version: 1,
    product: product.name,
    title: product.title,
    seed: o.seed,
    width: o.width,
    height: o.height,
    defectSize: o.defectSize,
    defectContrast: o.defectContrast,
    counts: { train: o.train, validation: o.validation, test: o.test },
    defects: Object.fromEntries(defects.map((d) => [d, { description: DEFECTS[d].description, visibility: visibilityOf(product, d) }])),
    pngCompressionLevel: o.pngCompressionLevel,
    ...(ctMeta === undefined ? {} : { ct: ctMeta }),
  };
  const metaBytes = Buffer.from(`${JSON.stringify(meta, null, 2)}\n`);
  await put(category, META_FILE, metaBytes);
  return { category: product.name, path: category, samples: jobs.length, files, bytes, elapsedMs: performance.now() - t0 };
}
