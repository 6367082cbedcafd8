/**
 * The identity registry's secrets. Device *existence* is the twin's (its latest snapshot on
 * `twin.snapshots`); this store keeps only what the twin does not: the symmetric keys and the
 * generation id of devices created through the gateway. It lives in memory and, given a file,
 * is written through to a JSON file (whole file, 0600 in a 0700 folder, fsync, temp + rename), read back at start and read again
 * when the file changed (another process's store wrote it: the MQTT gateway sees devices the REST
 * gateway of another process created; one writer at a time is assumed).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeSecretFile } from './secretFile.ts';

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

export function createDeviceKeyStore(file?: string): DeviceKeyStore {
  const keys = new Map<string, DeviceKeys>();
  let loaded = '';
  /** Which version of the file is on disk (each write is a new file, renamed over the old one). */
  const versionOf = (f: string): string => {
    if (!existsSync(f)) return '';
    const st = statSync(f);
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  };
  /** (Re)read the file when another process (or store) rewrote it since the last read or write. */
  const refresh = (): void => {
    if (file === undefined) return;
    const version = versionOf(file);
    if (version === loaded || version === '') return;
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, DeviceKeys>;
    keys.clear();
    for (const [id, k] of Object.entries(parsed)) keys.set(id, k);
    loaded = version;
  };
  refresh();
  const persist = (): void => {
    if (file === undefined) return;
    writeSecretFile(file, JSON.stringify(Object.fromEntries(keys)));
    loaded = versionOf(file);
  };
  return {
    get(id) {
      refresh();
      return keys.get(id);
    },
    set(id, k) {
      refresh();
      keys.set(id, k);
      persist();
    },
    delete(id) {
      refresh();
      if (keys.delete(id)) persist();
    },
  };
}
