/**
 * The lifecycle every twinlog stage shares (projector, reconciler): join a group on co-partitioned
 * topics, restore one task per assigned partition before its first batch, drop it when the
 * partition is revoked (after its running work ends), run each partition's work one at a time, and
 * fail crash-only: the first error — of a batch, or of the consumer itself (a subscription that
 * reports its end, as the Kafka log's does when kafkajs gives up) — stops the stage and rejects
 * `done`. One stage is one run of core's `superviseStage`, which restarts it with backoff.
 */
import type { Batch, Log, ObservableSubscription, RunStatus } from '@twinlog/core';

export interface PartitionStageOptions<T> {
  readonly log: Log;
  readonly group: string;
  readonly topics: readonly string[];
  /** Build the task of a newly assigned partition (e.g. restore it from the log). */
  readonly restore: (partition: number) => Promise<T>;
  /** Handle one batch with the partition's task; a throw stops the stage. */
  readonly eachBatch: (task: T, batch: Batch) => Promise<void>;
  /**
   * Called, after the partition's queued work, before a revoked partition's task is dropped (a
   * rebalance, `stop()`): commit what the task holds uncommitted. A throw stops the stage.
   */
  readonly release?: (task: T) => Promise<void>;
  /**
   * How many partitions' batches may run at once (default 1). Work of one partition stays serial
   * whatever the topic; partitions overlap, so one partition's commit no longer waits for another's.
   */
  readonly concurrency?: number;
}

export interface PartitionStage<T> {
  /** Settles when the stage stops; rejects with the error that stopped it. */
  readonly done: Promise<void>;
  /** The task of each owned partition. */
  readonly tasks: ReadonlyMap<number, T>;
  /** True once an error stopped the stage. */
  readonly failed: boolean;
  /**
   * Run `work` after everything queued for the partition (tasks are single-threaded). `work` is
   * skipped when the partition's task is no longer `task` or the stage failed; a throw stops the
   * stage and rejects the returned promise.
   */
  serial(partition: number, task: T, work: () => Promise<void>): Promise<void>;
  /** The partitions restored and whether the consumer fetches (when the log can tell). */
  status(): RunStatus;
  /** Leave the group, wait for queued work, settle `done`. */
  stop(): Promise<void>;
}

/**
 * Start a stage (see the module comment).
 *
 * @example
 * const stage = await startPartitionStage({ log, group, topics: [TOPICS.snapshots], restore, eachBatch })
 * await stage.stop()
 */
export async function startPartitionStage<T>({
  log,
  group,
  topics,
  restore,
  eachBatch,
  release,
  concurrency,
}: PartitionStageOptions<T>): Promise<PartitionStage<T>> {
  const tasks = new Map<number, T>();
  const queues = new Map<number, Promise<void>>();
  let fail: (e: unknown) => void = () => {};
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  done.catch(() => {});
  let failed = false;

  const serial = (partition: number, task: T, work: () => Promise<void>): Promise<void> => {
    const next = (queues.get(partition) ?? Promise.resolve()).then(async () => {
      if (tasks.get(partition) !== task || failed) return;
      try {
        await work();
      } catch (e) {
        if (!failed) {
          failed = true;
          tasks.clear();
          fail(e);
        }
        throw e;
      }
    });
    queues.set(
      partition,
      next.catch(() => {}),
    );
    return next;
  };

  const subscription: ObservableSubscription = await log.subscribe({
    group,
    topics,
    ...(concurrency === undefined ? {} : { concurrency }),
    onAssign: async (partitions) => {
      for (const partition of partitions) tasks.set(partition, await restore(partition));
    },
    onRevoke: async (partitions) => {
      for (const partition of partitions) {
        const task = tasks.get(partition);
        if (release !== undefined && task !== undefined)
          await serial(partition, task, () => release(task)).catch(() => {});
        await queues.get(partition);
        tasks.delete(partition);
      }
    },
    eachBatch: async (batch) => {
      const task = tasks.get(batch.partition);
      if (task !== undefined) await serial(batch.partition, task, () => eachBatch(task, batch));
    },
  });

  // The consumer itself may end (kafkajs gave up on the broker): that fails the stage too.
  subscription.done?.then(
    () => {},
    (e: unknown) => {
      if (failed) return;
      failed = true;
      tasks.clear();
      fail(e);
    },
  );

  return {
    done,
    tasks,
    status() {
      const sub = subscription.status?.();
      // restored partitions; with a log that reports them, those announced once all of a rebalance's restores ended
      const partitions =
        sub?.partitions !== undefined
          ? sub.partitions.filter((p) => tasks.has(p))
          : [...tasks.keys()].sort((x, y) => x - y);
      if (sub === undefined) return { partitions };
      return {
        partitions,
        fetching: sub.fetching ?? true,
        ...(sub.standby === true ? { standby: true } : {}),
        ...(sub.reason === undefined ? {} : { reason: sub.reason }),
      };
    },
    get failed() {
      return failed;
    },
    serial,
    async stop() {
      await subscription.stop().catch((e: unknown) => {
        if (!failed) throw e; // a failed stage's subscription rejects with the error `done` carries
      });
      await Promise.all(queues.values());
      tasks.clear();
      finish();
    },
  };
}
