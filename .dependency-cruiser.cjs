/**
 * The layer rules of src/ (ARCHITECTURE.md, "Layers"), checked by `npm test` before anything
 * runs: a folder imports only folders below it, so no folder-level cycle can form. No module
 * cycle is allowed either. Tests, benchmarks and scripts may import any layer.
 */
// bottom to top; a folder may import the folders before it in this list
const LAYERS = ['base', 'config', 'codec', 'kafka', 'join', 'inference', 'input', 'output', 'runtime', 'telemetry', 'replay', 'simulate', 'view', 'cli'];

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `no-upward-from-${layer}`,
  comment: `src/${layer}/ sits below ${LAYERS.slice(i + 1).join(', ')}: it must not import them (ARCHITECTURE.md, "Layers")`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-unlisted-folder',
      comment: 'every folder of src/ has a place in the layer list of .dependency-cruiser.cjs',
      severity: 'error',
      from: { path: `^src/(?!(${LAYERS.join('|')})/)` },
      to: {},
    },
    {
      name: 'no-circular',
      comment: 'modules that import each other, directly or through others',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
