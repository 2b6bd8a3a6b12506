/**
 * CRC-64-AVRO (Rabin) fingerprint, as specified by Avro for single-object
 * encoding: the fingerprint of a schema's Parsing Canonical Form names the
 * writer schema in every record.
 */
import { outOfRange } from '../base/invariant.js';

const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;

const TABLE: bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) {
    fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
  }
  return fp & MASK;
});

export function crc64Avro(data: Uint8Array): bigint {
  let fp = EMPTY;
  for (const byte of data) {
    const i = Number((fp ^ BigInt(byte)) & 0xffn);
    fp = ((fp >> 8n) ^ (TABLE[i] ?? outOfRange(TABLE, i))) & MASK;
  }
  return fp;
}

/** The 8 bytes that follow the single-object marker: the fingerprint, little-endian. */
export function fingerprintBytes(fp: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp);
  return out;
}
