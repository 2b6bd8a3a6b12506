/**
 * The one error type of the service. Every failure that crosses a module
 * boundary is an `MmadError` with a stable `code` (what operators grep for and
 * what dead letters carry as their reason), a `retriable` flag, and the
 * underlying `cause`.
 *
 * `retriable` is set only where a caller acts on it (`isRetriable()`): the same
 * request may succeed later, so the caller waits and tries again instead of
 * failing or dead-lettering. Today that is a schema registry that does not
 * answer: the frame reader defers the record, read again after the registry's
 * backoff. Loops that retry whatever fails (start-up against the broker, a task
 * started or rebuilt from Kafka) do not read it, and their errors do not set it.
 */
export const ErrorCode = {
  /** The configuration failed validation; `details.issues` names each bad path. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** A configuration file could not be read or parsed. */
  CONFIG_UNREADABLE: 'CONFIG_UNREADABLE',

  /** Bytes do not start with a known Avro framing (single-object marker or Confluent magic byte). */
  CODEC_BAD_MAGIC: 'CODEC_BAD_MAGIC',
  /** The writer schema's fingerprint or registry id is not known to this service. */
  CODEC_UNKNOWN_SCHEMA: 'CODEC_UNKNOWN_SCHEMA',
  /** The record ended before the writer schema said it would. */
  CODEC_TRUNCATED: 'CODEC_TRUNCATED',
  /** The bytes are not a valid record of the writer schema (bad union index, trailing bytes, ...). */
  CODEC_INVALID: 'CODEC_INVALID',
  /** A value handed to the encoder does not conform to the schema. */
  CODEC_ENCODE_FAILED: 'CODEC_ENCODE_FAILED',
  /** The schema registry could not be reached or refused a request. */
  SCHEMA_REGISTRY_FAILED: 'SCHEMA_REGISTRY_FAILED',

  /** No broker could be reached (after retries). */
  BROKER_UNAVAILABLE: 'BROKER_UNAVAILABLE',
  /** The embedded broker could not be fetched, formatted or started. */
  BROKER_START_FAILED: 'BROKER_START_FAILED',
  /** Input topics do not share one partition count, so a sample's frames cannot meet in one task. */
  TOPIC_PARTITION_MISMATCH: 'TOPIC_PARTITION_MISMATCH',
  /** A topic the service reads or writes does not exist (deleted while it ran). */
  TOPIC_MISSING: 'TOPIC_MISSING',
  /** Topic creation or inspection failed. */
  TOPIC_ADMIN_FAILED: 'TOPIC_ADMIN_FAILED',
  /** A task's sink was given up (the task failed, moved or stopped) and refuses what was still queued for it: writing it would start a new transaction, committing it would commit offsets past aborted records. Not a broker problem, and never retried: the task is gone or rebuilt with a new sink. */
  TASK_CLOSED: 'TASK_CLOSED',

  /** The model manifest is unreadable, does not match its schema, or lacks what the configuration needs (a fitted distribution for inference.threshold.falseAlarmRate). */
  MODEL_INVALID: 'MODEL_INVALID',
  /** A model file the manifest names does not exist. */
  MODEL_MISSING: 'MODEL_MISSING',
  /** A model file's size or SHA-256 differs from the manifest. */
  MODEL_CHECKSUM: 'MODEL_CHECKSUM',
  /** A model's graph inputs/outputs differ from the manifest. */
  MODEL_SIGNATURE: 'MODEL_SIGNATURE',
  /** No model covers the modalities a sample has. */
  MODEL_NOT_AVAILABLE: 'MODEL_NOT_AVAILABLE',
  /** The inference run failed. */
  INFERENCE_FAILED: 'INFERENCE_FAILED',

  /** A frame's payload cannot be decoded (corrupt PNG/TIFF, NaN points...). */
  FRAME_CORRUPT: 'FRAME_CORRUPT',
  /** A frame's declared or decoded size, channels or sample type is not what its modality needs. */
  FRAME_SHAPE: 'FRAME_SHAPE',
  /** A frame field is unusable (empty or oversized sample id, absurd capture time, payload and reference both or neither set). */
  FRAME_INVALID: 'FRAME_INVALID',
  /** The frame's modality is not one this line joins, or not the modality of the topic it came from. */
  FRAME_UNKNOWN_MODALITY: 'FRAME_UNKNOWN_MODALITY',
  /** The record key is not the sample id, or does not hash to the partition it was read from (reported and counted; the frame is still joined). */
  FRAME_KEY_MISMATCH: 'FRAME_KEY_MISMATCH',
  /** A claim-check payload reference does not resolve (missing, wrong size or checksum). */
  FRAME_PAYLOAD_UNRESOLVED: 'FRAME_PAYLOAD_UNRESOLVED',
  /** The frame's capture time leads the time its record reached the broker (or the service's clock) by more than input.maxClockLeadMs, or lags it by more than input.maxClockLagMs. */
  FRAME_CLOCK_SKEW: 'FRAME_CLOCK_SKEW',
  /** Frames of one sample do not agree (e.g. different image sizes). */
  FRAME_INCONSISTENT: 'FRAME_INCONSISTENT',
  /** The frame came after its sample was closed, or later than the longest wait plus grace. */
  JOIN_TOO_LATE: 'JOIN_TOO_LATE',

  /** An image or point-cloud payload (PNG, TIFF) is malformed or not of the expected kind. */
  IMAGE_INVALID: 'IMAGE_INVALID',
  /** A dataset folder does not follow the MVTec 3D-AD layout, or a sample in it is unusable. */
  DATASET_INVALID: 'DATASET_INVALID',

  /** The operations server (/metrics, /healthz, /readyz) could not listen on its port, or an exporter could not start. */
  TELEMETRY_FAILED: 'TELEMETRY_FAILED',

  /** A command-line invocation was wrong. */
  USAGE: 'USAGE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface MmadErrorOptions {
  cause?: unknown;
  retriable?: boolean;
  details?: Record<string, unknown>;
}

export class MmadError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: MmadErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MmadError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.details = options.details ?? {};
  }

  /** One line for logs: code, message, and the chain of causes. */
  describe(): string {
    const parts = [`[${this.code}] ${this.message}`];
    let cause: unknown = this.cause;
    while (cause instanceof Error) {
      parts.push(`caused by: ${cause.message}`);
      cause = cause.cause;
    }
    return parts.join('; ');
  }
}

export function isMmadError(err: unknown, code?: ErrorCode): err is MmadError {
  return err instanceof MmadError && (code === undefined || err.code === code);
}

/**
 * Whether trying the same request again later may succeed: an `MmadError` with
 * `retriable` set. The one test a caller that waits and retries on a failure
 * makes; anything else (a third-party error included) is not retriable here.
 */
export function isRetriable(err: unknown): err is MmadError & { readonly retriable: true } {
  return err instanceof MmadError && err.retriable;
}

/** Message of any thrown value, for wrapping third-party errors. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
