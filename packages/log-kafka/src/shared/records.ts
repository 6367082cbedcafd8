/**
 * Record placement and request sizing, the same for every Kafka client: which partition a record
 * goes to, its rough wire size, and splitting a request below the broker's `message.max.bytes`.
 */
import { TwinlogError, type AppendRecord } from '@twinlog/core';

/** Per-record overhead of the v2 record format, rounded up (varints, attributes, deltas). */
export const RECORD_OVERHEAD = 32;
/** Per-header overhead of the v2 record format, rounded up. */
export const HEADER_OVERHEAD = 8;

/** `bytes` as a `Buffer` over the same memory (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The partition of record `index` of `records` of `topic` (the port's name), which has
 * `partitionCount` partitions: the record's own, else `partitionOf(key)`.
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when a record names a partition outside
 *   `[0, partitionCount)`.
 */
export function recordPartition(
  topic: string,
  record: AppendRecord,
  index: number,
  partitionCount: number,
  partitionOf: (key: string) => number,
): number {
  const partition = record.partition ?? partitionOf(record.key);
  if (!Number.isInteger(partition) || partition < 0 || partition >= partitionCount) {
    throw new TwinlogError(
      'LOG_ARGUMENT_INVALID',
      `partition ${partition} of record ${index} is outside ${topic}'s ${partitionCount} partitions`,
      {
        details: { topic, partition, partitions: partitionCount },
      },
    );
  }
  return partition;
}

/** Splits `items` into runs whose summed `size` stays below `maxBytes` (a run has at least one item). */
export function chunkBySize<T extends { readonly size: number }>(items: readonly T[], maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && bytes + item.size > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
