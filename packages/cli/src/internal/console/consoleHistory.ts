/**
 * A twin's history for the console (docs/console.md, "History"): every event the projector applied
 * to it, from `auditTrail` (@twinlog/projector), each with the twin rendered right after it — so
 * the page can show the twin as of any event, and diff any two, without asking again — plus the
 * device's rejections and dead letters.
 */
import { renderTwin, twinExists, type Log, type TwinDocument } from '@twinlog/core';
import { auditTrail, type HistoryEntry } from '@twinlog/projector';
import { problemsOf, type TimelineProblem } from './consoleFeeds.ts';

export interface ConsoleHistory {
  readonly deviceId: string;
  /** Events applied in all (`entries` may hold only the newest `max`). */
  readonly total: number;
  readonly entries: readonly (Omit<HistoryEntry, 'stamp'> & { readonly twin: TwinDocument | null })[];
  readonly problems: readonly TimelineProblem[];
}

export async function consoleHistory(
  log: Log,
  deviceId: string,
  { max = 300, until }: { max?: number; until?: number } = {},
): Promise<ConsoleHistory> {
  const entries: ConsoleHistory['entries'][number][] = [];
  let total = 0;
  await auditTrail({
    log,
    deviceId,
    ...(until === undefined ? {} : { until }),
    onEntry: ({ stamp: _stamp, ...entry }, state) => {
      total++;
      // the state is live: render it now (a deleted twin has no document)
      entries.push({ ...entry, twin: twinExists(state) ? renderTwin(state, { actors: true }) : null });
      if (entries.length > max) entries.shift();
    },
  });
  const problems = await problemsOf(log, deviceId);
  return { deviceId, total, entries, problems };
}
