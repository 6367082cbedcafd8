/**
 * `@twinlog/log-embedded`: the `Log` port on one SQLite file (better-sqlite3), for running twinlog
 * on one machine with no broker. See {@link createEmbeddedLog}.
 */
export { createEmbeddedLog, type EmbeddedLog, type EmbeddedLogOptions } from './createEmbeddedLog.ts';
