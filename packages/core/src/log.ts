/**
 * The `Log` port: the few operations twinlog needs from a partitioned, durable log. Kafka
 * (`@twinlog/log-kafka`) and the embedded SQLite log (`@twinlog/log-embedded`) implement it, and
 * every implementation must pass `runLogAcceptanceSuite` (`@twinlog/core/testing`).
 *
 * Semantics every adapter guarantees:
 * - **Topics** have a fixed partition count; records are keyed by a string (the device id) and go to
 *   `partitionFor(key, count)` (murmur2 of the UTF-8 key, as Java's and kafkajs's default
 *   partitioner) unless the record names a partition. Order is kept within a partition.
 * - **Offsets** are per partition, start at 0 and grow by at least 1 per record (Kafka's transaction
 *   markers take offsets too, so gaps may occur). `endOffsets` gives the next offset to be
 *   written. Offsets are JS numbers (safe integers).
 * - **Timestamps** are the log's append time in ms (Kafka topics are created with
 *   `message.timestamp.type=LogAppendTime`), so stamp-skew checks are a function of the record.
 * - **Committed offsets** of a consumer group are the next offset to read, per partition.
 * - **`commitBatch` is atomic**: its appends become visible and its offsets committed together, or
 *   none of it. Two writers using the same `fence` cannot both commit: the newer one fences the
 *   older (Kafka: a transactional id per input partition; embedded: one SQLite transaction).
 *   Readers see only committed records.
 * - **`subscribe` co-partitions**: all subscribed topics must have equal partition counts, and
 *   partition *i* of every topic goes to the same member of the group. Members of one group share
 *   the partitions; a member leaving or joining moves partitions, announced by `onRevoke` (before
 *   the partitions go) and `onAssign` (before the first batch of the new ones).
 */
import { utf8Encode } from './sha256.ts';

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** Compacted (keep the latest record per key) instead of time-retained. */
  readonly compacted?: boolean;
  /**
   * Kafka's `retention.ms`: records older than this (by append time) may be deleted, oldest first.
   * `-1` keeps them forever; omitted, a new topic keeps them forever and an existing topic keeps
   * its setting. Offsets are never renumbered: readers see the deleted range as a gap.
   */
  readonly retentionMs?: number;
  /**
   * Kafka's `retention.bytes`, **per partition**: the oldest records of a partition holding more
   * than this may be deleted. `-1` is no limit; omitted, as `retentionMs`. What counts as a byte is
   * the adapter's (Kafka: segment bytes; embedded: key + value + headers).
   */
  readonly retentionBytes?: number;
}

export interface AppendRecord {
  readonly key: string;
  /** `null` is a tombstone (on a compacted topic, deletes the key). */
  readonly value: Uint8Array | null;
  /** Overrides the key's partition. */
  readonly partition?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface LogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string;
  readonly value: Uint8Array | null;
  /** Append time, ms since the epoch. */
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
}

export interface AppendResult {
  readonly partition: number;
  readonly offset: number;
}

export interface TopicAppend {
  readonly topic: string;
  readonly records: readonly AppendRecord[];
}

export interface OffsetCommit {
  readonly group: string;
  readonly topic: string;
  readonly partition: number;
  /** The next offset to read. */
  readonly offset: number;
}

export interface CommitBatch {
  /** Fencing id, e.g. `projector-<group>-<partition>`: one live writer per id. */
  readonly fence: string;
  readonly appends: readonly TopicAppend[];
  readonly offsets?: readonly OffsetCommit[];
  /**
   * `false`: resolve once the commit is decided, possibly just before readers see it (on Kafka the
   * commit markers are written right after); for a writer whose next step does not read what it
   * committed (the projector). Default: the adapter's setting (Kafka: wait until visible).
   */
  readonly awaitVisibility?: boolean;
}

export interface ReadOptions {
  readonly from: number;
  /** Stop when the position reaches this offset (default: the end offset when the read starts). */
  readonly to?: number;
}

export interface Batch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly LogRecord[];
  /**
   * How many offsets of the partition followed this batch when it was fetched (the end offset
   * minus the offset after the batch's last record), when the log can tell. A hint that more is
   * waiting, not a promise: on Kafka transaction markers take offsets too, so a partition read to
   * its end may show a small lag.
   */
  readonly lag?: number;
}

export interface SubscribeOptions {
  readonly group: string;
  readonly topics: readonly string[];
  /** Called with the newly assigned partition indexes, before any batch of them. */
  readonly onAssign?: (partitions: readonly number[]) => Promise<void>;
  /** Called with the partition indexes being taken away, before they go. */
  readonly onRevoke?: (partitions: readonly number[]) => Promise<void>;
  /**
   * One batch of one partition of one topic, in offset order. Offsets are not committed
   * automatically: commit through `commitBatch` (or `commitOffsets`). Throwing stops the subscription.
   */
  readonly eachBatch: (batch: Batch) => Promise<void>;
  /**
   * How many batches of different partitions may be in `eachBatch` at once (default: the log's own
   * setting, 1 unless configured). Above 1, batches of different partitions, and of partition *i*
   * of different topics, may overlap; batches of one partition of one topic never do. A log may run
   * fewer at once than asked.
   */
  readonly concurrency?: number;
}

export interface Subscription {
  /** Leave the group and stop consuming; resolves when no batch is running. */
  stop(): Promise<void>;
}

export interface Log {
  /**
   * Create missing topics. Existing ones keep their partitions and compaction; the retention a
   * spec states may be applied to them (the embedded log does; Kafka leaves topic configs of
   * existing topics to the operator).
   */
  ensureTopics(specs: readonly TopicSpec[]): Promise<void>;
  partitionCount(topic: string): Promise<number>;
  /** Append records (idempotently: a retried call never duplicates) and return where each landed. */
  append(topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]>;
  /** Atomically append to several topics and commit group offsets (see the module comment). */
  commitBatch(batch: CommitBatch): Promise<void>;
  /** Commit group offsets alone. */
  commitOffsets(offsets: readonly OffsetCommit[]): Promise<void>;
  /** Committed offset per partition of `topic` for `group` (`undefined` where none). */
  committedOffsets(group: string, topic: string): Promise<(number | undefined)[]>;
  /** Next offset to be written, per partition. */
  endOffsets(topic: string): Promise<number[]>;
  /** Read one partition from `from` until the position reaches `to`, in batches. */
  read(topic: string, partition: number, options: ReadOptions): AsyncIterable<readonly LogRecord[]>;
  /** Consume as a member of a group, with co-partitioned assignment. */
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/**
 * The partition of a key among `count` partitions: `(murmur2(utf8(key)) & 0x7fffffff) % count`,
 * exactly as Kafka's Java client and kafkajs's default partitioner place keyed records.
 */
export function partitionFor(key: string, count: number): number {
  return (murmur2(utf8Encode(key)) & 0x7fffffff) % count;
}

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`, seed 0x9747b28c) of a byte string, as a
 * signed 32-bit integer.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const r = 24;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4]! & 0xff) |
      ((data[i4 + 1]! & 0xff) << 8) |
      ((data[i4 + 2]! & 0xff) << 16) |
      ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length4 * 4;
  const rest = length % 4;
  if (rest === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
