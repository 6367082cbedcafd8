/**
 * `serve`'s delta gauges (`twinlog_delta_entries` by status, `twinlog_delta_devices` by
 * convergence) from the latest delta of each device on `twin.deltas`. Totals are kept as records
 * arrive, so a record costs O(statuses), not a walk of the fleet.
 */
import { decodeOutputRecord } from '@twinlog/codec';
import { isTwinlogError, type DeltaStatus, type LogRecord } from '@twinlog/core';
import { CHECKPOINT_KEY } from '@twinlog/projector';
import type { Metrics } from './createMetrics.ts';

const STATUSES: readonly DeltaStatus[] = ['pending', 'acknowledged', 'rejected', 'converged', 'stale'];

/** What the gauges keep of one device's delta. */
export interface DeltaSummary {
  readonly counts: Partial<Record<DeltaStatus, number>>;
  readonly converged: boolean;
}

export interface DeltaGauges {
  /** The device's latest delta (`undefined`: its delta was deleted); the gauges follow at once. */
  set(deviceId: string, delta: DeltaSummary | undefined): void;
  /**
   * Take one record of `twin.deltas`: a delta or a tombstone. The reconciler's checkpoints
   * (docs/formats.md, "Reconciler checkpoints") and undecodable records are skipped.
   */
  record(r: LogRecord): void;
  /** Devices with a delta. */
  readonly devices: number;
}

export function createDeltaGauges(metrics: Pick<Metrics, 'set'>): DeltaGauges {
  const latest = new Map<string, DeltaSummary>();
  const totals = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<DeltaStatus, number>;
  let converged = 0;
  const account = (d: DeltaSummary | undefined, sign: 1 | -1): void => {
    if (d === undefined) return;
    for (const s of STATUSES) totals[s] += sign * (d.counts[s] ?? 0);
    if (d.converged) converged += sign;
  };
  const publish = (): void => {
    for (const s of STATUSES) metrics.set('twinlog_delta_entries', { status: s }, totals[s]);
    metrics.set('twinlog_delta_devices', { converged: 'true' }, converged);
    metrics.set('twinlog_delta_devices', { converged: 'false' }, latest.size - converged);
  };
  publish();
  const set = (deviceId: string, delta: DeltaSummary | undefined): void => {
    account(latest.get(deviceId), -1);
    account(delta, 1);
    if (delta === undefined) latest.delete(deviceId);
    else latest.set(deviceId, { counts: { ...delta.counts }, converged: delta.converged });
    publish();
  };
  return {
    set,
    record(r) {
      if (r.key === CHECKPOINT_KEY) return;
      if (r.value === null) return set(r.key, undefined);
      try {
        set(r.key, decodeOutputRecord(r.value, 'delta').delta);
      } catch (e) {
        if (!isTwinlogError(e)) throw e;
      }
    },
    get devices() {
      return latest.size;
    },
  };
}
