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
 */
import { decodeOutputRecord, encodeEvent, encodeOutputRecord, safeDecodeEvent, type InputOffsets } from '@twinlog/codec';
import {
  applyEvent,
  createTwinState,
  decideCommands,
  hasDot,
  diffMergePatch,
  fromStateDoc,
  isSection,
  sectionVersion,
  sectionView,
  toStateDoc,
  twinExists,
  twinVersion,
  validateEvent,
  TWIN_LIMITS,
  type AppendRecord,
  type HybridClock,
  type Log,
  type LogRecord,
  type TopicAppend,
  type TwinEvent,
  type TwinLimits,
  type TwinState,
  type TwinlogErrorCode,
} from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS, type InputTopic } from './topics.ts';

interface DeviceEntry {
  state: TwinState;
  /** Input positions its last persisted snapshot reflects. */
  offsets: InputOffsets;
}

export interface TaskOptions {
  readonly partition: number;
  /** The owner's clock, for stamping accepted command facts. */
  readonly clock: HybridClock;
  readonly limits?: Partial<TwinLimits>;
  /** Skew bounds for records that bypass the gateways (crdt-fold.md §4.3). */
  readonly maxForwardSkewMs?: number;
  readonly maxOfflineWindowMs?: number;
  /**
   * Rebuild mode (replay, time travel): commands are not decided again — their accepted facts and
   * rejections are already in the log — and nothing is written for them.
   */
  readonly rebuild?: boolean;
  /** Called for every event applied, with the state right after it (audit, history). */
  readonly onApplied?: (event: TwinEvent, state: TwinState, source: { topic: string; partition: number; offset: number; timestamp: number }) => void;
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
  private readonly skew: { maxForwardSkewMs?: number; maxOfflineWindowMs?: number };
  // per-batch output buffers
  private touched = new Set<string>();
  private changes: AppendRecord[] = [];
  private rejections: AppendRecord[] = [];
  private deadLetters: AppendRecord[] = [];
  private facts: AppendRecord[] = [];
  private stats: BatchStats = emptyStats();

  private readonly rebuild: boolean;
  private readonly onApplied: TaskOptions['onApplied'];

  constructor({ partition, clock, limits = TWIN_LIMITS, maxForwardSkewMs, maxOfflineWindowMs, rebuild = false, onApplied }: TaskOptions) {
    this.partition = partition;
    this.rebuild = rebuild;
    this.onApplied = onApplied;
    this.clock = clock;
    this.limits = limits;
    this.skew = {
      ...(maxForwardSkewMs === undefined ? {} : { maxForwardSkewMs }),
      ...(maxOfflineWindowMs === undefined ? {} : { maxOfflineWindowMs }),
    };
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

  private restoreRecord(r: LogRecord): void {
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
    this.devices.set(snap.deviceId, { state, offsets: snap.offsets });
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
    return this.flush();
  }

  /**
   * Decide parked device records once `twin.backend` has caught up (their device was never
   * created: rejected). Returns nothing to commit when nothing changed.
   */
  settle(backendCaughtUp: boolean): TaskOutput | undefined {
    if (this.parked.size === 0 && this.ready.length === 0) return undefined;
    const before = this.stats.applied + this.stats.rejected;
    this.retryParked(backendCaughtUp);
    if (this.stats.applied + this.stats.rejected === before) return undefined;
    return this.flush();
  }

  get hasParked(): boolean {
    return this.parked.size > 0;
  }

  /** Handle the record at `index`; returns how many records it consumed (a corr group of commands). */
  private handle(topic: InputTopic, r: LogRecord, batch: readonly LogRecord[], index: number): number {
    const source = { topic: topicName(topic), partition: r.partition, offset: r.offset };
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
    const valid = validateEvent(e, { limits: this.limits, appendTime: r.timestamp, ...this.skew });
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
      this.stats.commands++;
      return 1;
    }
    const state = entry?.state ?? createTwinState(e.deviceId);
    if (!twinExists(state) && e.section !== 'create' && !hasDot(state, e.id)) {
      if (topic === 'device') {
        this.park(r, e);
        this.stats.parked++;
        return 1;
      }
      this.reject(e, 'DEVICE_NOT_FOUND', `device ${e.deviceId} does not exist`, source);
      return 1;
    }
    if (e.section === 'create' && twinExists(state) && !hasDot(state, e.id)) {
      this.reject(e, 'DEVICE_ALREADY_EXISTS', `device ${e.deviceId} already exists`, source);
      return 1;
    }
    if (entry === undefined) this.devices.set(e.deviceId, { state, offsets: { backend: 0, device: 0 } });
    this.applyAndRecord(state, e, { ...source, timestamp: r.timestamp });
    return 1;
  }

  private applyAndRecord(state: TwinState, e: TwinEvent, source: { topic: string; partition: number; offset: number; timestamp: number }): void {
    const section = isSection(e.section) ? e.section : undefined;
    const scope = section === undefined || e.op === 'replace' ? undefined : Object.keys(e.patch);
    const before = section === undefined ? {} : sectionView(state, section, scope);
    const outcome = applyEvent(state, e);
    if (outcome !== 'APPLIED') {
      if (outcome === 'DUPLICATE') this.stats.duplicates++;
      else this.reject(e, 'STAMP_SKEW', `event is older than the GC horizon`, source);
      return;
    }
    this.stats.applied++;
    this.touched.add(e.deviceId);
    this.onApplied?.(e, state, source);
    if (e.section === 'create') {
      const waiting = this.parked.get(e.deviceId);
      if (waiting !== undefined) {
        this.parked.delete(e.deviceId);
        this.ready.push(...waiting);
      }
    }
    const diff = section === undefined ? {} : diffMergePatch(before, sectionView(state, section, scope));
    this.changes.push({
      key: e.deviceId,
      value: encodeOutputRecord({
        kind: 'change',
        v: 1,
        deviceId: e.deviceId,
        opType:
          e.section === 'create' ? 'createDeviceIdentity' : e.section === 'delete' ? 'deleteDeviceIdentity' : e.op === 'replace' ? 'replaceTwin' : 'updateTwin',
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
      if (!d.ok || d.value.corr !== first.corr || d.value.cond === undefined || !validateEvent(d.value, { limits: this.limits }).ok) break;
      unit.push(d.value);
      j++;
    }
    this.stats.commands += unit.length;
    const source = { topic: TOPICS.backend, partition: r.partition, offset: r.offset };
    let entry = this.devices.get(first.deviceId);
    if (entry === undefined) {
      entry = { state: createTwinState(first.deviceId), offsets: { backend: 0, device: 0 } };
      this.devices.set(first.deviceId, entry);
    }
    const state = entry.state;
    const befores = unit.map((c) => (isSection(c.section) ? sectionView(state, c.section) : {}));
    const { decision, facts, replayed } = decideCommands(state, unit, { clock: this.clock, limits: this.limits });
    this.touched.add(first.deviceId);
    if (!decision.accepted) {
      this.rejections.push({
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
          source,
        }),
      });
      this.stats.rejected += unit.length;
      return unit.length;
    }
    if (replayed) return unit.length;
    facts.forEach((fact, k) => {
      this.facts.push({ key: fact.deviceId, value: encodeEvent(fact), partition: this.partition });
      const section = fact.section;
      const after = isSection(section) ? sectionView(state, section) : {};
      this.stats.applied++;
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
    return unit.length;
  }

  private retryParked(backendCaughtUp: boolean): void {
    const ready = this.ready;
    this.ready = [];
    for (const { record, event } of ready) {
      const state = this.devices.get(event.deviceId)?.state;
      const source = { topic: TOPICS.device, partition: record.partition, offset: record.offset, timestamp: record.timestamp };
      if (state !== undefined && twinExists(state)) this.applyAndRecord(state, event, source);
      else this.park(record, event); // deleted again in the same batch
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

  private park(record: LogRecord, event: TwinEvent): void {
    const waiting = this.parked.get(event.deviceId);
    if (waiting === undefined) this.parked.set(event.deviceId, [{ record, event }]);
    else waiting.push({ record, event });
  }

  private reject(e: TwinEvent, code: TwinlogErrorCode, message: string, source: { topic: string; partition: number; offset: number }): void {
    this.stats.rejected++;
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
        source,
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
    for (const waiting of this.parked.values()) for (const { record } of waiting) device = Math.min(device, record.offset);
    for (const { record } of this.ready) device = Math.min(device, record.offset);
    return { backend: this.positions.backend, device };
  }

  private flush(): TaskOutput {
    const positions = this.committedPositions();
    const snapshots: AppendRecord[] = [];
    // a rebuild writes its snapshots once, at the end (see `replay`)
    if (!this.rebuild) for (const deviceId of this.touched) {
      const entry = this.devices.get(deviceId)!;
      entry.offsets = positions;
      snapshots.push({
        key: deviceId,
        partition: this.partition,
        value: encodeOutputRecord({
          kind: 'snapshot',
          v: 1,
          deviceId,
          state: toStateDoc(entry.state),
          exists: twinExists(entry.state),
          version: twinVersion(entry.state),
          offsets: positions,
        }),
      });
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
    const out: TaskOutput = { appends, positions, stats: this.stats };
    this.touched = new Set();
    this.changes = [];
    this.rejections = [];
    this.deadLetters = [];
    this.facts = [];
    this.stats = emptyStats();
    return out;
  }
}

function emptyStats(): BatchStats {
  return { applied: 0, duplicates: 0, skipped: 0, rejected: 0, deadLettered: 0, commands: 0, parked: 0 };
}

function topicName(topic: InputTopic): string {
  return topic === 'backend' ? TOPICS.backend : TOPICS.device;
}
