/**
 * Reads a dataset folder in the MVTec 3D-AD layout — the real MVTec 3D-AD or
 * one our writer made — as a list of samples with the files of each modality.
 * A root may be the dataset (holding categories) or one category. Samples are
 * matched across modality folders by file stem (000.png ↔ 000.tiff).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { ErrorCode, MmadError, messageOf } from '../base/errors.js';
import { FILE_EXTENSION, META_FILE, SPLITS, type DatasetFolder, type DatasetMeta, type Split } from './dataset-layout.js';
import { VISIBILITY_MODALITIES, type VisibilityModality } from './defects.js';
import { decodeIr, decodeMask, decodeRgb } from './image-codec.js';
import { decodeXyzTiff } from '../codec/tiff-reader.js';

export interface DatasetSample {
  category: string;
  split: Split;
  /** 'good' or the defect folder's name. */
  defect: string;
  /** File stem, e.g. '000'. */
  stem: string;
  files: Partial<Record<DatasetFolder, string>>;
}

export interface DatasetCategory {
  name: string;
  path: string;
  /** Our generator's sidecar, or null for other datasets (the real MVTec 3D-AD). */
  meta: DatasetMeta | null;
  samples: DatasetSample[];
}

export interface ScanOptions {
  /** Only these categories (default: all found). */
  categories?: readonly string[];
  /** Only these splits (default: all). */
  splits?: readonly Split[];
}

const FOLDERS: DatasetFolder[] = ['rgb', 'ir', 'xyz', 'gt', 'ct', 'gt_ct', 'gt_ct_2d'];

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function looksLikeCategory(p: string): boolean {
  return SPLITS.some((s) => isDir(join(p, s)));
}

export function scanDataset(root: string, o: ScanOptions = {}): DatasetCategory[] {
  if (!isDir(root)) throw new MmadError(ErrorCode.DATASET_INVALID, `dataset folder ${root} does not exist or is not a folder`);
  const categoryDirs = looksLikeCategory(root)
    ? [root]
    : readdirSync(root)
        .sort()
        .map((n) => join(root, n))
        .filter((p) => isDir(p) && looksLikeCategory(p));
  if (categoryDirs.length === 0) {
    throw new MmadError(ErrorCode.DATASET_INVALID, `no category under ${root}: expected <category>/{train,validation,test}/<good|defect>/{rgb,xyz}/ (MVTec 3D-AD layout)`);
  }
  const wanted = o.categories !== undefined && o.categories.length > 0 ? new Set(o.categories) : undefined;
  const out: DatasetCategory[] = [];
  for (const dir of categoryDirs) {
    const name = basename(dir);
    if (wanted !== undefined && !wanted.has(name)) continue;
    out.push({ name, path: dir, meta: readMeta(dir), samples: scanCategory(dir, name, o.splits ?? SPLITS) });
  }
  if (wanted !== undefined) {
    const missing = [...wanted].filter((w) => !out.some((c) => c.name === w));
    if (missing.length > 0) {
      throw new MmadError(ErrorCode.DATASET_INVALID, `categor${missing.length > 1 ? 'ies' : 'y'} ${missing.join(', ')} not found under ${root} (found ${categoryDirs.map((d) => basename(d)).join(', ')})`);
    }
  }
  return out;
}

function readMeta(dir: string): DatasetMeta | null {
  const p = join(dir, META_FILE);
  if (!existsSync(p)) return null;
  try {
    const m = JSON.parse(readFileSync(p, 'utf8')) as { format?: unknown };
    return m.format === 'mmad-simulated-mvtec3d' ? (m as DatasetMeta) : null;
  } catch (err) {
    throw new MmadError(ErrorCode.DATASET_INVALID, `${p} is not valid JSON: ${messageOf(err)}`, { cause: err });
  }
}

function scanCategory(dir: string, category: string, splits: readonly Split[]): DatasetSample[] {
  const samples: DatasetSample[] = [];
  for (const split of splits) {
    const splitDir = join(dir, split);
    if (!isDir(splitDir)) continue;
    for (const defect of readdirSync(splitDir).sort()) {
      const defectDir = join(splitDir, defect);
      if (!isDir(defectDir)) continue;
      const byStem = new Map<string, Partial<Record<DatasetFolder, string>>>();
      for (const folder of FOLDERS) {
        const fdir = join(defectDir, folder);
        if (!isDir(fdir)) continue;
        for (const file of readdirSync(fdir)) {
          if (extname(file).toLowerCase() !== FILE_EXTENSION[folder] && !(folder === 'xyz' && extname(file).toLowerCase() === '.tif')) continue;
          const stem = file.slice(0, file.length - extname(file).length);
          let entry = byStem.get(stem);
          if (entry === undefined) byStem.set(stem, (entry = {}));
          entry[folder] = join(fdir, file);
        }
      }
      for (const [stem, files] of [...byStem].sort(([a], [b]) => (a < b ? -1 : 1))) samples.push({ category, split, defect, stem, files });
    }
  }
  return samples;
}

/** Modalities every given sample has (what a station publishing them can promise; 'ct' when every sample has a volume). */
export function commonModalities(samples: readonly DatasetSample[]): VisibilityModality[] {
  return VISIBILITY_MODALITIES.filter((m) => samples.length > 0 && samples.every((s) => s.files[m] !== undefined));
}

export interface LoadedSample {
  rgb?: { width: number; height: number; rgb: Uint8Array };
  ir?: { width: number; height: number; ir: Uint16Array };
  xyz?: { width: number; height: number; xyz: Float32Array };
  gt?: { width: number; height: number; mask: Uint8Array };
}

/** Decodes every file of a sample (for training code, tools and tests). */
export async function loadSample(s: DatasetSample): Promise<LoadedSample> {
  const out: LoadedSample = {};
  const read = async (f: DatasetFolder): Promise<Buffer | undefined> => (s.files[f] === undefined ? undefined : readFile(s.files[f]));
  const [rgb, ir, xyz, gt] = await Promise.all([read('rgb'), read('ir'), read('xyz'), read('gt')]);
  if (rgb !== undefined) out.rgb = await decodeRgb(rgb);
  if (ir !== undefined) out.ir = await decodeIr(ir);
  if (xyz !== undefined) out.xyz = decodeXyzTiff(xyz);
  if (gt !== undefined) out.gt = await decodeMask(gt);
  return out;
}
