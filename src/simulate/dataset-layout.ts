/**
 * The on-disk layout of MVTec 3D-AD, which our generated datasets follow so
 * that training reads the real dataset and ours the same way:
 *
 *   <root>/<category>/train/good/{rgb,xyz}/NNN.{png,tiff}
 *   <root>/<category>/validation/good/{rgb,xyz}/NNN.{png,tiff}
 *   <root>/<category>/test/<defect>/{rgb,xyz,gt}/NNN.{png,tiff,png}
 *
 * plus `ir/NNN.png` (16-bit thermal) beside rgb/ and xyz/ in ours, and a
 * sidecar `<category>/mmad-dataset.json` describing how it was generated
 * (readers of the real dataset never look for either). A dataset written with
 * CT volumes also has, per sample, `ct/NNN.tiff` (the volume: a multi-page
 * 16-bit greyscale TIFF, one page per slice, the lowest first) and, for test
 * samples, `gt_ct/NNN.tiff` (its 3D mask, multi-page 8-bit, 255 on the defect)
 * and `gt_ct_2d/NNN.png` (that mask projected along the height onto the 2D
 * frames' pixels, an 8-bit PNG like gt/); the voxel size is in the sidecar.
 */
import type { DefectName, VisibilityLevel, VisibilityModality } from './defects.js';

export const SPLITS = ['train', 'validation', 'test'] as const;
export type Split = (typeof SPLITS)[number];

export type DatasetFolder = 'rgb' | 'ir' | 'xyz' | 'gt' | 'ct' | 'gt_ct' | 'gt_ct_2d';
export const FILE_EXTENSION: Record<DatasetFolder, string> = { rgb: '.png', ir: '.png', xyz: '.tiff', gt: '.png', ct: '.tiff', gt_ct: '.tiff', gt_ct_2d: '.png' };

export const META_FILE = 'mmad-dataset.json';

/** File name of sample `index` (000.png, 001.tiff, ...). */
export function sampleFileName(index: number, folder: DatasetFolder): string {
  return `${String(index).padStart(3, '0')}${FILE_EXTENSION[folder]}`;
}

/** The sidecar our dataset writer leaves in each category. */
export interface DatasetMeta {
  format: 'mmad-simulated-mvtec3d';
  version: 1;
  product: string;
  title: string;
  seed: number;
  width: number;
  height: number;
  defectSize: number;
  defectContrast: number;
  counts: { train: number; validation: number; test: number };
  defects: Partial<Record<DefectName, { description: string; visibility: Record<VisibilityModality, VisibilityLevel> }>>;
  pngCompressionLevel: number;
  /** Present when every sample has a CT volume: its grid (voxels per side, slices) and each voxel's size. */
  ct?: { width: number; height: number; depth: number; voxelSizeMm: { x: number; y: number; z: number }; bytesPerVolume: number };
}
