/**
 * The twin fold (docs/fold.md, docs/bounded-state.md): a join-semilattice of per-path
 * last-writer-wins registers and clear watermarks, held in a trie, plus a compact causal context
 * that gives dedupe and versions in space bounded by the twin, not by its history.
 *
 * Contract: folding any permutation of a set of events, with any duplicates, gives states whose
 * rendered twins (view, `$metadata`, versions, etag) and state documents are identical, provided
 * no event arrives after the window that judges it has passed it (docs/bounded-state.md, "The
 * laws, restated"); such an event is refused as `LATE`, never dropped silently. The fold never
 * reads a clock: every stamp travels inside its event. State is mutated in place; the owning task
 * is single-threaded.
 */
import type { EventKind, Section, TwinEvent } from './event.ts';
import type { Json, Patch, Scalar } from './json.ts';
import { compareStamps, maxStamp, MIN_STAMP, stampOf, type Stamp } from './stamp.ts';
import {
  addKid,
  clearReg,
  createNode,
  DEL,
  filterKids,
  forEachNode,
  kidEntries,
  kidOf,
  OBJ,
  pruneDominated,
  VAL,
  type RegKind,
  type TrieNode,
} from './trie.ts';

export * from './trie.ts';

/**
 * The window of exact causal history each section keeps (docs/bounded-state.md): at most
 * `RECENT_MAX` of its latest counted events, and none more than `REORDER_WINDOW_MS` older than the
 * section's newest. Constants of the fold, not options: a state document depends on them.
 */
export const RECENT_MAX = 32;
export const REORDER_WINDOW_MS = 10 * 60_000;
/** Recorded command decisions kept per twin (the newest by stamp), besides the GC horizon. */
export const DECIDED_MAX = 64;

const SECTIONS = ['tags', 'desired', 'reported'] as const;

export interface SectionState {
  /** The section root; its register is implicit (always an object). */
  readonly root: TrieNode;
  /** Distinct events of the current generation counted in this section: its `$version`. */
  count: number;
  /** Stamps of the section's counted events above `floor`, ascending (the exact window). */
  recent: Stamp[];
  /** Highest stamp that left `recent` (MIN_STAMP if none); every counted event at or below it left too. */
  floor: Stamp;
  /** Highest stamp among this generation's counted events. */
  top: Stamp | undefined;
}

/** The outcome of a recorded decision on a command (docs/fold.md "Commands: conditional writes"). */
export type Decision =
  | {
      readonly accepted: true;
      readonly etag: string;
      readonly stamp: Stamp;
      /** The command's idempotency key, when it had one (docs/idempotency.md). */
      readonly key?: string;
    }
  | {
      readonly accepted: false;
      readonly code:
        'PRECONDITION_FAILED' | 'DEVICE_NOT_FOUND' | 'SECTION_TOO_LARGE' | 'SECTION_FORBIDDEN' | 'DUPLICATE_WRITE';
      readonly message: string;
      readonly etag: string | undefined;
      readonly stamp: Stamp;
    };

/**
 * What the twin remembers of one writer: the highest seq it folded from each input topic and its
 * highest stamp. A writer's records reach one topic partition in seq order, so below a section's
 * exact window a seq at or under the writer's highest is a duplicate (docs/bounded-state.md).
 */
export interface WriterContext {
  /** The writer id; stamps of this writer's events share this one string. */
  readonly writer: string;
  /** Highest seq folded from `twin.backend` (tags, desired, create, delete); -1 if none. */
  backend: number;
  /** Highest seq folded from `twin.device` (reported); -1 if none. */
  device: number;
  /** Highest stamp among the writer's folded events: the writer is dropped once the GC horizon passes it. */
  top: Stamp;
  /** The actor of this writer's latest event, shared by registers that repeat it (memory only). */
  actor: string;
}

export interface TwinState {
  readonly deviceId: string;
  readonly sections: Record<Section, SectionState>;
  /** Stamp of the latest `delete` (MIN_STAMP if none). */
  generation: Stamp;
  /** Stamp of the latest `create` (MIN_STAMP if none); the twin exists iff created > generation. */
  created: Stamp;
  /** The causal context: one entry per writer active above the GC horizon. */
  readonly writers: Map<string, WriterContext>;
  maxStamp: Stamp;
  /** Events stamped at or below it are `LATE` (docs/bounded-state.md "The GC horizon"); raised by the projector from append times. */
  gcHorizon: Stamp;
  /** How far G2 has collected (memory only; `toStateDoc` always collects up to `gcHorizon`). */
  collectedTo: Stamp;
  /** The twin `version` (sum of the section counts), kept current by every change to the counts. */
  version: number;
  /** Recorded command decisions, by dot key (owner only); bounded by the horizon and {@link DECIDED_MAX}. */
  readonly decided: Map<string, Decision>;
}

/** What {@link applyEvent} did with an event. */
export type ApplyOutcome = 'APPLIED' | 'DUPLICATE' | 'LATE' | 'COMMAND';

function createSection(): SectionState {
  return { root: createNode(), count: 0, recent: [], floor: MIN_STAMP, top: undefined };
}

/** An empty state: no twin yet (`twinExists` is false until a `create` is folded). */
export function createTwinState(deviceId: string): TwinState {
  return {
    deviceId,
    sections: { tags: createSection(), desired: createSection(), reported: createSection() },
    generation: MIN_STAMP,
    created: MIN_STAMP,
    writers: new Map(),
    maxStamp: MIN_STAMP,
    gcHorizon: MIN_STAMP,
    collectedTo: MIN_STAMP,
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
  return state.sections[section].count;
}

/** Twin `version`: the sum of the three section counts. */
export function twinVersion(state: TwinState): number {
  return state.version;
}

/** Recompute the cached twin version after the section counts changed wholesale (a delete, a join, a restore). */
export function recountVersion(state: TwinState): void {
  state.version = state.sections.tags.count + state.sections.desired.count + state.sections.reported.count;
}

/** Number of stamps in a sorted array that are ≤ `s`. */
export function countLessOrEqual(sorted: readonly Stamp[], s: Stamp): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareStamps(sorted[mid]!, s) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const topicOf = (kind: EventKind): 'backend' | 'device' => (kind === 'reported' ? 'device' : 'backend');

/** The section whose window judges an event of this kind (create counts in desired and reported). */
const windowOf = (kind: EventKind): Section | undefined =>
  kind === 'delete' ? undefined : kind === 'create' ? 'desired' : kind;

/** True when writer `w` has folded a seq at least `seq` from the event's topic. */
function writerHas(w: WriterContext | undefined, kind: EventKind, seq: number): boolean {
  return w !== undefined && seq <= (topicOf(kind) === 'device' ? w.device : w.backend);
}

/**
 * True when the window holds the event with `s`'s id. By id, not by stamp: a record sent again under
 * the same id is the same event even if a careless writer stamped it anew.
 */
function windowHolds(recent: readonly Stamp[], s: Stamp): boolean {
  for (let i = recent.length - 1; i >= 0; i--) {
    const r = recent[i]!;
    if (r.seq === s.seq && r.writer === s.writer) return true;
  }
  return false;
}

/**
 * Classify an event against the causal context: `DUPLICATE`, `LATE` (at or below the horizon, or
 * below a window whose counts or ranks it would change), `BELOW` (new, below its section's window:
 * folded exactly, but not kept in the window) or `NEW`.
 */
function classify(
  state: TwinState,
  w: WriterContext | undefined,
  kind: EventKind,
  s: Stamp,
): 'DUPLICATE' | 'LATE' | 'BELOW' | 'NEW' {
  const late = compareStamps(s, state.gcHorizon) <= 0;
  if (kind === 'delete') {
    const g = compareStamps(s, state.generation);
    if (g === 0 || (g < 0 && writerHas(w, kind, s.seq))) return 'DUPLICATE';
    if (late) return 'LATE';
    if (g < 0) return 'BELOW'; // an older delete: it changes nothing
    for (const section of SECTIONS) if (compareStamps(s, state.sections[section].floor) <= 0) return 'LATE';
    return 'NEW';
  }
  if (compareStamps(s, state.generation) <= 0) return writerHas(w, kind, s.seq) ? 'DUPLICATE' : late ? 'LATE' : 'BELOW';
  const st = state.sections[windowOf(kind)!];
  if (compareStamps(s, st.floor) > 0) {
    // every event in the window was noted by its writer, so a seq above the writer's highest is new
    if (writerHas(w, kind, s.seq) && windowHolds(st.recent, s)) return 'DUPLICATE';
    return late ? 'LATE' : 'NEW';
  }
  if (writerHas(w, kind, s.seq)) return 'DUPLICATE';
  // below the desired window the ranks of its registers can no longer be computed
  return late || (kind !== 'reported' && kind !== 'tags') ? 'LATE' : 'BELOW';
}

/**
 * True when the fold would treat this event as already folded (a duplicate). Exact inside the
 * sections' windows; below them it trusts each writer's seq order (docs/bounded-state.md).
 */
export function isFolded(state: TwinState, e: TwinEvent): boolean {
  const w = state.writers.get(e.id.writer);
  return classify(state, w, e.section, stampOf(e.stamp, e.id)) === 'DUPLICATE';
}

function noteWriter(
  state: TwinState,
  w: WriterContext | undefined,
  kind: EventKind,
  s: Stamp,
  actor: string,
): WriterContext {
  if (w === undefined) {
    w = { writer: s.writer, backend: -1, device: -1, top: s, actor };
    state.writers.set(s.writer, w);
  } else if (compareStamps(s, w.top) > 0) w.top = s;
  if (w.actor !== actor) w.actor = actor;
  if (topicOf(kind) === 'device') {
    if (s.seq > w.device) w.device = s.seq;
  } else if (s.seq > w.backend) w.backend = s.seq;
  return w;
}

/** Add one to the rank of every register stamped above `s` (a late desired event sorts beneath them). */
function bumpRanks(root: TrieNode, s: Stamp): void {
  forEachNode(root, (n) => {
    if (n.stamp !== undefined && compareStamps(n.stamp, s) > 0) n.rank++;
  });
}

/** Drop window entries beyond {@link RECENT_MAX} or older than the reorder window; `floor` follows. */
export function trimWindow(st: SectionState): void {
  const recent = st.recent;
  const top = st.top;
  let n = recent.length > RECENT_MAX ? recent.length - RECENT_MAX : 0;
  if (top !== undefined) while (n < recent.length && recent[n]!.wall < top.wall - REORDER_WINDOW_MS) n++;
  if (n === 0) return;
  st.floor = recent[n - 1]!;
  recent.splice(0, n);
}

/**
 * Count event `s` in a section and return its rank (the section's `$version` right after it, in
 * stamp order). `below` events (under the window) count but stay out of the window.
 */
function countEvent(state: TwinState, section: Section, s: Stamp, below: boolean): number {
  const st = state.sections[section];
  st.count++;
  state.version++;
  if (below) return 0;
  const recent = st.recent;
  if (st.top === undefined || compareStamps(s, st.top) > 0) {
    recent.push(s);
    st.top = s;
    trimWindow(st);
    return st.count;
  }
  if (section === 'desired') bumpRanks(st.root, s);
  const i = countLessOrEqual(recent, s);
  recent.splice(i, 0, s);
  const rank = st.count - (recent.length - i - 1);
  trimWindow(st);
  return rank;
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

function joinReg(
  node: TrieNode,
  s: Stamp,
  kind: RegKind,
  value: Scalar | Json[] | undefined,
  actor: string,
  rank: number,
): void {
  if (node.stamp === undefined || compareStamps(s, node.stamp) > 0) {
    node.stamp = s;
    node.kind = kind;
    node.value = value;
    node.actor = actor;
    node.rank = rank;
  }
}

/** Write the registers of one patch object under `node` (docs/fold.md, "Applying an event"). */
function emit(node: TrieNode, obj: Patch, s: Stamp, actor: string, rank: number): void {
  // for-in, not Object.keys: no array per object (patches are plain objects: own keys only)
  for (const key in obj) {
    const v = obj[key];
    const kid = child(node, key);
    if (v === null || v === undefined) {
      joinReg(kid, s, DEL, undefined, actor, rank);
      if (joinClr(kid, s) && kid.kids !== undefined) pruneDominated(kid, s);
    } else if (typeof v === 'object' && !Array.isArray(v)) {
      joinReg(kid, s, OBJ, undefined, actor, rank);
      emit(kid, v, s, actor, rank);
    } else {
      joinReg(kid, s, VAL, v, actor, rank);
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
function emitFresh(node: TrieNode, obj: Patch, s: Stamp, actor: string, rank: number): void {
  for (const key in obj) {
    const v = obj[key];
    const kid = child(node, key);
    kid.stamp = s;
    kid.actor = actor;
    kid.rank = rank;
    if (v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v)) {
      kid.kind = OBJ;
      kid.value = undefined;
      emitFresh(kid, v, s, actor, rank);
    } else {
      kid.kind = v === null || v === undefined ? DEL : VAL;
      kid.value = v === null ? undefined : v;
      kid.clr = s;
      kid.kids = undefined;
    }
  }
}

/** Recompute every desired rank from the window (valid for registers above the floor). */
function rerankDesired(st: SectionState, pruned: number): void {
  forEachNode(st.root, (n) => {
    if (n.stamp !== undefined && compareStamps(n.stamp, st.floor) > 0)
      n.rank = pruned + countLessOrEqual(st.recent, n.stamp);
  });
}

/** A delete at `d`, above every section's floor (else it is `LATE`): everything at or below `d` goes. */
function newGeneration(state: TwinState, d: Stamp): void {
  state.generation = d;
  if (compareStamps(state.created, d) <= 0) state.created = MIN_STAMP;
  for (const section of SECTIONS) {
    const st = state.sections[section];
    if (joinClr(st.root, d)) pruneDominated(st.root, d);
    st.recent = st.recent.slice(countLessOrEqual(st.recent, d));
    st.floor = MIN_STAMP; // every event at or below the old floor belongs to the deleted twin
    st.count = st.recent.length;
    st.top = st.recent[st.recent.length - 1];
    if (section === 'desired') rerankDesired(st, 0);
  }
  recountVersion(state);
}

/**
 * Fold one event into the state (docs/fold.md, "Applying an event"; docs/bounded-state.md). The event must have
 * passed stateless validation (`validateEvent`); records carrying `cond` are commands and are
 * skipped here (the owner decides them with `decideCommands`).
 *
 * Returns `DUPLICATE` for an event already folded, `LATE` for one the state can no longer fold
 * exactly (at or below the GC horizon, or a desired or lifecycle event below its section's window;
 * the projector sends it to `twin.rejections`), `COMMAND` for a command, else `APPLIED`.
 *
 * @example
 * const s = createTwinState('dev1')
 * applyEvent(s, createEvent)
 * applyEvent(s, { ...patchEvent, section: 'desired', patch: { fw: '1.2' } })
 */
export function applyEvent(state: TwinState, e: TwinEvent): ApplyOutcome {
  if (e.cond !== undefined) return 'COMMAND';
  const kind: EventKind = e.section;
  const w = state.writers.get(e.id.writer);
  // The state keeps one string per writer and per writer's actor: a decoded event's own copies die young.
  const s: Stamp = {
    wall: e.stamp.wall,
    counter: e.stamp.counter,
    writer: w === undefined ? e.id.writer : w.writer,
    seq: e.id.seq,
    op: 1,
  };
  const cls = classify(state, w, kind, s);
  if (cls === 'DUPLICATE' || cls === 'LATE') return cls;
  const actor = noteWriter(state, w, kind, s, e.actor).actor;
  if (compareStamps(s, state.maxStamp) > 0) state.maxStamp = s;
  if (kind === 'delete') {
    if (cls === 'NEW') newGeneration(state, s);
    return 'APPLIED';
  }
  if (compareStamps(s, state.generation) <= 0) return 'APPLIED';
  const below = cls === 'BELOW';
  if (kind === 'create') {
    if (compareStamps(s, state.created) > 0) state.created = s;
    countEvent(state, 'desired', s, false);
    countEvent(state, 'reported', s, compareStamps(s, state.sections.reported.floor) <= 0);
    return 'APPLIED';
  }
  const st = state.sections[kind];
  // Every register and clear of the section is at most its top (or the generation, which `s` exceeds).
  const fresh = st.top === undefined || compareStamps(s, st.top) > 0;
  const rank = countEvent(state, kind, s, below);
  const r = kind === 'desired' ? rank : 0;
  if (e.op === 'replace') {
    const clear = stampOf(e.stamp, e.id, 0);
    if (joinClr(st.root, clear)) pruneDominated(st.root, clear);
  }
  if (fresh) emitFresh(st.root, e.patch, s, actor, r);
  else emit(st.root, e.patch, s, actor, r);
  return 'APPLIED';
}

function joinNode(a: TrieNode, b: TrieNode): void {
  if (b.stamp !== undefined) joinReg(a, b.stamp, b.kind, b.value, b.actor, b.rank);
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
 * The join `a ⊔ b` (docs/fold.md, "The promise"), written into `a`: registers and clears take the pointwise
 * maximum, windows are unioned, writer contexts take their maxima, the generation is the maximum.
 * Defined between states with the same GC horizon. Counts below the windows cannot be unioned
 * without the events, so the side with the higher floor is taken to have folded every event below
 * it (true for replicas of one log, and trivially when no window has moved; docs/bounded-state.md).
 */
export function joinTwinStates(a: TwinState, b: TwinState): TwinState {
  for (const wb of b.writers.values()) {
    const wa = a.writers.get(wb.writer);
    if (wa === undefined) a.writers.set(wb.writer, { ...wb });
    else {
      wa.backend = Math.max(wa.backend, wb.backend);
      wa.device = Math.max(wa.device, wb.device);
      if (compareStamps(wb.top, wa.top) > 0) wa.top = wb.top;
    }
  }
  for (const [k, d] of b.decided) if (!a.decided.has(k)) a.decided.set(k, d);
  a.maxStamp = maxStamp(a.maxStamp, b.maxStamp);
  a.created = maxStamp(a.created, b.created);
  a.gcHorizon = maxStamp(a.gcHorizon, b.gcHorizon);
  const generation = maxStamp(a.generation, b.generation);
  for (const section of SECTIONS) {
    const sa = a.sections[section];
    const sb = b.sections[section];
    joinNode(sa.root, sb.root);
    // events below a window, of the surviving generation only
    const pa = compareStamps(a.generation, generation) === 0 ? sa.count - sa.recent.length : 0;
    const pb = compareStamps(b.generation, generation) === 0 ? sb.count - sb.recent.length : 0;
    const fa = compareStamps(sa.floor, sb.floor);
    const floor = fa >= 0 ? sa.floor : sb.floor;
    const pruned = fa > 0 ? pa : fa < 0 ? pb : Math.max(pa, pb);
    const lowest = maxStamp(floor, generation);
    const union = unionSorted(sa.recent, sb.recent);
    sa.recent = union.slice(countLessOrEqual(union, lowest));
    sa.floor = compareStamps(floor, generation) > 0 ? floor : MIN_STAMP;
    sa.count = pruned + sa.recent.length;
    const top = sb.top !== undefined && (sa.top === undefined || compareStamps(sb.top, sa.top) > 0) ? sb.top : sa.top;
    sa.top = top !== undefined && compareStamps(top, generation) > 0 ? top : sa.recent[sa.recent.length - 1];
    if (section === 'desired') rerankDesired(sa, pruned);
    trimWindow(sa);
  }
  a.generation = generation;
  recountVersion(a);
  if (compareStamps(a.created, generation) <= 0) a.created = MIN_STAMP;
  return a;
}

/** G2 on one trie: drop tombstones and clears stamped at or below the horizon. */
function dropBelow(node: TrieNode, horizon: Stamp): boolean {
  return filterKids(node, (kid) => {
    if (kid.stamp !== undefined && kid.kind === DEL && compareStamps(kid.stamp, horizon) <= 0) clearReg(kid);
    if (kid.clr !== undefined && compareStamps(kid.clr, horizon) <= 0) kid.clr = undefined;
    const empty = dropBelow(kid, horizon);
    return !(empty && kid.stamp === undefined && kid.clr === undefined);
  });
}

/**
 * Raise the GC horizon to `horizon` without collecting yet (never lowers it): from then on events
 * stamped at or below it are `LATE`. Cheap enough to call for every record.
 */
export function raiseHorizon(state: TwinState, horizon: Stamp): void {
  if (compareStamps(horizon, state.gcHorizon) > 0) state.gcHorizon = horizon;
}

/**
 * Garbage collection (docs/fold.md, docs/bounded-state.md): G1 over every section, then G2 up to
 * the GC horizon (raised to `horizon` first when given): tombstones, clears, window entries, idle
 * writers and decisions at or below it go. Preserves the view, the metadata and the versions, and
 * all future results, since no event stamped at or below the horizon is applied afterwards (those
 * come back `LATE`). Decisions are also capped at the newest {@link DECIDED_MAX}.
 */
export function collectGarbage(state: TwinState, horizon?: Stamp): void {
  if (horizon !== undefined) raiseHorizon(state, horizon);
  for (const section of SECTIONS) {
    const root = state.sections[section].root;
    pruneDominated(root, root.clr ?? MIN_STAMP);
  }
  const h = state.gcHorizon;
  if (compareStamps(h, state.collectedTo) > 0) {
    for (const section of SECTIONS) {
      const st = state.sections[section];
      dropBelow(st.root, h);
      if (st.root.clr !== undefined && compareStamps(st.root.clr, h) <= 0) st.root.clr = undefined;
      const n = countLessOrEqual(st.recent, h);
      if (n > 0) {
        st.floor = st.recent[n - 1]!;
        st.recent = st.recent.slice(n);
      }
    }
    for (const [writer, w] of state.writers) if (compareStamps(w.top, h) <= 0) state.writers.delete(writer);
    for (const [k, d] of state.decided) if (compareStamps(d.stamp, h) <= 0) state.decided.delete(k);
    state.collectedTo = h;
  }
  if (state.decided.size > DECIDED_MAX) {
    const newest = [...state.decided].sort((x, y) => compareStamps(y[1].stamp, x[1].stamp));
    for (const [k] of newest.slice(DECIDED_MAX)) state.decided.delete(k);
  }
}
