/**
 * bench:fold — the projector's hot path without I/O, against baselines measured in the same run.
 *
 * Workload: 200,000 msgpack-encoded envelopes over 10,000 devices: one `create` per device, then
 * patches alternating desired and reported, each writing ~5 leaves (4 groups × 8 leaves per section,
 * 10 % of leaves deleted), stamped by one HLC, shuffled across devices.
 *
 * Variants (each pass decodes every envelope from bytes):
 * - decode:  `decodeEvent` only (the codec, with its hostile-input checks) — the baseline;
 * - fold:    decode + `validateEvent` + `applyEvent` + reading the twin version — what the
 *            projector does per record before persisting;
 * - naive:   decode + immer `produce` with a recursive RFC 7396 merge + `JSON.stringify` of the twin,
 *            per event — a plain document store with no CRDT.
 * Two floors, not targets, that show what any fold keeping its twins in JS objects must pay:
 * - plain:   decode + `validateEvent` + the same recursive merge done in place on plain objects, and
 *            a version counter — no stamps, no dedupe, no metadata, no copy, no serialisation;
 * - stamped: the same, but every leaf and object a `{ stamp, value }` record and every event's
 *            stamp kept in the twin's list — the least a last-writer-wins store with versions holds.
 * Each variant runs ROUNDS times, interleaved; the best round counts (least disturbed by noise).
 * Ratios are computed between figures of this same run.
 */
import { decodeEvent, encodeEvent, encodeSnapshot } from '@twinlog/codec';
import {
  applyEvent,
  createHybridClock,
  createTwinState,
  sectionVersion,
  toStateDoc,
  twinVersion,
  validateEvent,
  type JsonObject,
  type Patch,
  type TwinEvent,
  type TwinState,
} from '@twinlog/core';
import { produce } from 'immer';
import { benchEvents } from './workload.ts';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 200_000);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 10_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);

function makeWorkload(): Uint8Array[] {
  return [...benchEvents({ events: EVENTS, devices: DEVICES, startWall: 1_760_000_000_000 })].map(encodeEvent);
}

function time(fn: () => number): { perSecond: number; check: number } {
  const start = process.hrtime.bigint();
  const check = fn();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { perSecond: Math.round(workload.length / seconds), check };
}

function decodeOnly(): number {
  let n = 0;
  for (const bytes of workload) n += decodeEvent(bytes).patch === undefined ? 0 : 1;
  return n;
}

/** Decode and validate one envelope, as the projector does before folding it. */
function decodeValid(bytes: Uint8Array): TwinEvent {
  const e = decodeEvent(bytes);
  const valid = validateEvent(e);
  if (!valid.ok) throw valid.error;
  return e;
}

function fold(): number {
  const twins = new Map<string, TwinState>();
  let versions = 0;
  for (const bytes of workload) {
    const e = decodeValid(bytes);
    let s = twins.get(e.deviceId);
    if (s === undefined) twins.set(e.deviceId, (s = createTwinState(e.deviceId)));
    applyEvent(s, e);
    versions += twinVersion(s);
  }
  return versions;
}

interface NaiveTwin {
  version: number;
  properties: { desired: JsonObject; reported: JsonObject };
}

function mergeInto(target: JsonObject, patch: Patch): void {
  for (const key of Object.keys(patch)) {
    const v = patch[key];
    if (v === null || v === undefined) delete target[key];
    else if (typeof v === 'object' && !Array.isArray(v)) {
      const cur = target[key];
      if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) target[key] = {};
      mergeInto(target[key] as JsonObject, v);
    } else target[key] = v;
  }
}

function naive(): number {
  const twins = new Map<string, NaiveTwin>();
  let bytes = 0;
  for (const raw of workload) {
    const e = decodeEvent(raw);
    const cur = twins.get(e.deviceId) ?? { version: 0, properties: { desired: {}, reported: {} } };
    const next = produce(cur, (draft) => {
      draft.version++;
      if (e.section === 'desired' || e.section === 'reported') mergeInto(draft.properties[e.section], e.patch);
    });
    twins.set(e.deviceId, next);
    bytes += JSON.stringify(next).length;
  }
  return bytes;
}

/** The floors: a mutable store per device, `stamped` adding per-leaf stamps and the event list. */
function plain(): number {
  const twins = new Map<string, NaiveTwin>();
  let versions = 0;
  for (const raw of workload) {
    const e = decodeValid(raw);
    let t = twins.get(e.deviceId);
    if (t === undefined) twins.set(e.deviceId, (t = { version: 0, properties: { desired: {}, reported: {} } }));
    t.version++;
    if (e.section === 'desired' || e.section === 'reported') mergeInto(t.properties[e.section], e.patch);
    versions += t.version;
  }
  return versions;
}

interface StampedLeaf {
  stamp: object;
  value: unknown;
}

function mergeStamped(target: Record<string, StampedLeaf>, patch: Patch, stamp: object): void {
  for (const key of Object.keys(patch)) {
    const v = patch[key];
    const cur = target[key];
    if (v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v)) {
      const kids =
        cur !== undefined && typeof cur.value === 'object' && cur.value !== null && !Array.isArray(cur.value)
          ? (cur.value as Record<string, StampedLeaf>)
          : {};
      if (cur === undefined) target[key] = { stamp, value: kids };
      else {
        cur.stamp = stamp;
        cur.value = kids;
      }
      mergeStamped(kids, v, stamp);
    } else if (cur === undefined) target[key] = { stamp, value: v ?? null };
    else {
      cur.stamp = stamp;
      cur.value = v ?? null;
    }
  }
}

function stamped(): number {
  const twins = new Map<
    string,
    { stamps: object[]; desired: Record<string, StampedLeaf>; reported: Record<string, StampedLeaf> }
  >();
  let versions = 0;
  for (const raw of workload) {
    const e = decodeValid(raw);
    let t = twins.get(e.deviceId);
    if (t === undefined) twins.set(e.deviceId, (t = { stamps: [], desired: {}, reported: {} }));
    const stamp = { wall: e.stamp.wall, counter: e.stamp.counter, writer: e.id.writer, seq: e.id.seq, actor: e.actor };
    t.stamps.push(stamp);
    if (e.section === 'desired' || e.section === 'reported') mergeStamped(t[e.section], e.patch, stamp);
    versions += t.stamps.length;
  }
  return versions;
}

function stateBytes20Leaf(): { state: number; json: number } {
  const s = createTwinState('dev-20');
  let seq = 0;
  const clock = createHybridClock({ physicalNow: () => 1_760_000_000_000 });
  const events: TwinEvent[] = [
    {
      v: 1,
      id: { writer: 'gw-bench-1', seq: ++seq },
      deviceId: 'dev-20',
      section: 'create',
      op: 'merge',
      patch: {},
      stamp: clock.now(),
      actor: 'bench',
    },
  ];
  for (let g = 0; g < 4; g++) {
    const patch: Patch = {
      [`group${g}`]: Object.fromEntries([0, 1, 2, 3, 4].map((l) => [`leaf${l}`, `value-${g}-${l}`])),
    };
    events.push({
      v: 1,
      id: { writer: 'gw-bench-1', seq: ++seq },
      deviceId: 'dev-20',
      section: 'desired',
      op: 'merge',
      patch,
      stamp: clock.now(),
      actor: 'bench',
    });
  }
  for (const e of events) applyEvent(s, e);
  if (sectionVersion(s, 'desired') !== 5) throw new Error('unexpected version');
  return {
    state: encodeSnapshot(toStateDoc(s)).length,
    json: JSON.stringify(events.slice(1).map((e) => e.patch)).length,
  };
}

const workload = makeWorkload();
console.log(
  `bench:fold — ${workload.length} events over ${DEVICES} devices, ${ROUNDS} rounds, Node ${process.version}`,
);
const best = { decode: 0, fold: 0, naive: 0, plain: 0, stamped: 0 };
for (let r = 1; r <= ROUNDS; r++) {
  const d = time(decodeOnly);
  const f = time(fold);
  const n = time(naive);
  const p = time(plain);
  const s = time(stamped);
  best.decode = Math.max(best.decode, d.perSecond);
  best.fold = Math.max(best.fold, f.perSecond);
  best.naive = Math.max(best.naive, n.perSecond);
  best.plain = Math.max(best.plain, p.perSecond);
  best.stamped = Math.max(best.stamped, s.perSecond);
  console.log(
    `round ${r}: decode ${d.perSecond}/s  fold ${f.perSecond}/s  naive ${n.perSecond}/s  | floors: plain ${p.perSecond}/s  stamped ${s.perSecond}/s`,
  );
}
const ratio = (a: number, b: number): string => (a / b).toFixed(3);
console.log(
  `floors against the same baselines: plain ${ratio(best.plain, best.decode)} of decode, ${ratio(best.plain, best.naive)}× naive; stamped ${ratio(best.stamped, best.decode)} of decode, ${ratio(best.stamped, best.naive)}× naive; fold ${ratio(best.fold, best.stamped)}× stamped`,
);
const bytes = stateBytes20Leaf();
const result = {
  decode_per_s: best.decode,
  fold_per_s: best.fold,
  naive_per_s: best.naive,
  fold_vs_decode: Number((best.fold / best.decode).toFixed(3)),
  fold_vs_naive: Number((best.fold / best.naive).toFixed(3)),
  state_bytes_20_leaf: bytes.state,
};
console.log(`state of a 20-leaf twin: ${bytes.state} bytes msgpack (its patches as JSON: ${bytes.json} bytes)`);
console.log(
  `targets: fold_vs_decode >= 0.5 ${result.fold_vs_decode >= 0.5 ? 'met' : 'MISSED'}, fold_vs_naive >= 4 ${result.fold_vs_naive >= 4 ? 'met' : 'MISSED'}`,
);
console.log(`RESULT ${JSON.stringify(result)}`);
