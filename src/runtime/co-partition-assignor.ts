/**
 * Partition assignor that keeps a sample's frames together: every member gets
 * whole *tasks* — a partition number p with partition p of every input topic —
 * as Kafka Streams assigns tasks. kafkajs' round-robin assignor would hand the
 * rgb and ir partitions of one sample to different instances, and the join
 * would never complete.
 *
 * Tasks are spread over the members sorted by id, in contiguous ranges (member
 * i of M gets tasks ⌊i·P/M⌋ … ⌊(i+1)·P/M⌋−1), so the assignment is a pure
 * function of the group. Topics with different partition counts cannot be
 * co-partitioned: the assignment fails with TOPIC_PARTITION_MISMATCH.
 */
import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';
import { ErrorCode, MmadError } from '../base/errors.js';
import { present } from '../base/invariant.js';

export const CO_PARTITION_ASSIGNOR = 'mmad-co-partitioned';

/** Task numbers per member id, for P tasks over these members. */
export function assignTasks(memberIds: string[], partitions: number): Map<string, number[]> {
  const members = [...memberIds].sort();
  const out = new Map<string, number[]>();
  members.forEach((m, i) => {
    const from = Math.floor((i * partitions) / members.length);
    const to = Math.floor(((i + 1) * partitions) / members.length);
    const tasks: number[] = [];
    for (let p = from; p < to; p++) tasks.push(p);
    out.set(m, tasks);
  });
  return out;
}

export const coPartitionedAssignor: PartitionAssigner = ({ cluster }) => ({
  name: CO_PARTITION_ASSIGNOR,
  version: 1,
  protocol({ topics }) {
    return { name: CO_PARTITION_ASSIGNOR, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
  },
  async assign({ members, topics }) {
    const counts = topics.map((t) => [t, cluster.findTopicPartitionMetadata(t).length] as const);
    const distinct = new Set(counts.map(([, n]) => n));
    const partitions = counts[0]?.[1] ?? 0;
    if (distinct.size !== 1 || partitions === 0) {
      throw new MmadError(
        ErrorCode.TOPIC_PARTITION_MISMATCH,
        `cannot co-partition ${counts.map(([t, n]) => `${t}=${n}`).join(', ')}: input topics must share one partition count`,
      );
    }
    const tasks = assignTasks(members.map((m) => m.memberId), partitions);
    return members.map((m) => ({
      memberId: m.memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 1,
        assignment: Object.fromEntries(topics.map((t) => [t, present(tasks.get(m.memberId), `the tasks of member ${m.memberId}`)])),
        userData: Buffer.alloc(0),
      }),
    }));
  },
});
