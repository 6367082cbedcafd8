/**
 * One fetch round over a set of partitions, straight on the Fetch API of a @platformatic/kafka
 * `Consumer` (`consumer.fetch`, one request per partition leader, all leaders at once), at
 * READ_COMMITTED. Subscriptions and reads both use it, so neither goes through the client's
 * message stream: a response arrives as whole record batches per partition (the port's `Batch`),
 * positions are the adapter's own, and nothing is buffered beyond one round.
 */
import { FetchIsolationLevels, type Consumer, type RecordsBatch } from '@platformatic/kafka';
import type { AbortedTransaction } from './records.ts';

export interface FetchTuning {
  readonly maxWaitTime: number;
  readonly maxBytes: number;
  readonly maxBytesPerPartition: number;
}

export interface PartitionRequest {
  /** Physical topic name. */
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export interface PartitionResult {
  readonly topic: string;
  readonly partition: number;
  readonly batches: readonly RecordsBatch[] | undefined;
  readonly aborted: readonly AbortedTransaction[];
  readonly logStartOffset: number;
  readonly lastStableOffset: number;
}

export const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/**
 * Fetches every requested partition once. Rejects with the client's error when any leader's
 * request failed (a partition-level error fails its whole request, as the client reports it).
 */
export async function fetchPartitions(
  consumer: Consumer,
  requests: readonly PartitionRequest[],
  tuning: FetchTuning,
): Promise<PartitionResult[]> {
  if (requests.length === 0) return [];
  const topics = [...new Set(requests.map((r) => r.topic))];
  const metadata = await consumer.metadata({ topics });
  const byLeader = new Map<number, Map<string, PartitionRequest[]>>();
  const names = new Map<string, string>();
  for (const r of requests) {
    const topic = metadata.topics.get(r.topic);
    const leader = topic?.partitions[r.partition]?.leader;
    if (topic === undefined || leader === undefined || leader < 0) {
      consumer.clearMetadata();
      throw Object.assign(new Error(`twinlog: no leader known for ${r.topic}[${r.partition}]`), {
        code: 'PLT_KFK_NETWORK',
      });
    }
    names.set(topic.id, r.topic);
    const perTopic = byLeader.get(leader) ?? new Map<string, PartitionRequest[]>();
    byLeader.set(leader, perTopic);
    perTopic.set(topic.id, [...(perTopic.get(topic.id) ?? []), r]);
  }
  const responses = await Promise.all(
    [...byLeader].map(([node, perTopic]) =>
      consumer.fetch({
        node,
        maxWaitTime: tuning.maxWaitTime,
        minBytes: 1,
        maxBytes: tuning.maxBytes,
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        topics: [...perTopic].map(([topicId, parts]) => ({
          topicId,
          partitions: parts.map((p) => ({
            partition: p.partition,
            fetchOffset: BigInt(p.offset),
            partitionMaxBytes: tuning.maxBytesPerPartition,
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
          })),
        })),
      }),
    ),
  );
  const out: PartitionResult[] = [];
  for (const response of responses) {
    for (const t of response.responses) {
      const topic = names.get(t.topicId);
      if (topic === undefined) continue;
      for (const p of t.partitions) {
        out.push({
          topic,
          partition: p.partitionIndex,
          batches: p.records,
          aborted: p.abortedTransactions,
          logStartOffset: Number(p.logStartOffset),
          lastStableOffset: Number(p.lastStableOffset),
        });
      }
    }
  }
  return out;
}
