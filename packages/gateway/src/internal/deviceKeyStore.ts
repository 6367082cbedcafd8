/**
 * The identity registry's secrets. Device *existence* is the twin's (its latest snapshot on
 * `twin.snapshots`); this store keeps only what the twin does not: the symmetric keys and the
 * generation id of devices created through the gateway.
 *
 * Without a file it lives in memory. Given a file, it is a SQLite database (one row per device,
 * WAL, `synchronous = FULL`: a create answered 200 survives a power cut), `0600` in a `0700`
 * folder (docs/security.md). Each write touches one row, so creating the 100,000th device costs
 * what the first did; other processes on the same file (the MQTT gateway, `twinlog device`) see a
 * write as soon as it commits. A `registry.json` left by an earlier version next to the file is
 * imported once and then removed; given a path ending in `.json` (as before), the database is the
 * same path ending in `.db`.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import Database from 'better-sqlite3';
import { ensurePrivateDir } from './secretFile.ts';

export interface DeviceKeys {
  readonly primaryKey: string;
  readonly secondaryKey: string;
  readonly generationId: string;
  /** The Plug and Play model id the device announced at its latest MQTT connect (the twin's `modelId`). */
  readonly modelId?: string;
}

export interface DeviceKeyStore {
  get(deviceId: string): DeviceKeys | undefined;
  set(deviceId: string, keys: DeviceKeys): void;
  delete(deviceId: string): void;
}

/**
 * Fresh symmetric keys (32 random bytes each, base64) and a generation id, as IoT Hub issues them;
 * given keys are kept.
 *
 * @example
 * store.set('thermo-1', newDeviceKeys())
 */
export function newDeviceKeys(given: Partial<Pick<DeviceKeys, 'primaryKey' | 'secondaryKey'>> = {}): DeviceKeys {
  return {
    primaryKey: given.primaryKey ?? randomBytes(32).toString('base64'),
    secondaryKey: given.secondaryKey ?? randomBytes(32).toString('base64'),
    generationId: String(randomBytes(6).readUIntBE(0, 6)),
  };
}

/**
 * The registry: in memory, or in the SQLite database `file` (created when missing).
 *
 * @example
 * const keys = createDeviceKeyStore('/var/lib/twinlog/registry.db')
 */
export function createDeviceKeyStore(file?: string): DeviceKeyStore {
  if (file === undefined) {
    const keys = new Map<string, DeviceKeys>();
    return {
      get: (id) => keys.get(id),
      set: (id, k) => void keys.set(id, k),
      delete: (id) => void keys.delete(id),
    };
  }
  const legacy = join(dirname(file), `${basename(file, extname(file))}.json`);
  const path = file === legacy ? `${file.slice(0, -'.json'.length)}.db` : file; // a path of the JSON-file era: its database sits next to it
  ensurePrivateDir(dirname(path));
  closeSync(openSync(path, 'a', 0o600)); // SQLite gives its -wal and -shm files the database file's mode
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000'); // another process may be writing
  db.exec('CREATE TABLE IF NOT EXISTS device_keys (device_id TEXT PRIMARY KEY, keys TEXT NOT NULL) WITHOUT ROWID');
  const select = db.prepare<[string], { keys: string }>('SELECT keys FROM device_keys WHERE device_id = ?');
  const upsert = db.prepare<[string, string]>('INSERT INTO device_keys (device_id, keys) VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE SET keys = excluded.keys');
  const remove = db.prepare<[string]>('DELETE FROM device_keys WHERE device_id = ?');
  /** Keep the files owner-only, even when an older version or a copy left them readable to others. */
  const tighten = (): void => {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    chmodSync(dirname(path), 0o700);
  };
  importLegacyJson(legacy, db, upsert);
  tighten();
  return {
    get(id) {
      const row = select.get(id);
      return row === undefined ? undefined : (JSON.parse(row.keys) as DeviceKeys);
    },
    set(id, k) {
      upsert.run(id, JSON.stringify(k));
      tighten();
    },
    delete(id) {
      remove.run(id);
    },
  };
}

/** Import the JSON key file of versions before the SQLite registry (one transaction), then remove it. */
function importLegacyJson(legacy: string, db: Database.Database, upsert: Database.Statement<[string, string]>): void {
  if (!existsSync(legacy)) return;
  const parsed = JSON.parse(readFileSync(legacy, 'utf8')) as Record<string, DeviceKeys>;
  db.transaction(() => {
    for (const [id, k] of Object.entries(parsed)) upsert.run(id, JSON.stringify(k));
  })();
  rmSync(legacy);
}
