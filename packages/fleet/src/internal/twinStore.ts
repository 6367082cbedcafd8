/**
 * The twins of the read model in SQLite, and queries over them.
 *
 * Tables (created by {@link migrate}):
 * - `twins(id, device_id UNIQUE, doc)`: the rendered twin JSON (what `GET /twins/{id}` returns).
 * - `paths(id, key)`: every path seen, interned (segments joined by U+001F).
 * - `leaves(twin, path, kind, val)` WITHOUT ROWID, primary key `(twin, path)`, index
 *   `(path, kind, val)`: every node of every twin except `$metadata` subtrees, one row each:
 *   primitives with their value (booleans 0/1), arrays with their JSON text, objects with `NULL`.
 *   Selective equalities, ranges, `IN`, `IS_*` and prefixes become index range scans
 *   (`internal/pushdown.ts`); GROUP BY and aggregates read only the leaves of the paths they use.
 *
 * Query plan ({@link TwinStore.run}): module twins (docs/iot-hub.md, "Module identities and module
 * twins") are rows like device twins, keyed `{deviceId}/{moduleId}`, whose document has a `moduleId`:
 * `devices.modules` is the query with `IS_DEFINED(moduleId)` added to its WHERE, and `devices` the
 * query with `NOT IS_DEFINED(moduleId)` added while any module twin exists (one index probe), so a
 * fleet without modules queries exactly as before. `devices.jobs` is the job store's. Rows of SELECT * and projections come in twin id (`deviceId`) order, paged
 * by keyset (the continuation token holds the last device id returned), so paging stays correct
 * while twins change: a twin that matches throughout is returned exactly once. Candidates come from
 * the pushed-down WHERE (a superset) and are re-checked with the evaluator's own predicate, so the
 * answer is always what `evaluate` gives over the same twins in `deviceId` order. Aggregate queries
 * build small documents holding only the paths the query reads, from `leaves`, and run `evaluate`
 * over them; they are paged by position (the @twinlog/query v1 token).
 */
import {
  compileWhere,
  DEFAULT_PAGE_SIZE,
  evaluate,
  MAX_PAGE_SIZE,
  paginate,
  referencedPaths,
  type Expr,
  type Path,
  type Query,
  type QueryRow,
  type SelectElement,
} from '@twinlog/query';
import { TwinlogError } from '@twinlog/core';
import type { Database, Statement } from 'better-sqlite3';
import { isIndexedPath, KIND, PATH_ID, pathKey, pushdown, type IdFilter } from './pushdown.ts';

/** The member that makes a twin document a module twin's (docs/iot-hub.md, "Module identities and module twins"). */
const MODULE_ID: Path = ['moduleId'];

export function migrate(db: Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS twins (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS paths (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
    CREATE TABLE IF NOT EXISTS leaves (twin INTEGER NOT NULL, path INTEGER NOT NULL, kind INTEGER NOT NULL, val, PRIMARY KEY (twin, path)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS leaves_by_value ON leaves (path, kind, val);
  `);
}

/** One page of rows, and the token of the next page (absent on the last page). */
export interface StorePage {
  readonly rows: QueryRow[];
  readonly continuationToken: string | undefined;
}

export interface RunOptions {
  readonly pageSize?: number | undefined;
  readonly continuation?: string | undefined;
  /** Every row at once (no paging): for jobs, configurations and benchmarks. */
  readonly all?: boolean;
}

type LeafRow = [path: string, kind: number, val: unknown];

/** The leaves of a document (see the module comment). */
export function leavesOf(doc: object): LeafRow[] {
  const out: LeafRow[] = [];
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const key of Object.keys(node)) {
      if (key === '$metadata') continue;
      const v = node[key];
      const path = prefix === '' ? key : prefix + '\u001f' + key;
      if (v === null) out.push([path, KIND.null, null]);
      else if (typeof v === 'boolean') out.push([path, KIND.boolean, v ? 1 : 0]);
      else if (typeof v === 'number') {
        if (Number.isFinite(v)) out.push([path, KIND.number, v]);
      } else if (typeof v === 'string') out.push([path, KIND.string, v]);
      else if (Array.isArray(v)) out.push([path, KIND.array, JSON.stringify(v)]);
      else if (typeof v === 'object') {
        out.push([path, KIND.object, null]);
        walk(v as Record<string, unknown>, path);
      }
    }
  };
  walk(doc as Record<string, unknown>, '');
  return out;
}

const CURSOR_VERSION = 2;
const LEAVES_PER_INSERT = 64;
/** Documents read per statement after the candidates are sorted (a first page needs one or two). */
const DOC_CHUNK = 128;
/** Above this many candidates a page walks the device id index instead of sorting them all. */
const WALK_MIN_CANDIDATES = 2000;

function writeCursor(after: string, emitted: number): string {
  return Buffer.from(JSON.stringify({ v: CURSOR_VERSION, after, n: emitted }), 'utf8').toString('base64');
}

function readCursor(token: string): { after: string; emitted: number } {
  const invalid = (): TwinlogError =>
    new TwinlogError('QUERY_CONTINUATION_INVALID', 'the continuation token was not issued for this query', {
      details: { length: token.length },
    });
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(token) || token.length % 4 !== 0) throw invalid();
  let cursor: unknown;
  try {
    cursor = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof cursor !== 'object' || cursor === null || Array.isArray(cursor)) throw invalid();
  const { v, after, n, ...rest } = cursor as Record<string, unknown>;
  if (v !== CURSOR_VERSION || Object.keys(rest).length > 0 || typeof after !== 'string') throw invalid();
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw invalid();
  return { after, emitted: n };
}

function setPath(doc: Record<string, unknown>, path: Path, value: unknown): void {
  let cur = doc;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    let next = Object.prototype.hasOwnProperty.call(cur, seg) ? cur[seg] : undefined;
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      next = {};
      Object.defineProperty(cur, seg, { value: next, enumerable: true, writable: true, configurable: true });
    }
    cur = next as Record<string, unknown>;
  }
  Object.defineProperty(cur, path[path.length - 1]!, { value, enumerable: true, writable: true, configurable: true });
}

function leafValue(kind: number, val: unknown): unknown {
  switch (kind) {
    case KIND.null:
      return null;
    case KIND.boolean:
      return val === 1;
    case KIND.array:
      return JSON.parse(val as string);
    default:
      return val;
  }
}

/** Whether a query aggregates (GROUP BY or an aggregate in SELECT). */
export const isAggregateQuery = (q: Query): boolean =>
  q.select !== '*' && (q.groupBy !== undefined || q.select.some((e) => e.kind === 'aggregate'));

export class TwinStore {
  readonly db: Database;
  private readonly selectId: Statement<[string], { id: number }>;
  private readonly insertTwin: Statement<[string, string]>;
  private readonly updateTwin: Statement<[string, number]>;
  private readonly deleteTwin: Statement<[number]>;
  private readonly deleteLeaves: Statement<[number]>;
  private readonly insertLeaves = new Map<number, Statement>();
  private readonly insertPath: Statement<[string]>;
  private readonly selectLeaves: Statement<[number]>;
  private readonly updateLeaf: Statement<[number, unknown, number, number]>;
  private readonly deleteLeaf: Statement<[number, number]>;
  private readonly pathIds = new Map<string, number>();
  private readonly selectDoc: Statement<[string], { doc: string }>;
  private readonly selectDocById: Statement<[number], { doc: string }>;
  private readonly scanAll: Statement<[string], { device_id: string; doc: string }>;
  private readonly statements = new Map<string, Statement>();
  /** Rows of `devices.jobs` (set by the job runner). */
  jobRows: () => object[] = () => [];

  /** Above this many candidates a page walks the device id index (option for tests of both plans). */
  private readonly walkMinCandidates: number;

  constructor(db: Database, { walkMinCandidates = WALK_MIN_CANDIDATES }: { readonly walkMinCandidates?: number } = {}) {
    this.db = db;
    this.walkMinCandidates = walkMinCandidates;
    migrate(db);
    this.selectId = db.prepare('SELECT id FROM twins WHERE device_id = ?');
    this.insertTwin = db.prepare('INSERT INTO twins (device_id, doc) VALUES (?, ?)');
    this.updateTwin = db.prepare('UPDATE twins SET doc = ? WHERE id = ?');
    this.deleteTwin = db.prepare('DELETE FROM twins WHERE id = ?');
    this.deleteLeaves = db.prepare('DELETE FROM leaves WHERE twin = ?');
    this.insertPath = db.prepare('INSERT INTO paths (key) VALUES (?)');
    this.selectLeaves = db.prepare('SELECT path, kind, val FROM leaves WHERE twin = ?').raw();
    this.updateLeaf = db.prepare('UPDATE leaves SET kind = ?, val = ? WHERE twin = ? AND path = ?');
    this.deleteLeaf = db.prepare('DELETE FROM leaves WHERE twin = ? AND path = ?');
    this.loadPaths();
    this.selectDoc = db.prepare('SELECT doc FROM twins WHERE device_id = ?');
    this.selectDocById = db.prepare('SELECT doc FROM twins WHERE id = ?');
    this.scanAll = db.prepare('SELECT device_id, doc FROM twins WHERE device_id > ? ORDER BY device_id');
  }

  /** Insert or replace a twin (call inside the caller's transaction for atomicity with offsets). */
  upsert(deviceId: string, doc: object): void {
    const json = JSON.stringify(doc);
    const row = this.selectId.get(deviceId);
    let id: number;
    let leaves = leavesOf(doc);
    if (row === undefined) {
      id = Number(this.insertTwin.run(deviceId, json).lastInsertRowid);
    } else {
      // an update touches only the leaves that changed (a snapshot usually changes a few)
      id = row.id;
      this.updateTwin.run(json, id);
      const old = new Map<number, [number, unknown]>();
      for (const [path, kind, val] of this.selectLeaves.all(id) as [number, number, unknown][])
        old.set(path, [kind, val]);
      const added: LeafRow[] = [];
      for (const leaf of leaves) {
        const pid = this.pathId(leaf[0]);
        const was = old.get(pid);
        if (was === undefined) added.push(leaf);
        else {
          old.delete(pid);
          if (was[0] !== leaf[1] || was[1] !== leaf[2]) this.updateLeaf.run(leaf[1], leaf[2], id, pid);
        }
      }
      for (const pid of old.keys()) this.deleteLeaf.run(id, pid);
      leaves = added;
    }
    for (let i = 0; i < leaves.length; i += LEAVES_PER_INSERT) {
      const chunk = leaves.slice(i, i + LEAVES_PER_INSERT);
      const params: unknown[] = [];
      for (const [path, kind, val] of chunk) params.push(id, this.pathId(path), kind, val);
      this.insertStatement(chunk.length).run(...params);
    }
  }

  /** Reload the interned path ids (after a rolled-back transaction may have left stale ones). */
  loadPaths(): void {
    this.pathIds.clear();
    for (const r of this.db.prepare('SELECT id, key FROM paths').all() as { id: number; key: string }[])
      this.pathIds.set(r.key, r.id);
  }

  private pathId(key: string): number {
    let id = this.pathIds.get(key);
    if (id === undefined) {
      id = Number(this.insertPath.run(key).lastInsertRowid);
      this.pathIds.set(key, id);
    }
    return id;
  }

  private insertStatement(rows: number): Statement {
    let st = this.insertLeaves.get(rows);
    if (st === undefined) {
      st = this.db.prepare(
        `INSERT INTO leaves (twin, path, kind, val) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?)').join(', ')}`,
      );
      this.insertLeaves.set(rows, st);
    }
    return st;
  }

  /** Remove a twin; `false` when there was none. */
  remove(deviceId: string): boolean {
    const row = this.selectId.get(deviceId);
    if (row === undefined) return false;
    this.deleteLeaves.run(row.id);
    this.deleteTwin.run(row.id);
    return true;
  }

  get(deviceId: string): Record<string, unknown> | undefined {
    const row = this.selectDoc.get(deviceId);
    return row === undefined ? undefined : (JSON.parse(row.doc) as Record<string, unknown>);
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM twins').get() as { n: number }).n;
  }

  /** Empty the store (a rebuild). */
  clear(): void {
    this.db.exec('DELETE FROM leaves; DELETE FROM twins;');
  }

  private prepared(sql: string): Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      if (this.statements.size > 500) this.statements.clear();
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /**
   * Run a parsed query: one page (default 100 rows, docs/iot-hub.md "REST (back ends)"), or every row with `all`.
   *
   * @throws {TwinlogError} `QUERY_CONTINUATION_INVALID`, `QUERY_PAGE_SIZE_INVALID` (as `paginate`).
   */
  run(query: Query, { pageSize = DEFAULT_PAGE_SIZE, continuation, all = false }: RunOptions = {}): StorePage {
    if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
      throw new TwinlogError(
        'QUERY_PAGE_SIZE_INVALID',
        `the page size must be a whole number of at least 1, not ${String(pageSize)}`,
        {
          details: { pageSize },
        },
      );
    }
    if (query.from === 'devices.modules' || query.from === 'devices') {
      query = this.inCollection(query);
    }
    if (query.from !== 'devices') {
      // devices.jobs, or devices.modules without a module twin (an aggregate still answers its one row)
      const rows = evaluate(query, query.from === 'devices.jobs' ? this.jobRows() : []);
      if (all) return { rows, continuationToken: undefined };
      const page = paginate(rows, { pageSize, continuation });
      return { rows: page.items, continuationToken: page.continuationToken };
    }
    if (isAggregateQuery(query)) {
      const rows = this.aggregate(query);
      if (all) return { rows, continuationToken: undefined };
      const page = paginate(rows, { pageSize, continuation });
      return { rows: page.items, continuationToken: page.continuationToken };
    }
    return this.keyset(query, all ? Infinity : Math.min(pageSize, MAX_PAGE_SIZE), continuation);
  }

  /**
   * `query` over `devices` restricted to its collection's twins (see the module comment):
   * unchanged while there is no module twin.
   */
  private inCollection(query: Query): Query {
    if (!this.hasModules()) return query;
    const defined: Expr = { kind: 'call', fn: 'IS_DEFINED', args: [{ kind: 'path', path: MODULE_ID }] };
    const member: Expr = query.from === 'devices.modules' ? defined : { kind: 'not', operand: defined };
    return {
      ...query,
      from: 'devices',
      where: query.where === undefined ? member : { kind: 'and', operands: [member, query.where] },
    };
  }

  /** Whether any twin has a `moduleId` leaf: one probe of the `(path, kind, val)` index. */
  private hasModules(): boolean {
    return this.prepared(`SELECT 1 FROM leaves WHERE path = ${PATH_ID} LIMIT 1`).get(pathKey(MODULE_ID)) !== undefined;
  }

  /**
   * The candidates of a WHERE clause, in device id order, from `after` on. Two plans: sort the
   * candidate ids (few candidates, or every row wanted), or — for one page out of many candidates —
   * walk the device id index and test membership in the candidate set, stopping at the page's end.
   */
  private *candidates(
    filter: IdFilter | undefined,
    after: string,
    onePage = false,
  ): Generator<{ device_id: string; doc: string }> {
    if (filter === undefined) {
      yield* this.scanAll.iterate(after);
      return;
    }
    if (
      onePage &&
      (this.prepared(`SELECT COUNT(*) FROM (${filter.sql})`)
        .pluck()
        .get(...filter.params) as number) > this.walkMinCandidates
    ) {
      const walk = `SELECT t.device_id, t.doc FROM twins AS t WHERE t.device_id > ? AND +t.id IN (${filter.sql}) ORDER BY t.device_id`;
      yield* this.prepared(walk).iterate(after, ...filter.params) as Iterable<{ device_id: string; doc: string }>;
      return;
    }
    // sort small rows (id, device_id), then read each document: the sorter never carries documents
    const sql = `SELECT t.device_id, t.id FROM (${filter.sql}) AS c CROSS JOIN twins AS t ON t.id = c.twin WHERE t.device_id > ? ORDER BY t.device_id`;
    const ordered = this.prepared(sql)
      .raw()
      .all(...filter.params, after) as [string, number][];
    const fetchDocs = this.prepared('SELECT id, doc FROM twins WHERE id IN (SELECT value FROM json_each(?))').raw();
    for (let i = 0; i < ordered.length; i += DOC_CHUNK) {
      const chunk = ordered.slice(i, i + DOC_CHUNK);
      const docs = new Map(fetchDocs.all(JSON.stringify(chunk.map(([, id]) => id))) as [number, string][]);
      for (const [deviceId, id] of chunk) {
        const doc = docs.get(id);
        if (doc !== undefined) yield { device_id: deviceId, doc };
      }
    }
  }

  private keyset(query: Query, pageSize: number, continuation: string | undefined): StorePage {
    const { after, emitted } =
      continuation === undefined || continuation === '' ? { after: '', emitted: 0 } : readCursor(continuation);
    const top = query.top ?? Infinity;
    const limit = Math.min(pageSize, top - emitted);
    if (limit <= 0) return { rows: [], continuationToken: undefined };
    const keep = compileWhere(query);
    const filter = query.where === undefined ? undefined : pushdown(query.where);
    const docs: object[] = [];
    const ids: string[] = [];
    let more = false;
    for (const c of this.candidates(filter, after, pageSize !== Infinity)) {
      const doc = JSON.parse(c.doc) as object;
      if (!keep(doc)) continue;
      if (docs.length === limit) {
        more = true;
        break;
      }
      docs.push(doc);
      ids.push(c.device_id);
    }
    const rows =
      query.select === '*' ? (docs as QueryRow[]) : evaluate({ ...query, top: undefined }, docs, { prefiltered: true });
    const n = emitted + rows.length;
    const token = more && n < top ? writeCursor(ids[ids.length - 1]!, n) : undefined;
    return { rows, continuationToken: token };
  }

  /**
   * GROUP BY with only COUNT() and no WHERE, over primitive values: counted by SQLite on the
   * `(path, kind, val)` index alone. `undefined` when the query or the data needs the general path.
   */
  private groupCount(query: Query): QueryRow[] | undefined {
    const g = query.groupBy;
    if (query.where !== undefined || g === undefined || query.select === '*' || !isIndexedPath(g)) return undefined;
    if (!query.select.every((e) => e.kind === 'path' || e.fn === 'COUNT')) return undefined;
    const counted = this.prepared(`SELECT kind, val, COUNT(*) FROM leaves WHERE path = ${PATH_ID} GROUP BY kind, val`)
      .raw()
      .all(pathKey(g)) as [number, unknown, number][];
    if (counted.some(([kind]) => kind > KIND.string)) return undefined; // arrays and objects: grouped by canonical JSON in JS
    const rank = (v: unknown): number =>
      v === undefined ? -1 : v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2 : 3;
    const groups: { value: unknown; n: number }[] = counted.map(([kind, val, n]) => ({
      value: leafValue(kind, val),
      n,
    }));
    const missing = this.count() - groups.reduce((sum, x) => sum + x.n, 0);
    if (missing > 0) groups.push({ value: undefined, n: missing });
    groups.sort((a, b) => {
      const d = rank(a.value) - rank(b.value);
      if (d !== 0) return d;
      const x = a.value as number | string | boolean;
      const y = b.value as number | string | boolean;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    const rows = groups.map(({ value, n }) => {
      const row: Record<string, unknown> = {};
      for (const e of query.select as readonly SelectElement[]) {
        const v = e.kind === 'aggregate' ? n : value;
        if (v !== undefined)
          Object.defineProperty(row, e.name, { value: v, enumerable: true, writable: true, configurable: true });
      }
      return row;
    });
    return rows.slice(0, query.top ?? Infinity);
  }

  private aggregate(query: Query): QueryRow[] {
    const fast = this.groupCount(query);
    if (fast !== undefined) return fast;
    const paths = referencedPaths(query, 'all');
    const filter = query.where === undefined ? undefined : pushdown(query.where);
    if (!paths.every(isIndexedPath)) {
      const docs: object[] = [];
      for (const c of this.candidates(filter, '')) docs.push(JSON.parse(c.doc) as object);
      return evaluate(query, docs);
    }
    const idList =
      filter === undefined
        ? (this.prepared('SELECT id FROM twins').pluck().all() as number[])
        : (this.prepared(filter.sql)
            .pluck()
            .all(...filter.params) as number[]);
    const docs = new Map<number, Record<string, unknown>>();
    for (const id of idList) docs.set(id, {});
    const full = new Set<number>();
    for (const path of paths) {
      const sql =
        filter === undefined
          ? `SELECT twin, kind, val FROM leaves WHERE path = ${PATH_ID}`
          : `SELECT twin, kind, val FROM leaves WHERE path = ${PATH_ID} AND twin IN (${filter.sql})`;
      const rows = this.prepared(sql)
        .raw()
        .all(pathKey(path), ...(filter === undefined ? [] : filter.params)) as [number, number, unknown][];
      for (const [twin, kind, val] of rows) {
        const doc = docs.get(twin);
        if (doc === undefined || full.has(twin)) continue;
        if (kind === KIND.object) full.add(twin);
        else setPath(doc, path, leafValue(kind, val));
      }
    }
    for (const id of full) {
      const row = this.selectDocById.get(id);
      if (row !== undefined) docs.set(id, JSON.parse(row.doc) as Record<string, unknown>);
    }
    return evaluate(query, docs.values());
  }
}
