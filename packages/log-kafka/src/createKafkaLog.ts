/**
 * The `Log` port on Apache Kafka, through kafkajs 2.2.4 (kafka-local.md §9). Everything
 * kafkajs-specific stays in this package; the rest of twinlog sees only `Log`.
 *
 * What goes where:
 * - `append`: one shared idempotent producer (`acks = all`), every record with an explicit partition
 *   (`partitionFor(key, n)` from core, which is murmur2 like kafkajs's and Java's default
 *   partitioner), so every adapter and every Kafka client agree where a key lives.
 * - `commitBatch`: one transactional producer per `fence` (transactional id = prefix + fence):
 *   sends, then `sendOffsets` per consumer group, then commit; a newer producer with the same id
 *   bumps the epoch, and the older one's batch fails with `LOG_FENCED`.
 * - `commitOffsets`: a transaction holding only `sendOffsets`, on a transactional id private to this
 *   `Log` instance (see {@link createKafkaLog}).
 * - `read`: a short-lived consumer in a group of its own (see `internal/readPartition.ts`).
 * - `subscribe`: a consumer with the co-partitioned assigner (see `internal/startSubscription.ts`).
 */
import { randomUUID } from 'node:crypto';
import {
  TwinlogError,
  partitionFor,
  type AppendRecord,
  type AppendResult,
  type CommitBatch,
  type Log,
  type LogRecord,
  type OffsetCommit,
  type ReadOptions,
  type SubscribeOptions,
  type TopicSpec,
} from '@twinlog/core';
import { Kafka, Partitioners, type Admin, type Producer, type RecordMetadata, type Transaction } from 'kafkajs';
import { createLogCreator, numericLevel, type KafkaLogEntry, type KafkaLogLevel } from './internal/createLogCreator.ts';
import { isCoordinatorBusyError, isFencedError, isTransientError, isUnknownTopicError } from './internal/kafkaErrors.ts';
import { KeyedMutex } from './internal/KeyedMutex.ts';
import { readPartition } from './internal/readPartition.ts';
import { chunkBySize, toOutgoingMessages, type OutgoingMessage } from './internal/records.ts';
import { startSubscription, type ConsumerTuning, type KafkaSubscription } from './internal/startSubscription.ts';

export type { KafkaLogEntry, KafkaLogLevel } from './internal/createLogCreator.ts';
export type { KafkaSubscription } from './internal/startSubscription.ts';

export interface KafkaLogOptions {
  /** Bootstrap brokers: `host:port` strings, or one comma-separated string (as in `KAFKA_BROKERS`). */
  readonly brokers: string | readonly string[];
  /** kafkajs client id (default `twinlog`). */
  readonly clientId?: string;
  /**
   * Prepended to every topic, consumer group and transactional id (default `''`), so several
   * fleets (or test runs) can share one cluster: the port's `'twin.backend'` is Kafka's
   * `${topicPrefix}twin.backend`.
   */
  readonly topicPrefix?: string;
  /** Replication factor of created topics (default: the broker count, at most 3). */
  readonly replicationFactor?: number;
  /**
   * Extra topic configs for `ensureTopics`, merged over twinlog's own
   * (`message.timestamp.type=LogAppendTime`, plus `cleanup.policy=compact` for compacted topics),
   * e.g. `segment.ms` for compaction tests.
   */
  readonly topicConfig?: (spec: TopicSpec) => Readonly<Record<string, string>> | undefined;
  /** Transaction timeout of `commitBatch` producers, ms (default 60 000; at most the broker's `transaction.max.timeout.ms`). */
  readonly transactionTimeout?: number;
  /** Consumer session timeout, ms (default 10 000; within the broker's group session bounds). */
  readonly sessionTimeout?: number;
  /** Consumer heartbeat interval, ms (default 1 000): also how soon members notice a rebalance. */
  readonly heartbeatInterval?: number;
  /** How long a rebalance waits for members to rejoin, ms (default 60 000). */
  readonly rebalanceTimeout?: number;
  /** How long a subscription's fetch waits for data, ms (default 250). */
  readonly maxWaitTimeInMs?: number;
  /** How long a `read`'s fetch waits for data, ms (default 100). */
  readonly readMaxWaitTimeInMs?: number;
  /** Fetch size limits (defaults: 16 MiB per fetch, 4 MiB per partition). */
  readonly maxBytes?: number;
  readonly maxBytesPerPartition?: number;
  /**
   * Batches of how many partitions a subscription hands over at once (default 1). Above 1, batches
   * of different partitions, and of partition *i* of different topics, may overlap.
   */
  readonly partitionsConsumedConcurrently?: number;
  /** Appends are split into produce requests of about this many bytes (default 512 KiB). */
  readonly maxRequestBytes?: number;
  /**
   * Whether `commitBatch` and `commitOffsets` resolve only once their records and offsets are
   * visible to readers (default true). Kafka acknowledges a commit once it is decided, and writes
   * the commit markers just after; until then read_committed readers and offset fetches still see
   * the old state.
   */
  readonly awaitCommitVisibility?: boolean;
  /** kafkajs log level (default `error`); entries go to `logSink`. */
  readonly logLevel?: KafkaLogLevel;
  /** Where kafkajs log entries go (default: one line each on stderr). */
  readonly logSink?: (entry: KafkaLogEntry) => void;
  /** kafkajs connection and request timeouts, ms (defaults 3 000 and 30 000). */
  readonly connectionTimeout?: number;
  readonly requestTimeout?: number;
}

/** The Kafka `Log`, with Kafka's names for things and a subscription that reports its own end. */
export interface KafkaLog extends Log {
  /** The prefix of every topic, group and transactional id this log uses. */
  readonly topicPrefix: string;
  subscribe(options: SubscribeOptions): Promise<KafkaSubscription>;
}

const VISIBILITY_TIMEOUT_MS = 30_000;

/**
 * Retries of a transactional producer. The coordinator answers the next transaction's first request
 * with CONCURRENT_TRANSACTIONS until it has finished the previous commit, a few milliseconds after
 * `commit` returned; kafkajs' default first retry comes 300 ms later, which made every back-to-back
 * commit cost ~0.3 s (bench:floor). Retrying from 5 ms, doubling to at most 1 s, still rides out
 * about 30 s of broker trouble.
 */
const TX_RETRY = { initialRetryTime: 5, maxRetryTime: 1000, retries: 37 } as const;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `step` again, backing off for up to 30 s, while it fails with an error `retry` accepts. */
async function retrying<T>(retry: (e: unknown) => boolean, step: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (let delay = 5; ; delay = Math.min(delay * 2, 500)) {
    try {
      return await step();
    } catch (e) {
      if (!retry(e) || Date.now() >= deadline) throw e;
      await sleep(delay);
    }
  }
}

/** Runs `step` again while the transaction coordinator says it is busy. */
const whileBusy = <T>(step: () => Promise<T>): Promise<T> => retrying(isCoordinatorBusyError, step);
/** Runs a read-only `step` again through leader and coordinator moves, dropped connections and timeouts. */
const throughTransient = <T>(step: () => Promise<T>): Promise<T> => retrying(isTransientError, step);

function parseBrokers(brokers: string | readonly string[]): string[] {
  const list = (typeof brokers === 'string' ? brokers.split(',') : [...brokers]).map((b) => b.trim()).filter((b) => b !== '');
  if (list.length === 0) throw new TwinlogError('LOG_ARGUMENT_INVALID', 'createKafkaLog: no brokers given');
  return list;
}

function assertOffset(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new TwinlogError('LOG_ARGUMENT_INVALID', `${what} must be a non-negative safe integer, got ${n}`, { details: { value: n } });
  }
}

/**
 * Creates a `Log` on a Kafka cluster. Clients connect lazily, on first use; `close()` stops every
 * subscription and read and disconnects everything.
 *
 * Details:
 * - **Topics** are created by `ensureTopics` with `message.timestamp.type=LogAppendTime` (so record
 *   timestamps are the broker's append time) and, when compacted, `cleanup.policy=compact`.
 *   Partition counts are cached: Kafka topics are never shrunk, and twinlog never grows them.
 * - **`endOffsets`** is the last stable offset: the next offset to be written when no transaction is
 *   open, else the first offset of the oldest open transaction (what a read_committed reader can
 *   reach).
 * - **`commitBatch`** claims the fence: the first commit of a `Log` instance with a fence id
 *   initialises its transactional producer (`InitProducerId`), which aborts any open transaction
 *   of an older producer with that id and makes that producer's later writes fail. A `commitBatch`
 *   with no appends and no offsets claims the fence and writes nothing: do that when taking over a
 *   partition, before restoring its state. Once fenced, a fence stays lost to that `Log` instance
 *   (every later `commitBatch` with it fails with `LOG_FENCED`, as with the in-memory log); only a
 *   new instance (a restarted process) can claim it again.
 * - **`commitOffsets`** commits through a transaction (`TxnOffsetCommit`), not through group
 *   membership, so it works whether the group is empty, active in this process or active elsewhere
 *   (kafkajs's `admin.setOffsets` needs an empty group, and a consumer's `commitOffsets` needs to be
 *   a member). Like `commitBatch`'s offsets, it is not checked against the group generation (kafkajs
 *   speaks `TxnOffsetCommit` v1, kafka-local.md §9.3).
 * - **`read`** and **`subscribe`**: see `internal/readPartition.ts` and
 *   `internal/startSubscription.ts` for how kafkajs is bent into the port's semantics.
 *
 * @example
 * const log = createKafkaLog({ brokers: process.env.KAFKA_BROKERS ?? '127.0.0.1:19092', topicPrefix: 'fleet-a.' })
 * await log.ensureTopics([{ name: 'twin.backend', partitions: 12 }])
 * const [where] = await log.append('twin.backend', [{ key: 'dev-1', value: bytes }])
 * await log.close()
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when no broker is given. Operations reject with
 *   `TwinlogError`s: `LOG_FENCED` (`commitBatch` of a writer a newer one has fenced),
 *   `LOG_TOPIC_NOT_FOUND`, `LOG_ARGUMENT_INVALID` (a partition or offset out of range, an empty
 *   fence or group), `LOG_CO_PARTITIONING` (`subscribe` to topics with unequal partition counts),
 *   `LOG_CLOSED`; or with kafkajs's errors (the cluster is unreachable, …).
 */
export function createKafkaLog(options: KafkaLogOptions): KafkaLog {
  const {
    clientId = 'twinlog',
    topicPrefix = '',
    replicationFactor,
    topicConfig,
    transactionTimeout = 60_000,
    sessionTimeout = 10_000,
    heartbeatInterval = 1_000,
    rebalanceTimeout = 60_000,
    maxWaitTimeInMs = 250,
    readMaxWaitTimeInMs = 100,
    maxBytes = 16 * 1024 * 1024,
    maxBytesPerPartition = 4 * 1024 * 1024,
    partitionsConsumedConcurrently = 1,
    maxRequestBytes = 512 * 1024,
    awaitCommitVisibility = true,
    logLevel = 'error',
    logSink,
    connectionTimeout = 3_000,
    requestTimeout = 30_000,
  } = options;

  const kafka = new Kafka({
    clientId,
    brokers: parseBrokers(options.brokers),
    connectionTimeout,
    requestTimeout,
    logLevel: numericLevel(logLevel),
    logCreator: createLogCreator(logLevel, logSink),
  });
  const physical = (name: string): string => `${topicPrefix}${name}`;
  const subscriptionTuning: ConsumerTuning = {
    sessionTimeout,
    heartbeatInterval,
    rebalanceTimeout,
    maxWaitTimeInMs,
    minBytes: 1,
    maxBytes,
    maxBytesPerPartition,
  };
  // A reader waits for its caller (heartbeating), so it gets a longer session.
  const readTuning: ConsumerTuning = { ...subscriptionTuning, sessionTimeout: Math.max(sessionTimeout, 30_000), maxWaitTimeInMs: readMaxWaitTimeInMs };
  /** The fence of `commitOffsets`: private to this instance, so it never fences anyone. */
  const offsetsFence = `twinlog-offsets-${randomUUID()}`;

  let closed = false;
  const assertOpen = (): void => {
    if (closed) throw new TwinlogError('LOG_CLOSED', 'twinlog: this Kafka log is closed');
  };

  // --- clients -------------------------------------------------------------------------------------

  /** Connects once; a failed connect is forgotten, so the next call tries again. */
  const lazily = <T>(connect: () => Promise<T>): (() => Promise<T>) => {
    let pending: Promise<T> | undefined;
    return () => {
      if (pending === undefined) {
        const p = connect();
        pending = p;
        p.catch(() => {
          if (pending === p) pending = undefined;
        });
      }
      return pending;
    };
  };
  /** Every client ever created, to disconnect on `close()` (disconnecting twice is harmless). */
  const clients = new Set<Admin | Producer>();
  /** Connects a new client, unless `close()` came first (then it is disconnected again). */
  const connect = async <C extends Admin | Producer>(client: C): Promise<C> => {
    clients.add(client);
    await client.connect();
    if (closed) {
      await client.disconnect().catch(() => {});
      assertOpen();
    }
    return client;
  };
  const admin = lazily(() => connect(kafka.admin()));
  const producer = lazily(() => connect(kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })));

  const txProducers = new Map<string, Promise<Producer>>();
  const txProducer = (fence: string): Promise<Producer> => {
    let p = txProducers.get(fence);
    if (p === undefined) {
      const created = connect(
        kafka.producer({
          transactionalId: physical(fence),
          idempotent: true,
          maxInFlightRequests: 1,
          transactionTimeout,
          retry: TX_RETRY,
          createPartitioner: Partitioners.DefaultPartitioner,
        }),
      );
      created.catch(() => {
        if (txProducers.get(fence) === created) txProducers.delete(fence);
      });
      txProducers.set(fence, created);
      p = created;
    }
    return p;
  };
  const dropTxProducer = async (fence: string): Promise<void> => {
    const p = txProducers.get(fence);
    txProducers.delete(fence);
    await p
      ?.then(async (tx) => {
        clients.delete(tx);
        await tx.disconnect();
      })
      .catch(() => {});
  };
  const fences = new KeyedMutex();
  /** Fences a newer writer took from this instance: they stay lost (as a fenced Kafka producer does). */
  const lostFences = new Set<string>();
  const fencedError = (fence: string, cause?: unknown): TwinlogError =>
    new TwinlogError('LOG_FENCED', `twinlog: a newer writer took over fence '${fence}'; this batch was not committed`, {
      ...(cause === undefined ? {} : { cause }),
      details: { fence },
    });

  /** Subscriptions and reads to end on `close()`. */
  const closers = new Set<() => Promise<void>>();
  const track = (close: () => Promise<void>): (() => void) => {
    closers.add(close);
    return () => closers.delete(close);
  };

  // --- topics and offsets --------------------------------------------------------------------------

  const partitionCounts = new Map<string, number>();
  const partitionCount = async (topic: string): Promise<number> => {
    assertOpen();
    const name = physical(topic);
    const cached = partitionCounts.get(name);
    if (cached !== undefined) return cached;
    let count = 0;
    try {
      const { topics } = await throughTransient(async () => (await admin()).fetchTopicMetadata({ topics: [name] }));
      count = topics.find((t) => t.name === name)?.partitions.length ?? 0;
    } catch (e) {
      if (!isUnknownTopicError(e)) throw e;
    }
    if (count === 0) {
      throw new TwinlogError('LOG_TOPIC_NOT_FOUND', `twinlog: topic '${topic}' does not exist (Kafka topic '${name}')`, { details: { topic } });
    }
    partitionCounts.set(name, count);
    return count;
  };

  const assertPartition = async (topic: string, partition: number): Promise<number> => {
    const count = await partitionCount(topic);
    if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
      throw new TwinlogError('LOG_ARGUMENT_INVALID', `partition ${partition} does not exist: topic '${topic}' has ${count} partitions`, {
        details: { topic, partition, partitions: count },
      });
    }
    return count;
  };

  /** Log start offset and last stable offset of every partition of a physical topic. */
  const topicOffsets = async (name: string): Promise<{ low: number; stable: number }[]> => {
    const offsets = await throughTransient(async () => (await admin()).fetchTopicOffsets(name));
    const out: { low: number; stable: number }[] = [];
    for (const { partition, low, high } of offsets) out[partition] = { low: Number(low), stable: Number(high) };
    return out;
  };

  const ensureTopics = async (specs: readonly TopicSpec[]): Promise<void> => {
    assertOpen();
    const unique = new Map<string, TopicSpec>();
    for (const spec of specs) {
      if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
        throw new TwinlogError('LOG_ARGUMENT_INVALID', `topic '${spec.name}' needs a positive whole number of partitions, got ${spec.partitions}`);
      }
      if (!unique.has(physical(spec.name))) unique.set(physical(spec.name), spec);
    }
    if (unique.size === 0) return;
    const a = await admin();
    const existing = new Set(await throughTransient(() => a.listTopics()));
    const missing = [...unique].filter(([name]) => !existing.has(name));
    if (missing.length === 0) return;
    const factor = replicationFactor ?? Math.min(3, (await throughTransient(() => a.describeCluster())).brokers.length);
    await a.createTopics({
      waitForLeaders: true,
      topics: missing.map(([name, spec]) => {
        const config: Record<string, string> = { 'message.timestamp.type': 'LogAppendTime' };
        if (spec.compacted === true) config['cleanup.policy'] = 'compact';
        if (spec.retentionMs !== undefined) config['retention.ms'] = String(spec.retentionMs);
        if (spec.retentionBytes !== undefined) config['retention.bytes'] = String(spec.retentionBytes);
        Object.assign(config, topicConfig?.(spec));
        return {
          topic: name,
          numPartitions: spec.partitions,
          replicationFactor: factor,
          configEntries: Object.entries(config).map(([k, value]) => ({ name: k, value })),
        };
      }),
    });
  };

  const endOffsets = async (topic: string): Promise<number[]> => {
    const count = await partitionCount(topic);
    const offsets = await topicOffsets(physical(topic));
    return Array.from({ length: count }, (_, p) => offsets[p]?.stable ?? 0);
  };

  const committedOffsets = async (group: string, topic: string): Promise<(number | undefined)[]> => {
    const count = await partitionCount(topic);
    const name = physical(topic);
    const fetched = await throughTransient(async () => (await admin()).fetchOffsets({ groupId: physical(group), topics: [name] }));
    const out: (number | undefined)[] = Array.from({ length: count }, () => undefined);
    for (const { partition, offset } of fetched.find((t) => t.topic === name)?.partitions ?? []) {
      const n = Number(offset);
      if (partition < count && n >= 0) out[partition] = n;
    }
    return out;
  };

  // --- writes --------------------------------------------------------------------------------------

  const outgoing = async (topic: string, records: readonly AppendRecord[]): Promise<OutgoingMessage[]> => {
    const count = await partitionCount(topic);
    return toOutgoingMessages(topic, records, count, (key) => partitionFor(key, count));
  };

  /** Offsets of `sent` from the per-partition base offsets kafkajs returns for one request. */
  const offsetsOf = (sent: readonly OutgoingMessage[], meta: readonly RecordMetadata[], topicName: string): number[] => {
    const next = new Map<number, number>();
    for (const m of meta) {
      if (m.topicName === topicName && m.baseOffset !== undefined) next.set(m.partition, Number(m.baseOffset));
    }
    return sent.map((m) => {
      const offset = next.get(m.partition);
      if (offset === undefined) throw new Error(`twinlog: Kafka returned no offset for ${topicName}[${m.partition}]`);
      next.set(m.partition, offset + 1);
      return offset;
    });
  };

  const append = async (topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]> => {
    const messages = await outgoing(topic, records);
    if (messages.length === 0) return [];
    const name = physical(topic);
    const p = await producer();
    const results: AppendResult[] = [];
    for (const chunk of chunkBySize(messages, maxRequestBytes)) {
      const meta = await p.send({ topic: name, acks: -1, messages: chunk.map((m) => m.message) });
      const offsets = offsetsOf(chunk, meta, name);
      chunk.forEach((m, i) => {
        results[m.index] = { partition: m.partition, offset: offsets[i]! };
      });
    }
    return results;
  };

  /** Polls until read_committed readers see every offset in `written` and the group offsets read back as `offsets`. */
  const awaitVisible = async (written: ReadonlyMap<string, ReadonlyMap<number, number>>, offsets: readonly OffsetCommit[]): Promise<void> => {
    const checks: (() => Promise<boolean>)[] = [];
    for (const [name, last] of written) {
      checks.push(async () => {
        const now = await topicOffsets(name);
        return [...last].every(([partition, offset]) => (now[partition]?.stable ?? 0) > offset);
      });
    }
    // Per group and topic, the offset each partition should read back as (the last one given wins).
    const expected = new Map<string, { group: string; topic: string; offsets: Map<number, number> }>();
    for (const o of offsets) {
      const key = JSON.stringify([o.group, o.topic]);
      const entry = expected.get(key) ?? { group: o.group, topic: o.topic, offsets: new Map<number, number>() };
      entry.offsets.set(o.partition, o.offset);
      expected.set(key, entry);
    }
    for (const { group, topic, offsets: want } of expected.values()) {
      checks.push(async () => {
        const now = await committedOffsets(group, topic);
        return [...want].every(([partition, offset]) => now[partition] === offset);
      });
    }
    // All checks at once, each again until it holds: one round trip per poll, not one per topic.
    const deadline = Date.now() + VISIBILITY_TIMEOUT_MS;
    for (let delay = 2, pending = checks; pending.length > 0 && Date.now() < deadline; delay = Math.min(delay * 2, 100)) {
      const held = await Promise.all(pending.map((check) => check()));
      pending = pending.filter((_, i) => !held[i]);
      if (pending.length > 0) await sleep(delay);
    }
  };

  const commitBatch = async ({ fence, appends, offsets = [], awaitVisibility = awaitCommitVisibility }: CommitBatch): Promise<void> => {
    assertOpen();
    if (typeof fence !== 'string' || fence === '') throw new TwinlogError('LOG_ARGUMENT_INVALID', 'commitBatch: fence must be a non-empty string');
    // Everything that can be checked is checked before the transaction starts.
    const sends = await Promise.all(
      appends.map(async ({ topic, records }) => ({ topic: physical(topic), messages: await outgoing(topic, records) })),
    );
    for (const o of offsets) {
      if (typeof o.group !== 'string' || o.group === '') throw new TwinlogError('LOG_ARGUMENT_INVALID', 'commitBatch: an offset names no group');
      await assertPartition(o.topic, o.partition);
      assertOffset(`offset of ${o.group}/${o.topic}[${o.partition}]`, o.offset);
    }
    const byGroup = new Map<string, Map<string, { partition: number; offset: string }[]>>();
    for (const o of offsets) {
      const topics = byGroup.get(physical(o.group)) ?? new Map<string, { partition: number; offset: string }[]>();
      byGroup.set(physical(o.group), topics);
      const partitions = topics.get(physical(o.topic)) ?? [];
      topics.set(physical(o.topic), partitions);
      const same = partitions.findIndex((p) => p.partition === o.partition);
      if (same >= 0) partitions.splice(same, 1);
      partitions.push({ partition: o.partition, offset: String(o.offset) });
    }
    const items = sends.flatMap(({ topic, messages }) => messages.map((m) => ({ topic, m, size: m.size })));

    await fences.run(fence, async () => {
      assertOpen();
      if (lostFences.has(fence)) throw fencedError(fence);
      const p = await txProducer(fence);
      const written = new Map<string, Map<number, number>>();
      let tx: Transaction | undefined;
      try {
        tx = await p.transaction();
        for (const chunk of chunkBySize(items, maxRequestBytes)) {
          const perTopic = new Map<string, OutgoingMessage[]>();
          for (const { topic, m } of chunk) perTopic.set(topic, [...(perTopic.get(topic) ?? []), m]);
          const meta = await tx.sendBatch({
            acks: -1,
            topicMessages: [...perTopic].map(([topic, ms]) => ({ topic, messages: ms.map((m) => m.message) })),
          });
          for (const [topic, ms] of perTopic) {
            const last = written.get(topic) ?? new Map<number, number>();
            written.set(topic, last);
            offsetsOf(ms, meta, topic).forEach((offset, i) => {
              const partition = ms[i]!.partition;
              last.set(partition, Math.max(offset, last.get(partition) ?? -1));
            });
          }
        }
        for (const [consumerGroupId, topics] of byGroup) {
          const offsetTopics = [...topics].map(([topic, partitions]) => ({ topic, partitions }));
          const open = tx;
          // kafkajs does not retry AddOffsetsToTxn, which the coordinator refuses with
          // CONCURRENT_TRANSACTIONS while it still completes this producer's previous transaction.
          await whileBusy(() => open.sendOffsets({ consumerGroupId, topics: offsetTopics }));
        }
        await tx.commit();
      } catch (e) {
        // Abort what can be aborted; a producer whose transaction could not be ended cleanly (or
        // that was fenced) is unusable in kafkajs, so it is dropped.
        let reusable = false;
        if (tx?.isActive() === true) {
          try {
            await tx.abort();
            reusable = true;
          } catch {
            // fenced, or the coordinator is gone: dropped below
          }
        }
        const fenced = isFencedError(e);
        if (fenced || !reusable) await dropTxProducer(fence);
        if (fenced) {
          lostFences.add(fence);
          throw fencedError(fence, e);
        }
        throw e;
      }
      if (awaitVisibility) await awaitVisible(written, offsets);
    });
  };

  const commitOffsets = async (offsets: readonly OffsetCommit[]): Promise<void> => {
    if (offsets.length === 0) return;
    await commitBatch({ fence: offsetsFence, appends: [], offsets });
  };

  // --- reads ---------------------------------------------------------------------------------------

  async function* read(topic: string, partition: number, { from, to }: ReadOptions): AsyncGenerator<readonly LogRecord[], void, undefined> {
    await assertPartition(topic, partition);
    assertOffset('read: from', from);
    if (to !== undefined) assertOffset('read: to', to);
    const name = physical(topic);
    const { low, stable } = (await topicOffsets(name))[partition] ?? { low: 0, stable: 0 };
    // Records before the log start are gone (retention, deleteRecords): start at the first one
    // there is, rather than let kafkajs meet OFFSET_OUT_OF_RANGE.
    yield* readPartition({
      kafka,
      groupId: physical(`twinlog-read-${randomUUID()}`),
      topic: name,
      logicalTopic: topic,
      partition,
      from: Math.max(from, low),
      to: to ?? stable,
      tuning: readTuning,
      logStart: async () => (await topicOffsets(name))[partition]?.low ?? 0,
      track,
    });
  }

  const subscribe = async (subscription: SubscribeOptions): Promise<KafkaSubscription> => {
    assertOpen();
    const { group, topics } = subscription;
    if (typeof group !== 'string' || group === '') throw new TwinlogError('LOG_ARGUMENT_INVALID', 'subscribe: group must be a non-empty string');
    if (topics.length === 0) throw new TwinlogError('LOG_ARGUMENT_INVALID', 'subscribe: no topics');
    const { concurrency } = subscription;
    if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
      throw new TwinlogError('LOG_ARGUMENT_INVALID', `subscribe: concurrency must be a positive integer, got ${String(concurrency)}`);
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
    let untrack = (): void => {};
    const sub = await startSubscription({
      kafka,
      groupId: physical(group),
      topics: new Map(topics.map((t) => [physical(t), t])),
      subscribe: subscription,
      tuning: subscriptionTuning,
      partitionsConsumedConcurrently: concurrency ?? partitionsConsumedConcurrently,
      onEnded: () => untrack(),
    });
    untrack = track(() => sub.stop());
    return sub;
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.allSettled([...closers].map((c) => c()));
    await Promise.allSettled([...txProducers.keys()].map(dropTxProducer));
    await Promise.allSettled([...clients].map((c) => c.disconnect()));
  };

  return {
    topicPrefix,
    ensureTopics,
    partitionCount,
    append,
    commitBatch,
    commitOffsets,
    committedOffsets,
    endOffsets,
    read,
    subscribe,
    close,
  };
}
