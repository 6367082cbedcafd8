/**
 * The reconciler's state for one partition *p*: the last delta emitted per device on
 * `twin.deltas` *p*, and the offset of the snapshot it came from. Turns snapshot records into the
 * delta records to emit — only where a device's delta changed.
 *
 * Idempotence: the emitted records are the state (restored by reading `twin.deltas` *p* to its
 * end), and each carries the offset of its snapshot; a snapshot at or below that offset is already
 * reflected and skipped. Together with the atomic commit of emissions and input offsets, a restart,
 * a redelivery or a replay from the earliest offset emits nothing twice.
 *
 * Restore and resume (docs/architecture.md, "Restore and resume"): the restore also reads the
 * group's last checkpoint on `twin.deltas` *p* (checkpoint.ts), the position of `twin.snapshots` *p*
 * the restored deltas reflect. Snapshots below it are skipped, and the first batch after the
 * restore is checked against it (checkResumeGap of @twinlog/projector), so a restore that missed the last transaction
 * never evaluates on from the group's offsets.
 */
import { decodeOutputRecord, encodeOutputRecord } from '@twinlog/codec';
import {
  delta,
  deltaEquals,
  fromStateDoc,
  renderTwin,
  type AppendRecord,
  type DeltaState,
  type Log,
  type LogRecord,
} from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';
import { checkpointOf } from './checkpoint.ts';
import { hasUnsettled, markStale } from './markStale.ts';

/**
 * Header of a tombstone on `twin.deltas` (a deleted twin): the offset on `twin.snapshots` of the
 * snapshot that deleted it, so a replay knows the deletion is already reflected.
 *
 * @example
 * if (record.value === null) console.log('deleted at snapshot', Number(record.headers[SOURCE_OFFSET_HEADER]))
 */
export const SOURCE_OFFSET_HEADER = 'twinlog-source-offset';

interface DeviceDelta {
  /** `undefined`: the twin is deleted (a tombstone was emitted). */
  delta: DeltaState | undefined;
  /** Offset on `twin.snapshots` *p* of the latest snapshot reflected. */
  source: number;
}

export interface DeltaOptionsOfStage {
  readonly acks: boolean;
  readonly staleAfterMs: number | undefined;
}

/**
 * Counts of what one batch or sweep did (passed to `onBatch`).
 *
 * @example
 * startReconciler({ log, physicalNow: Date.now, onBatch: (p, s) => console.log(p, s.emitted, s.skipped) })
 */
export interface ReconcileStats {
  /** Snapshot records evaluated. */
  snapshots: number;
  /** Delta records (and tombstones) emitted. */
  emitted: number;
  /** Snapshots already reflected by an emitted delta or below the restored checkpoint (redelivery, replay). */
  skipped: number;
  /** Records on `twin.snapshots` that did not decode (left alone). */
  bad: number;
}

export class ReconcilerPartition {
  private readonly devices = new Map<string, DeviceDelta>();
  /** Devices whose delta has `pending`/`acknowledged` entries, for the sweep. */
  private readonly unsettled = new Set<string>();
  /**
   * Next offset of `twin.snapshots` *p* the state does not reflect: the restored checkpoint, then
   * past each record evaluated (undefined while neither exists).
   */
  position: number | undefined;
  /**
   * The restored checkpoint: the position of `twin.snapshots` *p* the restored deltas reflect
   * (undefined: none on the log — a fresh topic, or one written before checkpoints existed).
   */
  checkpoint: number | undefined;
  /** Whether the first batch since the restore was checked against the checkpoint (checkResumeGap of @twinlog/projector). */
  resumeChecked = false;

  constructor(
    readonly partition: number,
    private readonly options: DeltaOptionsOfStage,
  ) {}

  /**
   * Restore the last emitted delta per device, and `group`'s last checkpoint, from `twin.deltas` *p*
   * read to its end (on Kafka: the last stable offset).
   */
  static async restore(
    log: Log,
    partition: number,
    group: string,
    options: DeltaOptionsOfStage,
  ): Promise<ReconcilerPartition> {
    const task = new ReconcilerPartition(partition, options);
    const end = (await log.endOffsets(TOPICS.deltas))[partition] ?? 0;
    for await (const records of log.read(TOPICS.deltas, partition, { from: 0, to: end })) {
      for (const r of records) {
        if (r.key !== CHECKPOINT_KEY) task.restoreRecord(r);
        else task.checkpoint = checkpointOf(r, group) ?? task.checkpoint;
      }
    }
    task.position = task.checkpoint;
    return task;
  }

  private restoreRecord(r: LogRecord): void {
    if (r.value === null) {
      const source = Number(r.headers[SOURCE_OFFSET_HEADER]);
      this.set(r.key, { delta: undefined, source: Number.isSafeInteger(source) ? source : -1 });
      return;
    }
    const rec = decodeOutputRecord(r.value, 'delta');
    this.set(rec.deviceId, { delta: rec.delta, source: rec.source.offset });
  }

  /** The last delta emitted for a device (undefined: none, or the twin is deleted). */
  deltaOf(deviceId: string): DeltaState | undefined {
    return this.devices.get(deviceId)?.delta;
  }

  get deviceCount(): number {
    return this.devices.size;
  }

  /**
   * Evaluate a batch of `twin.snapshots` *p* records, in offset order; returns the records to
   * append to `twin.deltas` *p*. A snapshot is evaluated at its append time (`now` of core's
   * `delta`), so the result is a function of the record: replays decide the same way.
   */
  process(records: readonly LogRecord[], stats: ReconcileStats): AppendRecord[] {
    const out: AppendRecord[] = [];
    for (const r of records) {
      this.position = Math.max(this.position ?? 0, r.offset + 1);
      if (r.key === CHECKPOINT_KEY) continue;
      if (this.checkpoint !== undefined && r.offset < this.checkpoint) {
        stats.skipped++; // the restored deltas reflect it already
        continue;
      }
      const prev = this.devices.get(r.key);
      if (prev !== undefined && r.offset <= prev.source) {
        stats.skipped++;
        continue;
      }
      let next: DeltaState | undefined;
      if (r.value !== null) {
        let snap;
        try {
          snap = decodeOutputRecord(r.value, 'snapshot');
        } catch {
          stats.bad++;
          continue;
        }
        stats.snapshots++;
        next = snap.exists ? this.evaluate(snap.state, r.timestamp) : undefined;
      } else {
        stats.snapshots++;
      }
      if (prev === undefined && next === undefined) continue; // never seen existing: nothing to say
      if (prev !== undefined && sameDelta(prev.delta, next)) {
        prev.source = r.offset;
        continue;
      }
      this.set(r.key, { delta: next, source: r.offset });
      out.push(this.record(r.key, next, r.offset));
      stats.emitted++;
    }
    return out;
  }

  /** Re-evaluate unsettled devices at `now`: the records to append for those that turned stale. */
  sweep(now: number, stats: ReconcileStats): AppendRecord[] {
    const staleAfterMs = this.options.staleAfterMs;
    if (staleAfterMs === undefined) return [];
    const out: AppendRecord[] = [];
    for (const deviceId of [...this.unsettled]) {
      const d = this.devices.get(deviceId)!;
      const next = markStale(d.delta!, now, staleAfterMs);
      if (next === d.delta) continue;
      this.set(deviceId, { delta: next, source: d.source });
      out.push(this.record(deviceId, next, d.source));
      stats.emitted++;
    }
    return out;
  }

  private evaluate(stateDoc: unknown, appendTime: number): DeltaState {
    const { acks, staleAfterMs } = this.options;
    const twin = renderTwin(fromStateDoc(stateDoc));
    return delta(twin, staleAfterMs === undefined ? { acks } : { acks, now: appendTime, staleAfterMs });
  }

  private set(deviceId: string, d: DeviceDelta): void {
    this.devices.set(deviceId, d);
    if (d.delta !== undefined && hasUnsettled(d.delta)) this.unsettled.add(deviceId);
    else this.unsettled.delete(deviceId);
  }

  private record(deviceId: string, state: DeltaState | undefined, source: number): AppendRecord {
    if (state === undefined) {
      return {
        key: deviceId,
        partition: this.partition,
        value: null,
        headers: { [SOURCE_OFFSET_HEADER]: String(source) },
      };
    }
    return {
      key: deviceId,
      partition: this.partition,
      value: encodeOutputRecord({
        kind: 'delta',
        v: 1,
        deviceId,
        delta: state,
        source: { topic: TOPICS.snapshots, partition: this.partition, offset: source },
      }),
    };
  }
}

function sameDelta(a: DeltaState | undefined, b: DeltaState | undefined): boolean {
  return a === undefined || b === undefined ? a === b : deltaEquals(a, b);
}

export function emptyStats(): ReconcileStats {
  return { snapshots: 0, emitted: 0, skipped: 0, bad: 0 };
}
