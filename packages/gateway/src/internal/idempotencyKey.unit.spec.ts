import { isTwinlogError } from '@twinlog/core';
import { describe, expect, it } from 'vitest';
import { idempotencyKeyOf } from './idempotencyKey.ts';

describe('idempotencyKeyOf', () => {
  const body = { tags: { site: 'b' } };
  it('takes the header as it is', () => {
    expect(idempotencyKeyOf({ header: 'order-17', method: 'PATCH', ifMatch: '*', body })).toBe('order-17');
  });
  it('refuses a header with spaces or of more than 128 characters', () => {
    for (const header of ['a b', '', 'x'.repeat(129), 'ü']) {
      let error: unknown;
      try {
        idempotencyKeyOf({ header, method: 'PATCH', ifMatch: '*', body });
      } catch (e) {
        error = e;
      }
      expect(isTwinlogError(error, 'EVENT_INVALID')).toBe(true);
    }
  });
  it('derives one for a write conditional on an etag: the same request, the same key', () => {
    const a = idempotencyKeyOf({ header: undefined, method: 'PATCH', ifMatch: 'AAAAAAAAAAE=', body });
    expect(a).toMatch(/^etag:[A-Za-z0-9_-]{43}$/);
    expect(
      idempotencyKeyOf({ header: undefined, method: 'PATCH', ifMatch: 'AAAAAAAAAAE=', body: { tags: { site: 'b' } } }),
    ).toBe(a);
    expect(idempotencyKeyOf({ header: undefined, method: 'PUT', ifMatch: 'AAAAAAAAAAE=', body })).not.toBe(a);
    expect(idempotencyKeyOf({ header: undefined, method: 'PATCH', ifMatch: 'AAAAAAAAAAI=', body })).not.toBe(a);
    expect(
      idempotencyKeyOf({ header: undefined, method: 'PATCH', ifMatch: 'AAAAAAAAAAE=', body: { tags: { site: 'c' } } }),
    ).not.toBe(a);
  });
  it('derives none for an unconditional write', () => {
    expect(idempotencyKeyOf({ header: undefined, method: 'PATCH', ifMatch: '*', body })).toBeUndefined();
  });
});
