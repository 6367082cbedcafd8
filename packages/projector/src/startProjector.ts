/**
 * The projector runner: a thin stage around {@link PartitionTask}s. It joins the projector group on
 * `twin.backend` + `twin.device` (co-partitioned), restores a task per assigned partition from
 * `twin.snapshots`, and commits the output of what it folded atomically with the input offsets.
 *
 * Commit cadence (docs/write-path.md): at the head of the log every batch is committed at once, so
 * a write's decision is not held back; while a backlog waits (the batch says more records follow
 * it), batches are folded into one pending output and committed every `maxUncommittedRecords`
 * records or `maxUncommittedMs`, whichever comes first, so a device touched by several batches gets
 * one snapshot, and the commits are fewer.
 *
 * Self-healing: any failure (a commit, the consumer crashing, the broker gone) stops the current
 * run of the stage cleanly and core's `superviseStage` starts a new one after a backoff (250 ms
 * doubling to 30 s, jittered), forever, until `stop()`; a new run restores from the log, so
 * nothing is lost and nothing is applied twice. `health()` says whether it consumes its
 * partitions. With `restart: false` it is crash-only instead: the first failure rejects `done`.
 */
import {
  createHybridClock,
  type BackoffOptions,
  type Log,
  type StageHealth,
  type StageState,
  type TwinLimits,
} from '@twinlog/core';
import {
  PartitionTask,
  passedTaskOptions,
  type BatchStats,
  type TaskOptions,
  type TaskOutput,
} from './partitionTask.ts';
import { checkResumeGap } from './resumeGap.ts';
import { supervisePartitionStage } from './supervisePartitionStage.ts';
import { startPartitionStage, type PartitionStage } from './startPartitionStage.ts';
import { TOPICS, type InputTopic } from './topics.ts';
import { createWorkerPool, type ProjectorTask } from './workers/workerPool.ts';

/** A batch followed by at least this many offsets is a backlog: its output may wait for more. */
const BACKLOG_LAG = 1000;

export interface ProjectorOptions {
  readonly log: Log;
  /** Consumer group of the projector instances (default `twinlog-projector`). */
  readonly group?: string;
  /** Physical clock in ms (the owner HLC's source, for command facts). */
  readonly physicalNow: () => number;
  readonly limits?: Partial<TwinLimits>;
  /**
   * The GC horizon (docs/bounded-state.md, "The GC horizon"): how long a producer may buffer events offline (default one
   * day), the clock skew tolerated (one minute) and the margin for produce-to-consume delays (one
   * hour). An event stamped older than `appendTime − maxOfflineWindowMs − maxSkewMs` is rejected by
   * validation; its twin forgets what lies older than the horizon, a further `gcMarginMs` back from
   * the twin's latest record. Every projector and replay of one log should use the same values.
   */
  readonly maxOfflineWindowMs?: number;
  readonly maxSkewMs?: number;
  readonly gcMarginMs?: number;
  /** How far ahead of its append time a stamp may be (default 5 minutes). */
  readonly maxForwardSkewMs?: number;
  /**
   * Largest snapshot record written, bytes (default 1,000,000, below Kafka's default 1,048,588-byte
   * `max.message.bytes`). An event or command that would make a twin's snapshot larger is
   * rejected (`twin.rejections`), and the twin keeps its last good state.
   */
  readonly maxSnapshotBytes?: number;
  /** How often parked device records are re-examined, and pending output checked for age, ms (default 200). */
  readonly settleIntervalMs?: number;
  /**
   * While a backlog waits, how many input records of a partition may be folded before their output
   * is committed (default 50,000); 1 commits every batch.
   */
  readonly maxUncommittedRecords?: number;
  /** While a backlog waits, how long folded output may stay uncommitted, ms (default 1,000). */
  readonly maxUncommittedMs?: number;
  /**
   * How many owned partitions are worked on at once (default 8). Each partition commits its own
   * transaction; overlapping them keeps one partition's records from waiting for another's commit.
   */
  readonly concurrency?: number;
  /**
   * Called after each committed batch, with its counts, its rejections by code (late events,
   * events refused because a snapshot would exceed `maxSnapshotBytes`, failed commands, …) and
   * where its time went (`foldMs`, `encodeMs`, `commitMs`: for metrics, docs/operations.md).
   */
  readonly onBatch?: (partition: number, stats: BatchStats, detail: BatchDetail) => void;
  /**
   * Restart after a failure with exponential backoff (default `{}`: 250 ms doubling to 30 s), or
   * `false` for crash-only (the first failure stops the projector and rejects `done`).
   */
  readonly restart?: BackoffOptions | false;
  /** The stage's name in `health()` (default `projector`). */
  readonly name?: string;
  /**
   * Worker threads that hold the partitions' tasks and do the decoding, folding and encoding, so a
   * projector uses more than one core (default 0: everything on the calling thread). Partition *p*
   * goes to worker `p mod workers`; the workers use the system clock, not `physicalNow`.
   */
  readonly workers?: number;
  /** Called once per state change of the stage (consuming, stalled, restarting, …), not per retry. */
  readonly onStateChange?: (health: StageHealth, previous: StageState) => void;
}

/** More about a committed batch than its counts. */
export interface BatchDetail {
  /** Records the batch wrote to `twin.rejections`, by code. */
  readonly rejectedByCode: Readonly<Record<string, number>>;
  /**
   * Input records folded into this output (several consumed batches when a backlog accumulates
   * them, docs/write-path.md); 0 for an output of parked records decided later.
   */
  readonly records: number;
  /** Time folding those records, ms (with `workers`: as the calling thread waited for them). */
  readonly foldMs: number;
  /** Time turning the folded state into the output records (`flush`, or `settle` for parked records), ms. */
  readonly encodeMs: number;
  /** Time of the atomic `commitBatch` (output records and input offsets), ms. */
  readonly commitMs: number;
}

export interface Projector {
  /**
   * Settles when the projector stops. With `restart: false`, rejects when it failed (commit error,
   * fenced, …); otherwise failures restart it and `done` resolves after `stop()`.
   */
  readonly done: Promise<void>;
  /** Whether it consumes its partitions, and why not. */
  health(): StageHealth;
  /** Partitions currently owned. */
  partitions(): number[];
  /** The task of a partition (tests and diagnostics); undefined with `workers`, whose tasks live in the workers. */
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
export async function startProjector(options: ProjectorOptions): Promise<Projector> {
  const {
    log,
    group = 'twinlog-projector',
    physicalNow,
    settleIntervalMs = 200,
    maxUncommittedRecords = 50_000,
    maxUncommittedMs = 1_000,
    concurrency = 8,
    onBatch,
    restart = {},
    name = 'projector',
    onStateChange,
    workers = 0,
  } = options;
  const clock = createHybridClock({ physicalNow });
  const passed = passedTaskOptions(options);
  const taskOptions = (partition: number): TaskOptions => ({ partition, clock, ...passed });
  new PartitionTask(taskOptions(0)); // option errors surface here, not at the first assignment
  const pool = workers === 0 ? undefined : createWorkerPool(workers);
  if (!(maxUncommittedRecords >= 1) || !(maxUncommittedMs >= 0))
    throw new RangeError('maxUncommittedRecords must be ≥ 1 and maxUncommittedMs ≥ 0');
  /** When each task's pending (folded, uncommitted) output began. */
  const pendingSince = new WeakMap<ProjectorTask, number>();
  /**
   * Records folded and time spent folding them since each task's last commit (`BatchDetail`):
   * two clock reads per consumed batch, none per record.
   */
  const folded = new WeakMap<ProjectorTask, { records: number; ms: number }>();

  /** Produce the task's output (`flush` or `settle`) and commit it, timing both. */
  const produceAndCommit = async (
    task: ProjectorTask,
    produce: () => TaskOutput | undefined | Promise<TaskOutput | undefined>,
  ): Promise<void> => {
    const started = performance.now();
    const out = await produce();
    if (out === undefined) return;
    await commit(task, out, performance.now() - started);
  };

  const commit = async (task: ProjectorTask, out: TaskOutput, encodeMs: number): Promise<void> => {
    const started = performance.now();
    await log.commitBatch({
      fence: `projector-${group}-${task.partition}`,
      appends: out.appends,
      // not waited for: only a restore reads it back, and one that reads too early stops (checkResume)
      awaitVisibility: false,
      offsets: [
        { group, topic: TOPICS.backend, partition: task.partition, offset: out.positions.backend },
        { group, topic: TOPICS.device, partition: task.partition, offset: out.positions.device },
      ],
    });
    const commitMs = performance.now() - started;
    const f = folded.get(task);
    folded.delete(task);
    onBatch?.(task.partition, out.stats, {
      rejectedByCode: out.rejectedByCode,
      records: f?.records ?? 0,
      foldMs: f?.ms ?? 0,
      encodeMs,
      commitMs,
    });
  };

  /** Whether `twin.backend` of the task's partition is consumed to its end (false when unknown). */
  const backendCaughtUp = async (task: ProjectorTask): Promise<boolean> => {
    try {
      const end = (await log.endOffsets(TOPICS.backend))[task.partition] ?? 0;
      return task.resumeOffsets.backend >= end;
    } catch {
      return false; // a transient metadata error: parked records wait for the next check
    }
  };

  /** The input topics of each task whose first batch since its restore has been checked. */
  const resumed = new WeakMap<ProjectorTask, Set<InputTopic>>();
  /** Check the first batch of each input topic since the task's restore (resumeGap.ts). */
  const checkResume = async (task: ProjectorTask, input: InputTopic, topic: string, first: number): Promise<void> => {
    let checked = resumed.get(task);
    if (checked === undefined) resumed.set(task, (checked = new Set()));
    if (checked.has(input)) return;
    await checkResumeGap(log, {
      topic,
      partition: task.partition,
      checkpoint: task.resumeOffsets[input],
      first,
      code: 'PROJECTOR_RESUME_AHEAD',
      unreflected: 'records the restored state has not folded',
    });
    checked.add(input);
  };

  const startStage = (): Promise<PartitionStage<ProjectorTask>> =>
    startPartitionStage({
      log,
      group,
      topics: [TOPICS.backend, TOPICS.device],
      concurrency,
      restore: (partition): Promise<ProjectorTask> =>
        pool === undefined ? PartitionTask.restore(log, taskOptions(partition)) : pool.open(log, partition, passed),
      eachBatch: async (task, { topic, records, lag }) => {
        const input: InputTopic = topic === TOPICS.backend ? 'backend' : 'device';
        if (records.length > 0) await checkResume(task, input, topic, records[0]!.offset);
        if (task.pending === 0) pendingSince.set(task, physicalNow());
        const foldStarted = performance.now();
        await task.fold(input, records, false);
        const f = folded.get(task);
        const foldMs = performance.now() - foldStarted;
        if (f === undefined) folded.set(task, { records: records.length, ms: foldMs });
        else {
          f.records += records.length;
          f.ms += foldMs;
        }
        const backlog = lag !== undefined && lag >= BACKLOG_LAG;
        if (
          !backlog ||
          task.pending >= maxUncommittedRecords ||
          physicalNow() - (pendingSince.get(task) ?? 0) >= maxUncommittedMs
        ) {
          await produceAndCommit(task, () => task.flush());
        }
        if (task.hasParked && (await backendCaughtUp(task))) {
          await produceAndCommit(task, () => task.settle(true));
        }
      },
      // a partition that goes (rebalance, stop) commits what it folded first
      release: async (task) => {
        if (task.pending > 0) await produceAndCommit(task, () => task.flush());
        await task.close?.();
      },
    });

  let stage = await startStage(); // the first run's errors (no topic, …) are the caller's
  const supervision = supervisePartitionStage(stage, startStage, (next) => (stage = next), {
    name,
    restart,
    onStateChange,
  });
  const done = supervision.done;

  const settling = new Set<number>();
  const timer = setInterval(() => {
    for (const [partition, task] of stage.tasks) {
      const stale = task.pending > 0 && physicalNow() - (pendingSince.get(task) ?? 0) >= maxUncommittedMs;
      if ((!task.hasParked && !stale) || settling.has(partition)) continue; // one pending settle per partition
      settling.add(partition);
      stage
        .serial(partition, task, async () => {
          // settle decides parked records and flushes what is pending (nothing to commit: undefined)
          const caughtUp = task.hasParked && (await backendCaughtUp(task));
          await produceAndCommit(task, () => task.settle(caughtUp));
        })
        .catch(() => {}) // the stage has failed: `done` carries the error
        .finally(() => settling.delete(partition));
    }
  }, settleIntervalMs);
  timer.unref();

  return {
    done,
    health: () => supervision.health(),
    partitions: () => [...stage.tasks.keys()].sort((a, b) => a - b),
    task: (partition) => {
      const task = stage.tasks.get(partition);
      return task instanceof PartitionTask ? task : undefined;
    },
    async stop() {
      clearInterval(timer);
      await supervision.stop();
      await pool?.terminate();
    },
  };
}
