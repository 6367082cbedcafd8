/**
 * Query errors with a source position. Messages never contain `;`: the gateway puts them in IoT
 * Hub's `Message: "ErrorCode:<name>;<text>"` and azure-iothub keeps only the segment after the
 * first `;` (docs/iot-hub.md, "Errors"), so a `;` from the query text is written `\u003b`.
 */
import { TwinlogError, type TwinlogErrorCode } from '@twinlog/core';

/** Where in the query text an error was found: 0-based UTF-16 offset, 1-based line and column. */
export interface QueryPosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

/** The line and column of `offset` (`\n`, `\r\n` and a lone `\r` each end a line). */
export function positionOf(text: string, offset: number): QueryPosition {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { offset, line, column: offset - lineStart + 1 };
}

/** A short, quoted, `;`-free rendering of a piece of query text for a message. */
export function quote(s: string, max = 32): string {
  const cut = s.length > max ? s.slice(0, max) + '…' : s;
  return JSON.stringify(cut).replace(/;/g, '\\u003b');
}

/** A TwinlogError for the query `text` at `offset`, with `details.position`. */
export function queryError(
  code: Extract<TwinlogErrorCode, `QUERY_${string}`>,
  message: string,
  text: string,
  offset: number,
  details: Readonly<Record<string, unknown>> = {},
): TwinlogError {
  const position = positionOf(text, offset);
  const full = `${message} at line ${position.line}, column ${position.column}`.replace(/;/g, ',');
  return new TwinlogError(code, full, { details: { ...details, position } });
}
