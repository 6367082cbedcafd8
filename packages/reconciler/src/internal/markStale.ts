/**
 * Time alone moving on: turn a delta's `pending` and `acknowledged` entries into `stale` once
 * `staleAfterMs` have passed since their `since`, without the twin. It is exactly what core's
 * `delta(twin, { now, staleAfterMs })` would say for a later `now` (a property test pins this),
 * because `since` and the non-stale statuses do not depend on `now`.
 */
import { DELTA_STATUSES, type DeltaEntry, type DeltaState, type DeltaStatus } from '@twinlog/core';

/**
 * `state` with its entries re-evaluated at `now`; the same object when nothing turns stale.
 * Entries already `stale` stay so (time does not go back).
 */
export function markStale(state: DeltaState, now: number, staleAfterMs: number): DeltaState {
  let changed = false;
  const entries = state.entries.map((e): DeltaEntry => {
    if (e.status !== 'pending' && e.status !== 'acknowledged') return e;
    const at = instantMs(e.since);
    if (Number.isNaN(at) || now - at < staleAfterMs) return e;
    changed = true;
    return { ...e, status: 'stale' };
  });
  if (!changed) return state;
  const counts = Object.fromEntries(DELTA_STATUSES.map((s) => [s, 0])) as Record<DeltaStatus, number>;
  for (const e of entries) counts[e.status]++;
  return { ...state, entries, counts, converged: entries.length === counts.converged };
}

const ISO_TIME = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$/;

/**
 * Milliseconds since the epoch of an ISO 8601 time, read as core's `delta` reads `since`: any
 * number of fractional digits (truncated to ms), no zone meaning UTC. `NaN` when unparsable.
 */
export function instantMs(s: string): number {
  const m = ISO_TIME.exec(s);
  if (m === null) return NaN;
  const [, date, time, frac = '', zone = 'Z'] = m;
  const z = zone === 'Z' || zone === 'z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  return Date.parse(`${date}T${time}.${(frac + '000').slice(0, 3)}${z}`);
}

/** True when the delta has entries that time alone may turn stale. */
export function hasUnsettled(state: DeltaState): boolean {
  return state.counts.pending + state.counts.acknowledged > 0;
}
