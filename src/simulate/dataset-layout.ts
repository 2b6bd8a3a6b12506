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
 * (readers of the real dataset never look for either).
 */
import type { DefectName, SensorModality, VisibilityLevel } from './defects.js';

export const SPLITS = ['train', 'validation', 'test'] as const;
export type Split = (typeof SPLITS)[number];

export type DatasetFolder = 'rgb' | 'ir' | 'xyz' | 'gt';
export const FILE_EXTENSION: Record<DatasetFolder, string> = { rgb: '.png', ir: '.png', xyz: '.tiff', gt: '.png' };

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
  defects: Partial<Record<DefectName, { description: string; visibility: Record<SensorModality, VisibilityLevel> }>>;
  pngCompressionLevel: number;
}
