/**
 * The lines of `twinlog audit` over a fleet: one per kept entry, as text, a JSON object or a CSV
 * row (RFC 4180). This module is an audit line factory (`AuditLineFactory` of @twinlog/projector):
 * every worker thread of the audit loads it for itself and compiles the `--where` condition, so the
 * lines are the same whichever thread folds (docs/write-path.md, "Replay").
 */
import { renderTwin, type TwinState } from '@twinlog/core';
import { writeJson, type AuditLineWriter, type HistoryEntry } from '@twinlog/projector';
import { compileWhere, parseQuery } from '@twinlog/query';
import { formatHistoryEntry } from './formatRecords.ts';

export type AuditFormat = 'text' | 'json' | 'csv';

export interface AuditLineOptions {
  readonly format: AuditFormat;
  /** A query's WHERE clause, true of the twin right after the event. */
  readonly where?: string | undefined;
}

export const CSV_COLUMNS = [
  'time',
  'deviceId',
  'actor',
  'section',
  'op',
  'patch',
  'version',
  'tags',
  'desired',
  'reported',
  'topic',
  'partition',
  'offset',
  'appendTime',
];

/** RFC 4180: quote a field that holds a comma, a quote or a line break; double its quotes. */
function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvRow(e: HistoryEntry): string {
  const v = e.versions;
  const s = e.source;
  return [
    e.time,
    e.deviceId,
    e.actor,
    e.section,
    e.op,
    JSON.stringify(e.patch),
    v.version,
    v.tags,
    v.desired,
    v.reported,
    s.topic,
    s.partition,
    s.offset,
    new Date(s.appendTime).toISOString(),
  ]
    .map(csvField)
    .join(',');
}

/** Parse a `--where` condition (throws the query's error for a bad one). */
export function compileCondition(where: string): ReturnType<typeof compileWhere> {
  return compileWhere(parseQuery(`SELECT * FROM devices WHERE ${where}`));
}

/** Whether the twin as of an entry matches `where` (every twin, without one). */
function twinMatches(where: string | undefined): (state: TwinState) => boolean {
  if (where === undefined) return () => true;
  const keep = compileCondition(where);
  return (state) => keep(renderTwin(state));
}

/**
 * The line of one audit entry as text, or undefined when the twin does not match `where`. An entry
 * holds JSON values only (its patch is JSON), so a JSON line is `JSON.stringify` of it.
 */
export function auditLineText(
  options: AuditLineOptions,
): (entry: HistoryEntry, state: TwinState) => string | undefined {
  const { format, where } = options;
  const keep = twinMatches(where);
  return (e, state) => {
    if (!keep(state)) return undefined;
    if (format === 'json') return JSON.stringify(e);
    if (format === 'csv') return csvRow(e);
    return `${e.deviceId}  ${formatHistoryEntry(e)}`;
  };
}

/**
 * The line factory of a fleet audit, which every thread folding it loads: {@link auditLineText}'s
 * lines, JSON ones written straight into bytes (`writeJson`, the same bytes with no string per
 * line: docs/write-path.md, "The audit on worker threads").
 */
export function fleetAuditLine(
  options: unknown,
): ((entry: HistoryEntry, state: TwinState) => string | undefined) | AuditLineWriter {
  const { format, where } = options as AuditLineOptions;
  if (format !== 'json') return auditLineText({ format, where });
  const keep = twinMatches(where);
  return {
    write: (e, state, out) => {
      if (!keep(state)) return false;
      writeJson(out, e);
      return true;
    },
  };
}
