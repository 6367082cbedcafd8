/**
 * An assigner for a one-member group that wants exactly one partition of one topic: kafkajs has no
 * manual `assign()` (tulios/kafkajs#373), so a partition reader is a consumer in a group of its own
 * whose assigner hands it just that partition.
 */
import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

export const SINGLE_PARTITION_ASSIGNER_NAME = 'TwinlogSinglePartition';

/** Gives every member (there is one) partition `partition` of `topic` and nothing else. */
export function singlePartitionAssigner(topic: string, partition: number): PartitionAssigner {
  return () => ({
    name: SINGLE_PARTITION_ASSIGNER_NAME,
    version: 0,
    async assign({ members }) {
      return members.map(({ memberId }) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: { [topic]: [partition] },
          userData: Buffer.alloc(0),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: SINGLE_PARTITION_ASSIGNER_NAME,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
      };
    },
  });
}
