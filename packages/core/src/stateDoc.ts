/**
 * The persistent form of a twin's CRDT state: plain arrays and objects that the codec turns into
 * msgpack (docs/bounded-state.md, "The state document"). Canonical: G1 and G2 run first, every table
 * is sorted, so two states holding the same event set under the same horizon give deep-equal
 * documents (and, with the codec's sorted keys, identical bytes).
 *
 * Compact: a stamp is written once, in `stamps`, and referenced everywhere else by a small integer
 * `ref = index * 2 + op`; writer ids and actors are interned; walls are delta-coded (each row's wall
 * is the difference to the previous row's, the rows being in ascending stamp order).
 *
 * Layout (v3):
 * ```
 * { v: 3, deviceId,
 *   writers: string[]                            -- sorted
 *   actors: string[]                             -- sorted
 *   stamps: [wallDelta, counter, writer#, seq][] -- ascending stamp order, unique
 *   generation, created, maxStamp: ref | null
 *   gcHorizon: [wall, counter, writer, seq, op] | null   -- need not be an event's stamp
 *   context: [writer#, backendSeq, deviceSeq, topRef][]  -- by writer#; -1 = none
 *   decided: [ref, Decision][]                   -- ascending; an accepted one may carry its idempotency `key`
 *   sections: { tags | desired | reported: { count, top: ref | null, floor: ref | null, recent: ref[], root: Node } } }
 * Node = { r?: [ref, kind, actor#, value | null, rank | null], c?: ref, k?: { key: Node } }
 * ```
 * Version 2 documents (every folded dot listed) are upcast on read ({@link fromStateDoc}).
 */
import { TwinlogError } from './errors.ts';
import { isPlainObject, type Json, type Scalar } from './json.ts';
import { compareStamps, MIN_STAMP, type Stamp } from './stamp.ts';
import {
  addKid,
  collectGarbage,
  countLessOrEqual,
  createNode,
  createTwinState,
  recountVersion,
  trimWindow,
  VAL,
  type Decision,
  type RegKind,
  type SectionState,
  type TrieNode,
  type TwinState,
} from './twinState.ts';

export const STATE_DOC_VERSION = 3;

export interface NodeDoc {
  r?: [number, RegKind, number, Json | null, number | null];
  c?: number;
  k?: Record<string, NodeDoc>;
}
export interface SectionDoc {
  count: number;
  top: number | null;
  floor: number | null;
  recent: number[];
  root: NodeDoc;
}
export type DecisionDoc =
  | { accepted: true; etag: string; key?: string }
  | { accepted: false; code: string; message: string; etag: string | null };
export interface TwinStateDoc {
  v: number;
  deviceId: string;
  writers: string[];
  actors: string[];
  stamps: [number, number, number, number][];
  generation: number | null;
  created: number | null;
  maxStamp: number | null;
  gcHorizon: [number, number, string, number, 0 | 1] | null;
  context: [number, number, number, number][];
  decided: [number, DecisionDoc][];
  sections: { tags: SectionDoc; desired: SectionDoc; reported: SectionDoc };
}

const SECTIONS = ['tags', 'desired', 'reported'] as const;
const sameEvent = (a: Stamp, b: Stamp): boolean =>
  a.wall === b.wall && a.counter === b.counter && a.writer === b.writer && a.seq === b.seq;

/** Collects every stamp and actor of a state, then assigns canonical references. */
class Tables {
  private readonly all: Stamp[] = [];
  private readonly actorSet = new Set<string>();
  stamps: Stamp[] = [];
  writers: string[] = [];
  actors: string[] = [];
  private actorIndex = new Map<string, number>();
  private writerIndex = new Map<string, number>();

  addStamp(s: Stamp | undefined): void {
    if (s !== undefined && compareStamps(s, MIN_STAMP) !== 0) this.all.push(s);
  }
  addActor(a: string): void {
    this.actorSet.add(a);
  }
  seal(): void {
    const sorted = this.all.sort(compareStamps);
    for (const s of sorted) {
      const last = this.stamps[this.stamps.length - 1];
      if (last === undefined || !sameEvent(last, s)) this.stamps.push(s);
    }
    this.writers = [...new Set(this.stamps.map((s) => s.writer))].sort();
    this.writers.forEach((w, i) => this.writerIndex.set(w, i));
    this.actors = [...this.actorSet].sort();
    this.actors.forEach((a, i) => this.actorIndex.set(a, i));
  }
  /** The stamp's index in the sorted, deduplicated table (binary search: no index to build), times 2, plus its op. */
  ref(s: Stamp): number {
    const stamps = this.stamps;
    let lo = 0;
    let hi = stamps.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = stamps[mid]!;
      const c =
        m.wall - s.wall ||
        m.counter - s.counter ||
        (m.writer === s.writer ? 0 : m.writer < s.writer ? -1 : 1) ||
        m.seq - s.seq;
      if (c === 0) return mid * 2 + s.op;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    throw new Error('stateDoc: a stamp missing from its table');
  }
  optRef(s: Stamp | undefined): number | null {
    return s === undefined || compareStamps(s, MIN_STAMP) === 0 ? null : this.ref(s);
  }
  actor(a: string): number {
    return this.actorIndex.get(a)!;
  }
  writer(w: string): number {
    return this.writerIndex.get(w)!;
  }
}

function collectNode(node: TrieNode, t: Tables): void {
  if (node.stamp !== undefined) {
    t.addStamp(node.stamp);
    t.addActor(node.actor);
  }
  t.addStamp(node.clr);
  const kids = node.kids;
  if (kids === undefined) return;
  if (Array.isArray(kids)) for (let i = 1; i < kids.length; i += 2) collectNode(kids[i] as TrieNode, t);
  else for (const kid of kids.values()) collectNode(kid, t);
}

/** A node's children as [key, node] pairs sorted by key (the canonical order). */
function sortedKids(node: TrieNode): [string, TrieNode][] {
  const kids = node.kids;
  const out: [string, TrieNode][] = [];
  if (kids === undefined) return out;
  if (Array.isArray(kids))
    for (let i = 0; i < kids.length; i += 2) out.push([kids[i] as string, kids[i + 1] as TrieNode]);
  else for (const pair of kids) out.push(pair);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function nodeDoc(node: TrieNode, t: Tables, ranks: boolean): NodeDoc {
  const out: NodeDoc = {};
  if (node.stamp !== undefined) {
    out.r = [
      t.ref(node.stamp),
      node.kind,
      t.actor(node.actor),
      node.kind === VAL ? (node.value as Json) : null,
      ranks ? node.rank : null,
    ];
  }
  if (node.clr !== undefined) out.c = t.ref(node.clr);
  if (node.kids !== undefined) {
    const k: Record<string, NodeDoc> = {};
    for (const [key, kid] of sortedKids(node)) k[key] = nodeDoc(kid, t, ranks);
    out.k = k;
  }
  return out;
}

/**
 * The canonical persistent document of a state. Runs garbage collection on `state` first, up to
 * its GC horizon (which changes nothing observable).
 */
export function toStateDoc(state: TwinState): TwinStateDoc {
  collectGarbage(state);
  const t = new Tables();
  for (const w of state.writers.values()) t.addStamp(w.top);
  for (const d of state.decided.values()) t.addStamp(d.stamp);
  for (const s of [state.generation, state.created, state.maxStamp]) t.addStamp(s);
  for (const section of SECTIONS) {
    const st = state.sections[section];
    t.addStamp(st.top);
    t.addStamp(st.floor);
    for (const s of st.recent) t.addStamp(s);
    collectNode(st.root, t);
  }
  t.seal();
  const sectionDoc = (st: SectionState, ranks: boolean): SectionDoc => ({
    count: st.count,
    top: t.optRef(st.top),
    floor: t.optRef(st.floor),
    recent: st.recent.map((s) => t.ref(s)),
    root: nodeDoc(st.root, t, ranks),
  });
  const h = state.gcHorizon;
  let wall = 0;
  return {
    v: STATE_DOC_VERSION,
    deviceId: state.deviceId,
    writers: t.writers,
    actors: t.actors,
    stamps: t.stamps.map((s) => {
      const row: [number, number, number, number] = [s.wall - wall, s.counter, t.writer(s.writer), s.seq];
      wall = s.wall;
      return row;
    }),
    generation: t.optRef(state.generation),
    created: t.optRef(state.created),
    maxStamp: t.optRef(state.maxStamp),
    gcHorizon: compareStamps(h, MIN_STAMP) === 0 ? null : [h.wall, h.counter, h.writer, h.seq, h.op],
    context: [...state.writers.values()]
      .map((w): [number, number, number, number] => [t.writer(w.writer), w.backend, w.device, t.ref(w.top)])
      .sort((a, b) => a[0] - b[0]),
    decided: [...state.decided.values()]
      .map((d): [number, DecisionDoc] => [
        t.ref(d.stamp),
        d.accepted
          ? { accepted: true, etag: d.etag, ...(d.key === undefined ? {} : { key: d.key }) }
          : { accepted: false, code: d.code, message: d.message, etag: d.etag ?? null },
      ])
      .sort((a, b) => a[0] - b[0]),
    sections: {
      tags: sectionDoc(state.sections.tags, false),
      desired: sectionDoc(state.sections.desired, true),
      reported: sectionDoc(state.sections.reported, false),
    },
  };
}

function bad(what: string): never {
  throw new TwinlogError('CODEC_BAD_DATA', `invalid twin state document: ${what}`);
}

const isIndex = (v: unknown, length: number): v is number =>
  Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < length;

type Tables_ = { stamp: (ref: unknown) => Stamp; actor: (i: unknown) => string; writers: readonly string[] };

/** Decodes references against the document's tables, checking every index (`deltaWalls`: v3 rows). */
function readTables(doc: Record<string, unknown>, deltaWalls: boolean): Tables_ {
  const writers = doc['writers'];
  const actors = doc['actors'];
  const rows = doc['stamps'];
  if (!Array.isArray(writers) || !writers.every((w) => typeof w === 'string')) bad('writers');
  if (!Array.isArray(actors) || !actors.every((a) => typeof a === 'string')) bad('actors');
  if (!Array.isArray(rows)) bad('stamps');
  let wall = 0;
  const events = (rows as unknown[]).map((row) => {
    if (
      !Array.isArray(row) ||
      row.length !== 4 ||
      !Number.isSafeInteger(row[0]) ||
      !Number.isSafeInteger(row[1]) ||
      !isIndex(row[2], writers.length) ||
      !Number.isSafeInteger(row[3])
    ) {
      bad('stamp row');
    }
    wall = deltaWalls ? wall + (row[0] as number) : (row[0] as number);
    return { wall, counter: row[1] as number, writer: writers[row[2]] as string, seq: row[3] as number };
  });
  const cache = new Map<number, Stamp>();
  return {
    writers: writers,
    stamp(ref) {
      if (!Number.isSafeInteger(ref) || (ref as number) < 0) bad('stamp reference');
      let s = cache.get(ref as number);
      if (s === undefined) {
        const e = events[Math.floor((ref as number) / 2)];
        if (e === undefined) bad('stamp reference');
        s = { ...e, op: ((ref as number) % 2) as 0 | 1 };
        cache.set(ref as number, s);
      }
      return s;
    },
    actor(i) {
      if (!isIndex(i, actors.length)) bad('actor reference');
      return actors[i] as string;
    },
  };
}

/** Reads a node; `rank(stamp, stored)` gives the register's rank. */
function fromNode(d: unknown, depth: number, t: Tables_, rank: (s: Stamp, stored: unknown) => number): TrieNode {
  if (!isPlainObject(d) || depth > 64) bad('node');
  const node = createNode();
  const r = d['r'];
  if (r !== undefined) {
    if (!Array.isArray(r) || r.length !== 5 || ![0, 1, 2].includes(r[1] as number)) bad('register');
    const kind = r[1] as RegKind;
    node.stamp = t.stamp(r[0]);
    node.kind = kind;
    node.value = kind === VAL ? (r[3] as Scalar | Json[]) : undefined;
    node.actor = t.actor(r[2]);
    node.rank = rank(node.stamp, r[4]);
  }
  if (d['c'] !== undefined) node.clr = t.stamp(d['c']);
  const k = d['k'];
  if (k !== undefined) {
    if (!isPlainObject(k)) bad('children');
    for (const key of Object.keys(k)) addKid(node, key, fromNode(k[key], depth + 1, t, rank));
  }
  return node;
}

function readHeader(doc: Record<string, unknown>, t: Tables_, state: TwinState): void {
  const opt = (ref: unknown): Stamp => (ref === null ? MIN_STAMP : t.stamp(ref));
  state.generation = opt(doc['generation']);
  state.created = opt(doc['created']);
  state.maxStamp = opt(doc['maxStamp']);
  const h = doc['gcHorizon'];
  if (h !== null) {
    if (!Array.isArray(h) || h.length !== 5 || typeof h[2] !== 'string' || (h[4] !== 0 && h[4] !== 1)) bad('gcHorizon');
    state.gcHorizon = {
      wall: h[0] as number,
      counter: h[1] as number,
      writer: h[2],
      seq: h[3] as number,
      op: h[4] as 0 | 1,
    };
  }
  if (!Array.isArray(doc['decided'])) bad('decided');
  for (const entry of doc['decided'] as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2 || !isPlainObject(entry[1])) bad('decision');
    const stamp = t.stamp(entry[0]);
    const d = entry[1];
    const decision: Decision =
      d['accepted'] === true
        ? { accepted: true, etag: String(d['etag']), stamp, ...(typeof d['key'] === 'string' ? { key: d['key'] } : {}) }
        : {
            accepted: false,
            code: d['code'] as Extract<Decision, { accepted: false }>['code'],
            message: String(d['message']),
            etag: typeof d['etag'] === 'string' ? d['etag'] : undefined,
            stamp,
          };
    state.decided.set(stamp.writer + '\u0000' + stamp.seq, decision);
  }
}

function setRoot(into: SectionState, root: TrieNode): void {
  into.root.clr = root.clr;
  into.root.kids = root.kids;
}

function readV3(doc: Record<string, unknown>, state: TwinState): void {
  const t = readTables(doc, true);
  readHeader(doc, t, state);
  const context = doc['context'];
  if (!Array.isArray(context)) bad('context');
  for (const row of context as unknown[]) {
    if (
      !Array.isArray(row) ||
      row.length !== 4 ||
      !isIndex(row[0], t.writers.length) ||
      !Number.isSafeInteger(row[1]) ||
      !Number.isSafeInteger(row[2])
    ) {
      bad('context row');
    }
    const writer = t.writers[row[0]]!;
    state.writers.set(writer, {
      writer,
      backend: row[1] as number,
      device: row[2] as number,
      top: t.stamp(row[3]),
      actor: '',
    });
  }
  const sections = doc['sections'] as Record<string, unknown>;
  for (const section of SECTIONS) {
    const sd = sections[section];
    if (!isPlainObject(sd) || !Number.isSafeInteger(sd['count']) || !Array.isArray(sd['recent'])) bad('section');
    const into = state.sections[section];
    into.count = sd['count'] as number;
    into.top = sd['top'] === null ? undefined : t.stamp(sd['top']);
    into.floor = sd['floor'] === null ? MIN_STAMP : t.stamp(sd['floor']);
    into.recent = (sd['recent'] as unknown[]).map((ref) => t.stamp(ref));
    const rank = (_s: Stamp, stored: unknown): number =>
      section === 'desired' && Number.isSafeInteger(stored) ? (stored as number) : 0;
    setRoot(into, fromNode(sd['root'], 0, t, rank));
  }
}

/**
 * Upcast a v2 document: it listed every folded dot and each section's live dots. Section counts
 * become numbers, desired ranks are computed from the live dots (or taken frozen), and the dots
 * become writer contexts (the topic of a dot is inferred from the sections that counted it); the
 * windows are then trimmed as the fold trims them.
 */
function readV2(doc: Record<string, unknown>, state: TwinState): void {
  const t = readTables(doc, false);
  readHeader(doc, t, state);
  if (!Array.isArray(doc['dots'])) bad('dots');
  const sections = doc['sections'] as Record<string, unknown>;
  const reportedDots = new Set<string>();
  const backendDots = new Set<string>();
  for (const section of SECTIONS) {
    const sd = sections[section];
    if (!isPlainObject(sd) || !Number.isSafeInteger(sd['collected']) || !Array.isArray(sd['liveDots'])) bad('section');
    const into = state.sections[section];
    const live = (sd['liveDots'] as unknown[]).map((ref) => t.stamp(ref));
    for (const s of live) (section === 'reported' ? reportedDots : backendDots).add(s.writer + '\u0000' + s.seq);
    const collected = sd['collected'] as number;
    into.count = collected + live.length;
    into.top = sd['top'] === null ? undefined : t.stamp(sd['top']);
    into.recent = live;
    const rank = (s: Stamp, stored: unknown): number =>
      section !== 'desired'
        ? 0
        : Number.isSafeInteger(stored)
          ? (stored as number)
          : collected + countLessOrEqual(live, s);
    setRoot(into, fromNode(sd['root'], 0, t, rank));
  }
  for (const ref of doc['dots'] as unknown[]) {
    const s = t.stamp(ref);
    let w = state.writers.get(s.writer);
    if (w === undefined)
      state.writers.set(s.writer, (w = { writer: s.writer, backend: -1, device: -1, top: s, actor: '' }));
    if (compareStamps(s, w.top) > 0) w.top = s;
    // a dot counted in desired or tags came from twin.backend (a create counts in reported too), one
    // counted in reported only from twin.device; one counted nowhere (an old generation's, or one GC
    // collected) is taken to be from either, so a redelivery of it is a duplicate
    const key = s.writer + '\u0000' + s.seq;
    if (!reportedDots.has(key) || backendDots.has(key)) w.backend = Math.max(w.backend, s.seq);
    if (!backendDots.has(key)) w.device = Math.max(w.device, s.seq);
  }
}

/**
 * Rebuild a live state from its document (restore from `twin.snapshots`); v2 documents are upcast.
 * @throws {TwinlogError} `CODEC_BAD_DATA` when the document does not have the layout above;
 * `CODEC_UNSUPPORTED_VERSION` for a document of another version.
 */
export function fromStateDoc(doc: unknown): TwinState {
  if (!isPlainObject(doc) || typeof doc['deviceId'] !== 'string' || !isPlainObject(doc['sections'])) bad('root');
  const state = createTwinState(doc['deviceId']);
  if (doc['v'] === STATE_DOC_VERSION) readV3(doc, state);
  else if (doc['v'] === 2) {
    readV2(doc, state);
    for (const section of SECTIONS) trimWindow(state.sections[section]);
    collectGarbage(state);
  } else {
    throw new TwinlogError('CODEC_UNSUPPORTED_VERSION', `unsupported twin state document version ${String(doc['v'])}`);
  }
  state.collectedTo = state.gcHorizon;
  recountVersion(state);
  return state;
}

/** A deep copy of a state (through its document). */
export function cloneTwinState(state: TwinState): TwinState {
  return fromStateDoc(toStateDoc(state));
}
