/**
 * The partition assigner that keeps co-partitioned topics together: partition *i* of every
 * subscribed topic goes to the same member of the group (docs/architecture.md, "Co-partitioning"). kafkajs ships only a
 * round-robin assigner, which splits partition *i* of two topics across members whenever the
 * partition count is not a multiple of the member count.
 */
import kafkajs, { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

// kafkajs is CommonJS and spreads its error classes into `module.exports`, which Node's ESM loader
// cannot see as named exports: take them from the default export.
const { KafkaJSNonRetriableError } = kafkajs;

/** The protocol name members announce; a member without this assigner cannot join the group. */
export const CO_PARTITIONED_ASSIGNER_NAME = 'TwinlogCoPartitioned';

/**
 * A kafkajs `PartitionAssigner` that deals partition indexes round-robin over the members (sorted by
 * member id) and gives each member the same indexes of every subscribed topic.
 *
 * Use it as the only assigner (`partitionAssigners: [coPartitionedAssigner]`): listing kafkajs's
 * round-robin assigner beside it would let a mixed group silently fall back to round robin.
 *
 * Gotchas: the assignment is not sticky (every rebalance recomputes it from the sorted member
 * ids), and it is eager, like every kafkajs assigner: all members rejoin on each rebalance.
 *
 * @example
 * const consumer = kafka.consumer({ groupId, partitionAssigners: [coPartitionedAssigner] });
 * @throws KafkaJSNonRetriableError (in the group leader, failing the join) when the subscribed
 *   topics differ in partition count, or when one of them has no partitions in the metadata.
 */
export const coPartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: CO_PARTITIONED_ASSIGNER_NAME,
  version: 0,
  async assign({ members, topics }) {
    const counts = new Set(topics.map((t) => cluster.findTopicPartitionMetadata(t).length));
    if (counts.size !== 1) {
      throw new KafkaJSNonRetriableError(
        `co-partitioned topics differ in partition count: ${topics
          .map((t) => `${t} (${cluster.findTopicPartitionMetadata(t).length})`)
          .join(', ')}`,
      );
    }
    const [partitionCount = 0] = counts;
    if (partitionCount === 0) throw new KafkaJSNonRetriableError(`no partition metadata for ${topics.join(', ')}`);
    const ids = members.map((m) => m.memberId).sort();
    const plan = new Map(ids.map((id): [string, Record<string, number[]>] => [id, {}]));
    for (let p = 0; p < partitionCount; p++) {
      const owned = plan.get(ids[p % ids.length]!)!;
      for (const topic of topics) (owned[topic] ??= []).push(p);
    }
    return [...plan].map(([memberId, assignment]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return {
      name: CO_PARTITIONED_ASSIGNER_NAME,
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    };
  },
});
