/** Request headers as every REST route reads them. */
import type { IncomingMessage } from 'node:http';

/** The first value of header `name` (lower case). */
export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * `If-Match` with its quotes dropped (`"<etag>"`, `"*"` and an unquoted value compare alike,
 * docs/iot-hub.md, "Writes"); `undefined` when absent or empty. The twin routes read none as `*`.
 */
export function ifMatchHeader(req: IncomingMessage): string | undefined {
  const raw = header(req, 'if-match')?.trim();
  if (raw === undefined || raw === '') return undefined;
  return raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw;
}
