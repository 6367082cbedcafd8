/**
 * One projector task: the owner of partition *p* of `twin.backend` and `twin.device` (and of
 * `twin.snapshots` *p*). It holds the CRDT state of its devices, folds batches, decides commands,
 * and turns each batch into one atomic `commitBatch`: snapshots of the devices it touched plus a
 * partition checkpoint, change notifications, rejections, dead letters, accepted facts, and the
 * input offsets — all or nothing.
 *
 * Exactly-once effect: a restart restores states and the checkpoint from `twin.snapshots` and
 * resumes from the checkpoint's offsets; a record at an offset that the device's snapshot already
 * reflects is skipped, and an event id already folded is a duplicate (the fold dedupes by id).
 *
 * Unknown devices: a back-end record for a device whose twin does not exist is rejected
 * (`DEVICE_NOT_FOUND`) in partition order. A device record for an unknown device is parked until
 * `twin.backend` of the partition has been consumed to its end (the `create` may sit there,
 * not yet read), then applied or rejected; parked records hold back the committed device offset.
 *
 * GC horizon (docs/bounded-state.md): before a record is applied to a device's state (a fold, a
 * command decision, a parked record), the state's horizon is raised to `gcHorizonAt(appendTime)`.
 * The horizon is thus a function of the log alone, so a replay derives the same horizons at the
 * same records. An event the fold can no longer apply exactly (`LATE`: at or below the horizon, or
 * behind its section's window, docs/bounded-state.md) is rejected with `EVENT_LATE`.
 *
 * Record-size guard: a device's snapshot must fit the log's record limit (`maxSnapshotBytes`).
 * When the snapshot of a device touched by a batch would not, the device goes back to its last
 * good state and its batch operations are re-applied one at a time; those after which the
 * snapshot would still be too large are rejected (with their change records and command facts
 * dropped) with `SNAPSHOT_TOO_LARGE`. Nothing else in the batch is affected and the partition
 * keeps going.
 */
import {
  decodeOutputRecord,
  encodeEvent,
  encodeOutputRecord,
  safeDecodeEvent,
  type InputOffsets,
} from '@twinlog/codec';
import {
  advanceHorizon,
  applyEvent,
  compareStamps,
  createTwinState,
  decideCommands,
  isFolded,
  diffMergePatch,
  fromStateDoc,
  gcHorizonAt,
  isSection,
  sectionVersion,
  sectionScope,
  sectionView,
  toStateDoc,
  twinExists,
  twinVersion,
  validateEvent,
  HORIZON_DEFAULTS,
  TWIN_LIMITS,
  type AppendRecord,
  type HorizonOptions,
  type HybridClock,
  type Log,
  type LogRecord,
  type Stamp,
  type TopicAppend,
  type TwinEvent,
  type TwinLimits,
  type TwinState,
  type TwinlogErrorCode,
  type ValidateEventOptions,
} from '@twinlog/core';
import type { RecordWindow } from './recordWindow.ts';
import { CHECKPOINT_KEY, TOPICS, type InputTopic } from './topics.ts';

interface DeviceEntry {
  state: TwinState;
  /** Input positions its last persisted snapshot reflects. */
  offsets: InputOffsets;
  /**
   * The encoded snapshot last written (or restored) for it: the state it returns to when a batch
   * would make its snapshot too large (a rebuild: the state it was checked at). Undefined for a
   * device first seen in the current batch.
   */
  snapshot?: Uint8Array;
  /**
   * Rebuild mode: an upper bound on the size of its snapshot now (the last encoded size plus
   * {@link GROWTH_PER_INPUT_BYTE} per input byte since), so that a rebuild encodes a twin only when
   * it might be near the limit.
   */
  estimate?: number;
}

interface Source {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
}

/** What one batch did to one device's state, in order: enough to redo it one operation at a time. */
interface BatchOp {
  readonly kind: 'event' | 'command';
  /** The event, or the command unit (consecutive commands sharing `corr`). */
  readonly events: readonly TwinEvent[];
  readonly source: Source;
  /** What the operation added to the batch's counts, and the rejection record it wrote (commands). */
  applied: number;
  rejected: number;
  rejection: { readonly record: AppendRecord; readonly code: string } | undefined;
}

interface BatchDevice {
  readonly ops: BatchOp[];
  /** Append time of the latest record that raised the device's horizon in this batch. */
  lastTimestamp: number;
  /** Whether its snapshot is encoded and checked at the end of the batch (always, except in rebuilds far from the limit). */
  readonly check: boolean;
  /** Rebuild mode: input bytes of its records in the batch (and of its parked records). */
  readonly inputBytes: number;
}

/**
 * A generous bound on how many bytes of state document one input byte can add (a leaf costs at
 * least 3 bytes of msgpack in an event and at most its key, its value and about 12 bytes of
 * metadata in the document), plus a constant: rebuilds encode a twin only when this bound says its
 * snapshot might be near `maxSnapshotBytes`. A live projector encodes every touched twin anyway.
 */
const GROWTH_PER_INPUT_BYTE = 8;
const GROWTH_SLACK = 1024;
/** Append times whose GC horizon a task keeps at most (see `horizons`). */
const HORIZON_CACHE = 1024;
/** The records after a window's record that `handle` may look at: none (a rebuild decides no commands). */
const NO_RECORDS: readonly LogRecord[] = [];

/**
 * Default {@link TaskOptions.maxSnapshotBytes}: a safe margin below Kafka's default record limit
 * (`max.message.bytes` = 1,048,588 bytes), which also has to hold the key and the record overhead.
 */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 1_000_000;

export interface TaskOptions {
  readonly partition: number;
  /** The owner's clock, for stamping accepted command facts. */
  readonly clock: HybridClock;
  readonly limits?: Partial<TwinLimits>;
  /** Skew bounds for records that bypass the gateways (docs/fold.md, "Skew"). */
  readonly maxForwardSkewMs?: number;
  /**
   * The GC horizon's windows (core's `HORIZON_DEFAULTS`: one day offline, one minute of skew, one
   * hour of margin). `maxOfflineWindowMs` and `maxSkewMs` also bound stamps in validation, so an
   * event validation lets through is above the horizon unless it arrived more than `gcMarginMs`
   * after a later record of its device.
   */
  readonly maxOfflineWindowMs?: number;
  readonly maxSkewMs?: number;
  readonly gcMarginMs?: number;
  /** Largest encoded snapshot record, bytes (default {@link DEFAULT_MAX_SNAPSHOT_BYTES}). */
  readonly maxSnapshotBytes?: number;
  /**
   * Rebuild mode (replay, time travel): commands are not decided again — their accepted facts and
   * rejections are already in the log — and nothing is written for them; applied events make no
   * change records (a replay keeps the final states only).
   */
  readonly rebuild?: boolean;
  /**
   * Called for every event applied, with the state right after it (audit, history), and, in a window
   * folded device by device, the place in log order within the window of the record being folded
   * (for a parked record applied after its device's records: the last of them); -1 otherwise.
   */
  readonly onApplied?: (
    event: TwinEvent,
    state: TwinState,
    source: { topic: string; partition: number; offset: number; timestamp: number },
    position?: number,
  ) => void;
}

/** The task options a projector or a replay passes on from its own options. */
const PASSED_KEYS = [
  'limits',
  'maxOfflineWindowMs',
  'maxSkewMs',
  'gcMarginMs',
  'maxForwardSkewMs',
  'maxSnapshotBytes',
] as const;
export type PassedTaskOptions = Pick<TaskOptions, (typeof PASSED_KEYS)[number]>;

/** The task options among a projector's or a replay's `options`, without undefined ones (the task's defaults then apply). */
export function passedTaskOptions(options: {
  readonly [K in keyof PassedTaskOptions]?: PassedTaskOptions[K] | undefined;
}): PassedTaskOptions {
  return Object.fromEntries(PASSED_KEYS.flatMap((k) => (options[k] === undefined ? [] : [[k, options[k]]])));
}

/** Counts of what one batch did, for diagnostics and tests. */
export interface BatchStats {
  applied: number;
  duplicates: number;
  skipped: number;
  rejected: number;
  deadLettered: number;
  commands: number;
  parked: number;
}

/** The output of one batch: what to append and which positions it reflects. */
export interface TaskOutput {
  readonly appends: TopicAppend[];
  readonly positions: InputOffsets;
  readonly stats: BatchStats;
  /**
   * The batch's records on `twin.rejections` by code (its `rejected` count, split), e.g. late
   * events (`EVENT_LATE`) and events refused by the record-size guard (`SNAPSHOT_TOO_LARGE`).
   */
  readonly rejectedByCode: Readonly<Record<string, number>>;
}

const SECTION_BY_TOPIC: Record<InputTopic, (kind: string) => boolean> = {
  backend: (kind) => kind !== 'reported',
  device: (kind) => kind === 'reported',
};

export class PartitionTask {
  readonly partition: number;
  private readonly devices = new Map<string, DeviceEntry>();
  private positions: { backend: number; device: number } = { backend: 0, device: 0 };
  /** Device records of unknown devices, by device, in offset order, kept decoded. */
  private parked = new Map<string, { record: LogRecord; event: TwinEvent }[]>();
  /** Parked records whose device has just been created: applied at the end of the batch. */
  private ready: { record: LogRecord; event: TwinEvent }[] = [];
  private readonly clock: HybridClock;
  private readonly limits: Partial<TwinLimits>;
  /** validateEvent's options; `appendTime` is set to each record's before the call (one object, not one per record). */
  private readonly validation: { -readonly [K in keyof ValidateEventOptions]: ValidateEventOptions[K] };
  private readonly horizon: Required<HorizonOptions>;
  private readonly maxSnapshotBytes: number;
  /**
   * The GC horizon by append time, for the append times seen lately. Records of one append share
   * theirs; a window folded device by device visits them out of order, so one last value would
   * miss. Cleared when it holds {@link HORIZON_CACHE} of them.
   */
  private readonly horizons = new Map<number, Stamp>();
  /** Per device touched by the current batch, its operations (for the record-size guard). */
  private batch = new Map<string, BatchDevice>();
  /** True while the guard re-applies a device's operations. */
  private refitting = false;
  /** Rebuild mode: input bytes per device in the batch being processed. */
  private batchBytes = new Map<string, number>();
  // per-batch output buffers
  private touched = new Set<string>();
  private changes: AppendRecord[] = [];
  private rejections: AppendRecord[] = [];
  private deadLetters: AppendRecord[] = [];
  private facts: AppendRecord[] = [];
  private stats: BatchStats = emptyStats();
  private rejectedByCode: Record<string, number> = {};
  /** Input records folded since the last flush. */
  private unflushed = 0;
  /** In `foldByDevice`: the log-order place in the window of the record being folded (-1: not in one). */
  private position = -1;
  /** `foldByDevice`'s work arrays, kept for the next window: each record's device, the places by device. */
  private groupAt = new Int32Array(0);
  private byGroup = new Int32Array(0);

  private readonly rebuild: boolean;
  private readonly onApplied: TaskOptions['onApplied'];

  constructor({
    partition,
    clock,
    limits = TWIN_LIMITS,
    maxForwardSkewMs,
    maxOfflineWindowMs = HORIZON_DEFAULTS.maxOfflineWindowMs,
    maxSkewMs = HORIZON_DEFAULTS.maxSkewMs,
    gcMarginMs = HORIZON_DEFAULTS.gcMarginMs,
    maxSnapshotBytes = DEFAULT_MAX_SNAPSHOT_BYTES,
    rebuild = false,
    onApplied,
  }: TaskOptions) {
    this.partition = partition;
    this.rebuild = rebuild;
    this.onApplied = onApplied;
    this.clock = clock;
    this.limits = limits;
    this.validation = {
      limits,
      appendTime: 0,
      ...(maxForwardSkewMs === undefined ? {} : { maxForwardSkewMs }),
      maxOfflineWindowMs,
      maxSkewMs,
    };
    this.horizon = { maxOfflineWindowMs, maxSkewMs, gcMarginMs };
    if (!(maxSnapshotBytes > 0)) throw new RangeError(`maxSnapshotBytes must be positive, got ${maxSnapshotBytes}`);
    this.maxSnapshotBytes = maxSnapshotBytes;
  }

  /** Restore states and the checkpoint from `twin.snapshots` partition *p* (changelog restore). */
  static async restore(log: Log, options: TaskOptions): Promise<PartitionTask> {
    const task = new PartitionTask(options);
    const end = (await log.endOffsets(TOPICS.snapshots))[options.partition] ?? 0;
    for await (const records of log.read(TOPICS.snapshots, options.partition, { from: 0, to: end })) {
      for (const r of records) task.restoreRecord(r);
    }
    return task;
  }

  /** Take one record of `twin.snapshots` (a snapshot, a tombstone or the checkpoint) into the task. */
  restoreRecord(r: LogRecord): void {
    if (r.value === null) {
      this.devices.delete(r.key);
      return;
    }
    if (r.key === CHECKPOINT_KEY) {
      const cp = decodeOutputRecord(r.value, 'checkpoint');
      this.positions = { backend: cp.offsets.backend, device: cp.offsets.device };
      return;
    }
    const snap = decodeOutputRecord(r.value, 'snapshot');
    const state = fromStateDoc(snap.state);
    // a copy: a log's record may be a view into a larger fetch buffer
    this.devices.set(snap.deviceId, { state, offsets: snap.offsets, snapshot: new Uint8Array(r.value) });
    this.clock.recv(state.maxStamp.wall < 0 ? { wall: 0, counter: 0 } : state.maxStamp);
  }

  /** Where consumption of each input topic resumes (the checkpoint). */
  get resumeOffsets(): InputOffsets {
    return { ...this.positions };
  }

  /** Every device state this task holds. */
  states(): IterableIterator<[string, TwinState]> {
    const entries = this.devices.entries();
    return (function* () {
      for (const [id, entry] of entries) yield [id, entry.state] as [string, TwinState];
    })();
  }

  /** The twin state of a device held by this task (tests, diagnostics). */
  stateOf(deviceId: string): TwinState | undefined {
    return this.devices.get(deviceId)?.state;
  }

  get deviceCount(): number {
    return this.devices.size;
  }

  /**
   * Fold one batch of one input topic. `backendCaughtUp` says whether `twin.backend` of this
   * partition has been consumed to its end, which lets parked device records be decided.
   */
  process(topic: InputTopic, records: readonly LogRecord[], backendCaughtUp: boolean): TaskOutput {
    this.fold(topic, records, backendCaughtUp);
    return this.flush();
  }

  /**
   * Fold one batch of one input topic into the pending output, without flushing it: several
   * batches folded before one {@link flush} write one snapshot per device they touched, and one
   * commit (docs/write-path.md). `process` is `fold` then `flush`.
   */
  fold(topic: InputTopic, records: readonly LogRecord[], backendCaughtUp: boolean): void {
    this.unflushed += records.length;
    if (this.rebuild) {
      this.batchBytes.clear();
      for (const r of records) this.batchBytes.set(r.key, (this.batchBytes.get(r.key) ?? 0) + (r.value?.length ?? 0));
    }
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.offset < this.positions[topic]) {
        this.stats.skipped++;
        continue;
      }
      this.positions[topic] = r.offset + 1;
      const consumed = this.handle(topic, r, records, i);
      i += consumed - 1;
      if (consumed > 1) this.positions[topic] = records[i]!.offset + 1;
    }
    this.retryParked(backendCaughtUp);
  }

  /**
   * Rebuild mode: fold a window of input records (both topics, in log order) device by device —
   * every record of one device, in its log order, before the next device's — as one batch. A twin's
   * fold reads its own records only, so the states are those of folding the window record by
   * record; it is faster because each twin's trie stays in the processor's caches while its records
   * are folded (docs/write-path.md, "Replay folds device by device"). Parked records whose device
   * was created are applied after that device's records.
   */
  foldByDevice(window: RecordWindow): void {
    if (!this.rebuild) throw new Error('foldByDevice is for rebuild mode');
    const n = window.length;
    this.unflushed += n;
    // the devices in the order of their first record, and each record's device
    const groupOf = new Map<string, number>();
    if (this.groupAt.length < n) this.groupAt = new Int32Array(Math.max(n, 2 * this.groupAt.length));
    const groupAt = this.groupAt;
    const keys: string[] = [];
    const bytes: number[] = [];
    for (let i = 0; i < n; i++) {
      const key = window.key(i);
      let g = groupOf.get(key);
      if (g === undefined) {
        groupOf.set(key, (g = keys.length));
        keys.push(key);
        bytes.push(0);
      }
      groupAt[i] = g;
      bytes[g]! += window.valueLength(i);
    }
    // a counting sort of the places by device: each device's records in log order
    const groups = keys.length;
    const firsts = new Int32Array(groups + 1);
    for (let i = 0; i < n; i++) firsts[groupAt[i]! + 1]!++;
    for (let g = 1; g <= groups; g++) firsts[g]! += firsts[g - 1]!;
    if (this.byGroup.length < n) this.byGroup = new Int32Array(Math.max(n, 2 * this.byGroup.length));
    const order = this.byGroup;
    const fill = firsts.slice(0, groups);
    for (let i = 0; i < n; i++) order[fill[groupAt[i]!]!++] = i;
    this.batchBytes.clear();
    for (let g = 0; g < groups; g++) this.batchBytes.set(keys[g]!, bytes[g]!);
    try {
      for (let g = 0; g < groups; g++) {
        for (let k = firsts[g]!; k < firsts[g + 1]!; k++) {
          const i = order[k]!;
          this.position = i;
          const topic = window.topic(i);
          const offset = window.offset(i);
          // a rebuild reads each topic once, from offset 0: no record is behind its position
          if (offset >= this.positions[topic]) this.positions[topic] = offset + 1;
          // a rebuild decides no commands, so no record needs the ones after it
          this.handle(topic, window.record(i), NO_RECORDS, 0);
        }
        this.retryParked(false);
      }
    } finally {
      this.position = -1;
    }
  }

  /** Input records folded since the last {@link flush} (0: nothing pending). */
  get pending(): number {
    return this.unflushed;
  }

  /**
   * Decide parked device records once `twin.backend` has caught up (their device was never
   * created: rejected). Returns nothing to commit when nothing changed.
   */
  settle(backendCaughtUp: boolean): TaskOutput | undefined {
    if (this.parked.size === 0 && this.ready.length === 0) return this.unflushed > 0 ? this.flush() : undefined;
    const before = this.stats.applied + this.stats.rejected;
    this.retryParked(backendCaughtUp);
    if (this.stats.applied + this.stats.rejected === before && this.unflushed === 0) return undefined;
    return this.flush();
  }

  get hasParked(): boolean {
    return this.parked.size > 0;
  }

  /** Handle the record at `index`; returns how many records it consumed (a corr group of commands). */
  private handle(topic: InputTopic, r: LogRecord, batch: readonly LogRecord[], index: number): number {
    const source: Source = {
      topic: topicName(topic),
      partition: r.partition,
      offset: r.offset,
      timestamp: r.timestamp,
    };
    if (r.value === null) {
      this.deadLetter(r, 'CODEC_BAD_DATA', 'empty record value');
      return 1;
    }
    const decoded = safeDecodeEvent(r.value);
    if (!decoded.ok) {
      this.deadLetter(r, decoded.error.code, decoded.error.message);
      return 1;
    }
    const e = decoded.value;
    const entry = this.devices.get(e.deviceId);
    if (entry !== undefined && r.offset < entry.offsets[topic]) {
      this.stats.skipped++;
      return 1;
    }
    this.validation.appendTime = r.timestamp;
    const valid = validateEvent(e, this.validation);
    if (!valid.ok) {
      this.reject(e, valid.error.code, valid.error.message, source);
      return 1;
    }
    if (r.key !== e.deviceId) {
      this.reject(e, 'EVENT_INVALID', `record key ${JSON.stringify(r.key)} is not the event's deviceId`, source);
      return 1;
    }
    if (!SECTION_BY_TOPIC[topic](e.section) || (topic === 'device' && e.cond !== undefined)) {
      this.reject(e, 'SECTION_FORBIDDEN', `${e.section} records do not belong on ${topicName(topic)}`, source);
      return 1;
    }
    if (e.cond !== undefined) {
      if (!this.rebuild) return this.command(e, r, batch, index);
      // its decision is in the log already; the record still moves the device's horizon, as live
      if (entry !== undefined) {
        this.begin(e.deviceId, entry);
        this.advance(e.deviceId, entry.state, r.timestamp);
      }
      this.stats.commands++;
      return 1;
    }
    const state = entry?.state ?? createTwinState(e.deviceId);
    if (!twinExists(state) && e.section !== 'create' && !isFolded(state, e)) {
      if (topic === 'device') {
        this.park(r, e);
        this.stats.parked++;
        return 1;
      }
      this.reject(e, 'DEVICE_NOT_FOUND', `device ${e.deviceId} does not exist`, source);
      return 1;
    }
    if (e.section === 'create' && twinExists(state) && !isFolded(state, e)) {
      this.reject(e, 'DEVICE_ALREADY_EXISTS', `device ${e.deviceId} already exists`, source);
      return 1;
    }
    this.begin(e.deviceId, entry ?? this.setEntry(e.deviceId, { state, offsets: { backend: 0, device: 0 } }));
    this.advance(e.deviceId, state, r.timestamp);
    this.applyAndRecord(state, e, source);
    return 1;
  }

  /**
   * Raise the device's GC horizon to the one implied by a record appended at `timestamp` (before
   * the record is applied). A state whose horizon moved is written at the end of the batch.
   */
  private advance(deviceId: string, state: TwinState, timestamp: number): void {
    const before = state.gcHorizon;
    advanceHorizon(state, this.horizonAt(timestamp));
    if (compareStamps(before, state.gcHorizon) === 0) return;
    this.touched.add(deviceId);
    const b = this.batch.get(deviceId)!;
    if (timestamp > b.lastTimestamp) b.lastTimestamp = timestamp;
  }

  /** The GC horizon a record appended at `timestamp` implies; records of a batch mostly share their append time. */
  private horizonAt(timestamp: number): Stamp {
    let horizon = this.horizons.get(timestamp);
    if (horizon === undefined) {
      if (this.horizons.size >= HORIZON_CACHE) this.horizons.clear();
      this.horizons.set(timestamp, (horizon = gcHorizonAt(timestamp, this.horizon)));
    }
    return horizon;
  }

  private setEntry(deviceId: string, entry: DeviceEntry): DeviceEntry {
    this.devices.set(deviceId, entry);
    return entry;
  }

  /**
   * Called before the batch first changes a device: what the record-size guard needs to redo the
   * batch's operations on it. A live projector checks every touched twin at the end of the batch,
   * from the snapshot it last wrote; a rebuild writes none, so it encodes the twin here (its base)
   * and checks it at the end only when the twin might near the limit.
   */
  private begin(deviceId: string, entry: DeviceEntry): BatchDevice {
    const known = this.batch.get(deviceId);
    if (known !== undefined) return known;
    let check = true;
    let inputBytes = 0;
    if (this.rebuild) {
      inputBytes = this.batchBytes.get(deviceId) ?? 0;
      for (const { record } of this.parked.get(deviceId) ?? []) inputBytes += record.value?.length ?? 0;
      check = (entry.estimate ?? 0) + GROWTH_PER_INPUT_BYTE * inputBytes + GROWTH_SLACK > this.maxSnapshotBytes;
      if (check) {
        entry.snapshot = this.encodeSnapshot(deviceId, entry.state, this.positions);
        entry.estimate = entry.snapshot.length;
      }
    }
    const b: BatchDevice = { ops: [], lastTimestamp: -Infinity, check, inputBytes };
    this.batch.set(deviceId, b);
    return b;
  }

  private applyAndRecord(state: TwinState, e: TwinEvent, source: Source): void {
    const section = isSection(e.section) ? e.section : undefined;
    // a rebuild writes no change records (replay keeps only the final states): no views to diff
    const scope = section === undefined || e.op === 'replace' || this.rebuild ? undefined : Object.keys(e.patch);
    const before = section === undefined || this.rebuild ? {} : sectionScope(state, section, scope);
    const outcome = applyEvent(state, e);
    if (outcome !== 'APPLIED') {
      if (outcome === 'DUPLICATE') this.stats.duplicates++;
      else this.reject(e, 'EVENT_LATE', this.lateReason(state, e), source);
      return;
    }
    this.stats.applied++;
    this.touched.add(e.deviceId);
    if (!this.refitting) {
      const b = this.batch.get(e.deviceId)!;
      // only a device whose snapshot is checked can need its operations again (refit)
      if (b.check) b.ops.push({ kind: 'event', events: [e], source, applied: 1, rejected: 0, rejection: undefined });
      this.onApplied?.(e, state, source, this.position);
    }
    if (e.section === 'create' && !this.refitting) {
      const waiting = this.parked.get(e.deviceId);
      if (waiting !== undefined) {
        this.parked.delete(e.deviceId);
        this.ready.push(...waiting);
      }
    }
    if (this.rebuild) return;
    const diff = section === undefined ? {} : diffMergePatch(before, sectionScope(state, section, scope));
    this.changes.push({
      key: e.deviceId,
      value: encodeOutputRecord({
        kind: 'change',
        v: 1,
        deviceId: e.deviceId,
        opType:
          e.section === 'create'
            ? 'createDeviceIdentity'
            : e.section === 'delete'
              ? 'deleteDeviceIdentity'
              : e.op === 'replace'
                ? 'replaceTwin'
                : 'updateTwin',
        id: e.id,
        section: e.section,
        actor: e.actor,
        wall: e.stamp.wall,
        counter: e.stamp.counter,
        diff: diff as Record<string, never>,
        version: twinVersion(state),
        desiredVersion: sectionVersion(state, 'desired'),
        reportedVersion: sectionVersion(state, 'reported'),
        ...(e.corr === undefined ? {} : { corr: e.corr }),
        source: { topic: source.topic, partition: source.partition, offset: source.offset },
      }),
    });
  }

  private command(first: TwinEvent, r: LogRecord, batch: readonly LogRecord[], index: number): number {
    // consecutive commands of one device sharing `corr` are decided as one unit
    const unit: TwinEvent[] = [first];
    let j = index + 1;
    while (first.corr !== undefined && j < batch.length) {
      const next = batch[j]!;
      if (next.value === null || next.key !== first.deviceId) break;
      const d = safeDecodeEvent(next.value);
      if (
        !d.ok ||
        d.value.corr !== first.corr ||
        d.value.cond === undefined ||
        !validateEvent(d.value, { limits: this.limits }).ok
      )
        break;
      unit.push(d.value);
      j++;
    }
    this.stats.commands += unit.length;
    const source: Source = { topic: TOPICS.backend, partition: r.partition, offset: r.offset, timestamp: r.timestamp };
    let entry = this.devices.get(first.deviceId);
    if (entry === undefined) {
      entry = { state: createTwinState(first.deviceId), offsets: { backend: 0, device: 0 } };
      this.devices.set(first.deviceId, entry);
    }
    const op: BatchOp = { kind: 'command', events: unit, source, applied: 0, rejected: 0, rejection: undefined };
    this.begin(first.deviceId, entry).ops.push(op);
    this.advance(first.deviceId, entry.state, r.timestamp);
    this.decide(entry.state, op);
    return unit.length;
  }

  /** Why the fold refused an event as `LATE` (docs/bounded-state.md). */
  private lateReason(state: TwinState, e: TwinEvent): string {
    const h = state.gcHorizon;
    const iso = (wall: number): string => new Date(Math.max(0, wall)).toISOString();
    const { maxOfflineWindowMs, maxSkewMs, gcMarginMs } = this.horizon;
    const below = e.stamp.wall < h.wall || (e.stamp.wall === h.wall && e.stamp.counter <= h.counter);
    return below
      ? `event is older than the twin's GC horizon (stamped ${iso(e.stamp.wall)}, horizon ${iso(h.wall)}: the device's latest record ` +
          `minus the offline window ${maxOfflineWindowMs} ms, skew ${maxSkewMs} ms and margin ${gcMarginMs} ms); not applied, write it again as a new write`
      : `event arrived after its section's window of exact history had passed it (stamped ${iso(e.stamp.wall)}; ` +
          `see docs/bounded-state.md); not applied, write it again as a new write`;
  }

  /** Decide a command unit against `state`, writing its rejection or its facts and changes. */
  private decide(state: TwinState, op: BatchOp): void {
    const unit = op.events;
    const first = unit[0]!;
    const source = { topic: op.source.topic, partition: op.source.partition, offset: op.source.offset };
    const befores = unit.map((c) => (isSection(c.section) ? sectionView(state, c.section) : {}));
    const { decision, facts, replayed, duplicateOf } = decideCommands(state, unit, {
      clock: this.clock,
      limits: this.limits,
    });
    this.touched.add(first.deviceId);
    op.applied = 0;
    op.rejected = 0;
    op.rejection = undefined;
    if (!decision.accepted) {
      const record: AppendRecord = {
        key: first.deviceId,
        value: encodeOutputRecord({
          kind: 'rejection',
          v: 1,
          deviceId: first.deviceId,
          code: decision.code,
          message: decision.message,
          id: first.id,
          ...(first.corr === undefined ? {} : { corr: first.corr }),
          etag: decision.etag ?? null,
          ...(duplicateOf === undefined
            ? {}
            : {
                duplicateOf,
                version: twinVersion(state),
                desiredVersion: sectionVersion(state, 'desired'),
                reportedVersion: sectionVersion(state, 'reported'),
              }),
          source,
        }),
      };
      op.rejection = { record, code: decision.code };
      this.rejections.push(record);
      this.countRejection(decision.code, unit.length);
      this.stats.rejected += unit.length;
      op.rejected = unit.length;
      return;
    }
    if (replayed) return;
    facts.forEach((fact, k) => {
      this.facts.push({ key: fact.deviceId, value: encodeEvent(fact), partition: this.partition });
      const section = fact.section;
      const after = isSection(section) ? sectionView(state, section) : {};
      this.stats.applied++;
      op.applied++;
      this.changes.push({
        key: fact.deviceId,
        value: encodeOutputRecord({
          kind: 'change',
          v: 1,
          deviceId: fact.deviceId,
          opType: fact.op === 'replace' ? 'replaceTwin' : 'updateTwin',
          id: fact.id,
          section: fact.section,
          actor: fact.actor,
          wall: fact.stamp.wall,
          counter: fact.stamp.counter,
          diff: diffMergePatch(befores[k]!, after) as Record<string, never>,
          version: twinVersion(state),
          desiredVersion: sectionVersion(state, 'desired'),
          reportedVersion: sectionVersion(state, 'reported'),
          ...(fact.corr === undefined ? {} : { corr: fact.corr }),
          source,
        }),
      });
    });
  }

  private retryParked(backendCaughtUp: boolean): void {
    const ready = this.ready;
    this.ready = [];
    for (const { record, event } of ready) {
      const entry = this.devices.get(event.deviceId);
      const source = {
        topic: TOPICS.device,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
      };
      if (entry !== undefined && twinExists(entry.state)) {
        const state = entry.state;
        this.begin(event.deviceId, entry);
        this.advance(event.deviceId, state, record.timestamp);
        this.applyAndRecord(state, event, source);
      } else this.park(record, event); // deleted again in the same batch
    }
    if (!backendCaughtUp) return;
    for (const [, waiting] of this.parked) {
      for (const { record, event } of waiting) {
        const source = { topic: TOPICS.device, partition: record.partition, offset: record.offset };
        this.reject(event, 'DEVICE_NOT_FOUND', `device ${event.deviceId} does not exist`, source);
      }
    }
    this.parked.clear();
  }

  private park(r: LogRecord, event: TwinEvent): void {
    // its own copy: the record may be a view into a replay's window, which is reused
    const record: LogRecord = { ...r, value: r.value === null ? null : new Uint8Array(r.value) };
    const waiting = this.parked.get(event.deviceId);
    if (waiting === undefined) this.parked.set(event.deviceId, [{ record, event }]);
    else waiting.push({ record, event });
  }

  private countRejection(code: string, n: number): void {
    this.rejectedByCode[code] = (this.rejectedByCode[code] ?? 0) + n;
  }

  private reject(
    e: TwinEvent,
    code: TwinlogErrorCode,
    message: string,
    source: { readonly topic: string; readonly partition: number; readonly offset: number },
  ): void {
    this.stats.rejected++;
    this.countRejection(code, 1);
    this.rejections.push({
      key: e.deviceId,
      value: encodeOutputRecord({
        kind: 'rejection',
        v: 1,
        deviceId: e.deviceId,
        code,
        message,
        id: e.id,
        ...(e.corr === undefined ? {} : { corr: e.corr }),
        source: { topic: source.topic, partition: source.partition, offset: source.offset },
      }),
    });
  }

  private deadLetter(r: LogRecord, code: string, message: string): void {
    this.stats.deadLettered++;
    this.deadLetters.push({
      key: r.key,
      value: encodeOutputRecord({
        kind: 'dead-letter',
        v: 1,
        key: r.key,
        code,
        message,
        bytes: r.value,
        source: { topic: r.topic, partition: r.partition, offset: r.offset },
      }),
    });
  }

  /** The committed positions: parked device records hold the device offset back. */
  private committedPositions(): InputOffsets {
    let device = this.positions.device;
    for (const waiting of this.parked.values())
      for (const { record } of waiting) device = Math.min(device, record.offset);
    for (const { record } of this.ready) device = Math.min(device, record.offset);
    return { backend: this.positions.backend, device };
  }

  private encodeSnapshot(deviceId: string, state: TwinState, offsets: InputOffsets): Uint8Array {
    return encodeSnapshotRecord(deviceId, state, offsets);
  }

  /** The state an entry returns to: its last written snapshot's, or an empty one. */
  private lastGoodState(deviceId: string, snapshot: Uint8Array | undefined): TwinState {
    return snapshot === undefined
      ? createTwinState(deviceId)
      : fromStateDoc(decodeOutputRecord(snapshot, 'snapshot').state);
  }

  /**
   * The record-size guard for one device whose snapshot came out too large: back to its last good
   * state, then its batch operations again one at a time, refusing each one after which the
   * snapshot would still be too large. Returns the snapshot to write, or undefined when even the
   * last good state does not fit (then nothing is written for the device).
   */
  private refit(deviceId: string, entry: DeviceEntry, offsets: InputOffsets): Uint8Array | undefined {
    const b = this.batch.get(deviceId) ?? { ops: [], lastTimestamp: -Infinity, check: true, inputBytes: 0 };
    // take back what the first pass wrote for this device's operations
    const undone = new Set<AppendRecord>();
    for (const op of b.ops) {
      this.stats.applied -= op.applied;
      this.stats.rejected -= op.rejected;
      if (op.rejection === undefined) continue;
      undone.add(op.rejection.record);
      this.countRejection(op.rejection.code, -op.rejected);
    }
    this.changes = this.changes.filter((c) => c.key !== deviceId);
    this.facts = this.facts.filter((f) => f.key !== deviceId);
    if (undone.size > 0) this.rejections = this.rejections.filter((r) => !undone.has(r));

    let good = entry.snapshot;
    entry.state = this.lastGoodState(deviceId, good);
    this.refitting = true;
    try {
      for (const op of b.ops) {
        const marks = {
          changes: this.changes.length,
          facts: this.facts.length,
          rejections: this.rejections.length,
          stats: { ...this.stats },
          codes: { ...this.rejectedByCode },
        };
        advanceHorizon(entry.state, gcHorizonAt(op.source.timestamp, this.horizon));
        if (op.kind === 'event') this.applyAndRecord(entry.state, op.events[0]!, op.source);
        else this.decide(entry.state, op);
        const bytes = this.encodeSnapshot(deviceId, entry.state, offsets);
        if (bytes.length <= this.maxSnapshotBytes) {
          good = bytes;
          continue;
        }
        this.changes.length = marks.changes;
        this.facts.length = marks.facts;
        this.rejections.length = marks.rejections;
        this.stats = marks.stats;
        this.rejectedByCode = marks.codes;
        entry.state = this.lastGoodState(deviceId, good);
        const what = op.kind === 'command' ? 'command' : 'event';
        for (const e of op.events) {
          this.reject(
            e,
            'SNAPSHOT_TOO_LARGE',
            `twin ${deviceId} not changed: with this ${what} its snapshot would be ${bytes.length} bytes, over the log's record limit ` +
              `of ${this.maxSnapshotBytes} bytes (maxSnapshotBytes); the twin stays at its last good state`,
            op.source,
          );
        }
      }
    } finally {
      this.refitting = false;
    }
    if (b.lastTimestamp > -Infinity) advanceHorizon(entry.state, gcHorizonAt(b.lastTimestamp, this.horizon));
    const bytes = this.encodeSnapshot(deviceId, entry.state, offsets);
    return bytes.length <= this.maxSnapshotBytes ? bytes : undefined;
  }

  /**
   * The pending output of everything folded since the last flush: a snapshot per touched device,
   * the checkpoint, and the change, rejection, dead-letter and fact records, to commit as one batch.
   */
  flush(): TaskOutput {
    this.unflushed = 0;
    const positions = this.committedPositions();
    const snapshots: AppendRecord[] = [];
    for (const deviceId of this.touched) {
      const entry = this.devices.get(deviceId)!;
      const b = this.batch.get(deviceId);
      if (this.rebuild && b?.check === false) {
        entry.estimate = (entry.estimate ?? 0) + GROWTH_PER_INPUT_BYTE * b.inputBytes;
        continue;
      }
      let bytes: Uint8Array | undefined = this.encodeSnapshot(deviceId, entry.state, positions);
      if (bytes.length > this.maxSnapshotBytes) bytes = this.refit(deviceId, entry, positions);
      if (bytes === undefined) continue; // its last good snapshot is over the limit too: not rewritten
      entry.snapshot = bytes;
      if (this.rebuild) entry.estimate = bytes.length;
      // a rebuild writes its snapshots once, at the end (see `replay`)
      if (this.rebuild) continue;
      entry.offsets = positions;
      snapshots.push({ key: deviceId, partition: this.partition, value: bytes });
    }
    snapshots.push({
      key: CHECKPOINT_KEY,
      partition: this.partition,
      value: encodeOutputRecord({ kind: 'checkpoint', v: 1, partition: this.partition, offsets: positions }),
    });
    const appends: TopicAppend[] = [{ topic: TOPICS.snapshots, records: snapshots }];
    if (this.changes.length > 0) appends.push({ topic: TOPICS.changes, records: this.changes });
    if (this.rejections.length > 0) appends.push({ topic: TOPICS.rejections, records: this.rejections });
    if (this.deadLetters.length > 0) appends.push({ topic: TOPICS.deadLetter, records: this.deadLetters });
    if (this.facts.length > 0) appends.push({ topic: TOPICS.backend, records: this.facts });
    for (const [code, n] of Object.entries(this.rejectedByCode)) if (n === 0) delete this.rejectedByCode[code];
    const out: TaskOutput = { appends, positions, stats: this.stats, rejectedByCode: this.rejectedByCode };
    this.touched = new Set();
    this.batch = new Map();
    this.changes = [];
    this.rejections = [];
    this.deadLetters = [];
    this.facts = [];
    this.stats = emptyStats();
    this.rejectedByCode = {};
    return out;
  }
}

/** A twin's `twin.snapshots` record: its state document, whether it exists, its version, and the input offsets it reflects. */
export function encodeSnapshotRecord(deviceId: string, state: TwinState, offsets: InputOffsets): Uint8Array {
  return encodeOutputRecord({
    kind: 'snapshot',
    v: 1,
    deviceId,
    state: toStateDoc(state),
    exists: twinExists(state),
    version: twinVersion(state),
    offsets,
  });
}

export function emptyStats(): BatchStats {
  return { applied: 0, duplicates: 0, skipped: 0, rejected: 0, deadLettered: 0, commands: 0, parked: 0 };
}

function topicName(topic: InputTopic): string {
  return topic === 'backend' ? TOPICS.backend : TOPICS.device;
}
