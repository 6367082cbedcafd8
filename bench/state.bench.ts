/**
 * bench:state — one twin that lives for a long time: snapshot size and apply cost as its history
 * grows (issue "Twins that live for years"; docs/bounded-state.md).
 *
 * Workload: one twin, 2 reported leaves (`battery`, `temp`), 1,000,000 reported events from one
 * device writer, stamps one second apart, interleaved with 10,000 desired events (one every 100
 * reports) from 100 back-end writers. Back-end writers come and go as gateway incarnations do: each
 * writes 100 desired events, then the next takes over. The append time of every record is its
 * stamp, and the GC horizon is derived from it exactly as the projector does (`gcHorizonAt` with
 * the defaults: one day offline window, one minute skew, one hour margin).
 *
 * At 1k, 10k, 100k and 1M events it prints:
 * - the snapshot bytes: `encodeSnapshot(toStateDoc(state))`, against the baseline of the twin's
 *   own rendered JSON (`renderTwin`, what a client reads) in the same run;
 * - the apply cost per event: the next 100,000 events of the stream applied (with the per-record
 *   horizon step) to a copy of the state of that age, after a warm-up, against a baseline of the
 *   same events merged into a plain object (RFC 7396, no CRDT) in the same run. All ages are
 *   measured after the stream, in BENCH_ROUNDS interleaved rounds (default 9); the best counts.
 * It also prints the same run with round-robin back-end writers (all 100 active at once), and the
 * largest snapshot of a twin at IoT Hub's limits: tags 8 KB, desired and reported 32 KB of small
 * leaves, written by 1,000 writers inside the window, with full exact windows.
 */
import { encodeSnapshot } from '@twinlog/codec';
import {
  advanceHorizon,
  applyEvent,
  applyMergePatch,
  canonicalJson,
  cloneTwinState,
  createTwinState,
  gcHorizonAt,
  renderTwin,
  toStateDoc,
  type Json,
  type TwinEvent,
  type TwinState,
} from '@twinlog/core';

const TOTAL = Number(process.env['BENCH_STATE_EVENTS'] ?? 1_000_000);
const CHECKPOINTS = [1_000, 10_000, 100_000, 1_000_000].filter((n) => n <= TOTAL);
const PROBE = 100_000;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 9);
const T0 = 1_780_000_000_000;
const DEVICE = 'thermo-1';

/** The i-th reported event (i from 0), and every 100th position a desired event too. */
function* stream(roundRobin: boolean): Generator<TwinEvent, never> {
  yield {
    v: 1,
    id: { writer: 'registry', seq: 1 },
    deviceId: DEVICE,
    section: 'create',
    op: 'merge',
    patch: {},
    stamp: { wall: T0 - 1000, counter: 0 },
    actor: 'registry',
  };
  let desired = 0;
  for (let i = 0; ; i++) {
    const wall = T0 + i * 1000;
    yield {
      v: 1,
      id: { writer: 'dev-thermo-1', seq: i + 1 },
      deviceId: DEVICE,
      section: 'reported',
      op: 'merge',
      patch: { battery: 100 - (i % 100), temp: 20 + (i % 7) / 2 },
      stamp: { wall, counter: 0 },
      actor: DEVICE,
    };
    if (i % 100 === 50) {
      const writer = roundRobin ? desired % 100 : Math.floor(desired / 100) % 100;
      yield {
        v: 1,
        id: { writer: `be-${String(writer).padStart(2, '0')}-3f9a`, seq: desired + 1 },
        deviceId: DEVICE,
        section: 'desired',
        op: 'merge',
        patch: { setpoint: 18 + (desired % 8), mode: desired % 3 === 0 ? 'eco' : 'comfort' },
        stamp: { wall: wall + 500, counter: 0 },
        actor: 'ops-app',
      };
      desired++;
    }
  }
}

function apply(state: TwinState, e: TwinEvent): void {
  advanceHorizon(state, gcHorizonAt(e.stamp.wall)); // append time = stamp here
  if (applyEvent(state, e) !== 'APPLIED') throw new Error(`event ${e.id.writer}/${e.id.seq} not applied`);
}

const snapshotBytes = (s: TwinState): number => encodeSnapshot(toStateDoc(s)).length;
const twinBytes = (s: TwinState): number => Buffer.byteLength(canonicalJson(renderTwin(s)));

/** µs per event for `events` applied to a copy of `state`. */
function applyCost(state: TwinState, events: readonly TwinEvent[]): number {
  const copy = cloneTwinState(state);
  const start = process.hrtime.bigint();
  for (const e of events) apply(copy, e);
  return Number(process.hrtime.bigint() - start) / 1e3 / events.length;
}

/** µs per event for the same events merged into plain objects (the no-CRDT baseline). */
function naiveCost(events: readonly TwinEvent[]): number {
  const doc: Record<string, Json> = { desired: {}, reported: {} };
  const start = process.hrtime.bigint();
  for (const e of events)
    if (e.section === 'desired' || e.section === 'reported')
      doc[e.section] = applyMergePatch(doc[e.section], e.patch) ?? {};
  return Number(process.hrtime.bigint() - start) / 1e3 / events.length;
}

interface Row {
  events: number;
  snapshot: number;
  twin: number;
  applyUs: number;
  naiveUs: number;
}

function run(roundRobin: boolean, measureCost: boolean): Row[] {
  const state = createTwinState(DEVICE);
  const it = stream(roundRobin);
  const rows: Row[] = [];
  /** Per checkpoint: a copy of the twin of that age and the next PROBE events of the stream. */
  const probes: { state: TwinState; events: TwinEvent[] }[] = [];
  let reported = 0;
  const buffered: TwinEvent[] = [];
  const next = (): TwinEvent => buffered.shift() ?? it.next().value;
  for (const at of CHECKPOINTS) {
    while (reported < at) {
      const e = next();
      apply(state, e);
      if (e.section === 'reported') reported++;
    }
    if (measureCost) {
      while (buffered.length < PROBE) buffered.push(it.next().value);
      probes.push({ state: cloneTwinState(state), events: buffered.slice(0, PROBE) });
    }
    rows.push({
      events: at,
      snapshot: snapshotBytes(state),
      twin: twinBytes(state),
      applyUs: Number.NaN,
      naiveUs: Number.NaN,
    });
  }
  // The costs are measured after the stream, in interleaved rounds (every checkpoint once per
  // round), and the best round counts: drift in the machine's speed then hits every age alike.
  for (let round = 0; round < ROUNDS && measureCost; round++) {
    probes.forEach((probe, i) => {
      const row = rows[i]!;
      row.applyUs = Math.min(Number.isNaN(row.applyUs) ? Infinity : row.applyUs, applyCost(probe.state, probe.events));
      row.naiveUs = Math.min(Number.isNaN(row.naiveUs) ? Infinity : row.naiveUs, naiveCost(probe.events));
    });
  }
  return rows;
}

/** A twin at IoT Hub's limits, written by `writers` writers, every one inside the window. */
function largestTwin(writers: number): { snapshot: number; twin: number } {
  const s = createTwinState('full-twin');
  let wall = T0;
  let seq = 0;
  const writerOf = (i: number): string => `gw-${String(i % writers).padStart(4, '0')}-7f3a9c`;
  const ev = (section: 'tags' | 'desired' | 'reported', patch: Record<string, Json>): void => {
    const writer = writerOf(seq);
    apply(s, {
      v: 1,
      id: { writer, seq: ++seq },
      deviceId: 'full-twin',
      section,
      op: 'merge',
      patch,
      stamp: { wall: (wall += 7), counter: 0 },
      actor: `actor-${seq % writers}`,
    });
  };
  apply(s, {
    v: 1,
    id: { writer: 'registry', seq: 1 },
    deviceId: 'full-twin',
    section: 'create',
    op: 'merge',
    patch: {},
    stamp: { wall: T0 - 1, counter: 0 },
    actor: 'registry',
  });
  // small leaves maximise per-leaf metadata: 8-character keys under 8-character groups, integer values
  const fill = (section: 'tags' | 'desired' | 'reported', bytes: number): void => {
    let used = 2;
    for (let g = 0; used < bytes - 200; g++) {
      for (let k = 0; k < 16 && used < bytes - 200; k++) {
        ev(section, { [`grp${String(g).padStart(5, '0')}`]: { [`key${String(k).padStart(5, '0')}`]: 123456 + k } });
        used += 22 + (k === 0 ? 14 : 0);
      }
    }
  };
  fill('tags', 8192);
  fill('desired', 32768);
  fill('reported', 32768);
  // every writer touches the twin once more, so all of them stay in the causal context
  for (let i = 0; i < writers; i++) ev(i % 2 === 0 ? 'reported' : 'desired', { grp00000: { key00000: i } });
  return { snapshot: snapshotBytes(s), twin: twinBytes(s) };
}

const kb = (n: number): string => `${(n / 1024).toFixed(2)} KB`;
const printRows = (label: string, rows: Row[]): void => {
  console.log(label);
  for (const r of rows) {
    const cost = Number.isNaN(r.applyUs)
      ? ''
      : `  apply ${r.applyUs.toFixed(3)} µs/event (plain merge ${r.naiveUs.toFixed(3)} µs, ${(r.applyUs / r.naiveUs).toFixed(2)}×)`;
    console.log(
      `  after ${String(r.events).padStart(9)} reported events: snapshot ${String(r.snapshot).padStart(6)} B (rendered twin ${r.twin} B, ${(r.snapshot / r.twin).toFixed(2)}×)${cost}`,
    );
  }
};

// warm up the JIT on a short run, then measure
run(false, false);
const rows = run(false, true);
printRows('back-end writers in turn (each writes 100 desired events, then the next takes over):', rows);
const rr = run(true, false);
printRows('back-end writers round-robin (all 100 active at once):', rr);
const full = largestTwin(1000);
console.log(
  `largest twin at IoT Hub's limits, 1,000 writers in the window: snapshot ${kb(full.snapshot)} (rendered twin ${kb(full.twin)}), ${((full.snapshot / 1_048_576) * 100).toFixed(1)} % of Kafka's default 1 MB record limit`,
);

const first = rows[0]!;
const last = rows[rows.length - 1]!;
const result = {
  snapshot_bytes_1k: first.snapshot,
  snapshot_bytes_1m: last.snapshot,
  growth: Number((last.snapshot / first.snapshot).toFixed(3)),
  apply_us_1k: Number(first.applyUs.toFixed(3)),
  apply_us_1m: Number(last.applyUs.toFixed(3)),
  apply_growth: Number((last.applyUs / first.applyUs).toFixed(3)),
  snapshot_bytes_round_robin_1m: rr[rr.length - 1]!.snapshot,
  snapshot_bytes_largest_twin: full.snapshot,
};
console.log(
  `targets: snapshot_bytes_1m ≤ 2048 ${result.snapshot_bytes_1m <= 2048 ? 'met' : 'MISSED'}; growth ≤ 1.5 ${result.growth <= 1.5 ? 'met' : 'MISSED'}; apply_us_1m ≤ 1.3 × apply_us_1k ${result.apply_growth <= 1.3 ? 'met' : 'MISSED'}; largest twin < 1 MB ${full.snapshot < 1_048_576 ? 'met' : 'MISSED'}`,
);
console.log(`RESULT ${JSON.stringify(result)}`);
