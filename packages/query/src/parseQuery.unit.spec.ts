/**
 * The parser: the shapes it builds (resolution of paths and names, flattening, folding), error
 * positions, and a fuzz suite over ≥ 10,000 inputs (grammar-generated, mutated, token soup, random
 * text): only `TwinlogError`s with `QUERY_*` codes escape, with a position inside the text and a
 * message without `;`. fast-check prints a failing seed and path; replay with `fc.assert(…, { seed, path })`.
 */
import { isTwinlogError } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_QUERY_LENGTH, parseQuery, safeParseQuery } from './parseQuery.ts';
import type { Expr, Query } from './query.ts';
import { mutatedQueryArb, queryTextArb, tokenSoupArb } from './testing/arbitraries.ts';

const where = (text: string): Expr => parseQuery(`SELECT * FROM devices WHERE ${text}`).where!;

describe('parseQuery: shapes', () => {
  it('builds the documented query', () => {
    expect(
      parseQuery("SELECT TOP 10 deviceId, properties.reported.battery AS b FROM devices WHERE tags.region = 'US'"),
    ).toEqual<Query>({
      top: 10,
      select: [
        { kind: 'path', path: ['deviceId'], name: 'deviceId' },
        { kind: 'path', path: ['properties', 'reported', 'battery'], name: 'b' },
      ],
      from: 'devices',
      where: {
        kind: 'compare',
        op: '=',
        left: { kind: 'path', path: ['tags', 'region'] },
        right: { kind: 'constant', value: 'US' },
      },
      groupBy: undefined,
    });
  });

  it('reads keywords, functions and the collection in any case', () => {
    const a = parseQuery("select top 1 * from DEVICES.Modules where is_defined(tags.x) and not x nin ['a'] Or TRUE");
    const b = parseQuery("SELECT TOP 1 * FROM devices.modules WHERE IS_DEFINED(tags.x) AND NOT x NIN ['a'] OR true");
    expect(a).toEqual(b);
    expect(a.from).toBe('devices.modules');
  });

  it('resolves paths: collection prefix stripped, root fields and sections canonically cased (docs/iot-hub.md "Query conditions")', () => {
    expect(where('Devices.DeviceID = 1')).toMatchObject({ left: { path: ['deviceId'] } });
    expect(where('PROPERTIES.Reported.Battery = 1')).toMatchObject({
      left: { path: ['properties', 'reported', 'Battery'] },
    });
    expect(where('tags.DeviceId = 1')).toMatchObject({ left: { path: ['tags', 'DeviceId'] } });
    expect(where('devices = 1')).toMatchObject({ left: { path: ['devices'] } });
    expect(where('[[devices]].tags = 1')).toMatchObject({ left: { path: ['devices', 'tags'] } });
    expect(where('[[Tags]].x = 1')).toMatchObject({ left: { path: ['Tags', 'x'] } });
    expect(parseQuery('SELECT * FROM devices.modules WHERE devices.modules.ModuleId = 1').where).toMatchObject({
      left: { path: ['moduleId'] },
    });
    expect(parseQuery('SELECT * FROM devices.jobs WHERE Devices.Jobs.JobType = 1').where).toMatchObject({
      left: { path: ['jobType'] },
    });
  });

  it('names select elements: alias, last segment, $n for unaliased aggregates (docs/iot-hub.md "Query functions and grouping")', () => {
    const q = parseQuery('SELECT COUNT() AS total, COUNT(), SUM(tags.y), MAX(tags.y) AS m, MIN(tags.y) FROM devices');
    expect(q.select !== '*' && q.select.map((e) => e.name)).toEqual(['total', '$1', '$2', 'm', '$3']);
    const g = parseQuery('SELECT tags.x, tags.x AS again, COUNT() FROM devices GROUP BY tags.x');
    expect(g.select !== '*' && g.select.map((e) => e.name)).toEqual(['x', 'again', '$1']);
  });

  it('flattens AND / OR, folds -number, normalises <> and NOT IN', () => {
    expect(where('a = 1 AND (b = 2 AND c = 3)')).toMatchObject({ kind: 'and', operands: [{}, {}, {}] });
    expect(where('(a = 1 OR b = 2) OR c = 3 OR d = 4')).toMatchObject({ kind: 'or', operands: [{}, {}, {}, {}] });
    expect(where('a = - 5')).toMatchObject({ right: { kind: 'constant', value: -5 } });
    expect(where('a = --5')).toMatchObject({ right: { kind: 'constant', value: 5 } });
    expect(where('a = -b')).toMatchObject({ right: { kind: 'negate', operand: { kind: 'path', path: ['b'] } } });
    expect(where('a <> 1')).toMatchObject({ op: '!=' });
    expect(where('a NOT IN [1]')).toEqual(where('a NIN [1]'));
  });

  it('reads literals: escapes, hex, exponents, nested arrays written [ [', () => {
    expect(
      where(`a IN ['it\\'s', "q\\"", '\\\\', '\\u00e9', 0x1f, 1.5e1, -2, null, undefined, true, [ [1]]]`),
    ).toMatchObject({
      values: ["it's", 'q"', '\\', 'é', 31, 15, -2, null, undefined, true, [[1]]],
    });
  });

  it('takes [[names]] literally, up to the first ]]', () => {
    expect(where('tags.[[a b.c-d]] = 1')).toMatchObject({ left: { path: ['tags', 'a b.c-d'] } });
    expect(where('tags.[[[x]] = 1')).toMatchObject({ left: { path: ['tags', '[x'] } });
    expect(safeParseQuery('SELECT * FROM devices WHERE tags.[[[x]]] = 1').ok).toBe(false);
    expect(safeParseQuery('SELECT * FROM devices WHERE tags.[[a]]b]] = 1').ok).toBe(false);
  });
});

describe('parseQuery: errors', () => {
  it('throws TwinlogError with code, position and IoT Hub code', () => {
    let caught: unknown;
    try {
      parseQuery('SELECT * FROM devices\nWHERE tags.x = ');
    } catch (e) {
      caught = e;
    }
    expect(isTwinlogError(caught, 'QUERY_SYNTAX')).toBe(true);
    const e = caught as import('@twinlog/core').TwinlogError;
    expect(e.details['position']).toEqual({ offset: 37, line: 2, column: 16 });
    expect(e.message).toBe('expected an expression but found the end of the query at line 2, column 16');
    expect(e.iotHub?.code).toBe(400004);
  });

  it('explains keywords used as names and the STARTS_WITH spelling', () => {
    const r1 = safeParseQuery('SELECT * FROM devices WHERE tags.group = 1');
    expect(!r1.ok && r1.error.message).toContain('[[group]]');
    const r2 = safeParseQuery("SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')");
    expect(!r2.ok && r2.error.message).toContain('STARTSWITH');
  });

  it('never puts ; in a message', () => {
    for (const q of [
      'SELECT * FROM devices;',
      "SELECT * FROM devices WHERE x = 'a;b' ;",
      'SELECT [[a;b]] FROM devices WHERE',
      'SELECT * FROM devices WHERE x = "\\;"',
    ]) {
      const r = safeParseQuery(q);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.message).not.toContain(';');
    }
  });
});

// ── fuzz ───────────────────────────────────────────────────────────────────────────────────────

/** The contract: a Query, or a TwinlogError with a QUERY_* code, a position inside the text and no `;`. */
function checkParse(text: string): void {
  let result: Query | undefined;
  try {
    result = parseQuery(text);
  } catch (e) {
    if (!isTwinlogError(e) || !e.code.startsWith('QUERY_')) throw e;
    const pos = e.details['position'] as { offset: number; line: number; column: number };
    expect(pos.offset).toBeGreaterThanOrEqual(0);
    expect(pos.offset).toBeLessThanOrEqual(Math.min(text.length, MAX_QUERY_LENGTH));
    expect(pos.line).toBeGreaterThanOrEqual(1);
    expect(pos.column).toBeGreaterThanOrEqual(1);
    expect(e.message).not.toContain(';');
    expect(e.iotHub).toBeDefined();
    const safe = safeParseQuery(text);
    expect(!safe.ok && safe.error.code).toBe(e.code);
    return;
  }
  expect(result.from).toMatch(/^devices/);
  expect(safeParseQuery(text)).toEqual({ ok: true, value: result });
}

describe('parseQuery: fuzz (≥ 10,000 inputs)', () => {
  it('grammar-generated queries: 4,000', () => {
    fc.assert(fc.property(queryTextArb, checkParse), { numRuns: 4000, seed: 1592594336 });
  }, 60_000);
  it('mutated queries: 2,500', () => {
    fc.assert(fc.property(mutatedQueryArb, checkParse), { numRuns: 2500, seed: 1592592836 });
  }, 60_000);
  it('token soup: 2,500', () => {
    fc.assert(fc.property(tokenSoupArb, checkParse), { numRuns: 2500, seed: 1592592836 });
  }, 60_000);
  it('random text: 2,000 (any UTF-16, including lone surrogates)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 60 }),
          fc.string({ unit: fc.constantFrom(...'SELECT*FROMdevicesWHERE[]()\'"\\.,=<>! \n0x1e-'), maxLength: 80 }),
        ),
        checkParse,
      ),
      { numRuns: 2000, seed: 1592592336 },
    );
  }, 60_000);
  it('long and adversarial inputs stay linear and bounded (no hang, no stack overflow)', () => {
    // the test timeout is the hang detector (tests assert no timings)
    for (const text of [
      '('.repeat(8000),
      'SELECT * FROM devices WHERE ' + 'NOT '.repeat(2000) + 'true',
      'SELECT * FROM devices WHERE ' + '-'.repeat(8000),
      'SELECT * FROM devices WHERE x IN ' + '[ '.repeat(4000),
      'SELECT * FROM devices WHERE ' + 'a.'.repeat(4000) + 'b = 1',
      "SELECT * FROM devices WHERE x = '" + '\\\\'.repeat(4000) + "'",
      'SELECT * FROM devices WHERE x = ' + '1 + '.repeat(2000) + '1',
      'SELECT * FROM devices WHERE ' + 'x = 1 AND '.repeat(800) + 'true',
      'x'.repeat(100_000),
    ]) {
      checkParse(text);
    }
  });
});
