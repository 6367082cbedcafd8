/**
 * Paging of query results (docs/iot-hub.md, "REST"): `x-ms-max-item-count` is the page size and
 * `x-ms-continuation` an opaque token, present only while another page exists.
 *
 * Token layout (version 1): standard padded base64 of the ASCII JSON `{"v":1,"offset":<n>}`, where
 * `offset` is the index of the first row of the next page in the result array. It encodes a
 * position and nothing else: the caller must page over the same rows (same query, same twins, same
 * order) for the token to mean the same thing. Keeping that true while twins change between pages
 * (e.g. a snapshot id or a keyset cursor on `deviceId`) is the read model's job; it will bump `v`.
 */
import { TwinlogError } from '@twinlog/core';
import { asciiToBase64, base64ToAscii } from './internal/base64.ts';

/** Page size when the request gives none (docs/iot-hub.md "REST (back ends)"; twinlog choice). */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page (docs/iot-hub.md "REST (back ends)": at most 100 per the current docs); larger requests are clamped to it. */
export const MAX_PAGE_SIZE = 100;
/** The cursor version this module writes and reads. */
const CURSOR_VERSION = 1;

export interface PageOptions {
  /** Rows per page, 1 or more; above {@link MAX_PAGE_SIZE} it is clamped. Default {@link DEFAULT_PAGE_SIZE}. */
  readonly pageSize?: number | undefined;
  /** The token from the previous page; absent or `''` for the first page. */
  readonly continuation?: string | undefined;
}

export interface Page<T> {
  readonly items: T[];
  /** The token for the next page, or `undefined` on the last page (never `''`, docs/iot-hub.md "SDK behaviour twinlog accommodates"). */
  readonly continuationToken: string | undefined;
}

/**
 * Cut one page out of a query's rows.
 *
 * When to use: the gateway's `POST /devices/query` handler, with `pageSize` from
 * `x-ms-max-item-count` and `continuation` from `x-ms-continuation`; send `continuationToken` back
 * in `x-ms-continuation` only when it is defined (an empty header makes the Node SDK loop forever,
 * docs/iot-hub.md "REST (back ends)"). A token past the end of `rows` (the rows shrank) gives an empty last page.
 *
 * @example
 * const rows = ['a', 'b', 'c']
 * const first = paginate(rows, { pageSize: 2 })
 * first.items                 //=> ["a","b"]
 * first.continuationToken     //=> "eyJ2IjoxLCJvZmZzZXQiOjJ9"
 * const second = paginate(rows, { pageSize: 2, continuation: first.continuationToken })
 * second.items                //=> ["c"]
 * second.continuationToken    //=> undefined
 *
 * @throws {TwinlogError} `QUERY_PAGE_SIZE_INVALID` when `pageSize` is not a whole number ≥ 1;
 *   `QUERY_CONTINUATION_INVALID` when `continuation` is not a token this module wrote (IoT Hub: 400
 *   `ArgumentInvalid` for both).
 */
export function paginate<T>(
  rows: readonly T[],
  { pageSize = DEFAULT_PAGE_SIZE, continuation }: PageOptions = {},
): Page<T> {
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
    throw new TwinlogError(
      'QUERY_PAGE_SIZE_INVALID',
      `the page size must be a whole number of at least 1, not ${String(pageSize)}`,
      {
        details: { pageSize },
      },
    );
  }
  const size = Math.min(pageSize, MAX_PAGE_SIZE);
  const offset = continuation === undefined || continuation === '' ? 0 : readCursor(continuation);
  const items = rows.slice(offset, offset + size);
  const next = offset + size;
  return { items, continuationToken: next < rows.length ? writeCursor(next) : undefined };
}

function writeCursor(offset: number): string {
  return asciiToBase64(JSON.stringify({ v: CURSOR_VERSION, offset }));
}

function readCursor(token: string): number {
  const invalid = (): TwinlogError =>
    new TwinlogError('QUERY_CONTINUATION_INVALID', 'the continuation token was not issued for this query', {
      details: { length: token.length },
    });
  const text = base64ToAscii(token);
  if (text === undefined) throw invalid();
  let cursor: unknown;
  try {
    cursor = JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (typeof cursor !== 'object' || cursor === null || Array.isArray(cursor)) throw invalid();
  const { v, offset, ...rest } = cursor as Record<string, unknown>;
  if (v !== CURSOR_VERSION || Object.keys(rest).length > 0) throw invalid();
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw invalid();
  return offset;
}
