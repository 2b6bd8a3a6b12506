/**
 * Comparing two runs over the same parts (live vs replay, old vs new model):
 * per part the last revision of each run, verdict transitions, score changes,
 * and the parts only one run judged. Pure; the CLI reads the runs.
 */
import type { EventSummary } from './event-summary.js';

export interface ChangedPart {
  sampleId: string;
  a: EventSummary;
  b: EventSummary;
}

export interface RunDiff {
  partsA: number;
  partsB: number;
  both: number;
  onlyA: string[];
  onlyB: string[];
  /** Verdict of A → verdict of B → parts. */
  transitions: Map<string, Map<string, number>>;
  changed: ChangedPart[];
  /** Same verdict, but score, model or modalities differ. */
  sameVerdictDifferent: number;
  identical: number;
  meanAbsScoreDelta: number | null;
}

/** The last revision of each part (the highest revision number; a replay may hold a part twice only if it was read twice). */
export function lastRevisions(events: EventSummary[]): Map<string, EventSummary> {
  const out = new Map<string, EventSummary>();
  for (const e of events) {
    const have = out.get(e.sampleId);
    if (have === undefined || e.revision > have.revision) out.set(e.sampleId, e);
  }
  return out;
}

export function sameDecision(a: EventSummary, b: EventSummary, scoreTolerance = 1e-5): boolean {
  const scores = a.score === b.score || (a.score !== null && b.score !== null && Math.abs(a.score - b.score) <= scoreTolerance * Math.max(1, Math.abs(a.score)));
  return a.verdict === b.verdict && a.model === b.model && a.revision === b.revision && [...a.modalitiesUsed].sort().join() === [...b.modalitiesUsed].sort().join() && scores;
}

export function diffRuns(a: EventSummary[], b: EventSummary[]): RunDiff {
  const la = lastRevisions(a);
  const lb = lastRevisions(b);
  const transitions = new Map<string, Map<string, number>>();
  const changed: ChangedPart[] = [];
  let both = 0;
  let identical = 0;
  let sameVerdictDifferent = 0;
  let deltaSum = 0;
  let deltaN = 0;
  for (const [id, ea] of la) {
    const eb = lb.get(id);
    if (eb === undefined) continue;
    both++;
    const row = transitions.get(ea.verdict) ?? new Map<string, number>();
    transitions.set(ea.verdict, row);
    row.set(eb.verdict, (row.get(eb.verdict) ?? 0) + 1);
    if (ea.verdict !== eb.verdict) changed.push({ sampleId: id, a: ea, b: eb });
    else if (sameDecision(ea, eb)) identical++;
    else sameVerdictDifferent++;
    if (ea.score !== null && eb.score !== null) {
      deltaSum += Math.abs(ea.score - eb.score);
      deltaN++;
    }
  }
  changed.sort((x, y) => (x.sampleId < y.sampleId ? -1 : 1));
  return {
    partsA: la.size,
    partsB: lb.size,
    both,
    onlyA: [...la.keys()].filter((k) => !lb.has(k)).sort(),
    onlyB: [...lb.keys()].filter((k) => !la.has(k)).sort(),
    transitions,
    changed,
    sameVerdictDifferent,
    identical,
    meanAbsScoreDelta: deltaN === 0 ? null : deltaSum / deltaN,
  };
}

/** A human-readable report: counts, the transition matrix, the first changed parts. */
export function formatDiff(d: RunDiff, names: [string, string], listMax = 20): string {
  const lines: string[] = [];
  lines.push(`parts: ${d.partsA} in ${names[0]}, ${d.partsB} in ${names[1]}, ${d.both} in both (${d.onlyA.length} only in ${names[0]}, ${d.onlyB.length} only in ${names[1]})`);
  lines.push(`same decision: ${d.identical}; same verdict, other score/model/modalities: ${d.sameVerdictDifferent}; verdict changed: ${d.changed.length}`);
  if (d.meanAbsScoreDelta !== null) lines.push(`mean |score change|: ${d.meanAbsScoreDelta.toPrecision(3)}`);
  const verdicts = [...new Set([...d.transitions.keys(), ...[...d.transitions.values()].flatMap((r) => [...r.keys()])])].sort();
  if (verdicts.length > 0) {
    const w = Math.max(12, ...verdicts.map((v) => v.length + 2));
    lines.push('', `${`${names[0]} \\ ${names[1]}`.padEnd(w + 4)}${verdicts.map((v) => v.padStart(w)).join('')}`);
    for (const va of verdicts) lines.push(`${va.padEnd(w + 4)}${verdicts.map((vb) => String(d.transitions.get(va)?.get(vb) ?? 0).padStart(w)).join('')}`);
  }
  if (d.changed.length > 0) {
    lines.push('', `changed verdicts${d.changed.length > listMax ? ` (first ${listMax})` : ''}:`);
    for (const c of d.changed.slice(0, listMax)) {
      const side = (e: EventSummary): string => `${e.verdict} ${e.score === null ? '-' : e.score.toFixed(3)}${e.threshold === null ? '' : `/${e.threshold.toFixed(3)}`} ${e.model ?? '-'} [${e.modalitiesUsed.join('+')}]`;
      lines.push(`  ${c.sampleId}: ${side(c.a)} → ${side(c.b)}`);
    }
  }
  return lines.join('\n');
}
