/**
 * `@twinlog/log-embedded`: the `Log` port on one SQLite file (better-sqlite3), for running twinlog
 * on one machine with no broker. See {@link createEmbeddedLog}; its storage (retention, compaction,
 * the measured bound on the file's size) is described in docs/storage.md.
 */
export {
  createEmbeddedLog,
  EMBEDDED_LOG_MAINTENANCE_CHANNEL,
  type EmbeddedLog,
  type EmbeddedLogOptions,
  type EmbeddedStorageStats,
  type MaintenanceReport,
} from './createEmbeddedLog.ts';
