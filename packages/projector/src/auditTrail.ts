/**
 * Audit: "who changed what, when", for one device or a whole fleet, streamed from the log (docs/architecture.md:
 * the log is the history). Built on {@link replay}: the events are those the projector applied, in the order it
 * folded them, each with the versions right after it and the twin state at that moment.
 */
import {
  isoOf,
  sectionVersion,
  twinVersion,
  type EventKind,
  type Log,
  type Patch,
  type TwinState,
} from '@twinlog/core';
import { replay, type ReplayOptions, type ReplayResult } from './replay.ts';

/** One entry of a twin's audit trail. */
export interface HistoryEntry {
  /** The twin's id (a device id, or `{deviceId}/{moduleId}` for a module twin). */
  readonly deviceId: string;
  /** When the event was stamped (its HLC wall, ISO-8601) and its full stamp. */
  readonly time: string;
  readonly stamp: { readonly wall: number; readonly counter: number };
  readonly id: { readonly writer: string; readonly seq: number };
  readonly actor: string;
  readonly section: EventKind;
  readonly op: 'merge' | 'replace';
  readonly patch: Patch;
  /** Versions right after the event. */
  readonly versions: {
    readonly version: number;
    readonly tags: number;
    readonly desired: number;
    readonly reported: number;
  };
  readonly source: {
    readonly topic: string;
    readonly partition: number;
    readonly offset: number;
    readonly appendTime: number;
  };
}

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
    onApplied: (e, state, source) => {
      if (since !== undefined && e.stamp.wall < since) return;
      if (sections !== undefined && !sections.includes(e.section)) return;
      if (where !== undefined && !where(state)) return;
      onEntry(
        {
          deviceId: e.deviceId,
          time: isoOf(e.stamp.wall),
          stamp: e.stamp,
          id: e.id,
          actor: e.actor,
          section: e.section,
          op: e.op,
          patch: e.patch,
          versions: {
            version: twinVersion(state),
            tags: sectionVersion(state, 'tags'),
            desired: sectionVersion(state, 'desired'),
            reported: sectionVersion(state, 'reported'),
          },
          source: {
            topic: source.topic,
            partition: source.partition,
            offset: source.offset,
            appendTime: source.timestamp,
          },
        },
        state,
      );
    },
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
