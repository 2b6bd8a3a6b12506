import { resolve } from 'node:path';
import { ErrorCode, MmadError } from '../../base/errors.js';
import { SPLITS, type Split } from '../../simulate/dataset-layout.js';
import { DatasetPartSource } from '../../simulate/dataset-publisher.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { configOf } from '../common.js';
import { RUN_OPTIONS, TIMING_OPTIONS, listFlag, runFrom, stringFlag, timingFrom } from '../station-options.js';
import { runStationCommand } from '../station-run.js';

export const publishDatasetCommand: Command = {
  name: 'publish-dataset',
  summary: 'Stream a recorded dataset folder (MVTec 3D-AD layout: the real one, a generated one, or your own) to the input topics with a station\'s timing.',
  positionals: '<folder>',
  options: {
    ...CONFIG_OPTION,
    category: { type: 'string', placeholder: 'LIST', description: 'comma-separated categories to publish (default: all under the folder)' },
    splits: { type: 'string', placeholder: 'LIST', description: 'comma-separated splits: train, validation, test (default test)' },
    order: { type: 'string', placeholder: 'shuffled|sorted', description: 'shuffled mixes good and defective parts as a line would (seeded); sorted keeps folder order (default shuffled)' },
    ...TIMING_OPTIONS,
    ...RUN_OPTIONS,
  },
  details: [
    'Publishes the modalities every selected sample has (rgb, xyz, and ir when present), with the ground truth',
    '(defect folder, gt mask) on the labels topic. Files go out as they are on disk when they already are frames',
    '(8-bit RGB PNG, 16-bit grey PNG, 3-sample float32 TIFF).',
    'Examples:',
    '  mmad publish-dataset data/mmad-sim --category battery_lid --rate 10',
    '  mmad publish-dataset ~/mvtec_3d_anomaly_detection --category bagel --xyz-fraction 1 --xyz-delay 2s..10s',
  ].join('\n'),
  async run(ctx) {
    const folder = ctx.positionals[0];
    if (folder === undefined) throw new MmadError(ErrorCode.USAGE, 'name the dataset folder: mmad publish-dataset <folder>');
    const config = configOf(ctx);
    const startTime = Date.now();
    const timing = timingFrom(ctx, config);
    const run = runFrom(ctx, config, startTime);
    const splits = listFlag(ctx, 'splits') ?? ['test'];
    for (const s of splits) {
      if (!(SPLITS as readonly string[]).includes(s)) throw new MmadError(ErrorCode.USAGE, `--splits: '${s}' is not one of ${SPLITS.join(', ')}`);
    }
    const order = stringFlag(ctx, 'order') ?? 'shuffled';
    if (order !== 'shuffled' && order !== 'sorted') throw new MmadError(ErrorCode.USAGE, `--order: '${order}' is neither shuffled nor sorted`);
    const root = resolve(folder);
    // scan before starting anything, so a wrong folder fails fast
    const source = DatasetPartSource.open({ root, categories: listFlag(ctx, 'category'), splits: splits as Split[], order, seed: run.seed });
    ctx.out(
      `${source.size} samples from ${source.categories.map((c) => `${c.name} (${c.samples.length})`).join(', ')}; modalities ${source.modalities.join(', ')}`,
    );
    await runStationCommand(ctx, config, {
      source: async () => source,
      timing,
      run,
      startTime,
      labelAttributes: { datasetRoot: root, splits: splits.join(',') },
    });
    return 0;
  },
};
