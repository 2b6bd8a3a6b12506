import { resolve } from 'node:path';
import { defaultConfig } from '../../config/load-config.js';
import { ErrorCode, MmadError } from '../../base/errors.js';
import { isDefectName, type DefectName } from '../../simulate/defects.js';
import { writeDataset } from '../../simulate/dataset-writer.js';
import { PRODUCTS, productByName } from '../../simulate/products/index.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { configOf } from '../common.js';
import { listFlag, numberFlag, sizeFlag, stringFlag } from '../station-options.js';

const d = defaultConfig().simulate;
const COUNTS = { train: 100, validation: 20, test: 20 };

export const datasetCommand: Command = {
  name: 'dataset',
  summary: 'Write a generated multimodal dataset (rgb, ir, xyz, gt) in the MVTec 3D-AD folder layout.',
  options: {
    ...CONFIG_OPTION,
    root: { type: 'string', short: 'o', placeholder: 'DIR', description: 'dataset folder; one category folder per product (default data/mmad-sim)' },
    product: { type: 'string', short: 'p', placeholder: 'LIST', description: `comma-separated product types, or all (default all: ${PRODUCTS.map((p) => p.name).join(', ')})` },
    train: { type: 'string', placeholder: 'N', description: `good training samples per product (default ${COUNTS.train})` },
    validation: { type: 'string', placeholder: 'N', description: `good validation samples per product (default ${COUNTS.validation})` },
    test: { type: 'string', placeholder: 'N', description: `test samples per defect, and as many good ones (default ${COUNTS.test})` },
    seed: { type: 'string', placeholder: 'N', description: `dataset seed: same seed, same bytes (default ${d.seed})` },
    size: { type: 'string', placeholder: 'N|WxH', description: `pixels per side of every modality (default ${d.width}x${d.height})` },
    defects: { type: 'string', placeholder: 'LIST', description: 'comma-separated defects to write test folders for (default: all each product has)' },
    'defect-size': { type: 'string', placeholder: 'X', description: `scale of defect footprints (default ${d.defectSize})` },
    'defect-contrast': { type: 'string', placeholder: 'X', description: `scale of defect magnitude (default ${d.defectContrast})` },
    'png-level': { type: 'string', placeholder: '0-9', description: `zlib level of the PNG files (default ${d.pngCompressionLevel})` },
    ct: { type: 'boolean', description: 'also write a CT volume per sample (ct/, and gt_ct/, gt_ct_2d/ for test samples), and test folders for the defects inside the material (void, porosity, inclusion)' },
  },
  details: [
    'Layout: <root>/<product>/{train,validation}/good/{rgb,ir,xyz}/NNN.* and test/<good|defect>/{rgb,ir,xyz,gt}/NNN.*;',
    'xyz is a 3-sample float32 TIFF as in MVTec 3D-AD, ir a 16-bit PNG, gt an 8-bit mask; <product>/mmad-dataset.json',
    'records the generator settings and the defect visibility table. With --ct: ct/NNN.tiff (16-bit multi-page volume),',
    'gt_ct/NNN.tiff (its 3D mask) and gt_ct_2d/NNN.png (the mask projected on the image); 1 MiB a volume at 256x256.',
    'Example:',
    '  mmad dataset --root data/mmad-sim --product battery_lid --train 200 --test 30 --seed 7',
  ].join('\n'),
  async run(ctx) {
    const config = configOf(ctx);
    const s = config.simulate;
    const root = resolve(stringFlag(ctx, 'root') ?? 'data/mmad-sim');
    const names = listFlag(ctx, 'product') ?? ['all'];
    const products = names.includes('all') ? [...PRODUCTS] : names.map((n) => productByName(n));
    const size = sizeFlag(ctx, 'size') ?? { width: s.width, height: s.height };
    const wanted = listFlag(ctx, 'defects') ?? s.defects;
    const ct = ctx.values.ct === true;
    const defectsOf = (p: (typeof products)[number]): readonly DefectName[] => (ct ? [...p.defects, ...p.interiorDefects] : p.defects);
    for (const x of wanted) {
      if (!isDefectName(x) || !products.some((p) => defectsOf(p).includes(x))) {
        throw new MmadError(ErrorCode.USAGE, `--defects: no selected product has a defect '${x}'`);
      }
    }
    const counts = {
      train: numberFlag(ctx, 'train', { min: 0, max: 100_000, integer: true }) ?? COUNTS.train,
      validation: numberFlag(ctx, 'validation', { min: 0, max: 100_000, integer: true }) ?? COUNTS.validation,
      test: numberFlag(ctx, 'test', { min: 0, max: 100_000, integer: true }) ?? COUNTS.test,
    };
    for (const product of products) {
      // with several products, a defect list applies to each product that has the defect
      const defects = wanted.length === 0 ? [] : (wanted.filter((x) => defectsOf(product).includes(x as DefectName)) as DefectName[]);
      if (wanted.length > 0 && defects.length === 0) continue;
      let lastTenth = -1;
      const summary = await writeDataset({
        root,
        product: product.name,
        seed: numberFlag(ctx, 'seed', { min: 0, max: 4_294_967_295, integer: true }) ?? s.seed,
        width: size.width,
        height: size.height,
        ...counts,
        defects,
        defectSize: numberFlag(ctx, 'defect-size', { min: 0.05, max: 10 }) ?? s.defectSize,
        defectContrast: numberFlag(ctx, 'defect-contrast', { min: 0.01, max: 10 }) ?? s.defectContrast,
        pngCompressionLevel: numberFlag(ctx, 'png-level', { min: 0, max: 9, integer: true }) ?? s.pngCompressionLevel,
        ct,
        onProgress: (done, total) => {
          const tenth = Math.floor((done * 10) / total);
          if (tenth !== lastTenth && tenth < 10) ctx.out(`  ${product.name}: ${done}/${total}`);
          lastTenth = tenth;
        },
      });
      const secs = summary.elapsedMs / 1000;
      ctx.out(
        `${summary.category}: ${summary.samples} samples, ${summary.files} files, ${(summary.bytes / 1e6).toFixed(1)} MB in ${secs.toFixed(1)} s ` +
          `(${(summary.samples / secs).toFixed(1)} samples/s, ${(summary.bytes / 1e6 / secs).toFixed(1)} MB/s) → ${summary.path}`,
      );
    }
    return 0;
  },
};
