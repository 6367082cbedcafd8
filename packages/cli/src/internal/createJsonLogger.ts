/**
 * Structured logs for `twinlog serve`: one JSON object per line (`time`, `level`, `msg`, then the
 * fields), on stdout.
 */
import type { LogLevel } from './resolveConfig.ts';

export interface JsonLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** An error as JSON fields (`code` of a TwinlogError included). */
export function errorFields(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { error: String(e) };
  const code = (e as { code?: unknown }).code;
  return {
    error: e.message,
    ...(code === undefined ? {} : { code }),
    ...(e.stack === undefined ? {} : { stack: e.stack }),
  };
}

/** Whether JSON.stringify can write `v`. */
function writable(v: unknown): boolean {
  try {
    JSON.stringify(v);
    return true;
  } catch {
    return false;
  }
}

export function createJsonLogger({
  level = 'info',
  write = (line: string) => process.stdout.write(line),
  now = Date.now,
}: { level?: LogLevel; write?: (line: string) => void; now?: () => number } = {}): JsonLogger {
  const emit = (l: LogLevel, msg: string, fields: Record<string, unknown> = {}): void => {
    if (RANK[l] < RANK[level]) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date(now()).toISOString(), level: l, msg, ...fields });
    } catch {
      // a field JSON cannot write (a BigInt, a cycle) goes as its String(); the others as they are
      const each = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, writable(v) ? v : String(v)]));
      line = JSON.stringify({ time: new Date(now()).toISOString(), level: l, msg, ...each });
    }
    write(`${line}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
