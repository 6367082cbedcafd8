/**
 * paginate: pages concatenate to the rows for every page size, the last page carries no token
 * (docs/iot-hub.md, "REST" and "SDK behaviour twinlog accommodates"), the token layout is what the module comment says, and tokens this
 * module did not write are refused.
 */
import { isTwinlogError } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asciiToBase64, base64ToAscii } from './internal/base64.ts';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, paginate } from './paginate.ts';

function all<T>(rows: readonly T[], pageSize?: number): { pages: T[][]; tokens: (string | undefined)[] } {
  const pages: T[][] = [];
  const tokens: (string | undefined)[] = [];
  let continuation: string | undefined;
  do {
    const page = paginate(rows, { pageSize, continuation });
    pages.push(page.items);
    tokens.push(page.continuationToken);
    continuation = page.continuationToken;
  } while (continuation !== undefined);
  return { pages, tokens };
}

describe('paginate', () => {
  it('pages concatenate to the rows; only the last page has no token; no page but the first is empty', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 250 }), fc.integer({ min: 1, max: 150 }), (rows, pageSize) => {
        const { pages, tokens } = all(rows, pageSize);
        expect(pages.flat()).toEqual(rows);
        const size = Math.min(pageSize, MAX_PAGE_SIZE);
        expect(pages.length).toBe(Math.max(1, Math.ceil(rows.length / size)));
        pages.forEach((p, i) => {
          if (i < pages.length - 1) expect(p).toHaveLength(size);
          if (i > 0) expect(p.length).toBeGreaterThan(0);
        });
        expect(tokens.at(-1)).toBeUndefined();
        tokens.slice(0, -1).forEach((t) => expect(t).toMatch(/^[A-Za-z0-9+/]+=*$/));
      }),
      { numRuns: 300, seed: 1592590636 },
    );
  }, 60_000);

  it('defaults to 100 per page and clamps larger sizes to 100 (docs/iot-hub.md "REST (back ends)")', () => {
    const rows = Array.from({ length: 250 }, (_, i) => i);
    expect(paginate(rows).items).toHaveLength(DEFAULT_PAGE_SIZE);
    expect(paginate(rows, { pageSize: 1000 }).items).toHaveLength(100);
    expect(paginate(rows, { pageSize: 1, continuation: '' }).items).toEqual([0]);
  });

  it('encodes the documented cursor: base64 of {"v":1,"offset":n}', () => {
    const token = paginate([1, 2, 3], { pageSize: 2 }).continuationToken!;
    expect(JSON.parse(base64ToAscii(token)!)).toEqual({ v: 1, offset: 2 });
  });

  it('gives an empty last page for a token past the end (the rows shrank)', () => {
    const token = paginate([1, 2, 3, 4], { pageSize: 3 }).continuationToken;
    expect(paginate([1, 2], { pageSize: 3, continuation: token })).toEqual({ items: [], continuationToken: undefined });
  });

  it.each([
    ['not base64', '***'],
    ['base64 of non-JSON', asciiToBase64('hello')],
    ['another version', asciiToBase64('{"v":2,"offset":1}')],
    ['a negative offset', asciiToBase64('{"v":1,"offset":-1}')],
    ['a fractional offset', asciiToBase64('{"v":1,"offset":1.5}')],
    ['an extra field', asciiToBase64('{"v":1,"offset":1,"x":0}')],
    ['an array', asciiToBase64('[1]')],
    ['non-canonical padding', asciiToBase64('{"v":1,"offset":10}').replace(/=+$/, '')],
  ])('refuses %s', (_, token) => {
    let caught: unknown;
    try {
      paginate([1, 2, 3], { pageSize: 1, continuation: token });
    } catch (e) {
      caught = e;
    }
    expect(isTwinlogError(caught, 'QUERY_CONTINUATION_INVALID')).toBe(true);
  });

  it('refuses random tokens with QUERY_CONTINUATION_INVALID or reads a valid cursor, nothing else', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.base64String({ maxLength: 40 })),
        (token) => {
          try {
            paginate([1, 2, 3], { pageSize: 1, continuation: token });
          } catch (e) {
            expect(isTwinlogError(e, 'QUERY_CONTINUATION_INVALID')).toBe(true);
          }
        },
      ),
      { numRuns: 1000, seed: 1592591336 },
    );
  }, 60_000);

  it.each([0, -1, 1.5, NaN, Infinity])('refuses page size %s', (pageSize) => {
    expect(() => paginate([1], { pageSize })).toThrow(expect.objectContaining({ code: 'QUERY_PAGE_SIZE_INVALID' }));
  });

  it('base64 round-trips ASCII', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)), maxLength: 30 }),
        (s) => {
          expect(base64ToAscii(asciiToBase64(s))).toBe(s);
        },
      ),
    );
  });
});
