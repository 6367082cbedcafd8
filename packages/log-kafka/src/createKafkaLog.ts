/**
 * The `Log` port on Apache Kafka, through kafkajs 2.2.4 (packages/log-kafka/README.md). Everything
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
import {
  isCoordinatorBusyError,
  isFencedError,
  isProducerStateError,
  isTransientError,
  isUnknownTopicError,
} from './internal/kafkaErrors.ts';
import { readPartition } from './internal/readPartition.ts';
import { toOutgoingMessages, type OutgoingMessage } from './internal/records.ts';
import { startSubscription, type ConsumerTuning, type KafkaSubscription } from './internal/startSubscription.ts';
import {
  Fences,
  checkCommitBatch,
  checkReadRange,
  checkSubscribe,
  chunkBySize,
  expectedGroupOffsets,
  kafkaLogSettings,
  partitionCounts,
  pollUntilAll,
  retrying,
  topicConfigOf,
  uniqueTopicSpecs,
  type KafkaLogCommonOptions,
} from './shared/index.ts';

export type { KafkaLogEntry, KafkaLogLevel } from './internal/createLogCreator.ts';
export type { KafkaSubscription } from './internal/startSubscription.ts';

/** The options of the kafkajs adapter: the common ones (`KafkaLogCommonOptions`) plus kafkajs's logging and connection timeout. */
export interface KafkaLogOptions extends KafkaLogCommonOptions {
  /** kafkajs log level (default `error`); entries go to `logSink`. */
  readonly logLevel?: KafkaLogLevel;
  /** Where kafkajs log entries go (default: one line each on stderr). */
  readonly logSink?: (entry: KafkaLogEntry) => void;
  /** kafkajs connection timeout, ms (default 3 000). */
  readonly connectionTimeout?: number;
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

/** Runs `step` again while the transaction coordinator says it is busy. */
const whileBusy = <T>(step: () => Promise<T>): Promise<T> => retrying(isCoordinatorBusyError, step);
/** Runs a read-only `step` again through leader and coordinator moves, dropped connections and timeouts. */
const throughTransient = <T>(step: () => Promise<T>): Promise<T> => retrying(isTransientError, step);

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
 *   speaks `TxnOffsetCommit` v1; see this package's README).
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
  const settings = kafkaLogSettings(options, 'createKafkaLog');
  const {
    topicPrefix,
    replicationFactor,
    topicConfig,
    transactionTimeout,
    partitionsConsumedConcurrently,
    maxRequestBytes,
    awaitCommitVisibility,
  } = settings;
  const { logLevel = 'error', logSink, connectionTimeout = 3_000 } = options;

  const kafka = new Kafka({
    clientId: settings.clientId,
    brokers: settings.brokers,
    connectionTimeout,
    requestTimeout: settings.requestTimeout,
    logLevel: numericLevel(logLevel),
    logCreator: createLogCreator(logLevel, logSink),
  });
  const physical = (name: string): string => `${topicPrefix}${name}`;
  const { sessionTimeout, heartbeatInterval, rebalanceTimeout, maxWaitTimeInMs, maxBytes, maxBytesPerPartition } =
    settings;
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
  const readTuning: ConsumerTuning = {
    ...subscriptionTuning,
    sessionTimeout: Math.max(sessionTimeout, 30_000),
    maxWaitTimeInMs: settings.readMaxWaitTimeInMs,
  };
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
  const producer = lazily(() =>
    connect(
      kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner }),
    ),
  );

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
  const fences = new Fences();

  /** Subscriptions and reads to end on `close()`. */
  const closers = new Set<() => Promise<void>>();
  const track = (close: () => Promise<void>): (() => void) => {
    closers.add(close);
    return () => closers.delete(close);
  };

  // --- topics and offsets --------------------------------------------------------------------------

  const { partitionCount, assertPartition } = partitionCounts(physical, assertOpen, async (name) => {
    try {
      const { topics } = await throughTransient(async () => (await admin()).fetchTopicMetadata({ topics: [name] }));
      return topics.find((t) => t.name === name)?.partitions.length ?? 0;
    } catch (e) {
      if (!isUnknownTopicError(e)) throw e;
      return 0;
    }
  });

  /** Log start offset and last stable offset of every partition of a physical topic. */
  const topicOffsets = async (name: string): Promise<{ low: number; stable: number }[]> => {
    const offsets = await throughTransient(async () => (await admin()).fetchTopicOffsets(name));
    const out: { low: number; stable: number }[] = [];
    for (const { partition, low, high } of offsets) out[partition] = { low: Number(low), stable: Number(high) };
    return out;
  };

  const ensureTopics = async (specs: readonly TopicSpec[]): Promise<void> => {
    assertOpen();
    const unique = uniqueTopicSpecs(specs, physical);
    if (unique.size === 0) return;
    const a = await admin();
    const existing = new Set(await throughTransient(() => a.listTopics()));
    const missing = [...unique].filter(([name]) => !existing.has(name));
    if (missing.length === 0) return;
    const factor = replicationFactor ?? Math.min(3, (await throughTransient(() => a.describeCluster())).brokers.length);
    await a.createTopics({
      waitForLeaders: true,
      topics: missing.map(([name, spec]) => ({
        topic: name,
        numPartitions: spec.partitions,
        replicationFactor: factor,
        configEntries: topicConfigOf(spec, topicConfig),
      })),
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
    const fetched = await throughTransient(async () =>
      (await admin()).fetchOffsets({ groupId: physical(group), topics: [name] }),
    );
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
  const offsetsOf = (
    sent: readonly OutgoingMessage[],
    meta: readonly RecordMetadata[],
    topicName: string,
  ): number[] => {
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
  const awaitVisible = async (
    written: ReadonlyMap<string, ReadonlyMap<number, number>>,
    offsets: readonly OffsetCommit[],
  ): Promise<void> => {
    const checks: (() => Promise<boolean>)[] = [];
    for (const [name, last] of written) {
      checks.push(async () => {
        const now = await topicOffsets(name);
        return [...last].every(([partition, offset]) => (now[partition]?.stable ?? 0) > offset);
      });
    }
    for (const { group, topic, offsets: want } of expectedGroupOffsets(offsets)) {
      checks.push(async () => {
        const now = await committedOffsets(group, topic);
        return [...want].every(([partition, offset]) => now[partition] === offset);
      });
    }
    await pollUntilAll(checks, VISIBILITY_TIMEOUT_MS);
  };

  const commitBatch = async ({
    fence,
    appends,
    offsets = [],
    awaitVisibility = awaitCommitVisibility,
  }: CommitBatch): Promise<void> => {
    assertOpen();
    // Everything that can be checked is checked before the transaction starts.
    const sends = await Promise.all(
      appends.map(async ({ topic, records }) => ({ topic: physical(topic), messages: await outgoing(topic, records) })),
    );
    await checkCommitBatch(fence, offsets, assertPartition);
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
      fences.assertHeld(fence);
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
        // Abort what can be aborted; a producer whose transaction could not be ended cleanly, that
        // was fenced, or whose sequence numbers the broker no longer accepts (after a long outage)
        // is unusable in kafkajs, so it is dropped.
        const open = tx?.isActive() === true ? tx : undefined;
        return fences.fail(fence, e, {
          isFenced: isFencedError,
          abort: open && (() => open.abort()),
          drop: () => dropTxProducer(fence),
          unusable: isProducerStateError(e),
        });
      }
      if (awaitVisibility) await awaitVisible(written, offsets);
    });
  };

  const commitOffsets = async (offsets: readonly OffsetCommit[]): Promise<void> => {
    if (offsets.length === 0) return;
    await commitBatch({ fence: offsetsFence, appends: [], offsets });
  };

  // --- reads ---------------------------------------------------------------------------------------

  async function* read(
    topic: string,
    partition: number,
    { from, to }: ReadOptions,
  ): AsyncGenerator<readonly LogRecord[], void, undefined> {
    await assertPartition(topic, partition);
    checkReadRange(from, to);
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
    await checkSubscribe(subscription, partitionCount);
    const { group, topics, concurrency } = subscription;
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
