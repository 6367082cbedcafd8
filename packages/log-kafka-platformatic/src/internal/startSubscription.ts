/**
 * `Log.subscribe` on @platformatic/kafka: a consumer-group member (classic protocol, twinlog's
 * co-partitioned assigner) whose fetch loop is the adapter's own (`fetchPartitions`), with offsets
 * committed only by the caller and the port's `onRevoke` / `onAssign` announcements.
 *
 * - **Membership.** The client joins, syncs and heartbeats by itself, on a timer that keeps going
 *   while a batch runs. When a heartbeat learns of a rebalance it rejoins at once; the adapter
 *   holds that rejoin (the client's `JoinGroup` request) until the fetch loop has stopped, the
 *   batches running have ended and `onRevoke` has run for every partition held. Rebalances are
 *   eager: the coordinator completes one only when every member has rejoined (or the rebalance
 *   timeout passed), so no other member is given the partitions before `onRevoke` returned.
 * - **After each join** the partitions of the new assignment are announced through `onAssign`,
 *   their positions are the group's committed offsets (the log start where there is none), and
 *   the fetch loop starts again. A partition kept across a rebalance is revoked and assigned again,
 *   as with Java's eager listener, and resumes from its committed offset.
 * - **Fetch loop.** One fetch round over every partition held, then that round's batches are
 *   handed over (one per partition and topic, at most `concurrency` at once), then the next round.
 *   So nothing is fetched while a batch (and the transaction it commits) is in flight, and a batch
 *   of a partition never overlaps another of the same partition and topic.
 *
 * `status()` tells a live member from a stuck one: **fetching** while a fetch was answered (or a
 * batch started or ended) within `fetchStaleMs`; a **batch in flight** counts as alive while the
 * group's heartbeats are answered, up to the rebalance timeout; a member whose last join gave it
 * no partition is a **standby** (alive while its heartbeats are answered). A callback that throws,
 * a failed rejoin, or fetches failing for longer than the rebalance timeout end the subscription:
 * `done` and `stop()` then reject with that error.
 */
import type { Batch, LogRecord, SubscribeOptions } from '@twinlog/core';
import { Consumer, kGetApi, type ConsumerOptions, type GroupPartitionsAssigner } from '@platformatic/kafka';
import { isOffsetOutOfRangeError } from './errors.ts';
import { fetchPartitions, partitionKey, type FetchTuning } from './fetchPartitions.ts';
import { decodeBatches } from './records.ts';

/** The protocol name members announce (the same as the kafkajs adapter's assigner). */
export const CO_PARTITIONED_PROTOCOL = 'TwinlogCoPartitioned';

export interface GroupTuning extends FetchTuning {
  readonly sessionTimeout: number;
  readonly heartbeatInterval: number;
  readonly rebalanceTimeout: number;
}

export interface StartSubscriptionOptions {
  /** Client options shared by every client of the log (brokers, client id, timeouts, retries). */
  readonly client: Pick<
    ConsumerOptions<Buffer, Buffer, Buffer, Buffer>,
    'clientId' | 'bootstrapBrokers' | 'timeout' | 'retries' | 'retryDelay' | 'metadataMaxAge'
  >;
  /** The physical group id (prefixed). */
  readonly groupId: string;
  /** Physical topic name → logical name, in subscription order. */
  readonly topics: ReadonlyMap<string, string>;
  readonly subscribe: SubscribeOptions;
  readonly tuning: GroupTuning;
  readonly concurrency: number;
  /** Log start offsets of a physical topic, per partition. */
  readonly logStarts: (topic: string) => Promise<number[]>;
  /** Called once the subscription has ended (stopped or failed). */
  readonly onEnded: () => void;
  /** Where client errors that do not end the subscription go. */
  readonly onWarning?: (message: string, error: unknown) => void;
  /** How long without a fetch answer or a batch before `status()` says it is not fetching, ms (default max(2000, 4 × maxWaitTime)). */
  readonly fetchStaleMs?: number;
}

/** The port's `Subscription`, plus how it ended and what it is doing (core's `ObservableSubscription`). */
export interface PlatformaticSubscription {
  stop(): Promise<void>;
  readonly done: Promise<void>;
  status(): {
    readonly partitions: readonly number[];
    readonly fetching: boolean;
    readonly reason?: string;
    readonly standby?: boolean;
  };
}

const sorted = (partitions: Iterable<number>): number[] => [...partitions].sort((a, b) => a - b);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The co-partitioned assignment: partition indexes dealt round-robin over the members sorted by
 * member id, each member getting the same indexes of every subscribed topic.
 */
export const coPartitionedAssigner: GroupPartitionsAssigner = (_current, members, topics, metadata) => {
  const names = [...topics];
  const counts = new Set(names.map((t) => metadata.topics.get(t)?.partitionsCount ?? 0));
  if (counts.size !== 1)
    throw new Error(`twinlog: co-partitioned topics differ in partition count: ${names.join(', ')}`);
  const [count = 0] = counts;
  const ids = [...members.keys()].sort();
  const plan = new Map(ids.map((id) => [id, new Map<string, { topic: string; partitions: number[] }>()]));
  for (let p = 0; p < count; p++) {
    const owned = plan.get(ids[p % ids.length]!)!;
    for (const topic of names) {
      const entry = owned.get(topic) ?? { topic, partitions: [] };
      entry.partitions.push(p);
      owned.set(topic, entry);
    }
  }
  return [...plan].map(([memberId, assignments]) => ({ memberId, assignments }));
};

export async function startSubscription(o: StartSubscriptionOptions): Promise<PlatformaticSubscription> {
  const { groupId, topics, tuning, concurrency, onEnded } = o;
  const { onAssign, onRevoke, eachBatch } = o.subscribe;
  const fetchStaleMs = o.fetchStaleMs ?? Math.max(2000, 4 * tuning.maxWaitTime);
  const heartbeatStaleMs = Math.max(fetchStaleMs, 3 * tuning.heartbeatInterval);
  const physicalTopics = [...topics.keys()];

  const consumer = new Consumer({
    ...o.client,
    groupId,
    sessionTimeout: tuning.sessionTimeout,
    heartbeatInterval: tuning.heartbeatInterval,
    rebalanceTimeout: tuning.rebalanceTimeout,
    protocols: [{ name: CO_PARTITIONED_PROTOCOL, version: 0 }],
    partitionAssigner: coPartitionedAssigner,
    maxWaitTime: tuning.maxWaitTime,
    maxBytes: tuning.maxBytes,
    maxBytesPerPartition: tuning.maxBytesPerPartition,
    autocommit: false,
  });
  consumer.topics.trackAll(...physicalTopics);

  /** Partitions announced through `onAssign` and not revoked since. */
  const assigned = new Set<number>();
  /** Next offset to fetch per physical topic and partition held. */
  const positions = new Map<string, number>();
  /** Assignment callbacks run one after another on this chain. */
  let transition: Promise<void> = Promise.resolve();
  /** Set from the moment a rejoin is wanted until the new assignment is announced: no new round starts. */
  let rebalancing = true;
  let stopping = false;
  let failure: { error: unknown } | undefined;
  let shutdown: Promise<void> | undefined;
  let joins = 0;
  let joinedEmpty = false;

  let settleDone: () => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settleDone = () => (failure === undefined ? resolve() : reject(failure.error));
  });
  done.catch(() => {});

  // signs of life
  let lastActivity = Date.now();
  let lastHeartbeat = Date.now();
  let lastError: string | undefined;
  const batchStarts = new Set<number>();
  let roundRunning: Promise<void> = Promise.resolve();

  let wake: (() => void) | undefined;
  const wakeLoop = (): void => {
    wake?.();
    wake = undefined;
  };
  const idle = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  const fail = (error: unknown): void => {
    if (failure !== undefined || stopping) return;
    failure = { error };
    void end();
  };

  /** Queues `onRevoke` for everything held (nothing when nothing is). */
  const revokeAll = (): Promise<void> => {
    transition = transition.then(async () => {
      positions.clear();
      if (assigned.size === 0 || failure !== undefined) return;
      const all = sorted(assigned);
      assigned.clear();
      try {
        await onRevoke?.(all);
      } catch (e) {
        fail(e);
      }
    });
    return transition;
  };

  /** Queues the announcements that take the held partitions to `now`, then loads their positions. */
  const assignTo = (now: ReadonlySet<number>): void => {
    transition = transition.then(async () => {
      if (stopping || failure !== undefined) return;
      const lost = sorted([...assigned].filter((p) => !now.has(p)));
      const gained = sorted([...now].filter((p) => !assigned.has(p)));
      try {
        if (lost.length > 0) {
          for (const p of lost) assigned.delete(p);
          for (const t of physicalTopics) for (const p of lost) positions.delete(partitionKey(t, p));
          await onRevoke?.(lost);
        }
        if (gained.length > 0) {
          await onAssign?.(gained);
          for (const p of gained) assigned.add(p);
        }
        // a standby stays one until a join gives it partitions (and they are announced)
        joinedEmpty = now.size === 0;
        await loadPositions(sorted(now).filter((p) => physicalTopics.some((t) => !positions.has(partitionKey(t, p)))));
        rebalancing = false;
        lastActivity = Date.now();
        wakeLoop();
      } catch (e) {
        fail(e);
      }
    });
  };

  /** Positions of `partitions`: the group's committed offsets, else the log start. */
  const loadPositions = async (partitions: readonly number[]): Promise<void> => {
    if (partitions.length === 0) return;
    const committed = await consumer.listCommittedOffsets({
      topics: physicalTopics.map((topic) => ({ topic, partitions: [...partitions] })),
    });
    for (const topic of physicalTopics) {
      const starts = await o.logStarts(topic);
      const offsets = committed.get(topic) ?? [];
      for (const p of partitions) {
        const c = offsets[p];
        positions.set(
          partitionKey(topic, p),
          c !== undefined && c >= 0n ? Math.max(Number(c), starts[p] ?? 0) : (starts[p] ?? 0),
        );
      }
    }
  };

  // Hold every rejoin until the fetch loop stopped, the running batches ended and onRevoke ran.
  const getApi = consumer[kGetApi].bind(consumer) as (
    name: string,
    callback: (error: Error | null, api?: unknown) => void,
  ) => void;
  (consumer as unknown as Record<symbol, unknown>)[kGetApi] = (
    name: string,
    callback: (error: Error | null, api?: unknown) => void,
  ): void => {
    if (name !== 'JoinGroup' || joins === 0 || stopping) {
      getApi(name, callback);
      return;
    }
    rebalancing = true;
    wakeLoop();
    roundRunning
      .then(() => revokeAll())
      .then(
        () => getApi(name, callback),
        (e: unknown) => callback(e instanceof Error ? e : new Error(String(e))),
      );
  };

  consumer.on('consumer:group:join', (payload) => {
    joins++;
    if (stopping || failure !== undefined) return;
    const now = new Set<number>();
    for (const a of payload.assignments ?? []) if (topics.has(a.topic)) for (const p of a.partitions) now.add(p);
    lastHeartbeat = Date.now();
    assignTo(now);
  });
  consumer.on('consumer:group:rebalance', () => {
    rebalancing = true;
    wakeLoop();
  });
  consumer.on('consumer:heartbeat:end', () => {
    lastHeartbeat = Date.now();
  });
  consumer.on('consumer:heartbeat:error', ({ error }) => {
    lastError = error.message;
    o.onWarning?.('heartbeat failed', error);
  });
  // A rejoin that failed for good, or any other client error without a caller to take it.
  consumer.on('error' as never, (error: Error) => fail(error));

  /** Hands over the batches of one round, at most `concurrency` at once. */
  const handOver = async (
    batches: { topic: string; partition: number; records: LogRecord[]; next: number }[],
  ): Promise<void> => {
    let i = 0;
    const worker = async (): Promise<void> => {
      while (i < batches.length) {
        const b = batches[i++]!;
        if (rebalancing || stopping || failure !== undefined || !assigned.has(b.partition)) return;
        const key = partitionKey(b.topic, b.partition);
        if (b.records.length > 0) {
          const view: Batch = { topic: topics.get(b.topic)!, partition: b.partition, records: b.records };
          const started = Date.now();
          lastActivity = started;
          batchStarts.add(started);
          try {
            await eachBatch(view);
          } catch (e) {
            fail(e);
            return;
          } finally {
            batchStarts.delete(started);
            lastActivity = Date.now();
          }
        }
        if (positions.has(key)) positions.set(key, Math.max(positions.get(key)!, b.next));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, batches.length)) }, worker));
  };

  const loop = async (): Promise<void> => {
    let failingSince: number | undefined;
    let delay = 5;
    while (!stopping && failure === undefined) {
      if (rebalancing || assigned.size === 0) {
        await idle(tuning.maxWaitTime);
        continue;
      }
      const requests = [...positions].flatMap(([key, offset]) => {
        const [topic, p] = key.split('\u0000') as [string, string];
        return assigned.has(Number(p)) ? [{ topic, partition: Number(p), offset }] : [];
      });
      let round: () => Promise<void>;
      try {
        const results = await fetchPartitions(consumer, requests, tuning);
        lastActivity = Date.now();
        lastError = undefined;
        failingSince = undefined;
        delay = 5;
        const batches = results.flatMap((r) => {
          const from = positions.get(partitionKey(r.topic, r.partition));
          if (from === undefined) return [];
          if (r.logStartOffset > from)
            return [{ topic: r.topic, partition: r.partition, records: [], next: r.logStartOffset }];
          const { records, next } = decodeBatches(topics.get(r.topic)!, r.partition, r.batches, r.aborted, from);
          return next > from ? [{ topic: r.topic, partition: r.partition, records, next }] : [];
        });
        round = () => handOver(batches);
      } catch (e) {
        if (stopping || failure !== undefined) return;
        lastError = e instanceof Error ? e.message : String(e);
        if (isOffsetOutOfRangeError(e)) {
          // positions below the log start (records deleted): move them up
          for (const topic of physicalTopics) {
            const starts = await o.logStarts(topic).catch(() => [] as number[]);
            for (const [key, offset] of positions) {
              const [t, p] = key.split('\u0000') as [string, string];
              if (t === topic && (starts[Number(p)] ?? 0) > offset) positions.set(key, starts[Number(p)]!);
            }
          }
        }
        consumer.clearMetadata();
        failingSince ??= Date.now();
        if (Date.now() - failingSince > tuning.rebalanceTimeout) {
          fail(e);
          return;
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
        continue;
      }
      roundRunning = round();
      await roundRunning;
    }
  };

  const end = (): Promise<void> => {
    shutdown ??= (async () => {
      wakeLoop();
      await roundRunning.catch(() => {});
      if (failure === undefined) await revokeAll();
      await transition;
      await consumer.leaveGroup.call(consumer, true).catch(() => {});
      await (consumer.close as (force?: boolean) => Promise<void>).call(consumer, true).catch(() => {});
      onEnded();
      settleDone();
    })();
    return shutdown;
  };

  try {
    await consumer.joinGroup({});
  } catch (e) {
    fail(e);
  }
  await transition;
  if (failure !== undefined) {
    await end();
    throw failure.error;
  }
  void loop().catch(fail);

  return {
    done,
    status() {
      const partitions = sorted(assigned);
      if (failure !== undefined || shutdown !== undefined)
        return { partitions, fetching: false, reason: 'the consumer has stopped' };
      // a standby reads as one through a rebalance too (as the kafkajs adapter's does), until a join gives it partitions
      const standby = partitions.length === 0 && joinedEmpty ? { standby: true } : {};
      const now = Date.now();
      if (partitions.length === 0 || rebalancing) {
        // nothing to fetch: alive while the group answers its heartbeats
        const unanswered = now - lastHeartbeat;
        if (unanswered <= heartbeatStaleMs) return { partitions, fetching: true, ...standby };
        const what = `no heartbeat answered for ${(unanswered / 1000).toFixed(1)} s`;
        return {
          partitions,
          fetching: false,
          reason: lastError === undefined ? what : `${what} (${lastError})`,
          ...standby,
        };
      }
      const quiet = now - lastActivity;
      if (quiet <= fetchStaleMs) return { partitions, fetching: true };
      if (batchStarts.size > 0) {
        const started = Math.min(...batchStarts);
        const running = now - started;
        const unanswered = now - Math.max(lastHeartbeat, started);
        if (running <= tuning.rebalanceTimeout && unanswered <= heartbeatStaleMs) return { partitions, fetching: true };
        const why =
          running > tuning.rebalanceTimeout
            ? `longer than the rebalance timeout of ${(tuning.rebalanceTimeout / 1000).toFixed(1)} s`
            : `no heartbeat answered for ${(unanswered / 1000).toFixed(1)} s`;
        return {
          partitions,
          fetching: false,
          reason: `a batch has been running for ${(running / 1000).toFixed(1)} s (${why})`,
        };
      }
      const what = `no fetch answered for ${(quiet / 1000).toFixed(1)} s`;
      return { partitions, fetching: false, reason: lastError === undefined ? what : `${what} (${lastError})` };
    },
    async stop() {
      stopping = true;
      await end();
      await done;
    },
  };
}
