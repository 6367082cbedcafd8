/**
 * # `@twinlog/log-kafka-platformatic`
 *
 * The `Log` port (`@twinlog/core`) on Apache Kafka through `@platformatic/kafka` 1.x, the second
 * Kafka adapter beside `@twinlog/log-kafka` (kafkajs). Both pass the same acceptance suite and
 * place, name and commit everything the same way (topics, groups and transactional ids under one
 * `topicPrefix`, `partitionFor` for keys, offsets committed in transactions), so a fleet can move
 * from one client to the other with its data and group offsets as they are. The CLI picks one with
 * `--kafka-client kafkajs|platformatic` (env `TWINLOG_KAFKA_CLIENT`).
 *
 * Version: the 1.x line (pinned `~1.35`). 2.x wants Node 22; on Node 20 the 1.x line works,
 * although two of its helper packages declare Node 22 (npm warns EBADENGINE at install).
 * Loading the library takes about 2 s on a busy 2-core machine (its option validators are compiled
 * at import, against ~0.1 s for kafkajs): a long-running `serve` does not notice, a one-shot CLI
 * command pays it every time.
 *
 * How the port maps onto the client:
 *
 * - **`append`**: one idempotent producer (`acks = all`), every record with an explicit partition
 *   (`partitionFor(key, n)`). The client advances its sequence numbers only when a produce is
 *   answered, so produce requests go out one at a time, never overlapping; appends that arrive
 *   while one is in flight share the next request.
 * - **`commitBatch`**: one transactional producer per `fence` (transactional id = prefix + fence):
 *   begin, the sends, `AddOffsetsToTxn` and one `TxnOffsetCommit` per partition, commit; every call
 *   awaited before the next (the client's calls inside one transaction must not overlap: overlapping
 *   offset commits were seen to keep only the first). A newer producer with the same id bumps the
 *   epoch; the older one's batch fails with `LOG_FENCED` and the fence stays lost to that instance.
 *   A `commitBatch` with nothing in it claims the fence (`InitProducerId`) and writes nothing.
 *   Offsets are committed without a group generation (generation -1, no member id), as the kafkajs
 *   adapter does: the fence, not the group generation, is what stops a zombie writer.
 *   Transaction requests retry from 5 ms (doubling to 1 s), since the coordinator answers
 *   CONCURRENT_TRANSACTIONS for a few ms after each commit; the client's default is 1 s flat.
 * - **`commitOffsets`**: a transaction holding only offsets, on a transactional id private to the
 *   instance (works whether the group is empty or active anywhere).
 * - **`read`**: plain fetches at READ_COMMITTED on one shared reader client, no consumer group
 *   (see `internal/readPartition.ts`): no group join per read, unlike the kafkajs adapter.
 * - **`subscribe`**: a group member with the co-partitioned assigner and the adapter's own fetch
 *   loop (see `internal/startSubscription.ts`), whose `status()` and `done` are what core's stage
 *   supervisor reads (`ObservableSubscription`).
 * - Records come from raw record batches (`internal/records.ts`): aborted transactions are
 *   filtered by the producer-id walk Kafka's Java consumer does, and timestamps of a LogAppendTime
 *   topic are the batch's append time (the client's message stream reports the producer's clock).
 *
 * @example
 * const log = createPlatformaticKafkaLog({ brokers: '127.0.0.1:19092', topicPrefix: 'fleet-a.' })
 * await log.ensureTopics([{ name: 'twin.backend', partitions: 12 }])
 * await log.append('twin.backend', [{ key: 'dev-1', value: bytes }])
 * await log.close()
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
import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  ListOffsetTimestamps,
  Producer,
  type Message,
} from '@platformatic/kafka';
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
  sleep,
  topicConfigOf,
  uniqueTopicSpecs,
  type KafkaLogCommonOptions,
} from '@twinlog/log-kafka/shared';
import {
  isCoordinatorBusyError,
  isFencedError,
  isProducerStateError,
  isTopicExistsError,
  isTransientError,
  isUnknownTopicError,
} from './internal/errors.ts';
import { readPartition } from './internal/readPartition.ts';
import { toOutgoingMessages, type OutgoingMessage } from './internal/records.ts';
import { startSubscription, type GroupTuning, type PlatformaticSubscription } from './internal/startSubscription.ts';

export type { PlatformaticSubscription } from './internal/startSubscription.ts';

/** One client event worth a line in an operator's log (what `logSink` receives). */
export interface PlatformaticLogEntry {
  readonly level: 'error' | 'warn';
  readonly namespace: string;
  readonly message: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** The options of the @platformatic/kafka adapter: the common ones (`KafkaLogCommonOptions`, as the kafkajs adapter's) plus where client warnings go. */
export interface PlatformaticKafkaLogOptions extends KafkaLogCommonOptions {
  /** Where client warnings go (default: one line each on stderr). */
  readonly logSink?: (entry: PlatformaticLogEntry) => void;
}

/** The Kafka `Log` on @platformatic/kafka, with subscriptions that report their own end and state. */
export interface PlatformaticKafkaLog extends Log {
  readonly topicPrefix: string;
  subscribe(options: SubscribeOptions): Promise<PlatformaticSubscription>;
}

type Transaction = NonNullable<Producer['transaction']>;

/** Closes a client, forcibly (streams and pending work included); the promise-returning overload. */
const forceClose = (c: Admin | Producer | Consumer): Promise<void> =>
  c instanceof Admin ? c.close() : (c.close as (force?: boolean) => Promise<void>).call(c, true);

const VISIBILITY_TIMEOUT_MS = 30_000;

/** Client retry delay: 5 ms doubling to 1 s (so 37 retries ride out about 30 s of trouble). */
const retryDelay = (_client: unknown, _operation: string, attempt: number): number =>
  Math.min(1000, 5 * 2 ** Math.max(0, attempt - 1));
const RETRIES = 37;

const whileBusy = <T>(step: () => Promise<T>): Promise<T> => retrying(isCoordinatorBusyError, step);
const throughTransient = <T>(step: () => Promise<T>): Promise<T> => retrying(isTransientError, step);

function consoleSink(entry: PlatformaticLogEntry): void {
  console.error(`[platformatic-kafka] ${entry.level} ${entry.namespace}: ${entry.message}`);
}

/**
 * Creates a `Log` on a Kafka cluster through @platformatic/kafka. Clients connect lazily, on first
 * use; `close()` stops every subscription and read and closes everything.
 *
 * @throws TwinlogError `LOG_ARGUMENT_INVALID` when no broker is given. Operations reject with
 *   `TwinlogError`s (`LOG_FENCED`, `LOG_TOPIC_NOT_FOUND`, `LOG_ARGUMENT_INVALID`,
 *   `LOG_CO_PARTITIONING`, `LOG_CLOSED`) or with the client's errors (cluster unreachable, …).
 */
export function createPlatformaticKafkaLog(options: PlatformaticKafkaLogOptions): PlatformaticKafkaLog {
  const settings = kafkaLogSettings(options, 'createPlatformaticKafkaLog');
  const {
    topicPrefix,
    replicationFactor,
    topicConfig,
    partitionsConsumedConcurrently,
    maxRequestBytes,
    awaitCommitVisibility,
    maxBytes,
    maxBytesPerPartition,
  } = settings;
  const { logSink = consoleSink } = options;
  const client = {
    clientId: settings.clientId,
    bootstrapBrokers: settings.brokers,
    timeout: settings.requestTimeout,
    retries: RETRIES,
    retryDelay,
    metadataMaxAge: 5_000,
  };
  const physical = (name: string): string => `${topicPrefix}${name}`;
  const { sessionTimeout, heartbeatInterval, rebalanceTimeout } = settings;
  const groupTuning: GroupTuning = {
    sessionTimeout,
    heartbeatInterval,
    rebalanceTimeout,
    maxWaitTime: settings.maxWaitTimeInMs,
    maxBytes,
    maxBytesPerPartition,
  };
  const readTuning = { maxWaitTime: settings.readMaxWaitTimeInMs, maxBytes, maxBytesPerPartition };
  const offsetsFence = `twinlog-offsets-${randomUUID()}`;
  const warn = (namespace: string) => (error: unknown) =>
    logSink({ level: 'warn', namespace, message: error instanceof Error ? error.message : String(error), fields: {} });

  let closed = false;
  const assertOpen = (): void => {
    if (closed) throw new TwinlogError('LOG_CLOSED', 'twinlog: this Kafka log is closed');
  };

  // --- clients -------------------------------------------------------------------------------------

  type AnyClient = Admin | Producer | Consumer;
  const clients = new Set<AnyClient>();
  const own = <C extends AnyClient>(c: C, namespace: string): C => {
    clients.add(c);
    // the clients emit 'error' for failures nobody awaits; an EventEmitter without a listener would throw
    c.on('error', warn(namespace));
    if (closed) {
      void forceClose(c).catch(() => {});
      assertOpen();
    }
    return c;
  };
  let adminClient: Admin | undefined;
  const admin = (): Admin => (adminClient ??= own(new Admin(client), 'Admin'));
  // Metadata lookups that must tell a missing topic at once: the client retries UNKNOWN_TOPIC_OR_PARTITION
  // like any retriable error (30 s with the retries above), so this one does not retry by itself.
  let lookupClient: Admin | undefined;
  const lookup = (): Admin => (lookupClient ??= own(new Admin({ ...client, retries: 0 }), 'Admin'));
  let producerClient: Producer | undefined;
  const producer = (): Producer =>
    (producerClient ??= own(new Producer({ ...client, idempotent: true, acks: -1 }), 'Producer'));
  let readerClient: Consumer | undefined;
  const reader = async (): Promise<Consumer> =>
    (readerClient ??= own(new Consumer({ ...client, groupId: `twinlog-reader-${randomUUID()}` }), 'Reader'));

  const txProducers = new Map<string, Producer>();
  const txProducer = (fence: string): Producer => {
    let p = txProducers.get(fence);
    if (p === undefined) {
      p = own(
        new Producer({
          ...client,
          transactionalId: physical(fence),
          idempotent: true,
          acks: -1,
          timeout: settings.transactionTimeout,
        }),
        'Transaction',
      );
      txProducers.set(fence, p);
    }
    return p;
  };
  const dropTxProducer = async (fence: string): Promise<void> => {
    const p = txProducers.get(fence);
    txProducers.delete(fence);
    if (p === undefined) return;
    clients.delete(p);
    await forceClose(p).catch(() => {});
  };
  const fences = new Fences();

  const closers = new Set<() => Promise<void>>();

  // --- topics and offsets --------------------------------------------------------------------------

  const counts = partitionCounts(physical, assertOpen, async (name) => {
    try {
      const metadata = await throughTransient(() => lookup().metadata({ topics: [name], forceUpdate: true }));
      return metadata.topics.get(name)?.partitionsCount ?? 0;
    } catch (e) {
      if (!isUnknownTopicError(e)) throw e;
      return 0;
    }
  });
  const { partitionCount, assertPartition } = counts;

  /** Offsets of every partition of physical topic `name` at `timestamp` (latest: the last stable offset). */
  const listOffsets = async (name: string, count: number, timestamp: bigint): Promise<number[]> => {
    const listed = await throughTransient(() =>
      admin().listOffsets({
        topics: [
          { name, partitions: Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp })) },
        ],
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      }),
    );
    const out = Array.from({ length: count }, () => 0);
    for (const t of listed) if (t.name === name) for (const p of t.partitions) out[p.partitionIndex] = Number(p.offset);
    return out;
  };
  const logStarts = async (name: string): Promise<number[]> => {
    const count = counts.cached(name) ?? (await partitionCount(name.slice(topicPrefix.length)));
    return listOffsets(name, count, ListOffsetTimestamps.EARLIEST);
  };

  const ensureTopics = async (specs: readonly TopicSpec[]): Promise<void> => {
    assertOpen();
    const unique = uniqueTopicSpecs(specs, physical);
    if (unique.size === 0) return;
    const a = admin();
    const existing = new Set(await throughTransient(() => a.listTopics({ includeInternals: false })));
    const missing = [...unique].filter(([name]) => !existing.has(name));
    if (missing.length === 0) return;
    const factor =
      replicationFactor ?? Math.min(3, (await throughTransient(() => a.metadata({ topics: [] }))).brokers.size);
    for (const [name, spec] of missing) {
      try {
        await a.createTopics({
          topics: [name],
          partitions: spec.partitions,
          replicas: factor,
          configs: topicConfigOf(spec, topicConfig),
        });
      } catch (e) {
        if (!isTopicExistsError(e)) throw e;
      }
    }
    // wait for every partition of the new topics to have a leader
    const names = missing.map(([name]) => name);
    const deadline = Date.now() + 30_000;
    for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
      const ready = await a
        .metadata({ topics: names, forceUpdate: true })
        .then((m) =>
          names.every(
            (n) =>
              (m.topics.get(n)?.partitions.length ?? 0) > 0 && m.topics.get(n)!.partitions.every((p) => p.leader >= 0),
          ),
        )
        .catch(() => false);
      if (ready || Date.now() >= deadline) break;
      await sleep(delay);
    }
  };

  const endOffsets = async (topic: string): Promise<number[]> => {
    const count = await partitionCount(topic);
    return listOffsets(physical(topic), count, ListOffsetTimestamps.LATEST);
  };

  const committedOffsets = async (group: string, topic: string): Promise<(number | undefined)[]> => {
    const count = await partitionCount(topic);
    const name = physical(topic);
    const groupId = physical(group);
    const fetched = await throughTransient(() =>
      admin().listConsumerGroupOffsets({
        groups: [{ groupId, topics: [{ name, partitionIndexes: Array.from({ length: count }, (_, i) => i) }] }],
      }),
    );
    const out: (number | undefined)[] = Array.from({ length: count }, () => undefined);
    for (const g of fetched) {
      if (g.groupId !== groupId) continue;
      for (const t of g.topics) {
        if (t.name !== name) continue;
        for (const p of t.partitions)
          if (p.partitionIndex < count && p.committedOffset >= 0n) out[p.partitionIndex] = Number(p.committedOffset);
      }
    }
    return out;
  };

  // --- writes --------------------------------------------------------------------------------------

  const outgoing = async (topic: string, records: readonly AppendRecord[]): Promise<OutgoingMessage[]> => {
    const count = await partitionCount(topic);
    return toOutgoingMessages(topic, physical(topic), records, count, (key) => partitionFor(key, count));
  };

  /** Offsets of `sent` (one produce request) from the base offset per partition the broker returned. */
  const offsetsOf = (
    sent: readonly { topic: string; m: OutgoingMessage }[],
    result: { offsets?: { topic: string; partition: number; offset: bigint }[] },
  ): number[] => {
    const next = new Map<string, number>();
    for (const o of result.offsets ?? []) next.set(`${o.topic}\u0000${o.partition}`, Number(o.offset));
    return sent.map(({ topic, m }) => {
      const key = `${topic}\u0000${m.partition}`;
      const offset = next.get(key);
      if (offset === undefined) throw new Error(`twinlog: Kafka returned no offset for ${topic}[${m.partition}]`);
      next.set(key, offset + 1);
      return offset;
    });
  };

  /**
   * Appends waiting for the produce request in flight. Requests go out one at a time (the client
   * advances its idempotence sequence numbers only when a request is answered), so the appends that
   * arrive meanwhile are sent together in the next request(s): many small concurrent appends (a
   * gateway's devices) cost one round trip, not one each.
   */
  let appendQueue: {
    name: string;
    messages: OutgoingMessage[];
    resolve: (r: AppendResult[]) => void;
    reject: (e: unknown) => void;
  }[] = [];
  let appending = false;
  const drainAppends = async (): Promise<void> => {
    if (appending) return;
    appending = true;
    try {
      while (appendQueue.length > 0) {
        const round = appendQueue;
        appendQueue = [];
        const results = round.map(() => [] as AppendResult[]);
        const items = round.flatMap((a, owner) => a.messages.map((m) => ({ topic: a.name, m, size: m.size, owner })));
        try {
          if (closed) throw new TwinlogError('LOG_CLOSED', 'twinlog: this Kafka log is closed');
          for (const chunk of chunkBySize(items, maxRequestBytes)) {
            const result = await producer().send({ messages: chunk.map(({ m }) => m.message), acks: -1 });
            offsetsOf(chunk, result).forEach((offset, i) => {
              const { m, owner } = chunk[i]!;
              results[owner]![m.index] = { partition: m.partition, offset };
            });
          }
          round.forEach((a, i) => a.resolve(results[i]!));
        } catch (e) {
          for (const a of round) a.reject(e);
        }
      }
    } finally {
      appending = false;
    }
  };

  const append = async (topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]> => {
    const messages = await outgoing(topic, records);
    if (messages.length === 0) return [];
    const name = physical(topic);
    return new Promise<AppendResult[]>((resolve, reject) => {
      appendQueue.push({ name, messages, resolve, reject });
      void drainAppends();
    });
  };

  const awaitVisible = async (
    written: ReadonlyMap<string, ReadonlyMap<number, number>>,
    offsets: readonly OffsetCommit[],
  ): Promise<void> => {
    const checks: (() => Promise<boolean>)[] = [];
    for (const [name, last] of written) {
      checks.push(async () => {
        const now = await listOffsets(name, counts.cached(name) ?? 0, ListOffsetTimestamps.LATEST);
        return [...last].every(([partition, offset]) => (now[partition] ?? 0) > offset);
      });
    }
    for (const { group, topic, offsets: want } of expectedGroupOffsets(offsets)) {
      checks.push(async () => {
        const now = await committedOffsets(group, topic);
        return [...want].every(([partition, offset]) => now[partition] === offset);
      });
    }
    // a check that fails (a request in trouble) is tried again, as one that does not hold yet
    await pollUntilAll(
      checks.map((check) => () => check().catch(() => false)),
      VISIBILITY_TIMEOUT_MS,
    );
  };

  /** Group coordinator node ids, which `TxnOffsetCommit` is sent to. */
  const coordinators = new Map<string, number>();
  const groupCoordinator = async (groupId: string): Promise<number> => {
    const known = coordinators.get(groupId);
    if (known !== undefined) return known;
    const [found] = await throughTransient(() =>
      admin().findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] }),
    );
    if (found === undefined) throw new Error(`twinlog: no coordinator found for group '${groupId}'`);
    coordinators.set(groupId, found.nodeId);
    return found.nodeId;
  };

  const commitBatch = async ({
    fence,
    appends: batchAppends,
    offsets = [],
    awaitVisibility = awaitCommitVisibility,
  }: CommitBatch): Promise<void> => {
    assertOpen();
    const sends = await Promise.all(
      batchAppends.map(async ({ topic, records }) => ({
        topic: physical(topic),
        messages: await outgoing(topic, records),
      })),
    );
    await checkCommitBatch(fence, offsets, assertPartition);
    // per group, the last offset given per topic and partition
    const byGroup = new Map<string, Map<string, { topic: string; partition: number; offset: number }>>();
    for (const o of offsets) {
      const entries =
        byGroup.get(physical(o.group)) ?? new Map<string, { topic: string; partition: number; offset: number }>();
      byGroup.set(physical(o.group), entries);
      entries.set(`${o.topic}\u0000${o.partition}`, {
        topic: physical(o.topic),
        partition: o.partition,
        offset: o.offset,
      });
    }
    const coordinatorOf = new Map<string, number>();
    for (const groupId of byGroup.keys()) coordinatorOf.set(groupId, await groupCoordinator(groupId));
    const items = sends.flatMap(({ topic, messages }) => messages.map((m) => ({ topic, m, size: m.size })));

    await fences.run(fence, async () => {
      assertOpen();
      fences.assertHeld(fence);
      const p = txProducer(fence);
      const written = new Map<string, Map<number, number>>();
      let tx: Transaction | undefined;
      try {
        // A first InitProducerId must say "no producer id yet" (-1/-1): the client's default (0/0)
        // is refused with PRODUCER_FENCED once another producer has used the transactional id.
        tx = await p.beginTransaction({ producerId: -1n, producerEpoch: -1 });
        if (items.length === 0 && byGroup.size === 0) {
          // claims the fence (InitProducerId on first use) and writes nothing
          await tx.cancel();
          return;
        }
        // every call of the transaction awaited before the next
        for (const chunk of chunkBySize(items, maxRequestBytes)) {
          const result = await tx.send({ messages: chunk.map(({ m }) => m.message), acks: -1 });
          offsetsOf(chunk, result).forEach((offset, i) => {
            const { topic, m } = chunk[i]!;
            const last = written.get(topic) ?? new Map<number, number>();
            written.set(topic, last);
            last.set(m.partition, Math.max(offset, last.get(m.partition) ?? -1));
          });
        }
        for (const [groupId, entries] of byGroup) {
          const open = tx;
          // only the group id of the consumer is used (AddOffsetsToTxn)
          await whileBusy(() => open.addConsumer({ groupId } as unknown as Consumer));
          const consumer = { groupId, generationId: -1, memberId: '', coordinatorId: coordinatorOf.get(groupId)! };
          for (const { topic, partition, offset } of entries.values()) {
            // the client commits `offset + 1` of the message given: the port's offset is the next to read
            const message = {
              topic,
              partition,
              offset: BigInt(offset) - 1n,
              metadata: { consumer },
            } as unknown as Message;
            await whileBusy(() => open.addOffset(message));
          }
        }
        await tx.commit();
      } catch (e) {
        const open = tx !== undefined && !tx.completed && !isFencedError(e) ? tx : undefined;
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
    const count = await assertPartition(topic, partition);
    checkReadRange(from, to);
    const name = physical(topic);
    const [low, stable] = await Promise.all([
      listOffsets(name, count, ListOffsetTimestamps.EARLIEST),
      to === undefined ? listOffsets(name, count, ListOffsetTimestamps.LATEST) : Promise.resolve([] as number[]),
    ]);
    yield* readPartition({
      reader,
      topic: name,
      logicalTopic: topic,
      partition,
      from: Math.max(from, low[partition] ?? 0),
      to: to ?? stable[partition] ?? 0,
      tuning: readTuning,
      logStart: async () => (await listOffsets(name, count, ListOffsetTimestamps.EARLIEST))[partition] ?? 0,
      isClosed: () => closed,
    });
  }

  const subscribe = async (subscription: SubscribeOptions): Promise<PlatformaticSubscription> => {
    assertOpen();
    await checkSubscribe(subscription, partitionCount);
    const { group, topics, concurrency } = subscription;
    let closer: (() => Promise<void>) | undefined;
    const sub = await startSubscription({
      client,
      groupId: physical(group),
      topics: new Map(topics.map((t) => [physical(t), t])),
      subscribe: subscription,
      tuning: groupTuning,
      concurrency: concurrency ?? partitionsConsumedConcurrently,
      logStarts,
      onEnded: () => {
        if (closer !== undefined) closers.delete(closer);
      },
      onWarning: (message, error) =>
        logSink({
          level: 'warn',
          namespace: 'Consumer',
          message: `${message}: ${error instanceof Error ? error.message : String(error)}`,
          fields: { group },
        }),
    });
    closer = () => sub.stop().catch(() => {});
    closers.add(closer);
    return sub;
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.allSettled([...closers].map((c) => c()));
    await Promise.allSettled([...txProducers.keys()].map(dropTxProducer));
    await Promise.allSettled([...clients].map(forceClose));
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
