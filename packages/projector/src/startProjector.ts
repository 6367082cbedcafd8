/**
 * The projector runner: a thin stage around {@link PartitionTask}s. It joins the projector group on
 * `twin.backend` + `twin.device` (co-partitioned), restores a task per assigned partition from
 * `twin.snapshots`, and commits each batch's output atomically with the input offsets.
 *
 * Crash-only: any failure to commit stops the projector (its `done` promise rejects); a restart
 * restores from the log, so nothing is lost and nothing is applied twice.
 */
import { createHybridClock, type Log, type TwinLimits } from '@twinlog/core';
import { PartitionTask, type BatchStats, type TaskOutput } from './partitionTask.ts';
import { TOPICS, type InputTopic } from './topics.ts';

export interface ProjectorOptions {
  readonly log: Log;
  /** Consumer group of the projector instances (default `twinlog-projector`). */
  readonly group?: string;
  /** Physical clock in ms (the owner HLC's source, for command facts). */
  readonly physicalNow: () => number;
  readonly limits?: Partial<TwinLimits>;
  /** How often parked device records are re-examined, ms (default 200). */
  readonly settleIntervalMs?: number;
  /** Called after each committed batch. */
  readonly onBatch?: (partition: number, stats: BatchStats) => void;
}

export interface Projector {
  /** Settles when the projector stops; rejects when it failed (commit error, fenced, …). */
  readonly done: Promise<void>;
  /** Partitions currently owned. */
  partitions(): number[];
  /** The task of a partition (tests and diagnostics). */
  task(partition: number): PartitionTask | undefined;
  stop(): Promise<void>;
}

/**
 * Start a projector instance. Several instances with the same `group` share the partitions.
 *
 * @example
 * const projector = await startProjector({ log, physicalNow: () => Date.now() })
 * // …
 * await projector.stop()
 */
export async function startProjector({
  log,
  group = 'twinlog-projector',
  physicalNow,
  limits,
  settleIntervalMs = 200,
  onBatch,
}: ProjectorOptions): Promise<Projector> {
  const clock = createHybridClock({ physicalNow });
  const tasks = new Map<number, PartitionTask>();
  const queues = new Map<number, Promise<void>>();
  let fail: (e: unknown) => void = () => {};
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  done.catch(() => {});
  let failed = false;

  /** Run `work` after everything queued for the partition (tasks are single-threaded). */
  const serial = (partition: number, work: () => Promise<void>): Promise<void> => {
    const next = (queues.get(partition) ?? Promise.resolve()).then(work);
    queues.set(partition, next.catch(() => {}));
    return next;
  };

  const commit = async (task: PartitionTask, out: TaskOutput): Promise<void> => {
    await log.commitBatch({
      fence: `projector-${group}-${task.partition}`,
      appends: out.appends,
      offsets: [
        { group, topic: TOPICS.backend, partition: task.partition, offset: out.positions.backend },
        { group, topic: TOPICS.device, partition: task.partition, offset: out.positions.device },
      ],
    });
    onBatch?.(task.partition, out.stats);
  };

  /** Whether `twin.backend` of the task's partition is consumed to its end (false when unknown). */
  const backendCaughtUp = async (task: PartitionTask): Promise<boolean> => {
    try {
      const end = (await log.endOffsets(TOPICS.backend))[task.partition] ?? 0;
      return task.resumeOffsets.backend >= end;
    } catch {
      return false; // a transient metadata error: parked records wait for the next check
    }
  };

  const crash = (e: unknown): void => {
    if (failed) return;
    failed = true;
    tasks.clear();
    fail(e);
  };

  const subscription = await log.subscribe({
    group,
    topics: [TOPICS.backend, TOPICS.device],
    onAssign: async (partitions) => {
      for (const partition of partitions) {
        tasks.set(partition, await PartitionTask.restore(log, { partition, clock, ...(limits === undefined ? {} : { limits }) }));
      }
    },
    onRevoke: async (partitions) => {
      for (const partition of partitions) {
        await queues.get(partition);
        tasks.delete(partition);
      }
    },
    eachBatch: ({ topic, partition, records }) =>
      serial(partition, async () => {
        const task = tasks.get(partition);
        if (task === undefined || failed) return;
        const input: InputTopic = topic === TOPICS.backend ? 'backend' : 'device';
        try {
          await commit(task, task.process(input, records, false));
          if (task.hasParked && (await backendCaughtUp(task))) {
            const settled = task.settle(true);
            if (settled !== undefined) await commit(task, settled);
          }
        } catch (e) {
          crash(e);
          throw e;
        }
      }),
  });

  const settling = new Set<number>();
  const timer = setInterval(() => {
    for (const [partition, task] of tasks) {
      if (!task.hasParked || settling.has(partition)) continue; // one pending settle per partition
      settling.add(partition);
      void serial(partition, async () => {
        if (tasks.get(partition) !== task || failed) return;
        try {
          const settled = task.settle(await backendCaughtUp(task));
          if (settled !== undefined) await commit(task, settled);
        } catch (e) {
          crash(e);
        } finally {
          settling.delete(partition);
        }
      });
    }
  }, settleIntervalMs);
  timer.unref();

  return {
    done,
    partitions: () => [...tasks.keys()].sort((a, b) => a - b),
    task: (partition) => tasks.get(partition),
    async stop() {
      clearInterval(timer);
      await subscription.stop();
      await Promise.all(queues.values());
      tasks.clear();
      finish();
    },
  };
}
