/**
 * The idempotency key of a service twin write over REST (docs/idempotency.md): the
 * `Idempotency-Key` header when the request has one; otherwise, for a write conditional on a
 * specific etag, one derived from the etag, the method and the body — the same request against the
 * same etag is the same logical write, so its retry is answered as the original was instead of 412.
 * An unconditional write without the header gets none (IoT Hub applies each such request).
 */
import { createHash } from 'node:crypto';
import { isIdempotencyKey, TwinlogError } from '@twinlog/core';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/**
 * @example
 * idempotencyKeyOf({ header: undefined, method: 'PATCH', ifMatch: 'AAAAAAAAAAE=', body: { tags: { a: 1 } } }) // 'etag:…'
 * @throws {TwinlogError} `EVENT_INVALID` for a header that is not printable ASCII of 1 to 128 characters.
 */
export function idempotencyKeyOf({
  header,
  method,
  ifMatch,
  body,
}: {
  header: string | undefined;
  method: string;
  ifMatch: string;
  body: unknown;
}): string | undefined {
  if (header !== undefined) {
    if (!isIdempotencyKey(header))
      throw new TwinlogError(
        'EVENT_INVALID',
        'Idempotency-Key must be printable ASCII without spaces, 1 to 128 characters',
      );
    return header;
  }
  if (ifMatch === '*') return undefined;
  const digest = createHash('sha256')
    .update(`${method}\n${ifMatch}\n${JSON.stringify(body)}`)
    .digest('base64url');
  return `etag:${digest}`;
}
