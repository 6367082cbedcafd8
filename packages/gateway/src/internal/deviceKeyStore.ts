/**
 * The identity registry's secrets. Device *existence* is the twin's (its latest snapshot on
 * `twin.snapshots`); this store keeps only what the twin does not: the symmetric keys and the
 * generation id of devices created through the gateway. It lives in memory and, given a file,
 * is written through to a JSON file (whole file, temp + rename) and read back at start.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface DeviceKeys {
  readonly primaryKey: string;
  readonly secondaryKey: string;
  readonly generationId: string;
}

export interface DeviceKeyStore {
  get(deviceId: string): DeviceKeys | undefined;
  set(deviceId: string, keys: DeviceKeys): void;
  delete(deviceId: string): void;
}

export function createDeviceKeyStore(file?: string): DeviceKeyStore {
  const keys = new Map<string, DeviceKeys>();
  if (file !== undefined && existsSync(file)) {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, DeviceKeys>;
    for (const [id, k] of Object.entries(parsed)) keys.set(id, k);
  }
  const persist = (): void => {
    if (file === undefined) return;
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(keys)));
    renameSync(tmp, file);
  };
  return {
    get: (id) => keys.get(id),
    set(id, k) {
      keys.set(id, k);
      persist();
    },
    delete(id) {
      if (keys.delete(id)) persist();
    },
  };
}
