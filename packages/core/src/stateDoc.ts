/**
 * The persistent form of a twin's CRDT state: plain arrays and objects that the codec turns into
 * msgpack. Canonical: G1 runs first and every set is sorted, so two states holding the same event
 * set give deep-equal documents (and, with the codec's sorted keys, identical bytes).
 *
 * Layout (stamps are `[wall, counter, writer, seq, op]`, `null` for "none"):
 * ```
 * { deviceId, generation, created, maxStamp, gcHorizon,
 *   dots: Stamp[]                         -- ascending
 *   decided: [writer, seq, Decision][]    -- ascending by dot
 *   sections: { tags | desired | reported: { collected, top, liveDots: Stamp[], root: Node } } }
 * Node = { r?: [stamp, kind, actor, value | null, frozenRank | null], c?: stamp, k?: { key: Node } }
 * ```
 */
import { TwinlogError } from './errors.ts';
import { isPlainObject, type Json, type Scalar } from './json.ts';
import { compareStamps, MIN_STAMP, type Stamp } from './stamp.ts';
import {
  addDot,
  allDots,
  collectGarbage,
  createTwinState,
  DEL,
  VAL,
  type Decision,
  type RegKind,
  type SectionState,
  type TrieNode,
  type TwinState,
} from './twinState.ts';

export type StampDoc = [number, number, string, number, 0 | 1];
export interface NodeDoc {
  r?: [StampDoc, RegKind, string, Json | null, number | null];
  c?: StampDoc;
  k?: Record<string, NodeDoc>;
}
export interface SectionDoc {
  collected: number;
  top: StampDoc | null;
  liveDots: StampDoc[];
  root: NodeDoc;
}
export type DecisionDoc =
  | { accepted: true; etag: string; stamp: StampDoc }
  | { accepted: false; code: string; message: string; etag: string | null; stamp: StampDoc };
export interface TwinStateDoc {
  deviceId: string;
  generation: StampDoc | null;
  created: StampDoc | null;
  maxStamp: StampDoc | null;
  gcHorizon: StampDoc | null;
  dots: StampDoc[];
  decided: [string, number, DecisionDoc][];
  sections: { tags: SectionDoc; desired: SectionDoc; reported: SectionDoc };
}

const toStamp = (s: Stamp): StampDoc => [s.wall, s.counter, s.writer, s.seq, s.op];
const toOptStamp = (s: Stamp | undefined): StampDoc | null =>
  s === undefined || compareStamps(s, MIN_STAMP) === 0 ? null : toStamp(s);

function nodeDoc(node: TrieNode): NodeDoc {
  const out: NodeDoc = {};
  if (node.stamp !== undefined) {
    out.r = [toStamp(node.stamp), node.kind, node.actor, node.kind === VAL ? (node.value as Json) : null, node.frozenRank ?? null];
  }
  if (node.clr !== undefined) out.c = toStamp(node.clr);
  if (node.kids !== undefined) {
    const k: Record<string, NodeDoc> = {};
    for (const key of [...node.kids.keys()].sort()) k[key] = nodeDoc(node.kids.get(key)!);
    out.k = k;
  }
  return out;
}

function sectionDoc(st: SectionState): SectionDoc {
  return { collected: st.collected, top: toOptStamp(st.top), liveDots: st.liveDots.map(toStamp), root: nodeDoc(st.root) };
}

/**
 * The canonical persistent document of a state. Runs G1 on `state` first (which changes nothing
 * observable).
 */
export function toStateDoc(state: TwinState): TwinStateDoc {
  collectGarbage(state);
  const dots = [...allDots(state)].sort(compareStamps).map(toStamp);
  const decided: [string, number, DecisionDoc][] = [];
  for (const [, d] of state.decided) {
    const doc: DecisionDoc = d.accepted
      ? { accepted: true, etag: d.etag, stamp: toStamp(d.stamp) }
      : { accepted: false, code: d.code, message: d.message, etag: d.etag ?? null, stamp: toStamp(d.stamp) };
    decided.push([d.stamp.writer, d.stamp.seq, doc]);
  }
  decided.sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1));
  return {
    deviceId: state.deviceId,
    generation: toOptStamp(state.generation),
    created: toOptStamp(state.created),
    maxStamp: toOptStamp(state.maxStamp),
    gcHorizon: toOptStamp(state.gcHorizon),
    dots,
    decided,
    sections: {
      tags: sectionDoc(state.sections.tags),
      desired: sectionDoc(state.sections.desired),
      reported: sectionDoc(state.sections.reported),
    },
  };
}

function bad(what: string): never {
  throw new TwinlogError('CODEC_BAD_DATA', `invalid twin state document: ${what}`);
}

function fromStamp(d: unknown): Stamp {
  if (
    !Array.isArray(d) || d.length !== 5 ||
    !Number.isSafeInteger(d[0]) || !Number.isSafeInteger(d[1]) || typeof d[2] !== 'string' ||
    !Number.isSafeInteger(d[3]) || (d[4] !== 0 && d[4] !== 1)
  ) {
    bad('stamp');
  }
  return { wall: d[0] as number, counter: d[1] as number, writer: d[2] as string, seq: d[3] as number, op: d[4] as 0 | 1 };
}
const fromOptStamp = (d: unknown): Stamp => (d === null ? MIN_STAMP : fromStamp(d));

function fromNode(d: unknown, depth: number): TrieNode {
  if (!isPlainObject(d) || depth > 64) bad('node');
  const node: TrieNode = { stamp: undefined, kind: DEL, value: undefined, actor: '', frozenRank: undefined, clr: undefined, kids: undefined };
  const r = d['r'];
  if (r !== undefined) {
    if (!Array.isArray(r) || r.length !== 5 || typeof r[2] !== 'string' || ![0, 1, 2].includes(r[1] as number)) bad('register');
    const kind = r[1] as RegKind;
    node.stamp = fromStamp(r[0]);
    node.kind = kind;
    node.value = kind === VAL ? (r[3] as Scalar | Json[]) : undefined;
    node.actor = r[2] as string;
    node.frozenRank = typeof r[4] === 'number' ? r[4] : undefined;
  }
  if (d['c'] !== undefined) node.clr = fromStamp(d['c']);
  const k = d['k'];
  if (k !== undefined) {
    if (!isPlainObject(k)) bad('children');
    node.kids = new Map();
    for (const key of Object.keys(k)) node.kids.set(key, fromNode(k[key], depth + 1));
  }
  return node;
}

function fromSection(d: unknown, into: SectionState): void {
  if (!isPlainObject(d) || !Number.isSafeInteger(d['collected']) || !Array.isArray(d['liveDots'])) bad('section');
  into.collected = d['collected'] as number;
  into.top = d['top'] === null ? undefined : fromStamp(d['top']);
  into.liveDots = (d['liveDots'] as unknown[]).map(fromStamp);
  const root = fromNode(d['root'], 0);
  into.root.clr = root.clr;
  into.root.kids = root.kids;
}

/**
 * Rebuild a live state from its document (restore from `twin.snapshots`).
 * @throws {TwinlogError} `CODEC_BAD_DATA` when the document does not have the layout above.
 */
export function fromStateDoc(doc: unknown): TwinState {
  if (!isPlainObject(doc) || typeof doc['deviceId'] !== 'string' || !isPlainObject(doc['sections'])) bad('root');
  const state = createTwinState(doc['deviceId'] as string);
  state.generation = fromOptStamp(doc['generation']);
  state.created = fromOptStamp(doc['created']);
  state.maxStamp = fromOptStamp(doc['maxStamp']);
  state.gcHorizon = fromOptStamp(doc['gcHorizon']);
  if (!Array.isArray(doc['dots']) || !Array.isArray(doc['decided'])) bad('dots');
  for (const d of doc['dots'] as unknown[]) {
    addDot(state, fromStamp(d));
  }
  for (const entry of doc['decided'] as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3 || !isPlainObject(entry[2])) bad('decision');
    const d = entry[2] as Record<string, unknown>;
    const stamp = fromStamp(d['stamp']);
    const decision: Decision = d['accepted'] === true
      ? { accepted: true, etag: String(d['etag']), stamp }
      : {
          accepted: false,
          code: d['code'] as Extract<Decision, { accepted: false }>['code'],
          message: String(d['message']),
          etag: typeof d['etag'] === 'string' ? d['etag'] : undefined,
          stamp,
        };
    state.decided.set(stamp.writer + '\u0000' + stamp.seq, decision);
  }
  const sections = doc['sections'] as Record<string, unknown>;
  for (const section of ['tags', 'desired', 'reported'] as const) fromSection(sections[section], state.sections[section]);
  return state;
}

/** A deep copy of a state (through its document). */
export function cloneTwinState(state: TwinState): TwinState {
  return fromStateDoc(toStateDoc(state));
}

