/**
 * The one key partitioner of the project: Kafka's default for keyed records
 * (murmur2 of the key bytes, made positive by masking the sign bit, modulo the
 * partition count) — the same as the Java client's, librdkafka's
 * `murmur2_random` and kafkajs' DefaultPartitioner. Every producer of input
 * frames and labels chooses the partition with it explicitly, so all
 * modalities of a sample meet on the same partition number even when they are
 * written by different clients; the stream processor uses it to check keys.
 */
import { outOfRange } from '../base/invariant.js';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2): a signed 32-bit hash. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = byteAt(data, i) | (byteAt(data, i + 1) << 8) | (byteAt(data, i + 2) << 16) | (byteAt(data, i + 3) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  // the tail: up to three bytes, highest first (Java's switch falls through the cases)
  const tail = length & 3;
  if (tail > 0) {
    if (tail === 3) h ^= byteAt(data, whole + 2) << 16;
    if (tail >= 2) h ^= byteAt(data, whole + 1) << 8;
    h ^= byteAt(data, whole);
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

function byteAt(data: Uint8Array, i: number): number {
  return data[i] ?? outOfRange(data, i);
}

/** The partition of a record key among `partitions` partitions. */
export function partitionFor(key: string | Uint8Array, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partition count must be a positive integer, got ${partitions}`);
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return (murmur2(bytes) & 0x7fffffff) % partitions;
}
