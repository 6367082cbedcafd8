/** Tests' view of a data folder's device-key registry (the SQLite file of `createDeviceKeyStore`). */
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** Every device's keys in `<data>/registry.db`, read without the store. */
export function readRegistry(data: string): Record<
  string,
  {
    primaryKey: string;
    secondaryKey: string;
    generationId: string;
    status?: string;
    statusReason?: string;
    statusUpdatedTime?: string;
  }
> {
  const db = new Database(join(data, 'registry.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT device_id, keys FROM device_keys').all() as { device_id: string; keys: string }[];
    return Object.fromEntries(rows.map((r) => [r.device_id, JSON.parse(r.keys)]));
  } finally {
    db.close();
  }
}
