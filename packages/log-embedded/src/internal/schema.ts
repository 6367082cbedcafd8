/**
 * The embedded log's SQLite schema, and its migration on open.
 *
 * Layout (one database file holds every topic):
 * - `topics(id, name, partitions, compacted)`: created once, never altered (like Kafka topics here).
 * - `partitions(topic_id, partition, next_offset, last_timestamp)`: the end offset of each
 *   partition and the last append time, so offsets stay dense and append times never go back,
 *   whatever compaction deleted.
 * - `records(topic_id, partition, record_offset, timestamp, key, value, headers)`: `value` NULL is a
 *   tombstone; `headers` is a JSON object of strings, NULL when empty.
 * - `group_offsets(grp, topic_id, partition, next_offset)`: committed offsets (next to read).
 * - `fences(fence, epoch, owner)`: the epoch of each fence id and the client holding it.
 * - `group_leases(grp, owner, pid, host, heartbeat)`: which process consumes a group.
 *
 * `PRAGMA user_version` is the schema version; a file from a newer version is refused.
 */
import type { Database } from 'better-sqlite3';

/** The schema version this code writes. */
export const SCHEMA_VERSION = 1;

const V1 = `
CREATE TABLE IF NOT EXISTS topics (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  partitions INTEGER NOT NULL,
  compacted INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS partitions (
  topic_id INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  last_timestamp INTEGER NOT NULL,
  PRIMARY KEY (topic_id, partition)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
  topic_id INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  record_offset INTEGER NOT NULL,
  timestamp INTEGER NOT NULL,
  key TEXT NOT NULL,
  value BLOB,
  headers TEXT,
  PRIMARY KEY (topic_id, partition, record_offset)
) STRICT;
CREATE TABLE IF NOT EXISTS group_offsets (
  grp TEXT NOT NULL,
  topic_id INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  PRIMARY KEY (grp, topic_id, partition)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fences (
  fence TEXT PRIMARY KEY,
  epoch INTEGER NOT NULL,
  owner TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_leases (
  grp TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  heartbeat INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`;

/**
 * Brings the file to {@link SCHEMA_VERSION} in one immediate transaction (so two processes opening
 * a new file at once do not race).
 *
 * @throws Error when the file was written by a newer schema version.
 */
export function migrate(db: Database): void {
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`${db.name} has schema version ${version}, newer than this twinlog (${SCHEMA_VERSION})`);
    }
    if (version < 1) {
      db.exec(V1);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
  }).immediate();
}
