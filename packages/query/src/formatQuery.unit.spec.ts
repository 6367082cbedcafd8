/**
 * formatQuery: the round-trip law `parseQuery(formatQuery(q)) ≡ q` over generated queries, and
 * idempotence of the canonical text (fast-check; replay a failure with `fc.assert(…, { seed, path })`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatQuery } from './formatQuery.ts';
import { parseQuery, safeParseQuery } from './parseQuery.ts';
import type { Query } from './query.ts';
import { mutatedQueryArb, queryTextArb } from './testing/arbitraries.ts';

const parsed = fc
  .oneof({ weight: 4, arbitrary: queryTextArb }, { weight: 1, arbitrary: mutatedQueryArb })
  .map((t) => safeParseQuery(t))
  .filter((r) => r.ok)
  .map((r) => (r as { value: Query }).value);

describe('formatQuery', () => {
  it('round-trips: parseQuery(formatQuery(q)) deep-equals q, and the text is a fixed point', () => {
    fc.assert(
      fc.property(parsed, (q) => {
        const text = formatQuery(q);
        const again = parseQuery(text);
        expect(again).toEqual(q);
        expect(formatQuery(again)).toBe(text);
      }),
      { numRuns: 3000, seed: 1592593336 },
    );
  }, 60_000);

  it.each([
    [
      'select * from devices where a<>1 and not (b = 2 or c = 3)',
      'SELECT * FROM devices WHERE a != 1 AND NOT (b = 2 OR c = 3)',
    ],
    ['SELECT * FROM devices WHERE (a - (b - c)) * -d = -0', 'SELECT * FROM devices WHERE (a - (b - c)) * -d = -0'],
    ['SELECT * FROM devices WHERE NOT NOT (a = 1) = true', 'SELECT * FROM devices WHERE NOT NOT (a = 1) = true'],
    [
      "SELECT * FROM devices WHERE x IN [ [1, 'a'], 0x10, \"it's\"]",
      "SELECT * FROM devices WHERE x IN [ [1, 'a'], 16, 'it\\'s']",
    ],
    [
      'SELECT * FROM devices WHERE [[DeviceId]] = [[devices]].x',
      'SELECT * FROM devices WHERE [[DeviceId]] = [[devices]].x',
    ],
    [
      'SELECT * FROM devices WHERE properties.[[Desired]].x = devices.Properties.Desired.x',
      'SELECT * FROM devices WHERE properties.[[Desired]].x = properties.desired.x',
    ],
    [
      'SELECT deviceId AS id, COUNT() AS [[$2]], SUM(tags.[[a-b]]) FROM devices GROUP BY DeviceId',
      'SELECT deviceId AS id, COUNT() AS $2, SUM(tags.[[a-b]]) FROM devices GROUP BY deviceId',
    ],
    [
      "SELECT * FROM devices WHERE x = '\\u0000\\u2028\\\\\\'é'",
      "SELECT * FROM devices WHERE x = '\\u0000\\u2028\\\\\\'é'",
    ],
  ])('%s', (input, expected) => {
    expect(formatQuery(parseQuery(input))).toBe(expected);
  });

  it('refuses a hand-built name no text can express', () => {
    const q: Query = {
      top: undefined,
      select: '*',
      from: 'devices',
      where: { kind: 'path', path: ['a]]b'] },
      groupBy: undefined,
    };
    expect(() => formatQuery(q)).toThrow(RangeError);
  });
});
