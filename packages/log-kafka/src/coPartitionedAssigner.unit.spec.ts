import fc from 'fast-check';
import { AssignerProtocol, type Cluster, type GroupMember, type Logger } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { CO_PARTITIONED_ASSIGNER_NAME, coPartitionedAssigner } from './coPartitionedAssigner.ts';

/** Just enough of kafkajs's `Cluster` for an assigner: partition metadata per topic. */
function fakeCluster(counts: Record<string, number>): Cluster {
  return {
    findTopicPartitionMetadata: (topic: string) =>
      Array.from({ length: counts[topic] ?? 0 }, (_, partitionId) => ({
        partitionId,
        leader: 1,
        partitionErrorCode: 0,
        replicas: [1],
        isr: [1],
      })),
  } as unknown as Cluster;
}

const members = (ids: readonly string[]): GroupMember[] =>
  ids.map((memberId) => ({ memberId, memberMetadata: Buffer.alloc(0) }));

async function plan(
  counts: Record<string, number>,
  ids: readonly string[],
): Promise<Map<string, Record<string, number[]>>> {
  const assigner = coPartitionedAssigner({ cluster: fakeCluster(counts), groupId: 'g', logger: {} as Logger });
  const out = await assigner.assign({ members: members(ids), topics: Object.keys(counts) });
  return new Map(
    out.map(({ memberId, memberAssignment }) => [
      memberId,
      AssignerProtocol.MemberAssignment.decode(memberAssignment)!.assignment,
    ]),
  );
}

describe('coPartitionedAssigner', () => {
  it('gives partition i of every topic to one member, each partition exactly once, balanced (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 24 }),
        fc.uniqueArray(fc.stringMatching(/^[a-z]{1,6}$/), { minLength: 1, maxLength: 3 }),
        async (ids, partitions, topics) => {
          const result = await plan(Object.fromEntries(topics.map((t) => [t, partitions])), ids);
          expect([...result.keys()].sort()).toEqual([...ids].sort());
          const owners = new Map<number, string>();
          const sizes: number[] = [];
          for (const [member, assignment] of result) {
            const sets = topics.map((t) => JSON.stringify(assignment[t] ?? []));
            expect(new Set(sets).size).toBe(1); // the same indexes of every topic
            const mine = assignment[topics[0]!] ?? [];
            sizes.push(mine.length);
            for (const p of mine) {
              expect(owners.has(p)).toBe(false);
              owners.set(p, member);
            }
          }
          expect([...owners.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: partitions }, (_, i) => i));
          expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
        },
      ),
    );
  });

  it('is deterministic: the plan depends on the member ids, not their order', async () => {
    const a = await plan({ x: 5, y: 5 }, ['m-2', 'm-1', 'm-3']);
    const b = await plan({ x: 5, y: 5 }, ['m-3', 'm-2', 'm-1']);
    expect(Object.fromEntries(a)).toEqual(Object.fromEntries(b));
    expect(a.get('m-1')).toEqual({ x: [0, 3], y: [0, 3] });
  });

  it('fails the join, without retry, when the topics differ in partition count', async () => {
    const error = await plan({ x: 3, y: 4 }, ['m']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/differ in partition count: x \(3\), y \(4\)/);
    expect((error as { retriable?: unknown }).retriable).toBe(false);
  });

  it('announces its own protocol name, so a member without it cannot join the group', () => {
    const assigner = coPartitionedAssigner({ cluster: fakeCluster({}), groupId: 'g', logger: {} as Logger });
    const { name, metadata } = assigner.protocol({ topics: ['x', 'y'] });
    expect(name).toBe(CO_PARTITIONED_ASSIGNER_NAME);
    expect(AssignerProtocol.MemberMetadata.decode(metadata)?.topics).toEqual(['x', 'y']);
  });
});
