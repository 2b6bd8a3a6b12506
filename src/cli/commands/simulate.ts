import { isDefectName, type DefectName } from '../../simulate/defects.js';
import { SimulatedPartSource } from '../../simulate/line-simulator.js';
import { productByName } from '../../simulate/products/index.js';
import { ErrorCode, MmadError } from '../../base/errors.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { configOf } from '../common.js';
import { RUN_OPTIONS, TIMING_OPTIONS, listFlag, numberFlag, runFrom, sizeFlag, stringFlag, timingFrom } from '../station-options.js';
import { runStationCommand } from '../station-run.js';
import { defaultConfig } from '../../config/load-config.js';

const d = defaultConfig().simulate;

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'Run a simulated inspection line: publish rgb, ir and (late) xyz frames of generated parts to Kafka, ground truth to the labels topic.',
  options: {
    ...CONFIG_OPTION,
    product: { type: 'string', short: 'p', placeholder: 'NAME', description: `product type: battery_lid or composite_coupon (default ${d.product})` },
    size: { type: 'string', placeholder: 'N|WxH', description: `pixels per side of every modality (default ${d.width}x${d.height})` },
    'defect-rate': { type: 'string', placeholder: 'F', description: `share of defective parts (default ${d.defectRate})` },
    defects: { type: 'string', placeholder: 'LIST', description: 'comma-separated defects to draw from (default: all the product has)' },
    'defect-size': { type: 'string', placeholder: 'X', description: `scale of defect footprints (default ${d.defectSize})` },
    'defect-contrast': { type: 'string', placeholder: 'X', description: `scale of defect magnitude (default ${d.defectContrast})` },
    pool: { type: 'string', placeholder: 'N', description: `parts rendered up front and re-published under fresh IDs; 0 renders every part (default ${d.poolSize})` },
    'png-level': { type: 'string', placeholder: '0-9', description: `zlib level of the PNG payloads (default ${d.pngCompressionLevel})` },
    'raw-frames': { type: 'boolean', description: 'send raw samples (encoding raw), as cameras streaming uncompressed frames do, instead of PNG and TIFF files' },
    ...TIMING_OPTIONS,
    ...RUN_OPTIONS,
  },
  details: [
    'Durations: 250ms, 5s, 2m (a bare number is seconds). Without --count or --duration the line runs until Ctrl-C.',
    'Examples:',
    '  mmad simulate --product battery_lid --rate 5 --duration 60s',
    '  mmad simulate --max-speed --count 5000 --pool 64 --xyz-fraction 1 --xyz-delay 0s   (load test)',
    '  mmad simulate --drop 0.05 --duplicate 0.02 --reorder 0.05 --skew 200ms --burst-rate 0.05',
  ].join('\n'),
  async run(ctx) {
    const config = configOf(ctx);
    const s = config.simulate;
    const startTime = Date.now();
    const timing = timingFrom(ctx, config);
    const run = runFrom(ctx, config, startTime);
    const product = productByName(stringFlag(ctx, 'product') ?? s.product);
    const size = sizeFlag(ctx, 'size') ?? { width: s.width, height: s.height };
    const defects = listFlag(ctx, 'defects') ?? s.defects;
    for (const x of defects) {
      // the defects inside the material (only a CT sees them) are drawn only when named
      if (!isDefectName(x) || !(product.defects.includes(x) || product.interiorDefects.includes(x))) {
        throw new MmadError(ErrorCode.USAGE, `--defects: ${product.name} has no defect '${x}' (it has ${[...product.defects, ...product.interiorDefects].join(', ')})`);
      }
    }
    const sim = {
      product: product.name,
      width: size.width,
      height: size.height,
      seed: run.seed,
      defectRate: numberFlag(ctx, 'defect-rate', { min: 0, max: 1 }) ?? s.defectRate,
      defects: defects as DefectName[],
      defectParams: {
        size: numberFlag(ctx, 'defect-size', { min: 0.05, max: 10 }) ?? s.defectSize,
        contrast: numberFlag(ctx, 'defect-contrast', { min: 0.01, max: 10 }) ?? s.defectContrast,
      },
      poolSize: numberFlag(ctx, 'pool', { min: 0, max: 100_000, integer: true }) ?? s.poolSize,
      pngCompressionLevel: numberFlag(ctx, 'png-level', { min: 0, max: 9, integer: true }) ?? s.pngCompressionLevel,
      // the parts the schedule sends to the CT need a volume
      ct: (timing.ctFraction ?? 0) > 0,
      rawFrames: ctx.values['raw-frames'] === true,
    };
    await runStationCommand(ctx, config, {
      source: async () => {
        if (sim.poolSize > 0) ctx.out(`rendering a pool of ${sim.poolSize} ${product.name} parts at ${sim.width}x${sim.height}…`);
        const src = await SimulatedPartSource.create(sim);
        if (sim.poolSize > 0) ctx.out(`pool ready in ${(src.poolMs / 1000).toFixed(1)} s (${((sim.poolSize * 1000) / src.poolMs).toFixed(1)} parts/s)`);
        return src;
      },
      timing,
      run,
      startTime,
      labelAttributes: {
        defectSize: String(sim.defectParams.size),
        defectContrast: String(sim.defectParams.contrast),
        defectRate: String(sim.defectRate),
        poolSize: String(sim.poolSize),
      },
    });
    return 0;
  },
};
