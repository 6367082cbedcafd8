/**
 * The port's argument checks and errors, the same for every Kafka client: what the `Log` contract
 * says is invalid is refused before anything is sent to the broker.
 */
import { TwinlogError, type OffsetCommit, type SubscribeOptions, type TopicSpec } from '@twinlog/core';

/** @throws TwinlogError `LOG_ARGUMENT_INVALID` unless `n` is a non-negative safe integer. */
export function assertOffset(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new TwinlogError('LOG_ARGUMENT_INVALID', `${what} must be a non-negative safe integer, got ${n}`, {
      details: { value: n },
    });
  }
}

/** @throws TwinlogError `LOG_ARGUMENT_INVALID` unless `partition` is one of the `count` partitions of `topic`. */
export function assertPartitionOf(topic: string, partition: number, count: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
    throw new TwinlogError(
      'LOG_ARGUMENT_INVALID',
      `partition ${partition} does not exist: topic '${topic}' has ${count} partitions`,
      {
        details: { topic, partition, partitions: count },
      },
    );
  }
}

/** The error of a topic that does not exist (`name`: its Kafka name). */
export const topicNotFound = (topic: string, name: string): TwinlogError =>
  new TwinlogError('LOG_TOPIC_NOT_FOUND', `twinlog: topic '${topic}' does not exist (Kafka topic '${name}')`, {
    details: { topic },
  });

/** The error of a `commitBatch` whose fence a newer writer took. */
export const fencedError = (fence: string, cause?: unknown): TwinlogError =>
  new TwinlogError('LOG_FENCED', `twinlog: a newer writer took over fence '${fence}'; this batch was not committed`, {
    ...(cause === undefined ? {} : { cause }),
    details: { fence },
  });

/**
 * `specs` by Kafka name (`physical`), the first of each name kept.
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when a spec has no positive whole number of partitions.
 */
export function uniqueTopicSpecs(
  specs: readonly TopicSpec[],
  physical: (name: string) => string,
): Map<string, TopicSpec> {
  const unique = new Map<string, TopicSpec>();
  for (const spec of specs) {
    if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
      throw new TwinlogError(
        'LOG_ARGUMENT_INVALID',
        `topic '${spec.name}' needs a positive whole number of partitions, got ${spec.partitions}`,
      );
    }
    if (!unique.has(physical(spec.name))) unique.set(physical(spec.name), spec);
  }
  return unique;
}

/**
 * Segments of a compacted topic roll after this long or this size (the broker's defaults are 7 days
 * and 1 GiB). Kafka compacts only rolled segments, so these bound the uncompacted tail that a
 * projector's restore, the read model's rebuild or a client's `getTwin` reads past the latest
 * record of each key (docs/operations.md, "Retention").
 */
export const COMPACTED_SEGMENT_MS = 3_600_000;
export const COMPACTED_SEGMENT_BYTES = 100 * 2 ** 20;

/**
 * The configs a topic is created with: append-time timestamps, compaction (with short segments) and
 * retention as `spec` says, then `extra`'s over them.
 */
export function topicConfigOf(
  spec: TopicSpec,
  extra?: (spec: TopicSpec) => Readonly<Record<string, string>> | undefined,
): { name: string; value: string }[] {
  const config: Record<string, string> = { 'message.timestamp.type': 'LogAppendTime' };
  if (spec.compacted === true) {
    config['cleanup.policy'] = 'compact';
    config['segment.ms'] = String(COMPACTED_SEGMENT_MS);
    config['segment.bytes'] = String(COMPACTED_SEGMENT_BYTES);
  }
  if (spec.retentionMs !== undefined) config['retention.ms'] = String(spec.retentionMs);
  if (spec.retentionBytes !== undefined) config['retention.bytes'] = String(spec.retentionBytes);
  Object.assign(config, extra?.(spec));
  return Object.entries(config).map(([name, value]) => ({ name, value }));
}

/**
 * Checks a `commitBatch`'s fence and offsets (every offset's group, partition and value) before
 * the transaction starts.
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID`, or `LOG_TOPIC_NOT_FOUND` from `assertPartition`.
 */
export async function checkCommitBatch(
  fence: string,
  offsets: readonly OffsetCommit[],
  assertPartition: (topic: string, partition: number) => Promise<unknown>,
): Promise<void> {
  if (typeof fence !== 'string' || fence === '')
    throw new TwinlogError('LOG_ARGUMENT_INVALID', 'commitBatch: fence must be a non-empty string');
  for (const o of offsets) {
    if (typeof o.group !== 'string' || o.group === '')
      throw new TwinlogError('LOG_ARGUMENT_INVALID', 'commitBatch: an offset names no group');
    await assertPartition(o.topic, o.partition);
    assertOffset(`offset of ${o.group}/${o.topic}[${o.partition}]`, o.offset);
  }
}

/**
 * Checks a `subscribe`'s group, topics and concurrency, then that its topics are co-partitioned
 * (`partitionCount` of each).
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID`, `LOG_CO_PARTITIONING`, or `LOG_TOPIC_NOT_FOUND` from `partitionCount`.
 */
export async function checkSubscribe(
  subscription: SubscribeOptions,
  partitionCount: (topic: string) => Promise<number>,
): Promise<void> {
  const { group, topics, concurrency } = subscription;
  if (typeof group !== 'string' || group === '')
    throw new TwinlogError('LOG_ARGUMENT_INVALID', 'subscribe: group must be a non-empty string');
  if (topics.length === 0) throw new TwinlogError('LOG_ARGUMENT_INVALID', 'subscribe: no topics');
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
    throw new TwinlogError(
      'LOG_ARGUMENT_INVALID',
      `subscribe: concurrency must be a positive integer, got ${String(concurrency)}`,
    );
  }
  if (new Set(topics).size !== topics.length) {
    throw new TwinlogError('LOG_ARGUMENT_INVALID', `subscribe: a topic is listed twice: ${topics.join(', ')}`);
  }
  const counts = await Promise.all(topics.map(partitionCount));
  if (new Set(counts).size !== 1) {
    throw new TwinlogError(
      'LOG_CO_PARTITIONING',
      `twinlog: co-partitioned topics differ in partition count: ${topics.map((t, i) => `${t} (${counts[i]})`).join(', ')}`,
      { details: { topics, partitions: counts } },
    );
  }
}

/** @throws TwinlogError `LOG_ARGUMENT_INVALID` unless `from` (and `to`, when given) are offsets. */
export function checkReadRange(from: number, to: number | undefined): void {
  assertOffset('read: from', from);
  if (to !== undefined) assertOffset('read: to', to);
}
