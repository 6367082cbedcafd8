/**
 * Fuzzing of the whole pipeline a query service runs — parse, evaluate, page — with 10,000 seeded
 * inputs (grammar-generated, mutated, token soup, random UTF-16 and random bytes as text) over
 * generated twins and hostile documents (any JS value fast-check makes). Only `TwinlogError`s with
 * a query code may escape, the evaluator never throws, and paging always ends. Replay a failure
 * with the printed seed and path (`fc.assert(…, { seed, path })`).
 */
import { isTwinlogError } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileWhere } from './compileWhere.ts';
import { evaluate } from './evaluate.ts';
import { formatQuery } from './formatQuery.ts';
import { paginate } from './paginate.ts';
import { parseQuery, safeParseQuery } from './parseQuery.ts';
import { referencedPaths } from './referencedPaths.ts';
import { mutatedQueryArb, queryTextArb, tokenSoupArb, twinArb } from './testing/arbitraries.ts';

const PARSE_CODES = ['QUERY_SYNTAX', 'QUERY_UNSUPPORTED', 'QUERY_TOO_LONG'];

const textArb = fc.oneof(
  { weight: 4, arbitrary: queryTextArb },
  { weight: 2, arbitrary: mutatedQueryArb },
  { weight: 2, arbitrary: tokenSoupArb },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => new TextDecoder().decode(b)) },
);
const docsArb = fc.array(fc.oneof({ weight: 3, arbitrary: twinArb }, { weight: 1, arbitrary: fc.anything() }), {
  maxLength: 6,
});

describe('query fuzz: parse → evaluate → page (10,000 inputs)', () => {
  it('raises only clean query errors and never crashes', () => {
    let parsed = 0;
    fc.assert(
      fc.property(textArb, docsArb, fc.integer({ min: 1, max: 4 }), (text, docs, pageSize) => {
        const r = safeParseQuery(text); // rethrows anything that is not a TwinlogError
        if (!r.ok) {
          expect(PARSE_CODES).toContain(r.error.code);
          return;
        }
        parsed++;
        const q = r.value;
        expect(parseQuery(formatQuery(q))).toEqual(q);
        referencedPaths(q);
        const keep = compileWhere(q);
        for (const d of docs) expect(typeof keep(d as object)).toBe('boolean');
        const rows = evaluate(q, docs as object[]);
        let continuation: string | undefined;
        const paged: unknown[] = [];
        for (let i = 0; i <= rows.length; i++) {
          const page = paginate(rows, { pageSize, continuation });
          paged.push(...page.items);
          continuation = page.continuationToken;
          if (continuation === undefined) break;
        }
        expect(paged).toEqual(rows);
      }),
      { numRuns: 10_000, seed: 0x5eed_0005 },
    );
    expect(parsed).toBeGreaterThan(2000); // enough inputs reach the evaluator
  }, 120_000);

  it('refuses random continuation tokens and page sizes with their codes only', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 40 }), fc.base64String({ maxLength: 40 })),
        fc.oneof(fc.integer(), fc.double()),
        (token, size) => {
          try {
            paginate([1, 2, 3], { continuation: token, pageSize: size });
          } catch (e) {
            if (!isTwinlogError(e)) throw e;
            expect(['QUERY_CONTINUATION_INVALID', 'QUERY_PAGE_SIZE_INVALID']).toContain(e.code);
          }
        },
      ),
      { numRuns: 2000, seed: 0x5eed_0006 },
    );
  }, 60_000);
});
