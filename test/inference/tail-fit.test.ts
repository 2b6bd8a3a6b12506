/** The generalized Pareto tail fitted in TypeScript (src/inference/tail-fit.ts) against the export's fit_tail. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitTail, tailLogLikelihood } from '../../src/inference/tail-fit.js';
import { tailQuantile } from '../../src/inference/threshold.js';

/** n scores f((i + 0.5) / n, i): the same numbers in Python and here. */
const scores = (n: number, f: (u: number, i: number) => number): number[] => Array.from({ length: n }, (_, i) => f((i + 0.5) / n, i));

/**
 * The export's fits of the same scores (models/mmad_models/metrics.py fit_tail; scipy's
 * genpareto.fit, a Nelder-Mead search, so agreement to about 1e-4), e.g.
 *   u = (np.arange(120) + 0.5) / 120; d = fit_tail(-np.log(-np.log(u))); tail_quantile(d, 0.99)
 */
const CASES: { name: string; s: number[]; shape: number; scale: number; location: number; fit: string; q99: number }[] = [
  { name: 'Gumbel', s: scores(120, (u) => -Math.log(-Math.log(u))), location: 1.4768078839990464, scale: 1.207060092160072, shape: -0.13164280188029653, fit: 'maximum-likelihood', q99: 4.464989249027893 },
  { name: 'Gumbel, uneven', s: scores(120, (u, i) => -Math.log(-Math.log(u)) + 0.3 * Math.sin(7 * i)), location: 1.5080911596185769, scale: 1.2118380038415308, shape: -0.13467696469725998, fit: 'maximum-likelihood', q99: 4.495397364041653 },
  { name: 'Pareto 0.3', s: scores(120, (u) => (1 - u) ** -0.3 / 0.3), location: 5.368875013577247, scale: 1.7775402024518037, shape: 0.20700239840720974, fit: 'maximum-likelihood', q99: 12.746509879439701 },
  { name: 'Pareto 0.9 (beyond the bound)', s: scores(120, (u) => (1 - u) ** -0.9 / 0.9), location: 4.642705500731398, scale: 5.72714843750001, shape: 0.5, fit: 'bounded-shape', q99: 44.41358151965827 },
  { name: 'uniform (below the bound)', s: scores(120, (u) => 4 * u), location: 3.183333333333333, scale: 0.5159179687499995, shape: -0.5, fit: 'bounded-shape', q99: 3.98444374104561 },
  { name: 'exponential, 400', s: scores(400, (u, i) => -Math.log(1 - u) + 0.1 * Math.cos(3 * i)), location: 1.6355975964364065, scale: 0.9630092703257962, shape: 0.006623361950562585, fit: 'maximum-likelihood', q99: 4.549326797788214 },
];

for (const c of CASES) {
  test(`the tail of ${c.name} is the export's`, () => {
    const d = fitTail(c.s);
    assert.equal(d.kind, 'pareto-tail');
    assert.equal(d.fit, c.fit);
    assert.equal(d.location, c.location, 'the location is the score below the highest 20 %');
    assert.equal(d.tailFraction, 0.2);
    assert.ok(Math.abs(d.shape - c.shape) < 1e-3, `shape ${d.shape} against ${c.shape}`);
    assert.ok(Math.abs(d.scale / c.scale - 1) < 1e-3, `scale ${d.scale} against ${c.scale}`);
    const q = tailQuantile(d, 0.99);
    assert.ok(Math.abs(q / c.q99 - 1) < 1e-4, `the 99 % quantile ${q} against ${c.q99}`);
    // the fit is a maximum: its likelihood is at least the export's and beats nearby points
    const y = [...c.s].sort((a, b) => a - b).slice(-Math.round(0.2 * c.s.length)).map((v) => v - d.location);
    const ll = tailLogLikelihood(y, d.shape, d.scale);
    assert.ok(ll >= tailLogLikelihood(y, c.shape, c.scale) - 1e-6);
    for (const [ds, dk] of [[0.01, 0], [-0.01, 0], [0, 0.01], [0, -0.01]] as const) {
      const shape = c.fit === 'bounded-shape' ? d.shape : d.shape + ds;
      assert.ok(ll >= tailLogLikelihood(y, shape, d.scale * (1 + dk)), `a better fit at shape ${shape} scale ${d.scale * (1 + dk)}`);
    }
  });
}

test("a line's month of parts fits: 700 000 scores, 140 000 excesses", () => {
  // a spread of that many excesses into Math.max would exceed the call stack
  const d = fitTail(scores(700_000, (u) => -Math.log(-Math.log(u))));
  assert.equal(d.fit, 'maximum-likelihood');
  assert.ok(Math.abs(tailQuantile(d, 0.99) - -Math.log(-Math.log(0.99))) < 0.05, "near the Gumbel's own 99 % quantile, 4.60 (a Pareto tail of its highest 20 % gives 4.62)");
});

test('a tail of scores without spread is a point mass; too few or non-finite scores are refused', () => {
  const d = fitTail([...Array.from({ length: 40 }, (_, i) => i / 40), ...Array.from({ length: 20 }, () => 2)]);
  assert.deepEqual([d.fit, d.location, d.scale, d.shape], ['degenerate', 2, 0, 0]);
  assert.equal(tailQuantile(d, 0.99), 2);
  assert.throws(() => fitTail(Array.from({ length: 10 }, (_, i) => i)), /needs 11 or more scores, got 10/);
  assert.throws(() => fitTail([...Array.from({ length: 20 }, (_, i) => i), Number.NaN]), /finite/);
  const small = fitTail(Array.from({ length: 30 }, (_, i) => i));
  assert.equal(small.tailFraction, 10 / 30, 'ten excesses at least');
});
