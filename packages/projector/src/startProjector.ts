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
import { startPartitionStage } from './startPartitionStage.ts';
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
  /**
   * How many owned partitions are worked on at once (default 8). Each partition commits its own
   * transaction; overlapping them keeps one partition's records from waiting for another's commit.
   */
  readonly concurrency?: number;
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
  concurrency = 8,
  onBatch,
}: ProjectorOptions): Promise<Projector> {
  const clock = createHybridClock({ physicalNow });

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

  const stage = await startPartitionStage({
    log,
    group,
    topics: [TOPICS.backend, TOPICS.device],
    concurrency,
    restore: (partition) => PartitionTask.restore(log, { partition, clock, ...(limits === undefined ? {} : { limits }) }),
    eachBatch: async (task, { topic, records }) => {
      const input: InputTopic = topic === TOPICS.backend ? 'backend' : 'device';
      await commit(task, task.process(input, records, false));
      if (task.hasParked && (await backendCaughtUp(task))) {
        const settled = task.settle(true);
        if (settled !== undefined) await commit(task, settled);
      }
    },
  });

  const settling = new Set<number>();
  const timer = setInterval(() => {
    for (const [partition, task] of stage.tasks) {
      if (!task.hasParked || settling.has(partition)) continue; // one pending settle per partition
      settling.add(partition);
      stage
        .serial(partition, task, async () => {
          const settled = task.settle(await backendCaughtUp(task));
          if (settled !== undefined) await commit(task, settled);
        })
        .catch(() => {}) // the stage has failed: `done` carries the error
        .finally(() => settling.delete(partition));
    }
  }, settleIntervalMs);
  timer.unref();

  return {
    done: stage.done,
    partitions: () => [...stage.tasks.keys()].sort((a, b) => a - b),
    task: (partition) => stage.tasks.get(partition),
    async stop() {
      clearInterval(timer);
      await stage.stop();
    },
  };
}
