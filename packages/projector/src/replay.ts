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
  toStateDoc,
  twinExists,
  twinVersion,
  type AppendRecord,
  type Log,
  type LogRecord,
  type TwinEvent,
  type TwinLimits,
  type TwinState,
} from '@twinlog/core';
import { emptyStats, PartitionTask, passedTaskOptions, type BatchStats } from './partitionTask.ts';
import { CHECKPOINT_KEY, TOPICS, type InputTopic } from './topics.ts';

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
  readonly onApplied?: (event: TwinEvent, state: TwinState, source: { topic: string; partition: number; offset: number; timestamp: number }) => void;
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
export async function* mergedInputs(log: Log, partition: number, ends: { backend: number; device: number }): AsyncGenerator<readonly [InputTopic, readonly LogRecord[]]> {
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
    while (end < list.length && (other === undefined || (topic === 'backend' ? list[end]!.timestamp <= other.timestamp : list[end]!.timestamp < other.timestamp))) end++;
    heads[topic] = end;
    yield [topic, start === 0 && end === list.length ? list : list.slice(start, end)];
  }
}

/**
 * Rebuild every twin from offset 0 (or as of `until`) into a fresh set of states, optionally
 * written to another log's `twin.snapshots`. Run to the end, the result equals the live
 * projector's snapshots. Returns counts and the first/last offsets read, so a caller can resume.
 *
 * @example
 * const { states, counts } = await replay({ log, until: Date.parse('2026-11-01T00:00:00Z') })
 */
export async function replay({
  log,
  until,
  deviceId,
  into,
  limits,
  maxOfflineWindowMs,
  maxSkewMs,
  gcMarginMs,
  maxForwardSkewMs,
  maxSnapshotBytes,
  onProgress,
  onApplied,
}: ReplayOptions): Promise<ReplayResult> {
  const [backendEnds, deviceEnds] = await Promise.all([log.endOffsets(TOPICS.backend), log.endOffsets(TOPICS.device)]);
  const partitions =
    deviceId === undefined ? backendEnds.map((_, p) => p) : [partitionFor(deviceId, backendEnds.length)];
  const total = partitions.reduce((n, p) => n + (backendEnds[p] ?? 0) + (deviceEnds[p] ?? 0), 0);
  const states = new Map<string, TwinState>();
  const stats: BatchStats = emptyStats();
  const ranges: PartitionRange[] = [];
  let read = 0;
  const clock = createHybridClock({ physicalNow: () => 0 });
  for (const partition of partitions) {
    const task = new PartitionTask({
      partition,
      clock,
      rebuild: true,
      ...passedTaskOptions({ limits, maxOfflineWindowMs, maxSkewMs, gcMarginMs, maxForwardSkewMs, maxSnapshotBytes }),
      ...(onApplied === undefined ? {} : { onApplied }),
    });
    const range = { backend: { first: null as number | null, last: null as number | null }, device: { first: null as number | null, last: null as number | null } };
    let run: LogRecord[] = [];
    let runTopic: InputTopic = 'backend';
    const feed = (): void => {
      if (run.length === 0) return;
      const out = task.process(runTopic, run, false);
      for (const k of Object.keys(stats) as (keyof BatchStats)[]) stats[k] += out.stats[k];
      run = [];
    };
    for await (const [topic, records] of mergedInputs(log, partition, { backend: backendEnds[partition] ?? 0, device: deviceEnds[partition] ?? 0 })) {
      for (const record of records) {
        read++;
        if (until !== undefined && record.timestamp > until) continue;
        if (deviceId !== undefined && record.key !== deviceId) continue;
        range[topic].first ??= record.offset;
        range[topic].last = record.offset;
        if (topic !== runTopic) {
          feed();
          runTopic = topic;
        }
        run.push(record);
        if (run.length >= 1000) {
          feed();
          onProgress?.({ read, total });
        }
      }
    }
    feed();
    const settled = task.settle(true);
    if (settled !== undefined) for (const k of Object.keys(stats) as (keyof BatchStats)[]) stats[k] += settled.stats[k];
    onProgress?.({ read, total });
    for (const [id, state] of task.states()) if (deviceId === undefined || id === deviceId) states.set(id, state);
    ranges.push({ partition, ...range });
    if (into !== undefined) {
      const records: AppendRecord[] = [];
      for (const [id, state] of task.states()) {
        const offsets = { backend: (range.backend.last ?? -1) + 1, device: (range.device.last ?? -1) + 1 };
        records.push({
          key: id,
          partition,
          value: encodeOutputRecord({ kind: 'snapshot', v: 1, deviceId: id, state: toStateDoc(state), exists: twinExists(state), version: twinVersion(state), offsets }),
        });
      }
      records.push({
        key: CHECKPOINT_KEY,
        partition,
        value: encodeOutputRecord({ kind: 'checkpoint', v: 1, partition, offsets: { backend: backendEnds[partition] ?? 0, device: deviceEnds[partition] ?? 0 } }),
      });
      for (let i = 0; i < records.length; i += 1000) await into.append(TOPICS.snapshots, records.slice(i, i + 1000));
    }
  }
  return { states, counts: { ...stats, records: read, devices: states.size }, partitions: ranges };
}
