/**
 * The twin fold (crdt-fold.md §5, §9): a join-semilattice of per-path last-writer-wins registers and
 * clear watermarks, held in a trie, plus the dot sets that give versions.
 *
 * Contract: folding any permutation of a set of events, with any duplicates, gives states whose
 * rendered twins (view, `$metadata`, versions, etag) are identical. The fold never reads a clock:
 * every stamp travels inside its event. State is mutated in place; the owning task is single-threaded.
 */
import type { EventKind, Section, TwinEvent } from './event.ts';
import type { Json, Patch, Scalar } from './json.ts';
import { compareStamps, maxStamp, MIN_STAMP, stampOf, type Stamp } from './stamp.ts';

/** Register kinds: a tombstone, "this path is an object", or a scalar/array value. */
export const DEL = 0;
export const OBJ = 1;
export const VAL = 2;
export type RegKind = typeof DEL | typeof OBJ | typeof VAL;

/**
 * A trie node: the last-writer-wins register of one path (flattened into the node: `stamp`
 * undefined means "no register", i.e. bottom), its clear watermark, and its children.
 */
export interface TrieNode {
  stamp: Stamp | undefined;
  kind: RegKind;
  value: Scalar | Json[] | undefined;
  actor: string;
  /** `$lastUpdatedVersion` fixed by GC once the rank can no longer change (§9). */
  frozenRank: number | undefined;
  clr: Stamp | undefined;
  kids: Kids | undefined;
}

/**
 * The children of a trie node. Up to {@link SMALL_KIDS} of them live in one array alternating key
 * and node, searched linearly: twin objects are mostly small, and a short contiguous scan beats a
 * hash map that is allocated and regrown per node. A node with more children switches to a Map.
 */
export type Kids = (string | TrieNode)[] | Map<string, TrieNode>;
const SMALL_KIDS = 16;

/** The child of `node` under `key`, if any. */
export function kidOf(node: TrieNode, key: string): TrieNode | undefined {
  const kids = node.kids;
  if (kids === undefined) return undefined;
  if (!Array.isArray(kids)) return kids.get(key);
  for (let i = 0; i < kids.length; i += 2) if (kids[i] === key) return kids[i + 1] as TrieNode;
  return undefined;
}

/** The children of `node` as `[key, node]` pairs, in insertion order (a copy: safe to delete while iterating). */
export function kidEntries(node: TrieNode): [string, TrieNode][] {
  const kids = node.kids;
  if (kids === undefined) return [];
  if (!Array.isArray(kids)) return [...kids];
  const out: [string, TrieNode][] = [];
  for (let i = 0; i < kids.length; i += 2) out.push([kids[i] as string, kids[i + 1] as TrieNode]);
  return out;
}

/** The keys of `node`'s children, sorted (canonical order). */
export function sortedKidKeys(node: TrieNode): string[] {
  const kids = node.kids;
  if (kids === undefined) return [];
  if (!Array.isArray(kids)) return [...kids.keys()].sort();
  const out: string[] = [];
  for (let i = 0; i < kids.length; i += 2) out.push(kids[i] as string);
  return out.sort();
}

/** Attach `kid` under `key` (the key must be new). */
export function addKid(node: TrieNode, key: string, kid: TrieNode): void {
  const kids = node.kids;
  if (kids === undefined) node.kids = [key, kid];
  else if (!Array.isArray(kids)) kids.set(key, kid);
  else if (kids.length < 2 * SMALL_KIDS) node.kids = kids.concat(key, kid); // exact size: no slack per node
  else {
    const map = new Map<string, TrieNode>();
    for (let i = 0; i < kids.length; i += 2) map.set(kids[i] as string, kids[i + 1] as TrieNode);
    map.set(key, kid);
    node.kids = map;
  }
}

export function createNode(): TrieNode {
  return { stamp: undefined, kind: DEL, value: undefined, actor: '', frozenRank: undefined, clr: undefined, kids: undefined };
}

export interface SectionState {
  /** The section root; its register is implicit (always an object). */
  readonly root: TrieNode;
  /** Stamps of this section's counted events above the GC horizon, ascending. */
  liveDots: Stamp[];
  /** How many of this section's events GC has moved out of `liveDots`. */
  collected: number;
  /** Highest stamp among this generation's counted events. */
  top: Stamp | undefined;
}

/** The outcome of a recorded decision on a command (§10). */
export type Decision =
  | { readonly accepted: true; readonly etag: string; readonly stamp: Stamp }
  | {
      readonly accepted: false;
      readonly code: 'PRECONDITION_FAILED' | 'DEVICE_NOT_FOUND' | 'SECTION_TOO_LARGE' | 'SECTION_FORBIDDEN';
      readonly message: string;
      readonly etag: string | undefined;
      readonly stamp: Stamp;
    };

export interface TwinState {
  readonly deviceId: string;
  readonly sections: Record<Section, SectionState>;
  /** Stamp of the latest `delete` (MIN_STAMP if none). */
  generation: Stamp;
  /** Stamp of the latest `create` (MIN_STAMP if none); the twin exists iff created > generation. */
  created: Stamp;
  /** Dedupe window: per writer, the folded seqs ascending and their stamps (kept for GC). */
  readonly dots: Map<string, WriterDots>;
  maxStamp: Stamp;
  gcHorizon: Stamp;
  /** The twin `version` (sum of the section counts), kept current by every change to the counts. */
  version: number;
  /** Recorded command decisions, by dot key (owner only). */
  readonly decided: Map<string, Decision>;
}

/**
 * One writer's folded events: `seqs` ascending, `stamps[i]` the stamp of `seqs[i]`. Two flat arrays
 * rather than a map: a writer's seqs mostly arrive in order, so a dot is appended, and a lookup is
 * a binary search over contiguous numbers.
 */
export interface WriterDots {
  /** The writer id; stamps of this writer's events share this one string. */
  readonly writer: string;
  readonly seqs: number[];
  readonly stamps: Stamp[];
  /** The actor of this writer's latest event, shared by registers that repeat it (memory only). */
  actor: string;
}

/** Index of the first seq ≥ `seq`. */
function seqIndex(seqs: readonly number[], seq: number): number {
  let lo = 0;
  let hi = seqs.length;
  if (hi > 0 && seqs[hi - 1]! < seq) return hi;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (seqs[mid]! < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** True when the event with this id has been folded (and not collected). */
export function hasDot(state: TwinState, id: { readonly writer: string; readonly seq: number }): boolean {
  const w = state.dots.get(id.writer);
  if (w === undefined) return false;
  const i = seqIndex(w.seqs, id.seq);
  return w.seqs[i] === id.seq;
}

/** Every dot stamp the state holds (dedupe window), in no particular order. */
export function* allDots(state: TwinState): Iterable<Stamp> {
  for (const w of state.dots.values()) yield* w.stamps;
}

/** Record a dot (used by restore and join; `applyEvent` records its own); a known dot is kept as it is. */
export function addDot(state: TwinState, s: Stamp): void {
  let w = state.dots.get(s.writer);
  if (w === undefined) state.dots.set(s.writer, (w = { writer: s.writer, seqs: [], stamps: [], actor: '' }));
  const i = seqIndex(w.seqs, s.seq);
  if (w.seqs[i] !== s.seq) insertDotAt(w, i, s);
}

function insertDotAt(w: WriterDots, i: number, s: Stamp): void {
  if (i === w.seqs.length) {
    w.seqs.push(s.seq);
    w.stamps.push(s);
  } else {
    w.seqs.splice(i, 0, s.seq);
    w.stamps.splice(i, 0, s);
  }
}

/** What {@link applyEvent} did with an event. */
export type ApplyOutcome = 'APPLIED' | 'DUPLICATE' | 'LATE' | 'COMMAND';

function createSection(): SectionState {
  return { root: createNode(), liveDots: [], collected: 0, top: undefined };
}

/** An empty state: no twin yet (`twinExists` is false until a `create` is folded). */
export function createTwinState(deviceId: string): TwinState {
  return {
    deviceId,
    sections: { tags: createSection(), desired: createSection(), reported: createSection() },
    generation: MIN_STAMP,
    created: MIN_STAMP,
    dots: new Map(),
    maxStamp: MIN_STAMP,
    gcHorizon: MIN_STAMP,
    version: 0,
    decided: new Map(),
  };
}

/** True when the twin's latest `create` is newer than its latest `delete`. */
export function twinExists(state: TwinState): boolean {
  return compareStamps(state.created, state.generation) > 0;
}

/** `$version` of a section: distinct events of the current generation applied to it. */
export function sectionVersion(state: TwinState, section: Section): number {
  const st = state.sections[section];
  return st.collected + st.liveDots.length;
}

/** Twin `version`: the sum of the three section counts. */
export function twinVersion(state: TwinState): number {
  return state.version;
}

/** Recompute the cached twin version after the section counts changed wholesale (a delete, a join, a restore). */
export function recountVersion(state: TwinState): void {
  state.version = sectionVersion(state, 'tags') + sectionVersion(state, 'desired') + sectionVersion(state, 'reported');
}

/** Number of stamps in a sorted array that are ≤ `s`. */
function countLessOrEqual(sorted: readonly Stamp[], s: Stamp): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareStamps(sorted[mid]!, s) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The desired `$version` right after the event stamped `s`: its rank among the generation's events. */
export function rankOf(st: SectionState, node: TrieNode & { stamp: Stamp }): number {
  return node.frozenRank ?? st.collected + countLessOrEqual(st.liveDots, node.stamp);
}

function insertDot(st: SectionState, s: Stamp): void {
  const dots = st.liveDots;
  const last = dots[dots.length - 1];
  if (last === undefined || compareStamps(last, s) < 0) dots.push(s);
  else dots.splice(countLessOrEqual(dots, s), 0, s);
  if (st.top === undefined || compareStamps(s, st.top) > 0) st.top = s;
}

function joinClr(node: TrieNode, s: Stamp): boolean {
  if (node.clr === undefined || compareStamps(s, node.clr) > 0) {
    node.clr = s;
    return true;
  }
  return false;
}

function child(node: TrieNode, key: string): TrieNode {
  let kid = kidOf(node, key);
  if (kid === undefined) addKid(node, key, (kid = createNode()));
  return kid;
}

function joinReg(node: TrieNode, s: Stamp, kind: RegKind, value: Scalar | Json[] | undefined, actor: string): void {
  if (node.stamp === undefined || compareStamps(s, node.stamp) > 0) {
    node.stamp = s;
    node.kind = kind;
    node.value = value;
    node.actor = actor;
    node.frozenRank = undefined;
  }
}

/** Write the registers of one patch object under `node` (crdt-fold.md §5.3 `emit`). */
function emit(node: TrieNode, obj: Patch, s: Stamp, actor: string): void {
  const keys = Object.keys(obj);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const v = obj[key];
    const kid = child(node, key);
    if (v === null || v === undefined) {
      joinReg(kid, s, DEL, undefined, actor);
      if (joinClr(kid, s) && kid.kids !== undefined) pruneDominated(kid, s);
    } else if (typeof v === 'object' && !Array.isArray(v)) {
      joinReg(kid, s, OBJ, undefined, actor);
      emit(kid, v as Patch, s, actor);
    } else {
      joinReg(kid, s, VAL, v as Scalar | Json[], actor);
      if (joinClr(kid, s) && kid.kids !== undefined) pruneDominated(kid, s);
    }
  }
}

/**
 * {@link emit} for an event stamped above every register and clear of the section (the section's
 * `top`, see `applyEvent`): every join is won outright, so no old stamp is read, and a value or
 * tombstone simply drops the subtree under it (all of it dominated). This is the common case, an
 * event newer than anything folded so far; the result equals `emit`'s.
 */
function emitFresh(node: TrieNode, obj: Patch, s: Stamp, actor: string): void {
  const keys = Object.keys(obj);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const v = obj[key];
    const kid = child(node, key);
    kid.stamp = s;
    kid.actor = actor;
    kid.frozenRank = undefined;
    if (v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v)) {
      kid.kind = OBJ;
      kid.value = undefined;
      emitFresh(kid, v as Patch, s, actor);
    } else {
      kid.kind = v === null || v === undefined ? DEL : VAL;
      kid.value = v === null ? undefined : (v as Scalar | Json[] | undefined);
      kid.clr = s;
      kid.kids = undefined;
    }
  }
}

/**
 * G1 (§9.1): drop registers and clears under `node` that `eff` dominates; they can never become
 * visible again. Returns true when `node` has no children left.
 */
export function pruneDominated(node: TrieNode, eff: Stamp): boolean {
  return filterKids(node, (kid) => {
    if (kid.stamp !== undefined && compareStamps(kid.stamp, eff) <= 0) clearReg(kid);
    if (kid.clr !== undefined && compareStamps(kid.clr, eff) <= 0) kid.clr = undefined;
    const kidEff = kid.clr !== undefined && compareStamps(kid.clr, eff) > 0 ? kid.clr : eff;
    const empty = pruneDominated(kid, kidEff);
    return !(empty && kid.stamp === undefined && kid.clr === undefined);
  });
}

/**
 * Visit every child of `node`, keeping those for which `keep` returns true (in place, no copy).
 * Returns true when `node` is left without children.
 */
function filterKids(node: TrieNode, keep: (kid: TrieNode) => boolean): boolean {
  const kids = node.kids;
  if (kids === undefined) return true;
  if (!Array.isArray(kids)) {
    for (const [key, kid] of kids) if (!keep(kid)) kids.delete(key);
    if (kids.size === 0) node.kids = undefined;
  } else {
    let kept = 0;
    for (let i = 0; i < kids.length; i += 2) {
      const kid = kids[i + 1] as TrieNode;
      if (!keep(kid)) continue;
      kids[kept++] = kids[i]!;
      kids[kept++] = kid;
    }
    kids.length = kept;
    if (kept === 0) node.kids = undefined;
  }
  return node.kids === undefined;
}

function clearReg(node: TrieNode): void {
  node.stamp = undefined;
  node.kind = DEL;
  node.value = undefined;
  node.actor = '';
  node.frozenRank = undefined;
}

function countEvent(state: TwinState, section: Section, s: Stamp): void {
  insertDot(state.sections[section], s);
  state.version++;
}

function newGeneration(state: TwinState, d: Stamp): void {
  if (compareStamps(d, state.generation) <= 0) return;
  state.generation = d;
  if (compareStamps(state.created, d) <= 0) state.created = MIN_STAMP;
  for (const section of ['tags', 'desired', 'reported'] as const) {
    const st = state.sections[section];
    if (joinClr(st.root, d)) pruneDominated(st.root, d);
    st.liveDots = st.liveDots.slice(countLessOrEqual(st.liveDots, d));
    st.collected = 0;
    st.top = st.liveDots[st.liveDots.length - 1];
  }
  recountVersion(state);
}

/**
 * Fold one event into the state (crdt-fold.md §5.3). The event must have passed stateless
 * validation (`validateEvent`); records carrying `cond` are commands and are skipped here (the
 * owner decides them with `decideCommands`).
 *
 * Returns `DUPLICATE` for an id already folded, `LATE` for an event at or below the GC horizon
 * (an incident if it is not a duplicate), `COMMAND` for a command, else `APPLIED`.
 *
 * @example
 * const s = createTwinState('dev1')
 * applyEvent(s, createEvent)
 * applyEvent(s, { ...patchEvent, section: 'desired', patch: { fw: '1.2' } })
 */
export function applyEvent(state: TwinState, e: TwinEvent): ApplyOutcome {
  if (e.cond !== undefined) return 'COMMAND';
  let w = state.dots.get(e.id.writer);
  const at = w === undefined ? 0 : seqIndex(w.seqs, e.id.seq);
  if (w !== undefined && w.seqs[at] === e.id.seq) return 'DUPLICATE';
  // The state keeps one string per writer and per writer's actor: a decoded event's own copies die young.
  const s: Stamp = { wall: e.stamp.wall, counter: e.stamp.counter, writer: w === undefined ? e.id.writer : w.writer, seq: e.id.seq, op: 1 };
  if (compareStamps(s, state.gcHorizon) <= 0) return 'LATE';
  if (w === undefined) state.dots.set(s.writer, (w = { writer: s.writer, seqs: [], stamps: [], actor: e.actor }));
  else if (w.actor !== e.actor) w.actor = e.actor;
  const actor = w.actor;
  insertDotAt(w, at, s);
  if (compareStamps(s, state.maxStamp) > 0) state.maxStamp = s;
  const kind: EventKind = e.section;
  if (kind === 'delete') {
    newGeneration(state, s);
    return 'APPLIED';
  }
  if (compareStamps(s, state.generation) <= 0) return 'APPLIED';
  if (kind === 'create') {
    if (compareStamps(s, state.created) > 0) state.created = s;
    countEvent(state, 'desired', s);
    countEvent(state, 'reported', s);
    return 'APPLIED';
  }
  const st = state.sections[kind];
  // Every register and clear of the section is at most its top (or the generation, which `s` exceeds).
  const fresh = st.top === undefined || compareStamps(s, st.top) > 0;
  if (fresh) {
    st.liveDots.push(s);
    st.top = s;
  } else insertDot(st, s);
  state.version++;
  if (e.op === 'replace') {
    const clear = stampOf(e.stamp, e.id, 0);
    if (joinClr(st.root, clear)) pruneDominated(st.root, clear);
  }
  if (fresh) emitFresh(st.root, e.patch, s, actor);
  else emit(st.root, e.patch, s, actor);
  return 'APPLIED';
}

function joinNode(a: TrieNode, b: TrieNode): void {
  if (b.stamp !== undefined && (a.stamp === undefined || compareStamps(b.stamp, a.stamp) > 0)) {
    joinReg(a, b.stamp, b.kind, b.value, b.actor);
    a.frozenRank = b.frozenRank;
  } else if (b.stamp !== undefined && a.stamp !== undefined && compareStamps(b.stamp, a.stamp) === 0) {
    a.frozenRank ??= b.frozenRank;
  }
  if (b.clr !== undefined) joinClr(a, b.clr);
  for (const [key, kid] of kidEntries(b)) joinNode(child(a, key), kid);
}

function unionSorted(a: readonly Stamp[], b: readonly Stamp[]): Stamp[] {
  const out: Stamp[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    const c = x === undefined ? 1 : y === undefined ? -1 : compareStamps(x, y);
    if (c <= 0) {
      out.push(x!);
      i++;
      if (c === 0) j++;
    } else {
      out.push(y!);
      j++;
    }
  }
  return out;
}

/**
 * The join `a ⊔ b` (crdt-fold.md §5.2), written into `a`: registers and clears take the pointwise
 * maximum, dot sets are unioned, the generation is the maximum. Defined between states with the
 * same GC horizon; `collected` takes the larger count, which is exact for replicas of one log
 * (one replica's collected events include the other's).
 */
export function joinTwinStates(a: TwinState, b: TwinState): TwinState {
  for (const s of allDots(b)) addDot(a, s);
  for (const [k, d] of b.decided) if (!a.decided.has(k)) a.decided.set(k, d);
  a.maxStamp = maxStamp(a.maxStamp, b.maxStamp);
  a.created = maxStamp(a.created, b.created);
  for (const section of ['tags', 'desired', 'reported'] as const) {
    const sa = a.sections[section];
    const sb = b.sections[section];
    joinNode(sa.root, sb.root);
    sa.liveDots = unionSorted(sa.liveDots, sb.liveDots);
    if (sb.top !== undefined && (sa.top === undefined || compareStamps(sb.top, sa.top) > 0)) sa.top = sb.top;
  }
  const generation = maxStamp(a.generation, b.generation);
  for (const section of ['tags', 'desired', 'reported'] as const) {
    const sa = a.sections[section];
    const sb = b.sections[section];
    // collected events of an older generation lie below the shared horizon, hence below the newer delete
    const ca = compareStamps(a.generation, generation) === 0 ? sa.collected : 0;
    const cb = compareStamps(b.generation, generation) === 0 ? sb.collected : 0;
    sa.collected = Math.max(ca, cb);
    sa.liveDots = sa.liveDots.slice(countLessOrEqual(sa.liveDots, generation));
    if (sa.top !== undefined && compareStamps(sa.top, generation) <= 0) sa.top = sa.liveDots[sa.liveDots.length - 1];
  }
  a.generation = generation;
  recountVersion(a);
  if (compareStamps(a.created, generation) <= 0) a.created = MIN_STAMP;
  return a;
}

function freezeAndDrop(node: TrieNode, st: SectionState, horizon: Stamp, ranks: boolean): boolean {
  return filterKids(node, (kid) => {
    if (kid.stamp !== undefined && compareStamps(kid.stamp, horizon) <= 0) {
      if (kid.kind === DEL) clearReg(kid);
      else if (ranks) kid.frozenRank = rankOf(st, kid as TrieNode & { stamp: Stamp });
    }
    if (kid.clr !== undefined && compareStamps(kid.clr, horizon) <= 0) kid.clr = undefined;
    const empty = freezeAndDrop(kid, st, horizon, ranks);
    return !(empty && kid.stamp === undefined && kid.clr === undefined);
  });
}

/**
 * Garbage collection (crdt-fold.md §9): G1 over every section, then, with a horizon, G2: freeze
 * ranks below it, drop tombstones, clears, dots and decisions older than it. Preserves the view,
 * the metadata and the versions, and all future results provided no event stamped at or below
 * `horizon` is applied afterwards (those come back `LATE`). Without a horizon only G1 runs.
 */
export function collectGarbage(state: TwinState, horizon?: Stamp): void {
  for (const section of ['tags', 'desired', 'reported'] as const) {
    const root = state.sections[section].root;
    pruneDominated(root, root.clr ?? MIN_STAMP);
  }
  if (horizon === undefined || compareStamps(horizon, state.gcHorizon) <= 0) return;
  for (const section of ['tags', 'desired', 'reported'] as const) {
    const st = state.sections[section];
    freezeAndDrop(st.root, st, horizon, section === 'desired');
    if (st.root.clr !== undefined && compareStamps(st.root.clr, horizon) <= 0) st.root.clr = undefined;
    const n = countLessOrEqual(st.liveDots, horizon);
    st.collected += n;
    st.liveDots = st.liveDots.slice(n);
  }
  for (const [writer, w] of state.dots) {
    let kept = 0;
    for (let i = 0; i < w.seqs.length; i++) {
      if (compareStamps(w.stamps[i]!, horizon) <= 0) continue;
      w.seqs[kept] = w.seqs[i]!;
      w.stamps[kept++] = w.stamps[i]!;
    }
    w.seqs.length = kept;
    w.stamps.length = kept;
    if (kept === 0) state.dots.delete(writer);
  }
  for (const [k, d] of state.decided) if (compareStamps(d.stamp, horizon) <= 0) state.decided.delete(k);
  state.gcHorizon = horizon;
}
