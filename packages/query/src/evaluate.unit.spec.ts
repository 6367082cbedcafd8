/**
 * Conformance table: queries over a small fixed fleet with the results IoT Hub's query semantics imply
 * (docs/iot-hub.md, "Queries").
 * Each case cites the section it comes from; "twinlog" marks a choice where the reference is silent
 * (documented on `evaluate` and in `internal/compileExpr.ts`). Then laws over generated queries and
 * fleets (fast-check; a failure prints its seed and path, replay with `fc.assert(…, { seed, path })`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileWhere } from './compileWhere.ts';
import { evaluate, type QueryRow } from './evaluate.ts';
import { parseQuery, safeParseQuery } from './parseQuery.ts';
import { fleetArb, queryTextArb } from './testing/arbitraries.ts';
import { CONFORMANCE_CASES as CASES, FLEET, W } from './testing/conformance.ts';

// ── running the table ──────────────────────────────────────────────────────────────────────────

const idsOf = (rows: QueryRow[]): unknown[] => rows.map((r) => r['deviceId']);

describe('conformance table (docs/iot-hub.md, Queries)', () => {
  it('has at least 60 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
  });

  for (const c of CASES) {
    it(`${c.ref}: ${c.q.length > 140 ? c.q.slice(0, 140) + '…' : c.q}`, () => {
      if ('error' in c) {
        const r = safeParseQuery(c.q);
        expect(r.ok).toBe(false);
        if (r.ok) return;
        expect(r.error.code).toBe(c.error);
        expect(r.error.message).not.toContain(';');
        const pos = r.error.details['position'] as { offset: number; line: number; column: number };
        if (typeof c.at === 'number') expect(pos.offset).toBe(c.at);
        else expect({ line: pos.line, column: pos.column }).toEqual(c.at);
        expect(r.error.iotHub).toEqual({ status: 400, code: 400004, name: 'ArgumentInvalid' });
        return;
      }
      const query = parseQuery(c.q);
      const rows = evaluate(query, c.over ?? FLEET);
      if ('ids' in c) expect(idsOf(rows)).toEqual(c.ids);
      else expect(rows).toEqual(c.rows);
      if (query.select === '*' && query.top === undefined) {
        // compileWhere keeps exactly what evaluate keeps
        expect((c.over ?? FLEET).filter(compileWhere(query))).toEqual(rows);
      }
    });
  }
});

describe('limits', () => {
  it('accepts 8192 characters and refuses 8193 with PreconditionFailed (docs/iot-hub.md "Limits")', () => {
    const base = "SELECT * FROM devices WHERE deviceId = ''";
    const at = (n: number): string => base.slice(0, -1) + 'x'.repeat(n - base.length) + "'";
    expect(at(8192)).toHaveLength(8192);
    expect(safeParseQuery(at(8192)).ok).toBe(true);
    const r = safeParseQuery(at(8193));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('QUERY_TOO_LONG');
    expect(r.error.iotHub).toEqual({ status: 412, code: 412001, name: 'PreconditionFailed' });
    expect(r.error.details).toMatchObject({ limit: 8192, length: 8193, position: { offset: 8192 } });
  });

  it('refuses expressions deeper than the limit instead of overflowing the stack', () => {
    const long = W('x = ' + Array.from({ length: 200 }, () => '1').join(' + '));
    const r = safeParseQuery(long);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('QUERY_SYNTAX');
    // a long OR list is flat, so it is fine
    const ors = W(Array.from({ length: 300 }, (_, i) => `deviceId = 'd${i}'`).join(' OR '));
    expect(ors.length).toBeLessThan(8192);
    expect(idsOf(evaluate(parseQuery(ors), FLEET))).toEqual(['d1', 'd2', 'd3', 'd4', 'd7']);
  });
});

describe('evaluate details', () => {
  it('reads own properties only: inherited names are undefined', () => {
    const twins = [{ deviceId: 'p', tags: {} }];
    expect(
      evaluate(
        parseQuery(W('IS_DEFINED(tags.constructor) OR IS_DEFINED(tags.[[__proto__]]) OR IS_DEFINED(tags.toString)')),
        twins,
      ),
    ).toEqual([]);
  });

  it('writes a result named __proto__ as an own field', () => {
    const [row] = evaluate(parseQuery('SELECT deviceId AS [[__proto__]] FROM devices'), [{ deviceId: 'p' }]);
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(Object.keys(row!)).toEqual(['__proto__']);
    expect(JSON.stringify(row)).toBe('{"__proto__":"p"}');
  });

  it('does not descend into arrays', () => {
    expect(evaluate(parseQuery(W('IS_DEFINED(tags.readings.[[0]])')), FLEET)).toEqual([]);
  });

  it('treats non-JSON values as undefined', () => {
    const odd = [{ deviceId: 'o', tags: { n: NaN, i: Infinity, f: () => 1, b: 10n, s: Symbol('s') } }];
    const q = parseQuery(
      W('IS_DEFINED(tags.n) OR IS_DEFINED(tags.i) OR IS_DEFINED(tags.f) OR IS_DEFINED(tags.b) OR IS_DEFINED(tags.s)'),
    );
    expect(evaluate(q, odd)).toEqual([]);
    expect(evaluate(parseQuery('SELECT tags.n, tags.f FROM devices'), odd)).toEqual([{}]);
    expect(evaluate(parseQuery('SELECT COUNT() AS c FROM devices GROUP BY tags'), odd)).toEqual([{ c: 1 }]);
  });

  it('SELECT * returns the input objects, in input order', () => {
    const rows = evaluate(parseQuery('SELECT * FROM devices'), FLEET);
    rows.forEach((r, i) => expect(r).toBe(FLEET[i]));
  });

  it('reads any iterable once, lazily, and stops at TOP', () => {
    let pulled = 0;
    function* gen(): Generator<object> {
      for (const t of FLEET) {
        pulled++;
        yield t;
      }
    }
    expect(idsOf(evaluate(parseQuery('SELECT TOP 2 * FROM devices'), gen()))).toEqual(['d1', 'd2']);
    expect(pulled).toBe(2);
  });

  it('prefiltered skips WHERE', () => {
    const q = parseQuery(W("deviceId = 'nobody'"));
    expect(evaluate(q, FLEET, { prefiltered: true })).toHaveLength(FLEET.length);
  });
});

// ── laws over generated queries and fleets ─────────────────────────────────────────────────────

const parsedQueryArb = queryTextArb
  .map((text) => safeParseQuery(text))
  .filter((r) => r.ok)
  .map((r) => (r.ok ? r.value : undefined)!);

describe('laws', () => {
  it('evaluate never throws on any twin for any parsed query, and TOP is a prefix', () => {
    fc.assert(
      fc.property(parsedQueryArb, fleetArb, (query, fleet) => {
        const rows = evaluate(query, fleet);
        expect(rows.length).toBeLessThanOrEqual(query.top ?? Infinity);
        const all = evaluate({ ...query, top: undefined }, fleet);
        expect(rows).toEqual(all.slice(0, query.top ?? Infinity));
        for (const r of rows) expect(typeof r).toBe('object');
      }),
      { numRuns: 2000, seed: 1592592336 },
    );
  }, 60_000);

  it('WHERE filtering equals compileWhere, and prefiltered evaluation agrees', () => {
    fc.assert(
      fc.property(parsedQueryArb, fleetArb, (query, fleet) => {
        const keep = compileWhere(query);
        const kept = fleet.filter(keep);
        expect(evaluate(query, kept, { prefiltered: true })).toEqual(evaluate(query, fleet));
        if (query.select === '*') expect(evaluate({ ...query, top: undefined }, fleet)).toEqual(kept);
      }),
      { numRuns: 1000, seed: 1592591336 },
    );
  }, 60_000);

  it('grouped results do not depend on input order (integer values: sums are exact)', () => {
    const grouped = parsedQueryArb.filter(
      (q) => q.groupBy !== undefined || (q.select !== '*' && q.select.some((e) => e.kind === 'aggregate')),
    );
    fc.assert(
      fc.property(grouped, fleetArb, fc.func(fc.integer()), (query, fleet, rank) => {
        const shuffled = [...fleet].sort((a, b) => rank(a) - rank(b));
        expect(evaluate(query, shuffled)).toEqual(evaluate(query, [...fleet].reverse()));
      }),
      { numRuns: 500, seed: 1592590836 },
    );
  }, 60_000);

  it('generated queries parse often enough to exercise the evaluator', () => {
    const texts = fc.sample(queryTextArb, { numRuns: 1000, seed: 42 });
    const ok = texts.filter((t) => safeParseQuery(t).ok).length;
    expect(ok).toBeGreaterThan(300);
  });
});
