/**
 * `serve`'s delta gauges (`twinlog_delta_entries` by status, `twinlog_delta_devices` by
 * convergence) from the latest delta of each device on `twin.deltas`. Totals are kept as records
 * arrive, so a record costs O(statuses), not a walk of the fleet.
 */
import type { DeltaStatus } from '@twinlog/core';
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
  return {
    set(deviceId, delta) {
      account(latest.get(deviceId), -1);
      account(delta, 1);
      if (delta === undefined) latest.delete(deviceId);
      else latest.set(deviceId, { counts: { ...delta.counts }, converged: delta.converged });
      publish();
    },
    get devices() {
      return latest.size;
    },
  };
}
