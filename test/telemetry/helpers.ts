/** What the telemetry tests share: a metric reader collected on demand, flattened data points, HTTP GETs. */
import { MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';

/** A pull reader: the test collects when it wants to look. */
export class CollectingReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

export interface Point {
  attributes: Record<string, unknown>;
  value: number | Histogram;
}

/** Every data point of every metric, by metric name. */
export async function collectPoints(reader: MetricReader): Promise<Map<string, Point[]>> {
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length > 0) throw new Error(`metric collection failed: ${errors.map(String).join('; ')}`);
  const out = new Map<string, Point[]>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const m of scope.metrics) {
      const points = (m.dataPoints as DataPoint<number | Histogram>[]).map((p) => ({ attributes: { ...p.attributes }, value: p.value }));
      out.set(m.descriptor.name, [...(out.get(m.descriptor.name) ?? []), ...points]);
    }
  }
  return out;
}

/** Sum of a counter's or gauge's points whose attributes include `where`. */
export function sumOf(points: Map<string, Point[]>, name: string, where: Record<string, string> = {}): number {
  return (points.get(name) ?? [])
    .filter((p) => Object.entries(where).every(([k, v]) => p.attributes[k] === v))
    .reduce((s, p) => s + (typeof p.value === 'number' ? p.value : p.value.count), 0);
}

export async function get(url: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}
