/**
 * The identity registry's secrets. Device *existence* is the twin's (its latest snapshot on
 * `twin.snapshots`); this store keeps only what the twin does not: the symmetric keys, the
 * generation id and the status (`enabled` / `disabled`, docs/iot-hub.md "Device status") of devices
 * created through the gateway. A row written before status existed has none: the device is enabled.
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

/** IoT Hub's device status: a `disabled` device cannot connect (docs/iot-hub.md, "Device status"). */
export type DeviceStatus = 'enabled' | 'disabled';

export interface DeviceKeys {
  readonly primaryKey: string;
  readonly secondaryKey: string;
  readonly generationId: string;
  /** The Plug and Play model id the device announced at its latest MQTT connect (the twin's `modelId`). */
  readonly modelId?: string;
  /** Absent (rows of earlier versions, devices never disabled) means `enabled`. */
  readonly status?: DeviceStatus;
  /** Why the status was set, as given to the registry (IoT Hub's `statusReason`). */
  readonly statusReason?: string;
  /** When the status last changed, ISO 8601 (IoT Hub's `statusUpdatedTime`). */
  readonly statusUpdatedTime?: string;
}

/** Hears a write made through the store: the device's keys after it, `undefined` after a delete. */
export type DeviceKeysListener = (deviceId: string, keys: DeviceKeys | undefined) => void;

export interface DeviceKeyStore {
  get(deviceId: string): DeviceKeys | undefined;
  set(deviceId: string, keys: DeviceKeys): void;
  delete(deviceId: string): void;
  /**
   * Call `listener` after every `set` and `delete` made through this store (this process only);
   * returns the unsubscribe. Writes by another process on the same file show in
   * {@link DeviceKeyStore.externalVersion}. Optional for hand-made stores.
   */
  onChange?(listener: DeviceKeysListener): () => void;
  /**
   * A number that changes when another process (another connection to the file, e.g. the
   * `twinlog device` CLI) commits to the registry: SQLite's `PRAGMA data_version`, one cheap
   * statement. Constant in memory. Lets a poller skip {@link DeviceKeyStore.disabledDevices}
   * while nothing changed elsewhere. Optional for hand-made stores.
   */
  externalVersion?(): number;
  /**
   * The ids of the disabled devices: one query over a partial index of the disabled rows, so it
   * reads as many rows as there are disabled devices, whatever the fleet's size. Optional for
   * hand-made stores.
   */
  disabledDevices?(): string[];
  /**
   * The module ids of device `deviceId`: the rows keyed `{deviceId}/{moduleId}` (docs/iot-hub.md,
   * "Module identities and module twins"), sorted, one range scan of the primary key. Optional for
   * hand-made stores (which then list no modules).
   */
  modulesOf?(deviceId: string): string[];
}

/** Whether the device may connect (a row without a status is enabled). */
export function isDisabled(keys: DeviceKeys | undefined): boolean {
  return keys?.status === 'disabled';
}

/**
 * `keys` with a new status and reason (each kept when not given; `statusReason: null` clears it);
 * `statusUpdatedTime` moves to `nowMs` only when the status changes.
 *
 * @example
 * store.set('thermo-1', withDeviceStatus(store.get('thermo-1')!, { status: 'disabled', statusReason: 'stolen' }, Date.now()))
 */
export function withDeviceStatus(
  keys: DeviceKeys,
  change: { readonly status?: DeviceStatus | undefined; readonly statusReason?: string | null | undefined },
  nowMs: number,
): DeviceKeys {
  const { statusReason: _reason, ...rest } = keys;
  const reason = change.statusReason === undefined ? keys.statusReason : (change.statusReason ?? undefined);
  const before = keys.status ?? 'enabled';
  const status = change.status ?? keys.status;
  const next: DeviceKeys = {
    ...rest,
    ...(status === undefined ? {} : { status }),
    ...(reason === undefined ? {} : { statusReason: reason }),
  };
  return status !== undefined && status !== before
    ? { ...next, statusUpdatedTime: new Date(nowMs).toISOString() }
    : next;
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
  const listeners = new Set<DeviceKeysListener>();
  const changed = (id: string, k: DeviceKeys | undefined): void => {
    for (const l of listeners) l(id, k);
  };
  const onChange = (listener: DeviceKeysListener): (() => void) => {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  };
  if (file === undefined) {
    const keys = new Map<string, DeviceKeys>();
    return {
      get: (id) => keys.get(id),
      set(id, k) {
        keys.set(id, k);
        changed(id, k);
      },
      delete(id) {
        keys.delete(id);
        changed(id, undefined);
      },
      onChange,
      externalVersion: () => 0,
      disabledDevices: () => [...keys].filter(([, k]) => isDisabled(k)).map(([id]) => id),
      modulesOf: (deviceId) =>
        [...keys.keys()]
          .filter((id) => id.startsWith(`${deviceId}/`))
          .map((id) => id.slice(deviceId.length + 1))
          .sort(),
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
  const upsert = db.prepare<[string, string]>(
    'INSERT INTO device_keys (device_id, keys) VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE SET keys = excluded.keys',
  );
  const remove = db.prepare<[string]>('DELETE FROM device_keys WHERE device_id = ?');
  // A partial index of the disabled rows only: the poll for devices disabled by another process
  // reads as many rows as there are disabled devices, whatever the fleet's size.
  db.exec(`CREATE INDEX IF NOT EXISTS device_keys_disabled ON device_keys (device_id) WHERE ${DISABLED_SQL}`);
  const selectDisabled = db.prepare<[], { device_id: string }>(
    `SELECT device_id FROM device_keys INDEXED BY device_keys_disabled WHERE ${DISABLED_SQL}`,
  );
  const dataVersion = db.prepare<[], { data_version: number }>('PRAGMA data_version');
  // a device's modules are the rows between '{deviceId}/' and '{deviceId}0' ('0' follows '/')
  const selectModules = db.prepare<[string, string], { device_id: string }>(
    'SELECT device_id FROM device_keys WHERE device_id > ? AND device_id < ? ORDER BY device_id',
  );
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
      changed(id, k);
    },
    delete(id) {
      remove.run(id);
      changed(id, undefined);
    },
    onChange,
    externalVersion: () => dataVersion.get()!.data_version, // moves only with another connection's commits
    disabledDevices: () => selectDisabled.all().map((r) => r.device_id),
    modulesOf: (deviceId) =>
      selectModules.all(`${deviceId}/`, `${deviceId}0`).map((r) => r.device_id.slice(deviceId.length + 1)),
  };
}

/** The rows of disabled devices (the JSON column's `status`). */
const DISABLED_SQL = `json_extract(keys, '$.status') = 'disabled'`;

/** Import the JSON key file of versions before the SQLite registry (one transaction), then remove it. */
function importLegacyJson(legacy: string, db: Database.Database, upsert: Database.Statement<[string, string]>): void {
  if (!existsSync(legacy)) return;
  const parsed = JSON.parse(readFileSync(legacy, 'utf8')) as Record<string, DeviceKeys>;
  db.transaction(() => {
    for (const [id, k] of Object.entries(parsed)) upsert.run(id, JSON.stringify(k));
  })();
  rmSync(legacy);
}
