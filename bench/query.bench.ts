/**
 * bench:query — the fleet read model (SQLite, fed by `twin.snapshots`) against a naive full-scan
 * evaluator (`evaluate` of @twinlog/query over every twin held in memory), in the same run.
 *
 * Workload (deterministic, mulberry32 seed 42): BENCH_TWINS (100,000) twins, each folded by core's
 * `applyEvent` from four events (create; tags; desired; reported) into ~20 leaves:
 * tags `site` (1,000 values), `type` (10 values), `location.{building,floor}`, `owner`;
 * desired `fw.version`, `telemetry.intervalSecs`, `mode`; reported `battery` (0–100), `fw.{version,
 * status}`, `net.{rssi,ssid}`, `sensors.{temp,humidity}`, `uptime`. Their snapshot records
 * (`encodeOutputRecord` of `toStateDoc`, as the projector writes them) are appended to
 * `twin.snapshots` of a fresh embedded log (4 partitions) with a checkpoint per partition — not timed.
 *
 * Load (timed): `createReadModel` on a fresh SQLite file, then `catchUp()`: the product path
 * (consumer group → decode → `renderTwin(fromStateDoc)` → twins + leaves rows and offsets, one
 * transaction per batch of ≤ 5,000 records).
 *
 * Queries, each twice (1 warm-up + BENCH_REPS (7) timed runs), median of the timed runs, read model and naive interleaved:
 * - selective: `SELECT * FROM devices WHERE tags.site = 'site-0421'` (≈ 1 in 1,000), every row
 * - range:     `SELECT * FROM devices WHERE properties.reported.battery < 10` (≈ 10 %), every row;
 *              also its first page (100 rows, what `POST /devices/query` returns per request)
 * - groupby:   `SELECT tags.type AS type, COUNT() AS n FROM devices GROUP BY tags.type`
 * The read model's answers are checked equal to the naive ones before timing.
 *
 * Update (timed): a tenth of the twins get one more reported write (2 leaves); their new snapshot
 * records are appended and timed until the read model reflects them (`catchUp`).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeOutputRecord } from '@twinlog/codec';
import {
  applyEvent,
  createHybridClock,
  createTwinState,
  partitionFor,
  renderTwin,
  toStateDoc,
  twinVersion,
  type AppendRecord,
  type Patch,
  type TwinDocument,
  type TwinEvent,
} from '@twinlog/core';
import { seededRandom } from '@twinlog/core/testing';
import { createReadModel } from '@twinlog/fleet';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { CHECKPOINT_KEY, ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { evaluate, parseQuery } from '@twinlog/query';

const TWINS = Number(process.env['BENCH_TWINS'] ?? 100_000);
const REPS = Number(process.env['BENCH_REPS'] ?? 7);
const PARTITIONS = 4;

const rnd = seededRandom(42);
const pick = (n: number): number => Math.floor(rnd() * n);
const day = Math.floor(Date.now() / 86_400_000) * 86_400_000;
let wall = day;
const clock = createHybridClock({ physicalNow: () => wall });

const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-query-'));
const log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL' });
await ensureTwinTopics(log, PARTITIONS);

console.log(`bench:query — ${TWINS.toLocaleString('en-US')} twins, ${PARTITIONS} partitions, median of ${REPS}`);
let t = performance.now();
const twins: TwinDocument[] = [];
const states: ReturnType<typeof createTwinState>[] = [];
let batch: AppendRecord[] = [];
let seq = 0;
for (let i = 0; i < TWINS; i++) {
  const deviceId = `dev-${String(i).padStart(7, '0')}`;
  const state = createTwinState(deviceId);
  const ev = (section: TwinEvent['section'], patch: Patch): TwinEvent => ({
    v: 1,
    id: { writer: 'bench', seq: ++seq },
    deviceId,
    section,
    op: 'merge',
    patch,
    stamp: clock.now(),
    actor: 'bench',
  });
  wall += 1;
  applyEvent(state, ev('create', {}));
  applyEvent(
    state,
    ev('tags', {
      site: `site-${String(pick(1000)).padStart(4, '0')}`,
      type: `type-${pick(10)}`,
      location: { building: `b${pick(50)}`, floor: pick(20) },
      owner: ['ops', 'lab', 'field'][pick(3)]!,
    }),
  );
  applyEvent(
    state,
    ev('desired', {
      fw: { version: `1.${pick(5)}.0` },
      telemetry: { intervalSecs: [30, 60, 300][pick(3)]! },
      mode: pick(2) === 0 ? 'eco' : 'normal',
    }),
  );
  applyEvent(
    state,
    ev('reported', {
      battery: pick(101),
      fw: { version: `1.${pick(5)}.0`, status: pick(10) === 0 ? 'updating' : 'current' },
      net: { rssi: -30 - pick(60), ssid: `net-${pick(100)}` },
      sensors: { temp: Math.round(rnd() * 400) / 10, humidity: pick(100) },
      uptime: pick(1_000_000),
    }),
  );
  twins.push(renderTwin(state));
  states.push(state);
  batch.push({
    key: deviceId,
    partition: partitionFor(deviceId, PARTITIONS),
    value: encodeOutputRecord({
      kind: 'snapshot',
      v: 1,
      deviceId,
      state: toStateDoc(state),
      exists: true,
      version: twinVersion(state),
      offsets: { backend: 4, device: 1 },
    }),
  });
  if (batch.length === 5000 || i === TWINS - 1) {
    await log.append(TOPICS.snapshots, batch);
    batch = [];
  }
}
await log.append(
  TOPICS.snapshots,
  Array.from({ length: PARTITIONS }, (_, p) => ({
    key: CHECKPOINT_KEY,
    partition: p,
    value: encodeOutputRecord({ kind: 'checkpoint', v: 1, partition: p, offsets: { backend: 1, device: 1 } }),
  })),
);
console.log(
  `generated and appended ${TWINS} snapshot records in ${((performance.now() - t) / 1000).toFixed(1)} s (not timed)`,
);

t = performance.now();
const rmPath = join(dir, 'fleet.db');
const rm = await createReadModel({ log, path: rmPath });
await rm.catchUp({ timeoutMs: 3_600_000 });
const loadMs = performance.now() - t;
const stats = rm.stats();
console.log(
  `load through the read model: ${(loadMs / 1000).toFixed(1)} s (${Math.round(TWINS / (loadMs / 1000)).toLocaleString('en-US')} twins/s), ` +
    `${stats.twins} twins, file ${(statSync(rmPath).size / 2 ** 20).toFixed(0)} MiB (+WAL)`,
);

const QUERIES = {
  selective: "SELECT * FROM devices WHERE tags.site = 'site-0421'",
  range: 'SELECT * FROM devices WHERE properties.reported.battery < 10',
  groupby: 'SELECT tags.type AS type, COUNT() AS n FROM devices GROUP BY tags.type',
} as const;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function time(f: () => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i <= REPS; i++) {
    const s = performance.now();
    await f();
    if (i > 0) out.push(performance.now() - s);
  }
  return out;
}

const results: Record<string, { rm: number; naive: number; rows: number }> = {};
for (const [name, text] of Object.entries(QUERIES)) {
  const q = parseQuery(text);
  const naiveRows = evaluate(q, twins);
  const rmRows = (await rm.queryAll(text)).rows;
  if (JSON.stringify(rmRows) !== JSON.stringify(naiveRows))
    throw new Error(`${name}: the read model and the naive evaluator disagree`);
  const rmT: number[] = [];
  const naiveT: number[] = [];
  for (let r = 0; r < 2; r++) {
    rmT.push(...(await time(() => rm.queryAll(text))));
    naiveT.push(...(await time(() => evaluate(parseQuery(text), twins))));
  }
  results[name] = { rm: median(rmT), naive: median(naiveT), rows: naiveRows.length };
}
const firstPage = median(await time(() => rm.query(QUERIES.range)));

const fmt = (ms: number): string => ms.toFixed(ms < 10 ? 2 : 1).padStart(8);
console.log('\nquery       rows   read model ms   naive ms   naive/read model');
for (const [name, r] of Object.entries(results)) {
  console.log(
    `${name.padEnd(10)} ${String(r.rows).padStart(6)}   ${fmt(r.rm)}       ${fmt(r.naive)}   ${(r.naive / r.rm).toFixed(1)}×`,
  );
}
console.log(`range, first page of 100: ${firstPage.toFixed(2)} ms`);
const sel = results['selective']!;
const grp = results['groupby']!;
console.log(
  `targets at 100k: selective ≤ 20 ms ${sel.rm <= 20 ? 'met' : 'MISSED'}; GROUP BY ≤ 200 ms ${grp.rm <= 200 ? 'met' : 'MISSED'}`,
);

// steady state: a tenth of the twins report once more (battery, uptime), as the projector would
// emit their new snapshots; timed from the append until the read model reflects them
const updates: AppendRecord[] = [];
for (let i = 0; i < TWINS; i += 10) {
  const state = states[i]!;
  wall += 1;
  applyEvent(state, {
    v: 1,
    id: { writer: 'bench', seq: ++seq },
    deviceId: state.deviceId,
    section: 'reported',
    op: 'merge',
    patch: { battery: pick(101), uptime: pick(1_000_000) },
    stamp: clock.now(),
    actor: 'bench',
  });
  updates.push({
    key: state.deviceId,
    partition: partitionFor(state.deviceId, PARTITIONS),
    value: encodeOutputRecord({
      kind: 'snapshot',
      v: 1,
      deviceId: state.deviceId,
      state: toStateDoc(state),
      exists: true,
      version: twinVersion(state),
      offsets: { backend: 4, device: 2 },
    }),
  });
}
t = performance.now();
for (let i = 0; i < updates.length; i += 5000) await log.append(TOPICS.snapshots, updates.slice(i, i + 5000));
await rm.catchUp({ timeoutMs: 3_600_000 });
const updateMs = performance.now() - t;
const updatePerS = Math.round(updates.length / (updateMs / 1000));
console.log(
  `update: ${updates.length} new snapshots (2 leaves changed each) reflected in ${(updateMs / 1000).toFixed(1)} s (${updatePerS.toLocaleString('en-US')}/s)`,
);

await rm.close();
await log.close();
rmSync(dir, { recursive: true, force: true });

const result = {
  twins: TWINS,
  load_s: Number((loadMs / 1000).toFixed(1)),
  update_per_s: updatePerS,
  selective_ms: Number(sel.rm.toFixed(2)),
  range_ms: Number(results['range']!.rm.toFixed(2)),
  range_first_page_ms: Number(firstPage.toFixed(2)),
  groupby_ms: Number(grp.rm.toFixed(2)),
  naive_selective_ms: Number(sel.naive.toFixed(2)),
  naive_range_ms: Number(results['range']!.naive.toFixed(2)),
  naive_groupby_ms: Number(grp.naive.toFixed(2)),
  selective_vs_naive: Number((sel.naive / sel.rm).toFixed(1)),
};
console.log(`RESULT ${JSON.stringify(result)}`);
