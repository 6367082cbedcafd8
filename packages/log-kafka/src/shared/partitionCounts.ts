/**
 * Partition counts of a log's topics, looked up once each: Kafka topics are never shrunk, and
 * twinlog never grows them.
 */
import { assertPartitionOf, topicNotFound } from './checks.ts';

export interface PartitionCounts {
  /** The partition count of `topic` (the port's name). @throws TwinlogError `LOG_TOPIC_NOT_FOUND`. */
  partitionCount(topic: string): Promise<number>;
  /** `partitionCount(topic)`, once `partition` is checked to be one of them. @throws TwinlogError `LOG_ARGUMENT_INVALID`, `LOG_TOPIC_NOT_FOUND`. */
  assertPartition(topic: string, partition: number): Promise<number>;
  /** The count of Kafka topic `name` when known already. */
  cached(name: string): number | undefined;
}

/**
 * @param physical the Kafka name of a topic of the port.
 * @param assertOpen throws when the log is closed (checked on every call).
 * @param fetch the partition count of Kafka topic `name` from the cluster, 0 when it does not exist.
 */
export function partitionCounts(
  physical: (topic: string) => string,
  assertOpen: () => void,
  fetch: (name: string) => Promise<number>,
): PartitionCounts {
  const counts = new Map<string, number>();
  const partitionCount = async (topic: string): Promise<number> => {
    assertOpen();
    const name = physical(topic);
    const cached = counts.get(name);
    if (cached !== undefined) return cached;
    const count = await fetch(name);
    if (count === 0) throw topicNotFound(topic, name);
    counts.set(name, count);
    return count;
  };
  return {
    partitionCount,
    assertPartition: async (topic, partition) => {
      const count = await partitionCount(topic);
      assertPartitionOf(topic, partition, count);
      return count;
    },
    cached: (name) => counts.get(name),
  };
}
