/**
 * Input stage: a Kafka record of an input topic → a frame the join can take,
 * or the precise reason it cannot be used (which becomes a dead letter).
 *
 * Checks, cheapest first: a value is present; it decodes as a Frame (Avro);
 * the sample id is usable; the modality is the topic's; the declared size,
 * channels and sample type fit the modality and the pixel limit; exactly one
 * of payload and payload reference is set, and a reference resolves (inside
 * an allowed directory, with the declared size and checksum); the encoded
 * image's header agrees with the declared size. The key is compared with the
 * sample id and the partition its hash gives: a mismatch is reported
 * (counted, logged) but the frame is still joined, since all modalities of a
 * sample may have been mis-partitioned alike.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KafkaMessage } from 'kafkajs';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { Frame, Modality } from '../codec/records.js';
import { fromRoot } from '../config/paths.js';
import { ErrorCode, MmadError, isMmadError, messageOf } from '../errors/errors.js';
import { checkDeclared, imageShape, type DecodeLimits } from '../inference/preprocess.js';
import type { JoinInput } from '../join/sample-joiner.js';
import { partitionFor } from '../kafka/partitioner.js';

/**
 * The fields of a decoded frame that are read after the input stage (judging,
 * events): its header, without the payload (which is `FramePayload.payload`)
 * or anything else the record carries.
 */
export type FrameHeader = Pick<Frame, 'line' | 'station' | 'modality' | 'encoding' | 'width' | 'height' | 'channels' | 'dtype'>;

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

export type ReadResult =
  | { ok: true; input: JoinInput<FramePayload>; keyProblem?: string }
  | {
      ok: false;
      code: string;
      message: string;
      sampleId: string | null;
      modality: string | null;
      /** The record as read, for its dead letter. */
      record: { key: Buffer | null; value: Buffer; timestamp: number };
    };

export interface FrameReaderOptions {
  /** Input topic → the modality it carries. */
  topics: Map<string, Modality>;
  partitions: number;
  limits: DecodeLimits;
  claimCheckRoots: string[];
  maxSampleIdBytes: number;
}

export class FrameReader {
  private readonly roots: string[];

  constructor(
    private readonly codec: AvroCodec<'Frame'>,
    private readonly options: FrameReaderOptions,
  ) {
    this.roots = options.claimCheckRoots.map((r) => resolve(fromRoot(r)));
  }

  async read(topic: string, partition: number, message: KafkaMessage, arrivedAt: number): Promise<ReadResult> {
    // kafkajs hands out views into the fetch response; what is kept (for the join, or a dead letter) is copied out of it
    const value = message.value === null ? null : Buffer.from(message.value);
    const key = message.key == null ? null : Buffer.from(message.key);
    let frame: Frame | undefined;
    try {
      if (value === null || value.length === 0) {
        throw new MmadError(ErrorCode.FRAME_INVALID, 'record has no value (a tombstone or an empty record)');
      }
      frame = await this.codec.decode(value);
      const input = await this.check(topic, partition, frame, { value, key, message }, arrivedAt);
      const keyProblem = this.keyProblem(key, frame, partition);
      return keyProblem === undefined ? { ok: true, input } : { ok: true, input, keyProblem };
    } catch (err) {
      const code = isMmadError(err) ? err.code : ErrorCode.FRAME_INVALID;
      return {
        ok: false,
        code,
        message: messageOf(err),
        sampleId: frame === undefined ? null : frame.sampleId.slice(0, this.options.maxSampleIdBytes),
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
  ): Promise<JoinInput<FramePayload>> {
    const { value, key, message } = record;
    const idBytes = Buffer.byteLength(frame.sampleId, 'utf8');
    if (idBytes === 0 || idBytes > this.options.maxSampleIdBytes) {
      throw new MmadError(ErrorCode.FRAME_INVALID, `sample id of ${idBytes} bytes (allowed 1..${this.options.maxSampleIdBytes})`);
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
    checkDeclared(frame, this.options.limits);
    // avsc decodes `bytes` into a copy: the payload kept is the same bytes inside the record instead
    const payload = viewInto(value, await this.payloadOf(frame));
    if (frame.encoding !== 'raw') {
      const shape = await imageShape(frame, payload, this.options.limits, { structure: true });
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
      expectedModalities: frame.expectedModalities === null ? null : (frame.expectedModalities.filter((m) => m !== 'unknown') as Modality[]),
      source: { topic, partition, offset: message.offset },
      payload: { frame: headerOf(frame), payload, raw: value, key, timestamp: Number(message.timestamp), ...traceContextOf(message) },
    };
  }

  private async payloadOf(frame: Frame): Promise<Buffer> {
    if ((frame.payload === null) === (frame.payloadRef === null)) {
      throw new MmadError(ErrorCode.FRAME_INVALID, 'exactly one of payload and payloadRef must be set');
    }
    if (frame.payload !== null) return frame.payload;
    const ref = frame.payloadRef!;
    const fail = (why: string, cause?: unknown): MmadError =>
      new MmadError(ErrorCode.FRAME_PAYLOAD_UNRESOLVED, `payload reference ${ref.uri.slice(0, 300)}: ${why}`, { cause });
    let path: string;
    try {
      const url = new URL(ref.uri);
      if (url.protocol !== 'file:') throw fail(`scheme ${url.protocol} is not supported (file:// only)`);
      path = resolve(fileURLToPath(url));
    } catch (err) {
      throw isMmadError(err) ? err : fail('not a valid URI', err);
    }
    const inside = this.roots.some((root) => {
      const rel = relative(root, path);
      return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
    });
    if (!inside) throw fail(this.roots.length === 0 ? 'claim-check references are disabled (input.claimCheckRoots is empty)' : 'points outside input.claimCheckRoots');
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      throw fail('file not found', err);
    }
    if (size !== ref.sizeBytes) throw fail(`file has ${size} bytes, the reference says ${ref.sizeBytes}`);
    if (size > this.options.limits.maxPixels * 16) throw fail(`file of ${size} bytes is larger than any frame within the pixel limit`);
    const bytes = await readFile(path);
    if (ref.sha256 !== null) {
      const digest = createHash('sha256').update(bytes).digest('hex');
      if (digest !== ref.sha256.toLowerCase()) throw fail(`SHA-256 is ${digest}, the reference says ${ref.sha256}`);
    }
    return bytes;
  }

  private keyProblem(keyBytes: Buffer | null, frame: Frame, partition: number): string | undefined {
    const key = keyBytes?.toString('utf8') ?? null;
    if (key !== frame.sampleId) return `record key ${key === null ? '(none)' : JSON.stringify(key.slice(0, 80))} is not the sample id ${JSON.stringify(frame.sampleId.slice(0, 80))}`;
    const expected = partitionFor(key, this.options.partitions);
    if (expected !== partition) return `key ${JSON.stringify(key.slice(0, 80))} hashes to partition ${expected}, but the frame was read from partition ${partition}: its producer does not use the default key partitioner`;
    return undefined;
  }
}

/** The header of a decoded frame, without its payload (the decoded record's own copy of it is left to the collector). */
function headerOf(f: Frame): FrameHeader {
  return { line: f.line, station: f.station, modality: f.modality, encoding: f.encoding, width: f.width, height: f.height, channels: f.channels, dtype: f.dtype };
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
