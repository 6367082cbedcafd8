/**
 * `Log.subscribe` on kafkajs: a consumer in the caller's group with the co-partitioned assigner,
 * offsets committed only by the caller (`autoCommit: false`), and the port's `onRevoke` /
 * `onAssign` announcements.
 *
 * kafkajs (2.2.4) has no rebalance listener: it emits `GROUP_JOIN` (with the member's new
 * assignment) after each join, and says nothing before it rejoins. Its rebalances are eager: every
 * member gives up all its partitions, rejoins, and gets a fresh assignment, and the coordinator
 * completes the rebalance only once every member has rejoined (or `rebalanceTimeout` passed). So:
 *
 * - **`onRevoke` runs before the member rejoins**, for every partition it holds. Each (re)join
 *   starts with `cluster.findGroupCoordinator`, and the co-partitioned assigner is handed that very
 *   `cluster` object; the subscription wraps the method on it so that a rejoin first waits for
 *   `onRevoke`. kafkajs rejoins only after the running batches ended, and no other member can get
 *   the partitions before this one has rejoined: when `onRevoke` runs nobody else holds them yet.
 *   (If the member was thrown out of the group instead, e.g. its session expired, the partitions
 *   may already be elsewhere; fencing covers that case.)
 * - **`onAssign` runs after the join** (`GROUP_JOIN`), with the partitions gained, and every batch
 *   waits for it before being handed over; kafkajs starts fetching right away, so the first batches
 *   are held, with heartbeats going, until `onAssign` resolved.
 * - Like Java's eager rebalance listener, a partition kept across a rebalance is revoked and
 *   assigned again; and kafkajs resumes it from the committed offset, so records delivered but not
 *   committed before a rebalance come again.
 * - Batches of a partition are handed over one at a time, in offset order. Batches of different
 *   partitions (and of partition *i* of different topics) overlap only with
 *   `partitionsConsumedConcurrently > 1`.
 *
 * A callback that throws ends the subscription: `stop()` and `done` then reject with its error.
 *
 * `status()` (what the stage supervisor reads, core's `RunStatus`) tells a live consumer from a
 * stuck one by its signs of life:
 *
 * - **Fetching**: a fetch answered, or a batch started or ended, within `fetchStaleMs`. kafkajs's
 *   fetch loop answers every `maxWaitTimeInMs` or sooner when records arrive, so a quiet gap means
 *   the broker does not answer (kafkajs retries by itself meanwhile).
 * - **A batch in flight** stops the fetch loop for as long as it runs (a big catch-up batch under
 *   load may take seconds). It counts as alive while the group coordinator answers the heartbeats
 *   sent during the batch (`HEARTBEAT`, at least one per `max(fetchStaleMs, 3 × heartbeatInterval)`:
 *   kafkajs skips a heartbeat sent less than an interval after the last one), for at most
 *   `rebalanceTimeout` (beyond it, a rebalance would throw the member out of the group: it holds
 *   its partitions without progress), and not after the consumer reported an error. During a
 *   broker outage the heartbeats fail, so a batch waiting on the dead broker reads `fetching: false`
 *   within seconds, as an idle consumer does.
 * - **Standby**: a member whose last join gave it no partition (the group has more members than
 *   partitions) reads `standby: true` with no partitions; its fetch loop keeps going (kafkajs
 *   sleeps `maxWaitTimeInMs`, reports the empty fetch and heartbeats), so it is alive by the same
 *   rule. Until its first join it reads no partitions without `standby` (still joining).
 */
import type { Batch, LogRecord, SubscribeOptions } from '@twinlog/core';
import type { Consumer, EachBatchPayload, Kafka, PartitionAssigner } from 'kafkajs';
import { coPartitionedAssigner } from '../coPartitionedAssigner.ts';
import { toLogRecord } from './records.ts';
import { withHeartbeat } from './withHeartbeat.ts';

/** Consumer tuning shared by subscriptions and reads. */
export interface ConsumerTuning {
  readonly sessionTimeout: number;
  readonly heartbeatInterval: number;
  readonly rebalanceTimeout: number;
  readonly maxWaitTimeInMs: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly maxBytesPerPartition: number;
}

export interface StartSubscriptionOptions {
  readonly kafka: Kafka;
  /** The physical group id (prefixed). */
  readonly groupId: string;
  /** Physical topic name → logical name, in subscription order. */
  readonly topics: ReadonlyMap<string, string>;
  readonly subscribe: SubscribeOptions;
  readonly tuning: ConsumerTuning;
  readonly partitionsConsumedConcurrently: number;
  /** Called once the subscription has ended (stopped or failed). */
  readonly onEnded: () => void;
  /** How long without a fetch answer or a batch before `status()` says it is not fetching, ms (default max(2000, 4 × maxWaitTimeInMs)). */
  readonly fetchStaleMs?: number;
}

/** The port's `Subscription`, plus a way to learn that it ended on its own. */
export interface KafkaSubscription {
  /**
   * Announces `onRevoke` for the partitions held, leaves the group and stops consuming; resolves
   * when no batch is running. Rejects with the error that ended the subscription, if one did.
   */
  stop(): Promise<void>;
  /**
   * Settles when the subscription has ended: resolves after `stop()`, rejects with the error of an
   * `eachBatch`, `onAssign` or `onRevoke` that threw, or of the consumer when kafkajs gave up.
   */
  readonly done: Promise<void>;
  /**
   * What the subscription holds and whether its consumer is fetching: a fetch answered (or a batch
   * handed over) within the last `fetchStaleMs`. While the broker is unreachable kafkajs retries by
   * itself for a while before it gives up (`done` rejects); meanwhile this says `fetching: false`.
   * A batch in flight is alive while its heartbeats are answered; a member the group gave no
   * partitions says `standby: true` (see the module comment).
   */
  status(): {
    readonly partitions: readonly number[];
    readonly fetching: boolean;
    readonly reason?: string;
    readonly standby?: boolean;
  };
}

const sorted = (partitions: Iterable<number>): number[] => [...partitions].sort((a, b) => a - b);

export async function startSubscription({
  kafka,
  groupId,
  topics,
  subscribe,
  tuning,
  partitionsConsumedConcurrently,
  onEnded,
  fetchStaleMs = Math.max(2000, 4 * tuning.maxWaitTimeInMs),
}: StartSubscriptionOptions): Promise<KafkaSubscription> {
  const { onAssign, onRevoke, eachBatch } = subscribe;
  /** How long a batch in flight may go without an answered heartbeat and still count as alive. */
  const heartbeatStaleMs = Math.max(fetchStaleMs, 3 * tuning.heartbeatInterval);

  /** Partitions announced through `onAssign` and not revoked since. */
  const assigned = new Set<number>();
  /** Assignment callbacks run one after another on this chain; every batch waits for it. */
  let transition: Promise<void> = Promise.resolve();
  let stopping = false;
  let failure: { error: unknown } | undefined;
  const inFlight = new Set<Promise<unknown>>();

  let settleDone: () => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settleDone = () => (failure === undefined ? resolve() : reject(failure.error));
  });
  done.catch(() => {});

  let shutdown: Promise<void> | undefined;
  const fail = (error: unknown): void => {
    if (failure !== undefined || stopping) return;
    failure = { error };
    void end();
  };

  /** Queues `onRevoke` for everything held (a no-op when nothing is). */
  const revokeAll = (): Promise<void> => {
    transition = transition.then(async () => {
      if (assigned.size === 0 || failure !== undefined) return;
      const all = sorted(assigned);
      assigned.clear();
      try {
        await onRevoke?.(all);
      } catch (e) {
        if (failure === undefined) failure = { error: e };
        void end();
      }
    });
    return transition;
  };

  /** Queues the callbacks that take the announced partitions to `now`. */
  const assignTo = (now: ReadonlySet<number>): void => {
    transition = transition.then(async () => {
      if (stopping || failure !== undefined) return;
      const lost = sorted([...assigned].filter((p) => !now.has(p)));
      const gained = sorted([...now].filter((p) => !assigned.has(p)));
      try {
        if (lost.length > 0) {
          for (const p of lost) assigned.delete(p);
          await onRevoke?.(lost);
        }
        if (gained.length > 0) {
          await onAssign?.(gained);
          for (const p of gained) assigned.add(p);
        }
      } catch (e) {
        fail(e);
      }
    });
  };

  let joins = 0;
  /** The co-partitioned assigner, on a `cluster` whose `findGroupCoordinator` waits for `onRevoke` before each rejoin. */
  const assigner: PartitionAssigner = (config) => {
    const { cluster } = config;
    const findGroupCoordinator = cluster.findGroupCoordinator.bind(cluster);
    cluster.findGroupCoordinator = async (group) => {
      if (group.groupId === groupId && joins++ > 0 && !stopping) await revokeAll();
      return findGroupCoordinator(group);
    };
    return coPartitionedAssigner(config);
  };

  const consumer: Consumer = kafka.consumer({
    groupId,
    partitionAssigners: [assigner],
    readUncommitted: false,
    ...tuning,
  });

  const end = (): Promise<void> => {
    shutdown ??= (async () => {
      try {
        consumer.pause([...topics.keys()].map((topic) => ({ topic })));
      } catch {
        // not running (yet or any more): nothing to pause
      }
      await Promise.allSettled([...inFlight]);
      if (failure === undefined) await revokeAll();
      await transition;
      await consumer.disconnect().catch(() => {});
      onEnded();
      settleDone();
    })();
    return shutdown;
  };

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    if (stopping || failure !== undefined) return;
    const now = new Set<number>();
    for (const partitions of Object.values(payload.memberAssignment)) for (const p of partitions) now.add(p);
    joinedEmpty = now.size === 0;
    assignTo(now);
  });

  /** Last sign of life of the fetch loop (a fetch answered, a batch started or ended). */
  let lastActivity = Date.now();
  let lastError: string | undefined;
  /** Last heartbeat the coordinator answered (kafkajs's, and those sent while a batch runs). */
  let lastHeartbeat = 0;
  /** Whether the last join gave this member no partition (a standby), once it has joined. */
  let joinedEmpty = false;
  /** When each batch in flight started. */
  const batchStarts = new Map<Promise<unknown>, number>();
  consumer.on(consumer.events.FETCH, () => {
    lastActivity = Date.now();
    lastError = undefined;
  });
  consumer.on(consumer.events.HEARTBEAT, () => {
    lastHeartbeat = Date.now();
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    lastError = payload.error instanceof Error ? payload.error.message : String(payload.error);
    // kafkajs restarts the consumer by itself after a retriable crash; anything else is the end.
    if (!payload.restart) fail(payload.error);
  });

  const handle = async ({ batch, heartbeat, resolveOffset }: EachBatchPayload): Promise<void> => {
    if (stopping || failure !== undefined) return;
    await withHeartbeat(heartbeat, tuning.heartbeatInterval, () => transition);
    if (stopping || failure !== undefined) return;
    const logical = topics.get(batch.topic);
    if (logical === undefined || !assigned.has(batch.partition)) {
      fail(
        new Error(`twinlog: got a batch of ${batch.topic}[${batch.partition}], which was never announced to onAssign`),
      );
      return;
    }
    const records: LogRecord[] = batch.messages.map((m) => toLogRecord(logical, batch.partition, m));
    const lag = Number(batch.offsetLag());
    const view: Batch = {
      topic: logical,
      partition: batch.partition,
      records,
      ...(Number.isSafeInteger(lag) && lag >= 0 ? { lag } : {}),
    };
    lastActivity = Date.now();
    const work = withHeartbeat(heartbeat, tuning.heartbeatInterval, () => eachBatch(view));
    inFlight.add(work);
    batchStarts.set(work, lastActivity);
    try {
      await work;
    } catch (e) {
      fail(e);
      return;
    } finally {
      inFlight.delete(work);
      batchStarts.delete(work);
      lastActivity = Date.now();
    }
    // Left unresolved when the batch was not handled: kafkajs would fetch it again.
    resolveOffset(batch.lastOffset());
  };

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [...topics.keys()], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently,
      eachBatch: handle,
    });
  } catch (e) {
    fail(e);
  }
  // `run` resolves after the first join (or after a crash, reported through CRASH): let the first
  // `onAssign` finish too, so the caller starts with its partitions announced.
  await transition;
  if (failure !== undefined) {
    await end();
    throw failure.error;
  }

  return {
    done,
    status() {
      const partitions = sorted(assigned);
      if (failure !== undefined || shutdown !== undefined)
        return { partitions, fetching: false, reason: 'the consumer has stopped' };
      const standby = partitions.length === 0 && joinedEmpty ? { standby: true } : {};
      const now = Date.now();
      const quiet = now - lastActivity;
      if (quiet <= fetchStaleMs) return { partitions, fetching: true, ...standby };
      if (inFlight.size > 0) {
        const started = Math.min(...batchStarts.values());
        const running = now - started;
        const unanswered = now - Math.max(lastHeartbeat, started);
        if (lastError === undefined && running <= tuning.rebalanceTimeout && unanswered <= heartbeatStaleMs)
          return { partitions, fetching: true, ...standby };
        const why =
          lastError !== undefined
            ? lastError
            : running > tuning.rebalanceTimeout
              ? `longer than the rebalance timeout of ${(tuning.rebalanceTimeout / 1000).toFixed(1)} s`
              : `no heartbeat answered for ${(unanswered / 1000).toFixed(1)} s`;
        return {
          partitions,
          fetching: false,
          reason: `a batch has been running for ${(running / 1000).toFixed(1)} s (${why})`,
          ...standby,
        };
      }
      const what = `no fetch answered for ${(quiet / 1000).toFixed(1)} s`;
      return {
        partitions,
        fetching: false,
        reason: lastError === undefined ? what : `${what} (${lastError})`,
        ...standby,
      };
    },
    async stop() {
      stopping = true;
      await end();
      await done;
    },
  };
}
