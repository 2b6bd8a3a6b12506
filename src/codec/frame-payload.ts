/**
 * A Frame record as the service holds it once read from its input topic: the types the
 * input stage produces and the join, the judge, the outputs and telemetry pass along.
 * Here, below all of them, so that none imports another's folder for them.
 */
import type { Frame } from './records.js';

/**
 * The fields of a decoded frame that are read after the input stage (judging,
 * events): its header, without the payload (which is `FramePayload.payload`)
 * or anything else the record carries.
 */
export type FrameHeader = Pick<Frame, 'line' | 'station' | 'modality' | 'encoding' | 'width' | 'height' | 'channels' | 'dtype' | 'volume'>;

/**
 * What the join carries per frame: the header of the decoded record, its
 * payload bytes, and the original record (for a dead letter). Each byte is
 * held once: an inline payload is a view into `raw`, and `raw` and `key` are
 * the frame's own buffers, not views into the fetch response they came in
 * (which would keep the whole response alive).
 */
export interface FramePayload {
  frame: FrameHeader;
  /** The encoded image: a view into `raw`, or the file a payload reference names. */
  payload: Buffer;
  /** The record value as read, byte for byte. */
  raw: Buffer;
  key: Buffer | null;
  /** Kafka timestamp of the record, epoch ms. */
  timestamp: number;
  /** W3C trace context headers of the record (its producer's span), when the producer set them. */
  traceContext?: TraceContextHeaders;
}

export interface TraceContextHeaders {
  traceparent: string;
  tracestate?: string;
}
