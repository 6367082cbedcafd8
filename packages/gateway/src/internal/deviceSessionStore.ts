/**
 * The MQTT gateway's durable per-device record: the subscriptions of a CleanSession=0 session
 * (kept across reconnects and gateway restarts, docs/iot-hub.md, "Persistent sessions") and the desired view the
 * device was last given (its `$version` and content, from a GET response or a notification), from
 * which offline catch-up computes one merged notification.
 *
 * Storage: in memory, written through to a JSON-lines journal when a file is given: one line per
 * changed record (`{"id":…,"s":record}`, `null` for a removed one), appended synchronously, so a
 * crash loses at most the line being written (a torn last line is ignored when read back). At open
 * the journal is read (last line per device wins) and rewritten compacted; it is compacted again
 * when it holds more than four lines per live record.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { JsonObject } from '@twinlog/core';

/** One device's session record. */
export interface DeviceSession {
  /** Subscribed filters → granted QoS (only kept for CleanSession=0 sessions). */
  readonly subscriptions: Readonly<Record<string, 0 | 1>>;
  /** Desired `$version` the device was last given, or null when unknown. */
  readonly desiredVersion: number | null;
  /** The desired section (no `$`-keys) the device holds at `desiredVersion`, or null when unknown. */
  readonly desired: JsonObject | null;
}

export const EMPTY_SESSION: DeviceSession = { subscriptions: {}, desiredVersion: null, desired: null };

export interface DeviceSessionStore {
  get(deviceId: string): DeviceSession;
  set(deviceId: string, session: DeviceSession): void;
  /** Number of stored records. */
  readonly size: number;
}

function isEmpty(s: DeviceSession): boolean {
  return Object.keys(s.subscriptions).length === 0 && s.desiredVersion === null && s.desired === null;
}

/**
 * Open a session store, durable when `file` is given.
 *
 * @example
 * const sessions = createDeviceSessionStore('/var/lib/twinlog/mqtt-sessions.jsonl')
 * sessions.set('dev1', { ...sessions.get('dev1'), subscriptions: { '$iothub/twin/res/#': 0 } })
 */
export function createDeviceSessionStore(file?: string): DeviceSessionStore {
  const records = new Map<string, DeviceSession>();
  let lines = 0;
  const compact = (): void => {
    if (file === undefined) return;
    const tmp = `${file}.tmp`;
    let text = '';
    for (const [id, s] of records) text += `${JSON.stringify({ id, s })}\n`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
    lines = records.size;
  };
  if (file !== undefined && existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      let entry: { id?: unknown; s?: unknown };
      try {
        entry = JSON.parse(line) as { id?: unknown; s?: unknown };
      } catch {
        continue; // a torn last line after a crash
      }
      if (typeof entry.id !== 'string') continue;
      if (entry.s === null || typeof entry.s !== 'object') records.delete(entry.id);
      else records.set(entry.id, entry.s as DeviceSession);
    }
    compact();
  }
  return {
    get: (id) => records.get(id) ?? EMPTY_SESSION,
    set(id, s) {
      const empty = isEmpty(s);
      if (empty && !records.has(id)) return;
      if (empty) records.delete(id);
      else records.set(id, s);
      if (file === undefined) return;
      appendFileSync(file, `${JSON.stringify({ id, s: empty ? null : s })}\n`);
      lines++;
      if (lines > 4 * records.size + 1000) compact();
    },
    get size() {
      return records.size;
    },
  };
}
