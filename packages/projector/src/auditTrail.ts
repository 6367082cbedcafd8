/**
 * Audit: "who changed what, when", for one device or a whole fleet, streamed from the log (docs/architecture.md:
 * the log is the history). Built on {@link replay}: the events are those the projector applied, in the order it
 * folded them, each with the versions right after it and the twin state at that moment.
 */
import type { EventKind, Log, TwinState } from '@twinlog/core';
import { auditHook, type HistoryEntry } from './auditEntry.ts';
import { replay, type ReplayOptions, type ReplayResult } from './replay.ts';

export type { HistoryEntry } from './auditEntry.ts';

export interface AuditOptions {
  readonly log: Log;
  /** Only this twin (reads only its partition); without it, the whole fleet. */
  readonly deviceId?: string;
  /** Only events stamped at or after this time (ms since the epoch); earlier events are still folded. */
  readonly since?: number;
  /** Only records appended at or before this time (ms since the epoch), as replay's `until`. */
  readonly until?: number;
  /** Only events of these sections (`create` and `delete` count as sections here). */
  readonly sections?: readonly EventKind[];
  /**
   * Keep an event only when this is true of the twin right after it (the state is live: read it, do not keep
   * it). Runs after the `since` and `sections` filters, so it is not called for events that would be dropped anyway.
   */
  readonly where?: (state: TwinState) => boolean;
  /** Each kept entry, in fold order (per partition; partitions one after another). */
  readonly onEntry: (entry: HistoryEntry, state: TwinState) => void;
  readonly onProgress?: ReplayOptions['onProgress'];
}

/**
 * Stream the audit trail of one twin or of every twin: nothing is collected, so a fleet's trail
 * costs the replay's memory (one state per twin), not one entry per event.
 *
 * @example
 * await auditTrail({ log, since: Date.parse('2026-12-01T09:00:00Z'), onEntry: (e) => console.log(e.deviceId, e.actor, e.patch) })
 */
export async function auditTrail({
  log,
  deviceId,
  since,
  until,
  sections,
  where,
  onEntry,
  onProgress,
}: AuditOptions): Promise<ReplayResult> {
  return replay({
    log,
    ...(deviceId === undefined ? {} : { deviceId }),
    ...(until === undefined ? {} : { until }),
    ...(onProgress === undefined ? {} : { onProgress }),
    onApplied: auditHook({ since, sections, where }, onEntry),
  });
}

/**
 * "Who changed what, when": every event applied to a device's twin, in the order the projector
 * folded it, with actor, stamp, section, patch and the resulting versions.
 *
 * @example
 * for (const e of await history({ log, deviceId: 'thermo-1' })) console.log(e.time, e.actor, e.section, e.patch)
 */
export async function history({
  log,
  deviceId,
  until,
}: {
  log: Log;
  deviceId: string;
  until?: number;
}): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  await auditTrail({ log, deviceId, ...(until === undefined ? {} : { until }), onEntry: (e) => entries.push(e) });
  return entries;
}
