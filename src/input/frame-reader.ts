/**
 * Input stage: a Kafka record of an input topic → a frame the join can take,
 * or the precise reason it cannot be used (which becomes a dead letter).
 *
 * Checks, cheapest first: a value is present; it decodes as a Frame (Avro);
 * the sample id is usable; the modality is the topic's; the declared size,
 * channels and sample type fit the modality and the pixel limit; exactly one
 * of payload and payload reference is set, and a reference resolves
 * (claim-check.ts: inside an allowed directory, a regular file, the declared
 * size and checksum, within a deadline); the encoded image's header agrees with
 * the declared size (a ct volume: its raw length, or its TIFF's pages, against the
 * declared volume, inference/volume.ts). The sample id must be valid UTF-8 (a decoder's replacement
 * character would merge two ids that differ in their invalid bytes), the line,
 * station and sensor names at most `maxFieldBytes`, and the capture time within
 * the clock bounds of clock-skew.ts. The key is compared with the
 * sample id and the partition its hash gives: a mismatch is reported
 * (`FRAME_KEY_MISMATCH`, counted, logged) but the frame is still joined, since all modalities of a
 * sample may have been mis-partitioned alike.
 */
import type { KafkaMessage } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { FrameHeader, FramePayload, TraceContextHeaders } from '../codec/frame-payload.js';
import type { Frame, Modality } from '../codec/records.js';
import type { Config } from '../config/config-schema.js';
import { ErrorCode, MmadError, isMmadError, isRetriable, messageOf } from '../base/errors.js';
import { checkDeclared, checkVolumePayload, decodeLimitsOf, imageShape, maxPayloadBytes, rawBytes, type DecodeLimits } from '../inference/preprocess.js';
import type { JoinInput } from '../join/sample-joiner.js';
import { partitionFor } from '../kafka/partitioner.js';
import { ClaimCheckDeferred, ClaimCheckReader } from './claim-check.js';
import { ClockSkewTracker, type ClockBounds } from './clock-skew.js';

export type ReadResult =
  /** `keyProblem`: the record's key is not the sample id or not where the default partitioner puts it (`FRAME_KEY_MISMATCH`); the frame is still joined. */
  | { ok: true; input: JoinInput<FramePayload>; keyProblem?: MmadError }
  | {
      ok: false;
      /** The dead letter's reason. */
      code: ErrorCode;
      message: string;
      sampleId: string | null;
      modality: string | null;
      /** The record as read, for its dead letter. */
      record: { key: Buffer | null; value: Buffer; timestamp: number };
    };

/**
 * The record cannot be read now, through no fault of its own: its claim check does
 * not fit in the byte budget left (`bytes`), or reading it failed in a way worth
 * trying again (`isRetriable`: the schema registry does not answer; `retryAfterMs`).
 * Nothing was kept; read the record again later.
 */
export interface ReadDeferred {
  deferred: true;
  /** The payload size the reference declares (0 when the wait is for the registry). */
  bytes: number;
  /** Wait at least this long before reading it again (the registry's backoff). */
  retryAfterMs?: number;
  reason: string;
}

export interface FrameReaderOptions {
  /** Input topic → the modality it carries. */
  topics: Map<string, Modality>;
  partitions: number;
  limits: DecodeLimits;
  claimCheckRoots: string[];
  maxSampleIdBytes: number;
  /** Longest line, station and sensor name accepted (bytes of UTF-8). */
  maxFieldBytes: number;
  /** How far a capture time may lead or lag the record's timestamp. */
  clock: ClockBounds;
  /** Deadline of one claim-check read, and how many may be stuck past it before references fail at once. */
  claimCheck: { timeoutMs: number; maxStuckReads: number };
  /** Inflate each PNG's image data at read time (a corrupt frame is then a dead letter before it joins a part). */
  verifyImageData: boolean;
}

/** The reader's options from the service configuration. */
export function frameReaderOptions(config: Config, topics: Map<string, Modality>, partitions: number): FrameReaderOptions {
  const i = config.input;
  return {
    topics,
    partitions,
    limits: decodeLimitsOf(config),
    claimCheckRoots: i.claimCheckRoots,
    maxSampleIdBytes: i.maxSampleIdBytes,
    maxFieldBytes: i.maxFieldBytes,
    clock: { maxLeadMs: i.maxClockLeadMs, maxLagMs: i.maxClockLagMs },
    claimCheck: { timeoutMs: i.claimCheckTimeoutMs, maxStuckReads: i.maxStuckClaimReads },
    verifyImageData: i.verifyImageData,
  };
}

export class FrameReader {
  private readonly claims: ClaimCheckReader;
  readonly clocks: ClockSkewTracker;

  constructor(
    private readonly codec: AvroCodec<'Frame'>,
    private readonly options: FrameReaderOptions,
  ) {
    this.claims = new ClaimCheckReader({
      roots: options.claimCheckRoots,
      maxBytes: maxPayloadBytes(options.limits),
      ...options.claimCheck,
    });
    this.clocks = new ClockSkewTracker(options.clock);
  }

  /** Claim-check reads past their deadline that have not returned yet. */
  get stuckClaimReads(): number {
    return this.claims.stuckReads;
  }

  /**
   * Reads one input record. `budgetBytes`: what the task may still buffer; a
   * claim check declaring more is not read (`deferred`), so a payload never
   * enters memory the task's bound has no room for. With a budget, a retriable
   * failure (a schema registry that does not answer) defers the record too
   * (nothing is lost to an outage).
   */
  async read(topic: string, partition: number, message: KafkaMessage, arrivedAt: number): Promise<ReadResult>;
  async read(topic: string, partition: number, message: KafkaMessage, arrivedAt: number, budgetBytes: number): Promise<ReadResult | ReadDeferred>;
  async read(topic: string, partition: number, message: KafkaMessage, arrivedAt: number, budgetBytes?: number): Promise<ReadResult | ReadDeferred> {
    // only a caller that handles a deferral (the stream processor) passes a budget; for the others a retriable failure (a registry outage) is a dead letter
    const deferrable = budgetBytes !== undefined;
    budgetBytes ??= Number.POSITIVE_INFINITY;
    // kafkajs hands out views into the fetch response; what is kept (for the join, or a dead letter) is copied out of it
    const value = message.value === null ? null : Buffer.from(message.value);
    const key = message.key == null ? null : Buffer.from(message.key);
    let frame: Frame | undefined;
    try {
      if (value === null || value.length === 0) {
        throw new MmadError(ErrorCode.FRAME_INVALID, 'record has no value (a tombstone or an empty record)');
      }
      frame = await this.codec.decode(value);
      const input = await this.check(topic, partition, frame, { value, key, message }, arrivedAt, budgetBytes);
      const keyProblem = this.keyProblem(key, frame, partition);
      return keyProblem === undefined ? { ok: true, input } : { ok: true, input, keyProblem };
    } catch (err) {
      if (err instanceof ClaimCheckDeferred) return { deferred: true, bytes: err.sizeBytes, reason: err.message };
      if (deferrable && isRetriable(err)) {
        const wait = Number(err.details.retryAfterMs ?? 1000);
        return { deferred: true, bytes: 0, retryAfterMs: Number.isFinite(wait) ? wait : 1000, reason: err.message };
      }
      const code = isMmadError(err) ? err.code : ErrorCode.FRAME_INVALID;
      return {
        ok: false,
        code,
        message: messageOf(err),
        sampleId: frame === undefined ? null : truncateUtf8(frame.sampleId, this.options.maxSampleIdBytes),
        modality: frame?.modality ?? null,
        record: { key, value: value ?? Buffer.alloc(0), timestamp: Number(message.timestamp) },
      };
    }
  }

  private async check(
    topic: string,
    partition: number,
    frame: Frame,
    record: { value: Buffer; key: Buffer | null; message: KafkaMessage },
    arrivedAt: number,
    budgetBytes: number,
  ): Promise<JoinInput<FramePayload>> {
    const { value, key, message } = record;
    const idBytes = Buffer.byteLength(frame.sampleId, 'utf8');
    if (idBytes === 0 || idBytes > this.options.maxSampleIdBytes) {
      throw new MmadError(ErrorCode.FRAME_INVALID, `sample id of ${idBytes} bytes (allowed 1..${this.options.maxSampleIdBytes})`);
    }
    if (frame.sampleId.includes('\uFFFD')) {
      // the Avro decoder replaces invalid UTF-8 by U+FFFD: two ids differing only in invalid bytes would become one
      throw new MmadError(ErrorCode.FRAME_INVALID, `sample id ${JSON.stringify(truncateUtf8(frame.sampleId, 80))} is not valid UTF-8 (or contains U+FFFD)`);
    }
    for (const field of ['line', 'station', 'sensorId'] as const) {
      const n = Buffer.byteLength(frame[field], 'utf8');
      if (n > this.options.maxFieldBytes) {
        throw new MmadError(ErrorCode.FRAME_INVALID, `${field} of ${n} bytes (allowed up to ${this.options.maxFieldBytes}, input.maxFieldBytes)`);
      }
    }
    const expected = this.options.topics.get(topic);
    if (frame.modality === 'unknown') {
      throw new MmadError(ErrorCode.FRAME_UNKNOWN_MODALITY, `frame of sample ${frame.sampleId} has a modality this service does not know (written by a newer schema)`);
    }
    if (expected !== frame.modality) {
      throw new MmadError(ErrorCode.FRAME_UNKNOWN_MODALITY, `a ${frame.modality} frame on ${topic}, which carries ${expected ?? 'no modality this line joins'}`);
    }
    const t = frame.captureTime.getTime();
    if (!Number.isFinite(t) || t <= 0) throw new MmadError(ErrorCode.FRAME_INVALID, `capture time ${String(frame.captureTime)} is not a time`);
    this.clocks.check(frame, t, Number(message.timestamp), arrivedAt);
    checkDeclared(frame, this.options.limits);
    // avsc decodes `bytes` into a copy: the payload kept is the same bytes inside the record instead
    const payload = viewInto(value, await this.payloadOf(frame, budgetBytes));
    if (frame.modality === 'ct') {
      await checkVolumePayload(frame, payload, this.options.limits, { data: this.options.verifyImageData });
    } else if (frame.encoding === 'raw' && payload.length !== rawBytes(frame)) {
      throw new MmadError(ErrorCode.FRAME_SHAPE, `raw ${frame.modality} payload has ${payload.length} bytes, ${frame.width}×${frame.height}×${frame.channels} ${frame.dtype} needs ${rawBytes(frame)}`);
    }
    if (frame.encoding !== 'raw' && frame.modality !== 'ct') {
      const shape = await imageShape(frame, payload, this.options.limits, { structure: true, data: this.options.verifyImageData });
      if (shape.format !== frame.encoding || shape.width !== frame.width || shape.height !== frame.height) {
        throw new MmadError(
          ErrorCode.FRAME_SHAPE,
          `${frame.modality} payload is a ${shape.width}×${shape.height} ${shape.format}, the frame declares a ${frame.width}×${frame.height} ${frame.encoding}`,
        );
      }
    }
    return {
      sampleId: frame.sampleId,
      modality: frame.modality,
      captureTime: t,
      arrivedAt,
      // what the frame holds: the record (kept for a dead letter), its key, and the payload when it is not a view into the record
      bytes: value.length + (key?.length ?? 0) + (payload.buffer === value.buffer ? 0 : payload.length),
      expectedModalities: frame.expectedModalities === null ? null : frame.expectedModalities.filter((m) => m !== 'unknown'),
      source: { topic, partition, offset: message.offset },
      payload: { frame: headerOf(frame), payload, raw: value, key, timestamp: Number(message.timestamp), ...traceContextOf(message) },
    };
  }

  private async payloadOf(frame: Frame, budgetBytes: number): Promise<Buffer> {
    if (frame.payload !== null && frame.payloadRef === null) return frame.payload;
    if (frame.payload === null && frame.payloadRef !== null) return await this.claims.read(frame.payloadRef, budgetBytes);
    throw new MmadError(ErrorCode.FRAME_INVALID, 'exactly one of payload and payloadRef must be set');
  }

  private keyProblem(keyBytes: Buffer | null, frame: Frame, partition: number): MmadError | undefined {
    const problem = (message: string): MmadError => new MmadError(ErrorCode.FRAME_KEY_MISMATCH, message, { details: { sampleId: frame.sampleId, partition } });
    const key = keyBytes?.toString('utf8') ?? null;
    if (key !== frame.sampleId) return problem(`record key ${key === null ? '(none)' : JSON.stringify(key.slice(0, 80))} is not the sample id ${JSON.stringify(frame.sampleId.slice(0, 80))}`);
    const expected = partitionFor(key, this.options.partitions);
    if (expected !== partition) return problem(`key ${JSON.stringify(key.slice(0, 80))} hashes to partition ${expected}, but the frame was read from partition ${partition}: its producer does not use the default key partitioner`);
    return undefined;
  }
}

/** The longest prefix of `s` within `maxBytes` bytes of UTF-8 (never splitting a character). */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  let out = '';
  let n = 0;
  for (const ch of s) {
    n += Buffer.byteLength(ch, 'utf8');
    if (n > maxBytes) break;
    out += ch;
  }
  return out;
}

/** The header of a decoded frame, without its payload (the decoded record's own copy of it is left to the collector). */
function headerOf(f: Frame): FrameHeader {
  return { line: f.line, station: f.station, modality: f.modality, encoding: f.encoding, width: f.width, height: f.height, channels: f.channels, dtype: f.dtype, volume: f.volume };
}

/**
 * avsc copies `bytes` fields out of the record; the service keeps the record
 * (for a dead letter) and the payload, so the payload is made a view into the
 * record instead of a second copy. The payload sits near the end of a Frame
 * record (only a few small fields follow it), so the search is short.
 */
function viewInto(record: Buffer, payload: Buffer): Buffer {
  const n = payload.length;
  if (n < 64 || n > record.length) return payload;
  const from = Math.max(0, record.length - n - 65_536);
  for (let at = record.indexOf(payload.subarray(0, 64), from); at >= 0 && at + n <= record.length; at = record.indexOf(payload.subarray(0, 64), at + 1)) {
    const view = record.subarray(at, at + n);
    if (view.equals(payload)) return view;
  }
  return payload;
}

/** The record's traceparent/tracestate headers (first value of each), when present and not absurdly long. */
function traceContextOf(message: KafkaMessage): { traceContext?: TraceContextHeaders } {
  const one = (v: Buffer | string | (Buffer | string)[] | undefined): string | undefined => {
    const x = Array.isArray(v) ? v[0] : v;
    if (x === undefined) return undefined;
    const s = x.toString();
    return s.length > 0 && s.length <= 512 ? s : undefined;
  };
  const traceparent = one(message.headers?.traceparent);
  if (traceparent === undefined) return {};
  const tracestate = one(message.headers?.tracestate);
  return { traceContext: tracestate === undefined ? { traceparent } : { traceparent, tracestate } };
}
