/**
 * The lifecycle every twinlog stage shares (projector, reconciler): join a group on co-partitioned
 * topics, restore one task per assigned partition before its first batch, drop it when the
 * partition is revoked (after its running work ends), run each partition's work one at a time, and
 * fail crash-only: the first error stops the stage and rejects `done`.
 */
import type { Batch, Log } from '@twinlog/core';

export interface PartitionStageOptions<T> {
  readonly log: Log;
  readonly group: string;
  readonly topics: readonly string[];
  /** Build the task of a newly assigned partition (e.g. restore it from the log). */
  readonly restore: (partition: number) => Promise<T>;
  /** Handle one batch with the partition's task; a throw stops the stage. */
  readonly eachBatch: (task: T, batch: Batch) => Promise<void>;
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
export async function startPartitionStage<T>({ log, group, topics, restore, eachBatch, concurrency }: PartitionStageOptions<T>): Promise<PartitionStage<T>> {
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
    queues.set(partition, next.catch(() => {}));
    return next;
  };

  const subscription = await log.subscribe({
    group,
    topics,
    ...(concurrency === undefined ? {} : { concurrency }),
    onAssign: async (partitions) => {
      for (const partition of partitions) tasks.set(partition, await restore(partition));
    },
    onRevoke: async (partitions) => {
      for (const partition of partitions) {
        await queues.get(partition);
        tasks.delete(partition);
      }
    },
    eachBatch: async (batch) => {
      const task = tasks.get(batch.partition);
      if (task !== undefined) await serial(batch.partition, task, () => eachBatch(task, batch));
    },
  });

  return {
    done,
    tasks,
    get failed() {
      return failed;
    },
    serial,
    async stop() {
      await subscription.stop();
      await Promise.all(queues.values());
      tasks.clear();
      finish();
    },
  };
}
