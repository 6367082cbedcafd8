/** An audit line factory for tests: each line is the device id after `options.pad` (characters of any width). */
import type { HistoryEntry } from './auditEntry.ts';

export function paddedLine(options: unknown): (entry: HistoryEntry) => string {
  const { pad } = options as { pad: string };
  return (e) => `${pad}${e.deviceId}`;
}

/** An audit line factory for tests: the entry's device, source and versions as JSON. */
export function entryLine(): (entry: HistoryEntry) => string {
  return (e) => JSON.stringify([e.deviceId, e.source.topic, e.source.offset, e.versions]);
}
