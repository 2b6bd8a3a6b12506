/**
 * What a quality engineer asks of a run: how many parts were judged, how many
 * NOK, which modalities the verdicts used, how fast — and, where ground truth
 * is known (simulated lines, labels topic), how the verdicts compare with it.
 * Pure: fed events and labels, it prints tables (used by `mmad demo`).
 */
import type { AnomalyEvent, Label } from '../codec/records.js';

export interface Confusion {
  truePositive: number;
  falsePositive: number;
  trueNegative: number;
  falseNegative: number;
  unknown: number;
}

export class LineSummary {
  /** Latest revision per sample. */
  private readonly finalBy = new Map<string, AnomalyEvent>();
  /** Earliest revision per sample: the in-line verdict when a late modality refined it. */
  private readonly firstBy = new Map<string, AnomalyEvent>();
  private readonly labels = new Map<string, Label>();
  private readonly provisionalLatency: number[] = [];
  private events = 0;

  addEvent(e: AnomalyEvent): void {
    this.events++;
    const prev = this.finalBy.get(e.sampleId);
    if (prev === undefined || e.revision > prev.revision) this.finalBy.set(e.sampleId, e);
    const first = this.firstBy.get(e.sampleId);
    if (first === undefined || e.revision < first.revision) this.firstBy.set(e.sampleId, e);
    if (e.revision === 1) this.provisionalLatency.push(e.producedAt.getTime() - e.captureTime.getTime());
  }

  addLabel(l: Label): void {
    this.labels.set(l.sampleId, l);
  }

  get parts(): number {
    return this.finalBy.size;
  }

  get labelled(): number {
    return this.labels.size;
  }

  /** Samples with a label and a verdict whose last revision is final. */
  settled(): number {
    let n = 0;
    for (const [id, e] of this.finalBy) if (e.final && this.labels.has(id)) n++;
    return n;
  }

  live(): string {
    const v = this.verdicts();
    const p = percentiles(this.provisionalLatency, [0.5, 0.99]);
    const cov = this.coverage();
    return (
      `${this.parts} parts judged (${this.events} events): ${v.NOK} NOK, ${v.OK} OK, ${v.UNKNOWN} UNKNOWN | ` +
      `modalities used: ${Object.entries(cov).map(([m, f]) => `${m} ${(f * 100).toFixed(0)}%`).join(', ') || '-'} | ` +
      `first verdict after capture p50 ${fmtMs(p[0])}, p99 ${fmtMs(p[1])}`
    );
  }

  verdicts(): Record<'OK' | 'NOK' | 'UNKNOWN', number> {
    const out = { OK: 0, NOK: 0, UNKNOWN: 0 };
    for (const e of this.finalBy.values()) out[e.verdict]++;
    return out;
  }

  /** Share of final verdicts that used each modality. */
  coverage(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const e of this.finalBy.values()) for (const m of e.modalitiesUsed) counts[m] = (counts[m] ?? 0) + 1;
    const n = Math.max(1, this.finalBy.size);
    return Object.fromEntries(Object.entries(counts).sort().map(([m, c]) => [m, c / n]));
  }

  confusion(): Confusion {
    const c: Confusion = { truePositive: 0, falsePositive: 0, trueNegative: 0, falseNegative: 0, unknown: 0 };
    for (const [id, l] of this.labels) {
      const e = this.finalBy.get(id);
      const defective = l.defectType !== 'good';
      if (e === undefined || e.verdict === 'UNKNOWN') c.unknown++;
      else if (e.verdict === 'NOK') {
        if (defective) c.truePositive++;
        else c.falsePositive++;
      } else if (defective) c.falseNegative++;
      else c.trueNegative++;
    }
    return c;
  }

  /**
   * Parts NOK on their latest verdict, which used a CT volume, and not NOK before it: what
   * the CT found that the in-line sensors did not.
   */
  foundByCt(id: string): boolean {
    const last = this.finalBy.get(id);
    const first = this.firstBy.get(id);
    return last !== undefined && first !== undefined && last !== first && last.verdict === 'NOK' && first.verdict !== 'NOK' && last.modalitiesUsed.includes('ct');
  }

  /** The closing report: verdicts vs ground truth, detection per defect type, latency. */
  report(): string[] {
    const c = this.confusion();
    const recall = c.truePositive / Math.max(1, c.truePositive + c.falseNegative);
    const precision = c.truePositive / Math.max(1, c.truePositive + c.falsePositive);
    const lines = [
      `parts with ground truth: ${this.labelled}, judged: ${this.parts}`,
      '',
      'verdict vs label      defective   good',
      `  NOK                 ${pad(c.truePositive)}  ${pad(c.falsePositive)}`,
      `  OK                  ${pad(c.falseNegative)}  ${pad(c.trueNegative)}`,
      `  UNKNOWN / none      ${pad(c.unknown)}`,
      `NOK recall ${(recall * 100).toFixed(0)}%, precision ${(precision * 100).toFixed(0)}%`,
      '',
      'defect type          parts  found (NOK)  CT scanned  found only after CT',
    ];
    const by = new Map<string, { n: number; found: number; scanned: number; byCt: number }>();
    for (const [id, l] of this.labels) {
      const row = by.get(l.defectType) ?? { n: 0, found: 0, scanned: 0, byCt: 0 };
      row.n++;
      if (this.finalBy.get(id)?.verdict === 'NOK') row.found++;
      if (this.finalBy.get(id)?.modalitiesUsed.includes('ct') === true) row.scanned++;
      if (this.foundByCt(id)) row.byCt++;
      by.set(l.defectType, row);
    }
    for (const [d, r] of [...by].sort(([a], [b]) => a.localeCompare(b))) lines.push(`  ${d.padEnd(18)} ${pad(r.n)}  ${pad(r.found)}        ${pad(r.scanned)}       ${pad(r.byCt)}`);
    const byCt = [...by].filter(([d, r]) => d !== 'good' && r.byCt > 0);
    if (byCt.length > 0) {
      const n = byCt.reduce((a, [, r]) => a + r.byCt, 0);
      lines.push('', `found only once their CT volume came (OK in-line): ${n} defective part(s): ${byCt.map(([d, r]) => `${d} ${r.byCt}`).join(', ')}`);
    }
    const p = percentiles(this.provisionalLatency, [0.5, 0.9, 0.99]);
    lines.push('', `first verdict after capture: p50 ${fmtMs(p[0])}, p90 ${fmtMs(p[1])}, p99 ${fmtMs(p[2])}`);
    return lines;
  }
}

export function percentiles(values: number[], qs: number[]): (number | undefined)[] {
  if (values.length === 0) return qs.map(() => undefined);
  const s = [...values].sort((a, b) => a - b);
  return qs.map((q) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]);
}

const pad = (n: number): string => String(n).padStart(5);
const fmtMs = (v: number | undefined): string => (v === undefined ? '-' : `${Math.round(v)} ms`);
