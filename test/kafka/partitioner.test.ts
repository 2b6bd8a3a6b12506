import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Partitioners } from 'kafkajs';
import { murmur2, partitionFor } from '../../src/kafka/partitioner.js';

test("murmur2 gives the Java client's values (Kafka's own test vectors)", () => {
  const vectors: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [key, hash] of vectors) assert.equal(murmur2(Buffer.from(key)), hash, key);
});

test("partitionFor agrees with kafkajs' Java-compatible partitioner on every key, and is in range", () => {
  const kafkajs = Partitioners.DefaultPartitioner();
  for (const partitions of [1, 3, 6, 7, 64]) {
    const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
    for (let i = 0; i < 2000; i++) {
      const key = `line-1-${i.toString(36)}-${'ü'.repeat(i % 4)}${i}`;
      const ours = partitionFor(key, partitions);
      assert.ok(ours >= 0 && ours < partitions);
      const theirs = kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } });
      assert.equal(ours, theirs, `key ${key} over ${partitions} partitions`);
    }
  }
  assert.equal(partitionFor(Buffer.from('S-1'), 6), partitionFor('S-1', 6), 'string keys are their UTF-8 bytes');
  assert.throws(() => partitionFor('S-1', 0), /positive integer/);
});
