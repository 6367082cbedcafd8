/**
 * Replay, time travel and audit as library functions (docs/architecture.md: the log is the
 * history, so they need nothing but the log). They fold the input topics from offset 0 with the projector's
 * own rules ({@link PartitionTask} in rebuild mode: same validation, same unknown-device rule,
 * commands not decided again because their facts and rejections are in the log), reading both
 * inputs of a partition merged by append time.
 */
import { encodeOutputRecord } from '@twinlog/codec';
import {
  createHybridClock,
  partitionFor,
  type HybridClock,
  type AppendRecord,
  type Log,
  type LogRecord,
  type TwinEvent,
  type TwinLimits,
  type TwinState,
} from '@twinlog/core';
import {
  emptyStats,
  encodeSnapshotRecord,
  PartitionTask,
  passedTaskOptions,
  type BatchStats,
  type PassedTaskOptions,
  type TaskOptions,
} from './partitionTask.ts';
import { lineCollector, type AuditLinesJob } from './auditEntry.ts';
import { RecordWindow } from './recordWindow.ts';
import { unpackRuns, type PackedRecords } from './workers/packedRecords.ts';
import { CHECKPOINT_KEY, INPUT_TOPICS, TOPICS, type InputTopic } from './topics.ts';

export interface ReplayOptions {
  /** The log to read `twin.backend` and `twin.device` from. */
  readonly log: Log;
  /** Time travel: fold only records appended at or before this time (ms since the epoch). */
  readonly until?: number;
  /** Only this device (reads only its partition). */
  readonly deviceId?: string;
  /** Write the rebuilt snapshots (and a checkpoint per partition) to this log's `twin.snapshots`. */
  readonly into?: Log;
  readonly limits?: Partial<TwinLimits>;
  /**
   * The live projector's horizon windows and snapshot limit (see `ProjectorOptions`): a replay
   * derives the same GC horizons at the same records, so with the same values it rebuilds the same
   * snapshots.
   */
  readonly maxOfflineWindowMs?: number;
  readonly maxSkewMs?: number;
  readonly gcMarginMs?: number;
  readonly maxForwardSkewMs?: number;
  readonly maxSnapshotBytes?: number;
  /** Progress after each chunk: records read so far and the total to read. */
  readonly onProgress?: (progress: { readonly read: number; readonly total: number }) => void;
  /** Called for every applied event with the state right after it. */
  readonly onApplied?: (
    event: TwinEvent,
    state: TwinState,
    source: { topic: string; partition: number; offset: number; timestamp: number },
  ) => void;
  /**
   * Fold the partitions in up to this many worker threads (default 0: in this thread, one partition
   * after another); ignored with `deviceId` or `onApplied`, which need this thread. With `workerLog`
   * each worker reads its partitions itself; without it this thread reads them all and sends the
   * records to the workers (what is faster depends on the log: docs/write-path.md, "Replay on Kafka").
   */
  readonly workers?: number;
  /**
   * Return the rebuilt states (default true). Without them `states` is empty and `counts.devices`
   * still counts the twins: what a rebuild `into` another log or a count needs, and what lets
   * workers skip sending every state back (a state crosses threads at a cost comparable to folding
   * its events; docs/write-path.md, "Replay").
   */
  readonly keepStates?: boolean;
  /** How a worker opens the log `log` is (e.g. `{ module: import.meta.resolve('@twinlog/log-embedded'), export: 'createEmbeddedLog', options: { path } }`). */
  readonly workerLog?: WorkerLogSpec;
  /**
   * An audit whose lines the fold makes (what `auditLines` runs), in this thread or in the workers;
   * not with `onApplied`. The lines go to `onChunk` as UTF-8, in order, in chunks.
   */
  readonly audit?: AuditLinesJob;
  readonly onChunk?: (chunk: Uint8Array) => void;
}

export interface PartitionRange {
  readonly partition: number;
  /** First and last offsets read per input topic (`null` when nothing was read). */
  readonly backend: { readonly first: number | null; readonly last: number | null };
  readonly device: { readonly first: number | null; readonly last: number | null };
}

export interface ReplayResult {
  /** The rebuilt states, by device id (twins that exist and deleted ones). */
  readonly states: Map<string, TwinState>;
  readonly counts: BatchStats & { readonly records: number; readonly devices: number };
  readonly partitions: readonly PartitionRange[];
}

/**
 * Both inputs of one partition, merged by append time (back-end first on ties), as runs: each run
 * is consecutive records of one topic, the longest that the merge order allows (one await per run,
 * not per record).
 */
export async function* mergedInputs(
  log: Log,
  partition: number,
  ends: { backend: number; device: number },
): AsyncGenerator<readonly [InputTopic, readonly LogRecord[]]> {
  const iterators = {
    backend: log.read(TOPICS.backend, partition, { from: 0, to: ends.backend })[Symbol.asyncIterator](),
    device: log.read(TOPICS.device, partition, { from: 0, to: ends.device })[Symbol.asyncIterator](),
  };
  const buffers: Record<InputTopic, readonly LogRecord[]> = { backend: [], device: [] };
  const heads: Record<InputTopic, number> = { backend: 0, device: 0 };
  const done: Record<InputTopic, boolean> = { backend: ends.backend === 0, device: ends.device === 0 };
  const fill = async (t: InputTopic): Promise<void> => {
    while (!done[t] && heads[t] >= buffers[t].length) {
      const next = await iterators[t].next();
      if (next.done) done[t] = true;
      else {
        buffers[t] = next.value;
        heads[t] = 0;
      }
    }
  };
  for (;;) {
    await fill('backend');
    await fill('device');
    const b = buffers.backend[heads.backend];
    const d = buffers.device[heads.device];
    if (b === undefined && d === undefined) return;
    const topic: InputTopic = d === undefined || (b !== undefined && b.timestamp <= d.timestamp) ? 'backend' : 'device';
    const other = topic === 'backend' ? d : b;
    const list = buffers[topic];
    const start = heads[topic];
    let end = start + 1;
    // back-end records go first on ties, device records only strictly before the back-end head
    while (
      end < list.length &&
      (other === undefined ||
        (topic === 'backend' ? list[end]!.timestamp <= other.timestamp : list[end]!.timestamp < other.timestamp))
    )
      end++;
    heads[topic] = end;
    yield [topic, start === 0 && end === list.length ? list : list.slice(start, end)];
  }
}

/** A log that a replay worker thread opens for itself: a module (specifier or URL), the factory it exports, and the factory's options (structured-cloneable). */
export interface WorkerLogSpec {
  readonly module: string;
  readonly export: string;
  readonly options: unknown;
}

/** What replaying one partition produced. */
export interface PartitionReplay {
  readonly range: PartitionRange;
  readonly stats: BatchStats;
  /** Records read (including those `until` or `deviceId` left out). */
  readonly read: number;
}

/** The input ends of a partition, as offsets one past the last record to read. */
export interface PartitionEnds {
  readonly backend: number;
  readonly device: number;
}

/**
 * Records a replay folds device by device at a time (`PartitionTask.foldByDevice`): larger windows
 * give each twin more records in a row, at the cost of holding the window (docs/write-path.md,
 * "Replay folds device by device").
 */
export const REPLAY_WINDOW = 50_000;
/** Bytes of values a window holds at most: a window of large records is folded sooner. */
export const REPLAY_WINDOW_BYTES = 64 * 1024 * 1024;

/**
 * Both inputs of one partition in fold order: runs of one topic each, as `mergedInputs` yields
 * them, or packed as a worker is fed them (`packRuns`: each record's topic is its index in
 * `INPUT_TOPICS`; taken without making a record object each).
 */
export type InputRuns = AsyncIterable<readonly [InputTopic, readonly LogRecord[]] | PackedRecords>;

/**
 * Fold one partition from offset 0 to `ends` into a fresh rebuild-mode task (the projector's own
 * rules), reading `log`, or taking the runs `runs` yields when given (a worker fed by the calling
 * thread). `onRead` is told of every record read, in steps of at most 1,000.
 */
export async function replayPartition({
  log,
  runs: input,
  partition,
  ends,
  until,
  deviceId,
  options,
  clock,
  onApplied,
  onWindow,
  onRead,
}: {
  readonly log?: Log;
  readonly runs?: InputRuns;
  readonly partition: number;
  readonly ends: PartitionEnds;
  readonly until?: number | undefined;
  readonly deviceId?: string | undefined;
  readonly options: PassedTaskOptions;
  readonly clock: HybridClock;
  readonly onApplied?: TaskOptions['onApplied'];
  /**
   * With `onApplied`: the caller orders what it saw by position, so the partition is folded device
   * by device all the same, and this is called after each window.
   */
  readonly onWindow?: () => void;
  readonly onRead?: (records: number) => void;
}): Promise<PartitionReplay & { readonly task: PartitionTask }> {
  const task = new PartitionTask({
    partition,
    clock,
    rebuild: true,
    ...options,
    ...(onApplied === undefined ? {} : { onApplied }),
  });
  const stats: BatchStats = emptyStats();
  const add = (s: BatchStats): void => {
    for (const k of Object.keys(stats) as (keyof BatchStats)[]) stats[k] += s[k];
  };
  const range = {
    backend: { first: null as number | null, last: null as number | null },
    device: { first: null as number | null, last: null as number | null },
  };
  let read = 0;
  let unreported = 0;
  let run: LogRecord[] = [];
  let runTopic: InputTopic = 'backend';
  // device by device, unless onApplied must see the events in log order
  const byDevice = onApplied === undefined || onWindow !== undefined;
  const window = new RecordWindow(partition, TOPICS);
  const foldWindow = (): void => {
    if (window.length === 0) return;
    task.foldByDevice(window);
    add(task.flush().stats);
    onWindow?.();
    window.clear();
  };
  const feed = (): void => {
    if (run.length === 0) return;
    add(task.process(runTopic, run, false).stats);
    run = [];
  };
  /** Count a record read; whether the replay folds it (`until`, `deviceId`). */
  const accept = (topic: InputTopic, key: string, offset: number, timestamp: number): boolean => {
    read++;
    if (++unreported >= 1000) {
      onRead?.(unreported);
      unreported = 0;
    }
    if (until !== undefined && timestamp > until) return false;
    if (deviceId !== undefined && key !== deviceId) return false;
    range[topic].first ??= offset;
    range[topic].last = offset;
    return true;
  };
  const windowed = (): void => {
    if (window.length >= REPLAY_WINDOW || window.bytes >= REPLAY_WINDOW_BYTES) foldWindow();
  };
  const fold = (topic: InputTopic, record: LogRecord): void => {
    if (byDevice) {
      window.push(topic, record);
      windowed();
      return;
    }
    if (topic !== runTopic) {
      feed();
      runTopic = topic;
    }
    run.push(record);
    if (run.length >= 1000) feed();
  };
  // a fed worker's records go into the window straight from the message (no record object each)
  const foldPacked = (p: PackedRecords): void => {
    const bytes = new Uint8Array(p.bytes);
    const records = byDevice
      ? undefined
      : unpackRuns(
          p,
          INPUT_TOPICS.map((t) => TOPICS[t]),
          partition,
        ).flatMap(([, rs]) => rs);
    let start = 0;
    for (let i = 0; i < p.keys.length; i++) {
      const end = p.ends[i]!;
      const topic = INPUT_TOPICS[p.numbers[3 * i + 2]!]!;
      const key = p.keys[i]!;
      const offset = p.numbers[3 * i]!;
      if (accept(topic, key, offset, p.numbers[3 * i + 1]!)) {
        if (records !== undefined) fold(topic, records[i]!);
        else {
          window.pushValue(topic, key, offset, p.numbers[3 * i + 1]!, end < 0 ? null : bytes, start, end);
          windowed();
        }
      }
      if (end >= 0) start = end;
    }
  };
  if (input === undefined && log === undefined) throw new TypeError('replayPartition needs a log or runs');
  for await (const item of input ?? mergedInputs(log!, partition, ends)) {
    if (!Array.isArray(item)) {
      foldPacked(item as PackedRecords);
      continue;
    }
    const [topic, records] = item as readonly [InputTopic, readonly LogRecord[]];
    for (const record of records) if (accept(topic, record.key, record.offset, record.timestamp)) fold(topic, record);
  }
  feed();
  foldWindow();
  const settled = task.settle(true);
  if (settled !== undefined) add(settled.stats);
  onRead?.(unreported);
  return { task, range: { partition, ...range }, stats, read };
}

/**
 * The records a rebuild writes for one partition to `twin.snapshots`: a snapshot of every twin the
 * task holds, carrying the offsets read, then a checkpoint at the partition's input ends.
 */
export function rebuildRecords(task: PartitionTask, range: PartitionRange, ends: PartitionEnds): AppendRecord[] {
  const offsets = { backend: (range.backend.last ?? -1) + 1, device: (range.device.last ?? -1) + 1 };
  const records: AppendRecord[] = [];
  for (const [id, state] of task.states()) {
    records.push({ key: id, partition: task.partition, value: encodeSnapshotRecord(id, state, offsets) });
  }
  records.push({
    key: CHECKPOINT_KEY,
    partition: task.partition,
    value: encodeOutputRecord({
      kind: 'checkpoint',
      v: 1,
      partition: task.partition,
      offsets: { backend: ends.backend, device: ends.device },
    }),
  });
  return records;
}

/**
 * Rebuild every twin from offset 0 (or as of `until`) into a fresh set of states, optionally
 * written to another log's `twin.snapshots`. Run to the end, the result equals the live
 * projector's snapshots. Returns counts and the first/last offsets read, so a caller can resume.
 *
 * With `workers`, the partitions are folded in that many worker threads, each opening the log
 * itself (`workerLog`) or fed by this thread; the states and the records written to `into` are the
 * same as in this thread (docs/write-path.md, "Replay").
 *
 * @example
 * const { states, counts } = await replay({ log, until: Date.parse('2026-11-01T00:00:00Z') })
 */
export async function replay(options: ReplayOptions): Promise<ReplayResult> {
  const { log, until, deviceId, into, onProgress, workers = 0, workerLog, keepStates = true, audit, onChunk } = options;
  if (!(Number.isSafeInteger(workers) && workers >= 0))
    throw new RangeError(`workers must be a non-negative integer, got ${workers}`);
  if (audit !== undefined && (options.onApplied !== undefined || onChunk === undefined))
    throw new TypeError('an audit replay takes onChunk, and no onApplied');
  const [backendEnds, deviceEnds] = await Promise.all([log.endOffsets(TOPICS.backend), log.endOffsets(TOPICS.device)]);
  const partitions =
    deviceId === undefined ? backendEnds.map((_, p) => p) : [partitionFor(deviceId, backendEnds.length)];
  const endsOf = (p: number): PartitionEnds => ({ backend: backendEnds[p] ?? 0, device: deviceEnds[p] ?? 0 });
  const total = partitions.reduce((n, p) => n + endsOf(p).backend + endsOf(p).device, 0);
  const taskOptions = passedTaskOptions(options);
  let read = 0;
  const onRead = (n: number): void => {
    read += n;
    onProgress?.({ read, total });
  };
  const results: (PartitionReplay & {
    states: Iterable<readonly [string, TwinState]>;
    twins: number;
    records?: readonly AppendRecord[];
  })[] = [];
  if (workers > 0 && deviceId === undefined && options.onApplied === undefined && partitions.length > 1) {
    const { replayInWorkers } = await import('./workers/replayInWorkers.ts');
    results.push(
      ...(await replayInWorkers({
        workers: Math.min(workers, partitions.length),
        log,
        workerLog,
        partitions,
        endsOf,
        until,
        options: taskOptions,
        into: into !== undefined,
        keepStates,
        onRead,
        ...(audit === undefined ? {} : { audit, onChunk: onChunk! }),
      })),
    );
  } else {
    const clock = createHybridClock({ physicalNow: () => 0 });
    const collector = audit === undefined ? undefined : await lineCollector(audit, onChunk!);
    const onApplied = collector?.onApplied ?? options.onApplied;
    for (const partition of partitions) {
      const r = await replayPartition({
        log,
        partition,
        ends: endsOf(partition),
        until,
        deviceId,
        options: taskOptions,
        clock,
        onApplied,
        ...(collector === undefined ? {} : { onWindow: collector.endWindow }),
        onRead,
      });
      collector?.flush();
      let twins = 0;
      for (const [id] of r.task.states()) if (deviceId === undefined || id === deviceId) twins++;
      results.push({
        ...r,
        states: keepStates ? r.task.states() : [],
        twins,
        ...(into === undefined ? {} : { records: rebuildRecords(r.task, r.range, endsOf(partition)) }),
      });
    }
  }
  const states = new Map<string, TwinState>();
  const stats: BatchStats = emptyStats();
  let devices = 0;
  for (const r of results) {
    devices += r.twins;
    for (const k of Object.keys(stats) as (keyof BatchStats)[]) stats[k] += r.stats[k];
    for (const [id, state] of r.states) if (deviceId === undefined || id === deviceId) states.set(id, state);
    if (into !== undefined)
      for (let i = 0; i < r.records!.length; i += 1000)
        await into.append(TOPICS.snapshots, r.records!.slice(i, i + 1000));
  }
  return { states, counts: { ...stats, records: read, devices }, partitions: results.map((r) => r.range) };
}
