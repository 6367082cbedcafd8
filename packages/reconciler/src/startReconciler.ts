/**
 * The reconciler stage (docs/architecture.md, "Data flow of a write"): a thin runner around core's pure `delta`.
 * It joins its group on `twin.snapshots`, renders each snapshot, and emits on `twin.deltas` the
 * devices whose delta changed, atomically with the input offsets. A periodic sweep turns
 * `pending`/`acknowledged` entries `stale` once `staleAfterMs` have passed, without a new snapshot.
 *
 * Self-healing, like the projector: any failure (a commit, the consumer crashing, the broker gone)
 * stops the current run and core's `superviseStage` starts a new one after a backoff, forever; a
 * new run restores the last emitted deltas from `twin.deltas` and emits nothing twice. With
 * `restart: false` it is crash-only: the first failure rejects `done`.
 *
 * Restore and resume (docs/architecture.md, "Restore and resume"): every commit also appends the
 * group's checkpoint to `twin.deltas` (internal/checkpoint.ts), the `twin.snapshots` position its
 * deltas reflect, equal to the group offset it commits. A restore that misses the last transaction
 * (its commit marker not yet visible while its group offsets are) is caught on the first batch: it
 * starts past the checkpoint with snapshots in between, so the run stops with the retryable
 * `RECONCILER_RESUME_AHEAD` and the next run restores again.
 */
import {
  type AppendRecord,
  type BackoffOptions,
  type DeltaState,
  type Log,
  type StageHealth,
  type StageState,
} from '@twinlog/core';
import {
  CHECKPOINT_KEY,
  checkResumeGap,
  startPartitionStage,
  supervisePartitionStage,
  TOPICS,
  type PartitionStage,
} from '@twinlog/projector';
import { checkpointRecord } from './internal/checkpoint.ts';
import { emptyStats, ReconcilerPartition, type ReconcileStats } from './internal/reconcilerPartition.ts';

export type { ReconcileStats } from './internal/reconcilerPartition.ts';

/**
 * Options of {@link startReconciler}.
 *
 * @example
 * const options: ReconcilerOptions = { log, physicalNow: () => Date.now(), staleAfterMs: 10 * 60_000, sweepIntervalMs: 5_000 }
 */
export interface ReconcilerOptions {
  /** The log; the twin topics must exist (`ensureTwinTopics` from `@twinlog/projector`). */
  readonly log: Log;
  /** Consumer group of the reconciler instances (default `twinlog-reconciler`). */
  readonly group?: string;
  /** Physical clock in ms since the epoch: the sweep's `now`. */
  readonly physicalNow: () => number;
  /**
   * How long (ms) an entry may stay `pending` or `acknowledged` before it is `stale`. Default: never
   * stale (no sweep).
   */
  readonly staleAfterMs?: number | undefined;
  /** How often the sweep runs, ms (default 1000; only with `staleAfterMs`). */
  readonly sweepIntervalMs?: number;
  /** Recognise Plug and Play acknowledgements in reported (core `delta`'s `acks`, default true). */
  readonly acks?: boolean;
  /** Called after each committed batch or sweep of a partition. */
  readonly onBatch?: (partition: number, stats: ReconcileStats) => void;
  /** Restart after a failure with exponential backoff (default `{}`: 250 ms doubling to 30 s), or `false` for crash-only. */
  readonly restart?: BackoffOptions | false;
  /** The stage's name in `health()` (default `reconciler`). */
  readonly name?: string;
  /** Called once per state change of the stage, not per retry. */
  readonly onStateChange?: (health: StageHealth, previous: StageState) => void;
}

/**
 * A running reconciler (see {@link startReconciler}).
 *
 * @example
 * const reconciler = await startReconciler({ log, physicalNow: () => Date.now() })
 * reconciler.done.catch((e) => { console.error('reconciler failed', e); process.exit(1) }) // crash-only
 * reconciler.deltaOf('dev1')?.counts // { pending: 1, acknowledged: 0, … }
 */
export interface Reconciler {
  /** Settles when the reconciler stops; with `restart: false`, rejects when it failed (commit error, fenced …). */
  readonly done: Promise<void>;
  /** Whether it consumes its partitions, and why not. */
  health(): StageHealth;
  /** Partitions currently owned. */
  partitions(): number[];
  /** The last delta emitted for a device this instance owns (undefined: none, deleted, not owned). */
  deltaOf(deviceId: string): DeltaState | undefined;
  /** Run the stale sweep now on every owned partition; resolves with the number of records emitted. */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Start a reconciler instance. Several instances with the same `group` share the partitions.
 *
 * Details: a snapshot is evaluated at its own append time (`now` of core `delta` = the record's
 * timestamp), so evaluation is a function of the snapshot and replays emit the same deltas; the
 * sweep evaluates at `physicalNow()`. A delta record carries the offset of its snapshot, and a
 * snapshot at or below the last emitted one's offset is skipped, so redelivery, restart or a replay
 * from the earliest offset emits nothing twice. A deleted twin gets a tombstone (header
 * `twinlog-source-offset`).
 *
 * Gotcha: `twin.deltas` is written with the partition of the snapshot, so it must have the same
 * partition count as `twin.snapshots` (as `ensureTwinTopics` creates them).
 *
 * @example
 * const reconciler = await startReconciler({ log, physicalNow: () => Date.now(), staleAfterMs: 60_000 })
 * for await (const d of client.deltas({ deviceId: 'dev1' })) console.log(d.delta.counts)
 * await reconciler.stop()
 */
export async function startReconciler({
  log,
  group = 'twinlog-reconciler',
  physicalNow,
  staleAfterMs,
  sweepIntervalMs = 1000,
  acks = true,
  onBatch,
  restart = {},
  name = 'reconciler',
  onStateChange,
}: ReconcilerOptions): Promise<Reconciler> {
  const startStage = (): Promise<PartitionStage<ReconcilerPartition>> =>
    startPartitionStage({
      log,
      group,
      topics: [TOPICS.snapshots],
      restore: (partition) => ReconcilerPartition.restore(log, partition, group, { acks, staleAfterMs }),
      eachBatch: async (task, { partition, records }) => {
        if (records.length === 0) return;
        if (!task.resumeChecked) {
          // without a checkpoint of its group (a fresh topic, deltas from before checkpoints) nothing is checked
          if (task.checkpoint !== undefined) {
            await checkResumeGap(log, {
              topic: TOPICS.snapshots,
              partition,
              checkpoint: task.checkpoint,
              first: records[0]!.offset,
              code: 'RECONCILER_RESUME_AHEAD',
              unreflected: 'snapshot records the restored deltas do not reflect',
              counts: (r) => r.key !== CHECKPOINT_KEY, // the projector's checkpoints: skipped anyway
            });
          }
          task.resumeChecked = true;
        }
        const stats = emptyStats();
        const appends = task.process(records, stats);
        await commit(task, appends);
        onBatch?.(partition, stats);
      },
    });

  /**
   * Commit `appends` with the checkpoint and the group offset, both the task's position, so what a
   * restore reads back always names the snapshots its deltas reflect. A sweep commits them too:
   * before the first batch (position = the restored checkpoint) that moves the group back to what
   * the deltas it swept from reflect, should the restore have missed a transaction. Only without a
   * position (no checkpoint on the log, no batch yet) does a sweep commit its deltas alone.
   */
  const commit = async (task: ReconcilerPartition, appends: AppendRecord[]): Promise<void> => {
    const { partition, position } = task;
    const records = position === undefined ? appends : [...appends, checkpointRecord(partition, group, position)];
    await log.commitBatch({
      fence: `reconciler-${group}-${partition}`,
      appends: [{ topic: TOPICS.deltas, records }],
      ...(position === undefined ? {} : { offsets: [{ group, topic: TOPICS.snapshots, partition, offset: position }] }),
    });
  };

  let stage = await startStage(); // the first run's errors (no topic, …) are the caller's
  const supervision = supervisePartitionStage(stage, startStage, (next) => (stage = next), {
    name,
    restart,
    onStateChange,
  });
  const done = supervision.done;

  const sweepPartition = (partition: number, task: ReconcilerPartition): Promise<number> => {
    let emitted = 0;
    return stage
      .serial(partition, task, async () => {
        const stats = emptyStats();
        const records = task.sweep(physicalNow(), stats);
        if (records.length === 0) return;
        await commit(task, records);
        emitted = records.length;
        onBatch?.(partition, stats);
      })
      .then(() => emitted);
  };

  const timer =
    staleAfterMs === undefined
      ? undefined
      : setInterval(() => {
          for (const [partition, task] of stage.tasks) sweepPartition(partition, task).catch(() => {});
        }, sweepIntervalMs);
  timer?.unref();

  return {
    done,
    health: () => supervision.health(),
    partitions: () => [...stage.tasks.keys()].sort((a, b) => a - b),
    deltaOf(deviceId) {
      for (const task of stage.tasks.values()) {
        const d = task.deltaOf(deviceId);
        if (d !== undefined) return d;
      }
      return undefined;
    },
    async sweep() {
      const counts = await Promise.all([...stage.tasks].map(([partition, task]) => sweepPartition(partition, task)));
      return counts.reduce((a, b) => a + b, 0);
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      await supervision.stop();
    },
  };
}
