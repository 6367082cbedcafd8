/**
 * The read model's SQLite store against the query package: the whole conformance table (≥ 60
 * queries with expected results from docs/iot-hub.md, "Queries") run through SQLite pushdown and keyset
 * paging, then a differential law: for generated queries and fleets, the store answers what the
 * in-memory evaluator answers over the same twins in deviceId order (fast-check, seeded; a failure
 * prints its seed and path).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTwinlogError } from '@twinlog/core';
import { evaluate, parseQuery, safeParseQuery, type Query, type QueryRow } from '@twinlog/query';
import { CONFORMANCE_CASES, FLEET, JOBS, MODULES, fleetArb, queryTextArb, twinArb } from '@twinlog/query/testing';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAggregateQuery, leavesOf, TwinStore } from './twinStore.ts';

const dir = mkdtempSync(join(tmpdir(), 'twinlog-fleet-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const openStore = (walkMinCandidates?: number): TwinStore => {
  const db = new Database(join(dir, `store-${++n}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF'); // test files: no fsync per statement
  return new TwinStore(db, walkMinCandidates === undefined ? {} : { walkMinCandidates });
};

const byDeviceId = (a: { deviceId?: unknown }, b: { deviceId?: unknown }): number => {
  const x = Buffer.from(String(a.deviceId));
  const y = Buffer.from(String(b.deviceId));
  return Buffer.compare(x, y);
};
const sortedJson = (rows: readonly unknown[]): string[] => rows.map((r) => JSON.stringify(r)).sort();

/** Every row of a query through pages of `pageSize`, checking the token contract on the way. */
function pages(store: TwinStore, query: Query, pageSize: number): QueryRow[] {
  const out: QueryRow[] = [];
  let continuation: string | undefined;
  for (let i = 0; i < 10_000; i++) {
    const page = store.run(query, { pageSize, continuation });
    out.push(...page.rows);
    if (page.continuationToken === undefined) return out;
    expect(page.continuationToken).not.toBe('');
    expect(page.rows.length).toBe(pageSize);
    continuation = page.continuationToken;
  }
  throw new Error('paging did not end');
}

describe('conformance table through the SQLite read model', () => {
  let store: TwinStore;
  const sortedFleet = [...FLEET].sort(byDeviceId);
  beforeAll(() => {
    store = openStore();
    store.db.transaction(() => {
      for (const t of FLEET) store.upsert(t.deviceId, t);
      // module twins are rows keyed {deviceId}/{moduleId} (docs/iot-hub.md, "Module identities and module twins")
      for (const m of MODULES) store.upsert(`${m.deviceId}/${m.moduleId}`, m);
    })();
    store.jobRows = () => JOBS;
  });

  // the store holds the fleet and the module twins: `devices` cases must see the fleet only,
  // `devices.modules` cases the module twins only
  const cases = CONFORMANCE_CASES;
  it('runs at least 60 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
  });

  for (const c of cases) {
    it(`${c.ref}: ${c.q.length > 120 ? c.q.slice(0, 120) + '…' : c.q}`, () => {
      if ('error' in c) {
        const r = safeParseQuery(c.q);
        expect(r.ok ? 'parsed' : r.error.code).toBe(c.error);
        return;
      }
      const query = parseQuery(c.q);
      const all = store.run(query, { all: true }).rows;
      const expected: readonly unknown[] = 'ids' in c ? c.ids : c.rows;
      const got: readonly unknown[] = 'ids' in c ? all.map((r) => r['deviceId']) : all;
      if (isAggregateQuery(query) || query.from === 'devices.jobs') {
        expect(got).toEqual(expected); // grouped rows are sorted by value: order is part of the answer
      } else if (query.top === undefined) {
        expect(sortedJson(got)).toEqual(sortedJson(expected)); // twins come in deviceId order
      } else {
        expect(got).toHaveLength(expected.length);
        expect(all).toEqual(evaluate(query, query.from === 'devices.modules' ? MODULES : sortedFleet));
      }
      // paging by one row gives the same rows
      expect(pages(store, query, 1)).toEqual(all);
    });
  }
});

describe('paging while twins change (keyset on deviceId)', () => {
  it('returns every twin that matched throughout exactly once, whatever changes between pages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 59 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 7 }),
        (edits, pageSize) => {
          const store = openStore();
          const id = (i: number): string => `dev-${String(i).padStart(2, '0')}`;
          for (let i = 0; i < 40; i++) store.upsert(id(i), { deviceId: id(i), tags: { keep: true, n: i } });
          const query = parseQuery('SELECT deviceId FROM devices WHERE tags.keep = true');
          const stable = new Set(Array.from({ length: 40 }, (_, i) => id(i)).filter((_, i) => !edits.includes(i)));
          const seen: string[] = [];
          let continuation: string | undefined;
          let step = 0;
          for (;;) {
            const page = store.run(query, { pageSize, continuation });
            seen.push(...page.rows.map((r) => r['deviceId'] as string));
            // between pages: delete, re-create, add, or un-match some twins
            const e = edits[step++ % edits.length]!;
            if (e < 40) {
              if (e % 3 === 0) store.remove(id(e));
              else store.upsert(id(e), { deviceId: id(e), tags: { keep: e % 3 === 1, n: e } });
            } else store.upsert(id(e), { deviceId: id(e), tags: { keep: true } });
            if (page.continuationToken === undefined) break;
            continuation = page.continuationToken;
          }
          expect(new Set(seen).size).toBe(seen.length); // no duplicates
          for (const s of stable) expect(seen).toContain(s); // nothing that matched throughout is skipped
          store.db.close();
        },
      ),
      { numRuns: 150, seed: 5150 },
    );
  });

  it('refuses random continuation tokens with QUERY_CONTINUATION_INVALID only (fuzz)', () => {
    const store = openStore();
    store.upsert('a', { deviceId: 'a' });
    const queries = [parseQuery('SELECT * FROM devices'), parseQuery('SELECT COUNT() FROM devices')];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 50 }),
          fc.base64String({ maxLength: 50 }),
          fc.json().map((j) => Buffer.from(j).toString('base64')),
        ),
        (token) => {
          for (const q of queries) {
            try {
              store.run(q, { continuation: token, pageSize: 1 });
            } catch (e) {
              if (!isTwinlogError(e)) throw e;
              expect(e.code).toBe('QUERY_CONTINUATION_INVALID');
            }
          }
        },
      ),
      { numRuns: 2000, seed: 0xc0de },
    );
    store.db.close();
  });

  it('refuses foreign continuation tokens with QUERY_CONTINUATION_INVALID', () => {
    const store = openStore();
    const q = parseQuery('SELECT * FROM devices');
    for (const token of [
      'x',
      'eyJ2IjoxLCJvZmZzZXQiOjJ9',
      Buffer.from('{"v":2,"after":1,"n":0}').toString('base64'),
      '====',
    ]) {
      let code: unknown;
      try {
        store.run(q, { continuation: token });
      } catch (e) {
        code = isTwinlogError(e) ? e.code : e;
      }
      expect(code).toBe('QUERY_CONTINUATION_INVALID');
    }
  });
});

describe('updates rewrite only the leaves that changed', () => {
  it('after any sequence of upserts and removals, the leaves are exactly those of each final document', () => {
    const store = openStore();
    const leavesIn = (id: number): string[] =>
      (
        store.db
          .prepare('SELECT p.key, l.kind, l.val FROM leaves l JOIN paths p ON p.id = l.path WHERE l.twin = ?')
          .raw()
          .all(id) as unknown[][]
      )
        .map((r) => JSON.stringify(r))
        .sort();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('d1', 'd2', 'd3'), fc.option(twinArb, { freq: 8 })), { maxLength: 25 }),
        (steps) => {
          store.clear();
          const final = new Map<string, Record<string, unknown>>();
          for (const [id, doc] of steps) {
            if (doc === null) {
              store.remove(id);
              final.delete(id);
            } else {
              store.upsert(id, { ...doc, deviceId: id });
              final.set(id, { ...doc, deviceId: id });
            }
          }
          for (const [id, doc] of final) {
            const row = store.db.prepare('SELECT id FROM twins WHERE device_id = ?').get(id) as { id: number };
            const expected = leavesOf(JSON.parse(JSON.stringify(doc)) as object)
              .map(([path, kind, val]) => JSON.stringify([path, kind, val]))
              .sort();
            expect(leavesIn(row.id)).toEqual(expected);
            expect(store.get(id)).toEqual(JSON.parse(JSON.stringify(doc)));
          }
          expect(store.count()).toBe(final.size);
          expect(
            store.db
              .prepare('SELECT COUNT(*) FROM leaves WHERE twin NOT IN (SELECT id FROM twins)')
              .pluck()
              .get() as number,
          ).toBe(0);
        },
      ),
      { numRuns: 500, seed: 0x1eaf },
    );
    store.db.close();
  });
});

describe('differential: SQLite pushdown = in-memory evaluate', () => {
  const parsedQueryArb = queryTextArb
    .map((text) => safeParseQuery(text))
    .filter((r) => r.ok)
    .map((r) => (r.ok ? r.value : undefined)!);

  it('answers every generated query over every generated fleet as evaluate does (2,000 runs)', () => {
    const store = openStore();
    const walking = openStore(0); // pages always walk the device id index
    fc.assert(
      fc.property(parsedQueryArb, fleetArb, (query, fleet) => {
        const unique = new Map<string, Record<string, unknown>>();
        for (const t of fleet) unique.set(String(t['deviceId']), t);
        const twins = [...unique.values()].sort(byDeviceId);
        for (const s of [store, walking]) {
          s.db.transaction(() => {
            s.clear();
            for (const t of twins) s.upsert(String(t['deviceId']), t);
          })();
        }
        // a document with a moduleId is a module twin's (docs/iot-hub.md, "Module identities and module twins")
        const modules = query.from === 'devices.modules';
        const collection = twins.filter((t) => (t['moduleId'] !== undefined) === modules);
        const expected = query.from === 'devices.jobs' ? evaluate(query, []) : evaluate(query, collection);
        const got = store.run(query, { all: true }).rows;
        // SQLite keeps JSON, so compare JSON (-0 is stored as 0, as JSON.stringify writes it)
        expect(JSON.stringify(got)).toBe(JSON.stringify(expected));
        if (!isAggregateQuery(query)) {
          expect(JSON.stringify(pages(store, query, 2))).toBe(JSON.stringify(expected)); // sorted candidates
          expect(JSON.stringify(pages(walking, query, 2))).toBe(JSON.stringify(expected)); // index walk
        }
      }),
      { numRuns: 2000, seed: 20260501 },
    );
  });
});
