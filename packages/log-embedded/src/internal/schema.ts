/**
 * The embedded log's SQLite schema, and its migration on open.
 *
 * Layout (one database file holds every topic):
 * - `topics(id, name, partitions, compacted, retention_ms, retention_bytes)`: name, partitions and
 *   compaction never change once created (like Kafka topics here); the retention columns (NULL: no
 *   limit) are topic configs that `ensureTopics` may change.
 * - `partitions(topic_id, partition, next_offset, last_timestamp, records, bytes, cleaned_offset)`:
 *   the end offset of each partition and the last append time, so offsets stay dense and append
 *   times never go back, whatever compaction or retention deleted; how many records it holds and
 *   their bytes (key + value + headers, kept in step by every insert and delete, so retention by
 *   size costs no scan); and, for a compacted topic, the offset below which it holds at most one
 *   record per key (maintenance compacts from there).
 * - `records(topic_id, partition, record_offset, timestamp, key, value, headers)`: `value` NULL is a
 *   tombstone; `headers` is a JSON object of strings, NULL when empty.
 * - `group_offsets(grp, topic_id, partition, next_offset)`: committed offsets (next to read).
 * - `fences(fence, epoch, owner)`: the epoch of each fence id and the client holding it.
 * - `group_leases(grp, owner, pid, host, heartbeat)`: which process consumes a group.
 *
 * `PRAGMA user_version` is the schema version; a file from a newer version is refused. Version 2
 * added retention and the per-partition counts; migrating a version 1 file counts its records once
 * (one scan, in the migration's transaction).
 *
 * A new file is created with `auto_vacuum = INCREMENTAL` (it can only be chosen before the first
 * table), so maintenance can hand freed pages back to the file system; an older file keeps
 * `auto_vacuum = NONE` and reuses its free pages instead (docs/storage.md).
 */
import type { Database } from 'better-sqlite3';

/** The schema version this code writes. */
export const SCHEMA_VERSION = 2;

/** What a record weighs for retention by size, as SQL over a `records` row: key + value + headers bytes. */
export const RECORD_BYTES = 'octet_length(key) + ifnull(length(value), 0) + ifnull(octet_length(headers), 0)';

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

const V2 = `
ALTER TABLE topics ADD COLUMN retention_ms INTEGER;
ALTER TABLE topics ADD COLUMN retention_bytes INTEGER;
ALTER TABLE partitions ADD COLUMN records INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partitions ADD COLUMN cleaned_offset INTEGER NOT NULL DEFAULT 0;
UPDATE partitions SET
  records = (SELECT count(*) FROM records r WHERE r.topic_id = partitions.topic_id AND r.partition = partitions.partition),
  bytes = (SELECT ifnull(sum(${RECORD_BYTES}), 0) FROM records r WHERE r.topic_id = partitions.topic_id AND r.partition = partitions.partition);
`;

/**
 * Asks for `auto_vacuum = INCREMENTAL` on a new, empty file. Call it first thing after opening: it
 * only takes effect before the file's first page is written (switching to WAL writes it). A no-op
 * on an existing file.
 */
export function chooseAutoVacuum(db: Database): void {
  if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
}

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
    if (version < 1) db.exec(V1);
    if (version < 2) db.exec(V2);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
