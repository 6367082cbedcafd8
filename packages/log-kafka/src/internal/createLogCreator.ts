/**
 * kafkajs's logging, tamed. kafkajs logs at INFO by default (every join, every stop) and logs each
 * broker error response at ERROR before its own retry logic has decided anything ("[Connection]
 * Response Metadata ... This server does not host this topic-partition" while a topic is being
 * created); the errors that matter reach the caller as exceptions anyway.
 */
import { logLevel as LEVEL, type logCreator } from 'kafkajs';

export type KafkaLogLevel = 'nothing' | 'error' | 'warn' | 'info' | 'debug';

export interface KafkaLogEntry {
  readonly level: Exclude<KafkaLogLevel, 'nothing'>;
  /** kafkajs's component, e.g. `Consumer`, `Producer`, `Connection`. */
  readonly namespace: string;
  readonly message: string;
  /** kafkajs's structured fields (broker, groupId, error, stack …). */
  readonly fields: Readonly<Record<string, unknown>>;
}

const NUMERIC: Record<KafkaLogLevel, LEVEL> = {
  nothing: LEVEL.NOTHING,
  error: LEVEL.ERROR,
  warn: LEVEL.WARN,
  info: LEVEL.INFO,
  debug: LEVEL.DEBUG,
};

function nameOf(level: LEVEL): KafkaLogEntry['level'] {
  if (level <= LEVEL.ERROR) return 'error';
  if (level === LEVEL.WARN) return 'warn';
  if (level === LEVEL.INFO) return 'info';
  return 'debug';
}

/** Writes one line to stderr: `[kafkajs] error Consumer: message {"groupId":"…"}`. */
export function consoleSink(entry: KafkaLogEntry): void {
  const { stack: _stack, ...rest } = entry.fields;
  const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
  console.error(`[kafkajs] ${entry.level} ${entry.namespace}: ${entry.message}${extra}`);
}

/** kafkajs's numeric level for a level name. */
export function numericLevel(level: KafkaLogLevel): LEVEL {
  return NUMERIC[level];
}

/**
 * A kafkajs `logCreator` that hands entries at or above `level` to `sink`, dropping the
 * `Connection` namespace's per-response error lines (`Response <Api>(key, version)`) unless `level`
 * is `debug`.
 */
export function createLogCreator(level: KafkaLogLevel, sink: (entry: KafkaLogEntry) => void = consoleSink): logCreator {
  const max = NUMERIC[level];
  return () =>
    ({ namespace, level: entryLevel, log }) => {
      if (entryLevel > max || max === LEVEL.NOTHING) return;
      const { message, timestamp: _timestamp, ...fields } = log;
      if (namespace === 'Connection' && max < LEVEL.DEBUG && message.startsWith('Response ')) return;
      sink({ level: nameOf(entryLevel), namespace, message, fields });
    };
}
