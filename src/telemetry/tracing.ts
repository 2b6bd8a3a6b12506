/**
 * Traces: a span per sample and revision, built after the fact from the
 * times the judgement recorded (first frame arrival, release, preprocess and
 * inference durations, event build, write), so no context has to travel
 * through the runtime's asynchronous code. Children: join wait, preprocess,
 * inference (micro-batch wait and run), publish (ordered write). The sample
 * span links to the producer span of each of its frames, read from the
 * frames' W3C `traceparent` headers; the station publisher sets those headers
 * (traceHeaders), so a trace follows a part from its sensors to its verdict.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  trace,
  type Attributes,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { Judgement } from '../inference/judge.js';
import type { FramePayload, TraceContextHeaders } from '../codec/frame-payload.js';
import type { JoinInput } from '../join/sample-joiner.js';
import type { Outputs } from '../output/event-builder.js';

const propagator = new W3CTraceContextPropagator();

/** The span context a frame's trace headers carry; undefined when absent or malformed. */
export function spanContextOf(headers: TraceContextHeaders | undefined): SpanContext | undefined {
  if (headers === undefined) return undefined;
  const ctx = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
  const sc = trace.getSpanContext(ctx);
  return sc !== undefined && isSpanContextValid(sc) ? sc : undefined;
}

/** W3C trace context headers (traceparent, tracestate) for a record produced inside `span`; empty for a span that is not recorded. */
export function traceHeaders(span: Span): Record<string, string> {
  const carrier: Record<string, string> = {};
  if (!isSpanContextValid(span.spanContext())) return carrier;
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
  return carrier;
}

/** Links from a sample span to the producer spans of its frames. */
export function frameLinks(frames: JoinInput<FramePayload>[]): Link[] {
  const links: Link[] = [];
  for (const f of frames) {
    const context = spanContextOf(f.payload.traceContext);
    if (context === undefined) continue;
    links.push({
      context,
      attributes: {
        'mmad.modality': f.modality,
        'messaging.destination.name': f.source.topic,
        'messaging.destination.partition.id': String(f.source.partition),
        'messaging.kafka.offset': Number(f.source.offset),
      },
    });
  }
  return links;
}

export class SampleTracer {
  constructor(
    private readonly tracer: Tracer,
    /** Topic the events are published to (an attribute of the publish span). */
    private readonly eventsTopic: string,
  ) {}

  /** Records the spans of one published judgement; `writtenAt` is when its records were written (epoch ms). */
  record(j: Judgement, outputs: Outputs, writtenAt: number): void {
    const released = j.releasedAt;
    const arrived = Number.isFinite(j.firstArrival) ? Math.min(j.firstArrival, released) : released;
    const produced = outputs.event === null ? writtenAt : Math.min(Math.max(outputs.event.producedAt.getTime(), released), writtenAt);
    const spec = j.route?.model.spec;
    const attributes: Attributes = {
      'mmad.sample_id': j.sampleId,
      'mmad.revision': j.revision,
      'mmad.final': j.final,
      'mmad.line': j.line,
      'mmad.station': j.station,
      'mmad.verdict': j.verdict,
      'mmad.modalities.used': j.used.join('+'),
      'mmad.modalities.missing': j.missing.join('+'),
      'messaging.system': 'kafka',
      'messaging.operation.type': 'process',
    };
    if (j.score !== null) attributes['mmad.score'] = j.score;
    if (j.threshold !== null) attributes['mmad.threshold'] = j.threshold;
    if (spec !== undefined) {
      attributes['mmad.model.id'] = spec.id;
      attributes['mmad.model.version'] = spec.version;
    }
    if (j.reason !== null) attributes['mmad.reason'] = j.reason;
    const root = this.tracer.startSpan(
      'judge sample',
      { kind: SpanKind.CONSUMER, startTime: arrived, attributes, links: frameLinks([...j.frames, ...j.unusable.map((u) => u.input)]), root: true },
      ROOT_CONTEXT,
    );
    if (!root.isRecording()) return;
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    const child = (name: string, start: number, end: number, attrs: Attributes = {}): void => {
      this.tracer.startSpan(name, { startTime: start, attributes: attrs }, parent).end(Math.max(start, end));
    };
    child('join wait', arrived, released, { 'mmad.frames': j.frames.length + j.unusable.length });
    if (spec !== undefined) {
      const preprocessed = released + j.preprocessMs;
      child('preprocess', released, preprocessed, { 'mmad.model.id': spec.id });
      child('inference', preprocessed, produced, {
        'mmad.model.id': spec.id,
        'mmad.batch_size': j.batchSize,
        'mmad.inference.run_ms': j.inferenceMs * j.batchSize,
      });
    }
    child('publish', produced, writtenAt, { 'messaging.destination.name': this.eventsTopic, 'mmad.dead_letters': outputs.deadLetters.length });
    for (const u of j.unusable) root.addEvent('frame unusable', { 'mmad.modality': u.input.modality, 'mmad.reason_code': u.code }, released);
    root.end(Math.max(arrived, writtenAt));
  }
}
