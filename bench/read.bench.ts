/**
 * bench:read — twin reads through the REST gateway from the fleet read model (an index fed by
 * `twin.snapshots`, docs/reads.md) against today's paths, on Kafka, in the same run.
 *
 * Broker: `KAFKA_BROKERS` when set, else `startKafkaBroker()` (test/kafkaBroker.ts, as the tests and
 * bench:pipeline do). Fresh topics under a run prefix (`ensureTwinTopics`, BENCH_PARTITIONS = 4),
 * deleted at the end unless BENCH_KEEP=1.
 *
 * 1. Load (not a read figure): BENCH_TWINS (100,000; quick mode 10,000) devices, each a create
 *    event and a tags+desired patch, encoded with the codec's `encodeEvent` and appended straight
 *    to `twin.backend`. Then a projector and a read model (fresh SQLite file) start together; every
 *    250 ms the read model's lag behind the projector's output is sampled (`twin.snapshots` end
 *    offsets minus the offsets the read model consumed: records, transaction markers included),
 *    until the projector has committed every input and the read model reflects every input
 *    (`waitFor` of the last input offsets).
 * 2. Ingest: a second read model on a fresh file consumes the whole `twin.snapshots` from 0;
 *    `read_model_ingest_per_s` is its snapshot records applied per second.
 * 3. Reads (timed): `GET /twins/{id}` on 127.0.0.1 through `createRestGateway` with the read model
 *    as `twinIndex` (what `twinlog serve` runs): BENCH_GETS (2,000) random ids one at a time, then
 *    2 × BENCH_GETS with 16 in flight; before timing, 50 random answers are checked byte for byte
 *    against the gateway without an index. Baselines in the same run: the gateway without an index
 *    (the snapshot reader, today's MQTT GET path) for BENCH_BASELINE_GETS (300) requests, and
 *    `client.getTwin` (today's REST path: the device's partition read from offset 0) for up to
 *    BENCH_SCAN_GETS (20) requests or 60 s.
 * 4. Under writes: the projector runs again while tags patches of random twins are appended at
 *    BENCH_STEADY_RATE (5,000/s) for BENCH_STEADY_S (20 s; 0 skips it); the read model's lag behind
 *    the projector's output is sampled every 250 ms, and sequential GETs are timed meanwhile, with
 *    this process's event-loop delay (the stages share it, as in `twinlog serve`).
 *    BENCH_PROJECTOR_WORKERS (0) runs the projector's folding in worker threads.
 *
 * Last line: `RESULT {"twins":…,"get_p50_ms":…,"get_p99_ms":…,"baseline_get_p99_ms":…,"read_model_ingest_per_s":…,…}`
 * where `baseline_get_p99_ms` is `client.getTwin`'s p99 (today's REST GET).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { createTwinClient } from '@twinlog/client';
import { encodeEvent } from '@twinlog/codec';
import { createHybridClock, type AppendRecord, type TwinEvent } from '@twinlog/core';
import { seededRandom } from '@twinlog/core/testing';
import { createReadModel, decodeFreshness, type ReadModel } from '@twinlog/fleet';
import { createRestGateway, signServiceSas } from '@twinlog/gateway';
import { createKafkaLog } from '@twinlog/log-kafka';
import { ensureTwinTopics, startProjector, TOPICS } from '@twinlog/projector';
import { Kafka, logLevel } from 'kafkajs';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { fmt, pct } from './support.ts';

const TWINS = Number(process.env['BENCH_TWINS'] ?? 100_000);
const PARTITIONS = Number(process.env['BENCH_PARTITIONS'] ?? 4);
const GETS = Number(process.env['BENCH_GETS'] ?? 2_000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const BASELINE_GETS = Number(process.env['BENCH_BASELINE_GETS'] ?? 300);
const SCAN_GETS = Number(process.env['BENCH_SCAN_GETS'] ?? 20);
const TIMEOUT_S = Number(process.env['BENCH_TIMEOUT_S'] ?? 600);
const STEADY_RATE = Number(process.env['BENCH_STEADY_RATE'] ?? 5_000);
const STEADY_S = Number(process.env['BENCH_STEADY_S'] ?? 20);
/** Projector worker threads (`startProjector({ workers })`, serve's --projector-workers); 0: on the main thread. */
const WORKERS = Number(process.env['BENCH_PROJECTOR_WORKERS'] ?? 0);
const RUN = `${Date.now().toString(36)}-${process.pid}`;
const PREFIX = `bench-read-${RUN}.`;
const HUB = 'bench.local';
const KEY = Buffer.alloc(32, 3).toString('base64');

const idOf = (i: number): string => `dev-${String(i).padStart(6, '0')}`;
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly perS: number;
}
const summary = (ms: number[], wallMs: number): Summary => ({
  n: ms.length,
  p50: pct(ms, 50),
  p99: pct(ms, 99),
  max: Math.max(...ms),
  perS: (ms.length / wallMs) * 1000,
});
const show = (s: Summary): string =>
  `n ${s.n}, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, max ${s.max.toFixed(2)} ms, ${fmt(s.perS)}/s`;

/** Time `count` calls of `one`, `inFlight` at a time; per-call latencies in ms. */
async function timed(
  count: number,
  inFlight: number,
  one: (i: number) => Promise<void>,
  budgetMs = Infinity,
): Promise<Summary> {
  const lat: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count && performance.now() - start < budgetMs) {
        const i = next++;
        const t = performance.now();
        await one(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  return summary(lat, performance.now() - start);
}

/**
 * The load generator runs in a child process (as a real client would), so its HTTP client work does
 * not share the gateway's event loop: `node --conditions=source --import tsx bench/read.bench.ts` with BENCH_READ_LOAD
 * set to the job as JSON; it prints the latencies (ms) as one JSON line.
 */
interface LoadJob {
  readonly port: number;
  readonly token: string;
  readonly ids: readonly string[];
  readonly inFlight: number;
}

async function runLoad(job: LoadJob): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: job.inFlight });
  const get = (id: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: job.port,
          path: `/twins/${id}?api-version=2021-04-12`,
          agent,
          headers: { authorization: job.token },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${id}: ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end();
    });
  const s = await timed(job.ids.length, job.inFlight, (i) => get(job.ids[i]!));
  process.stdout.write(JSON.stringify(s) + '\n');
  agent.destroy();
}

function inChild(job: LoadJob): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', import.meta.filename], {
      env: { ...process.env, BENCH_READ_LOAD: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()!) as Summary)
        : reject(new Error(`load generator exited with ${code}`)),
    );
  });
}

async function deleteRun(brokers: string[]): Promise<void> {
  const admin = new Kafka({ clientId: 'twinlog-bench-cleanup', brokers, logLevel: logLevel.NOTHING }).admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(PREFIX));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(PREFIX));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}

/** Wait until the read model reflects every input offset below `ends` (per input topic). */
async function reflectsAll(rm: ReadModel, backendEnds: number[]): Promise<void> {
  const target = backendEnds.flatMap((end, partition) =>
    end === 0 ? [] : [{ topic: TOPICS.backend, partition, offset: end - 1 }],
  );
  await rm.waitFor(target, { timeoutMs: TIMEOUT_S * 1000 });
}

async function main(): Promise<void> {
  console.log(
    `bench:read — ${fmt(TWINS)} twins, ${PARTITIONS} partitions, ${fmt(GETS)} GETs sequential and ${fmt(2 * GETS)} with ${CONCURRENCY} in flight, Node ${process.version}`,
  );
  console.log(`load average at start: ${load()}`);
  const broker = await startKafkaBroker();
  const brokers = broker.brokers.split(',');
  console.log(`broker: ${broker.brokers} (${broker.source})`);
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-read-'));
  const log = createKafkaLog({ brokers, topicPrefix: PREFIX, clientId: 'twinlog-bench-read' });
  const closers: (() => Promise<unknown>)[] = [];
  const result: Record<string, number | string | boolean | null> = { twins: TWINS };
  try {
    await ensureTwinTopics(log, PARTITIONS);

    // 1. load ------------------------------------------------------------------------------------
    const clock = createHybridClock({ physicalNow: Date.now });
    let seq = 0;
    const event = (deviceId: string, section: TwinEvent['section'], patch: TwinEvent['patch']): AppendRecord => ({
      key: deviceId,
      value: encodeEvent({
        v: 1,
        id: { writer: 'bench-read', seq: ++seq },
        deviceId,
        section,
        op: 'merge',
        patch,
        stamp: clock.now(),
        actor: 'bench',
      }),
    });
    const t0 = performance.now();
    for (let i = 0; i < TWINS; i += 2_500) {
      const chunk: AppendRecord[] = [];
      for (let j = i; j < Math.min(TWINS, i + 2_500); j++) {
        const id = idOf(j);
        chunk.push(event(id, 'create', {}));
        chunk.push(event(id, 'tags', { site: `site-${j % 1000}`, type: `type-${j % 10}`, owner: `team-${j % 37}` }));
      }
      await log.append(TOPICS.backend, chunk);
    }
    const backendEnds = await log.endOffsets(TOPICS.backend);
    console.log(`appended ${fmt(2 * TWINS)} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const group = `${PREFIX}projector`;
    const tLoad = performance.now();
    const projector = await startProjector({
      log,
      physicalNow: Date.now,
      group,
      ...(WORKERS > 0 ? { workers: WORKERS } : {}),
    });
    let projectorStopped: Promise<void> | undefined;
    const stopProjector = (): Promise<void> => (projectorStopped ??= projector.stop());
    closers.push(stopProjector);
    const readModel = await createReadModel({ log, path: join(dir, 'read-model.db'), group: `${PREFIX}read-model` });
    closers.push(() => readModel.close());
    const lags: number[] = [];
    let projectorDoneS: number | null = null;
    let snapshotsAtProjectorDone = 0;
    const reflected = reflectsAll(readModel, backendEnds).then(() => (performance.now() - tLoad) / 1000);
    const done: { readModelS: number | null } = { readModelS: null };
    void reflected.then(
      (s) => (done.readModelS = s),
      () => {},
    );
    for (let tick = 0; done.readModelS === null; tick++) {
      await sleep(250);
      const [ends, committed] = await Promise.all([
        log.endOffsets(TOPICS.snapshots),
        log.committedOffsets(group, TOPICS.backend),
      ]);
      const consumed = decodeFreshness(readModel.freshness()).snapshots;
      lags.push(Math.max(0, sum(ends) - sum(consumed)));
      if (projectorDoneS === null && committed.every((c, p) => (c ?? 0) >= backendEnds[p]!)) {
        projectorDoneS = (performance.now() - tLoad) / 1000;
        snapshotsAtProjectorDone = sum(ends);
      }
      if (tick % 8 === 0)
        console.log(
          `  t=${((performance.now() - tLoad) / 1000).toFixed(1)} s: snapshots written ${fmt(sum(ends))}, read model consumed ${fmt(sum(consumed))}, lag ${fmt(lags[lags.length - 1]!)}`,
        );
      if ((performance.now() - tLoad) / 1000 > TIMEOUT_S) throw new Error(`not caught up within ${TIMEOUT_S} s`);
    }
    const readModelDoneS = await reflected;
    const snapshotRate = projectorDoneS === null ? null : snapshotsAtProjectorDone / projectorDoneS;
    console.log(
      `projector: every input committed after ${projectorDoneS?.toFixed(1) ?? 'n/a'} s (${fmt(snapshotRate)} snapshot records/s); ` +
        `read model reflected every input after ${readModelDoneS.toFixed(1)} s (${(readModelDoneS - (projectorDoneS ?? readModelDoneS)).toFixed(1)} s after the projector)`,
    );
    console.log(
      `read model lag behind the projector's output while loading (snapshot offsets, ${lags.length} samples every 250 ms): p50 ${fmt(pct(lags, 50))}, p99 ${fmt(pct(lags, 99))}, max ${fmt(Math.max(...lags))}`,
    );
    result['projector_snapshots_per_s'] = snapshotRate === null ? null : Math.round(snapshotRate);
    result['read_model_lag_p99'] = pct(lags, 99);
    result['read_model_lag_max'] = Math.max(...lags);

    // 2. ingest ----------------------------------------------------------------------------------
    const tIngest = performance.now();
    const fresh = await createReadModel({ log, path: join(dir, 'ingest.db'), group: `${PREFIX}ingest` });
    await reflectsAll(fresh, backendEnds);
    const ingestS = (performance.now() - tIngest) / 1000;
    const ingested = fresh.stats();
    await fresh.close();
    const ingestPerS = Math.round(ingested.records / ingestS);
    console.log(
      `read model ingest from offset 0: ${fmt(ingested.records)} snapshot records (${fmt(ingested.twins)} twins) in ${ingestS.toFixed(1)} s = ${fmt(ingestPerS)}/s`,
    );
    result['read_model_ingest_per_s'] = ingestPerS;
    if (readModel.stats().twins !== TWINS)
      throw new Error(`the read model holds ${readModel.stats().twins} twins, not ${TWINS}`);

    // 3. reads -----------------------------------------------------------------------------------
    const client = createTwinClient({ log, physicalNow: Date.now, actor: 'bench-read' });
    closers.push(() => client.close());
    const policies = [{ name: 'iothubowner', key: KEY, rights: ['registryReadWrite', 'serviceConnect'] as const }];
    // the same gateway with and without the read model's index
    const gateway = {
      log,
      client,
      hubName: HUB,
      physicalNow: Date.now,
      policies: policies.map((p) => ({ ...p, rights: [...p.rights] })),
      rateLimit: false as const,
    };
    const indexed = createRestGateway({ ...gateway, twinIndex: readModel });
    const plain = createRestGateway(gateway);
    const indexedAt = await indexed.listen({ port: 0, host: '127.0.0.1' });
    const plainAt = await plain.listen({ port: 0, host: '127.0.0.1' });
    closers.push(
      () => indexed.close(),
      () => indexedAt.close(),
      () => plain.close(),
      () => plainAt.close(),
    );
    const token = signServiceSas(HUB, 'iothubowner', KEY, Math.floor(Date.now() / 1000) + 3600);
    const get = async (port: number, id: string): Promise<string> => {
      const res = await fetch(`http://127.0.0.1:${port}/twins/${id}?api-version=2021-04-12`, {
        headers: { authorization: token },
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${text}`);
      return text;
    };
    const rnd = seededRandom(42); // the same ids every run
    const ids = Array.from({ length: 3 * GETS + 1000 }, () => idOf(Math.floor(rnd() * TWINS)));
    for (const id of ids.slice(0, 50)) {
      const [a, b] = await Promise.all([get(indexedAt.port, id), get(plainAt.port, id)]);
      if (a !== b) throw new Error(`GET ${id}: the indexed answer differs from twin.snapshots'\n${a}\n${b}`);
    }
    console.log('50 random answers: byte for byte equal to the gateway without an index');
    await stopProjector(); // the log is quiet from here on: the reads are timed alone
    await inChild({ port: indexedAt.port, token, ids: ids.slice(0, 200), inFlight: 4 }); // warm-up
    const lookups = performance.now();
    for (const id of ids.slice(0, GETS)) readModel.getTwin(id);
    const lookupUs = ((performance.now() - lookups) / GETS) * 1000;
    console.log(`the read model's getTwin alone (SQLite lookup and JSON.parse): ${lookupUs.toFixed(1)} µs`);
    console.log(`load average before timing: ${load()}`);
    const seqRun = await inChild({ port: indexedAt.port, token, ids: ids.slice(0, GETS), inFlight: 1 });
    console.log(
      `GET /twins/{id} from the read model, sequential (client in a child process, keep-alive): ${show(seqRun)}`,
    );
    const conc = await inChild({ port: indexedAt.port, token, ids: ids.slice(GETS, 3 * GETS), inFlight: CONCURRENCY });
    console.log(`GET /twins/{id} from the read model, ${CONCURRENCY} in flight: ${show(conc)}`);
    const snap = await inChild({ port: plainAt.port, token, ids: ids.slice(0, BASELINE_GETS), inFlight: 1 });
    console.log(`baseline: GET /twins/{id} through the snapshot reader (no index), sequential: ${show(snap)}`);
    const scan = await timed(SCAN_GETS, 1, (i) => client.getTwin(ids[i]!).then(() => {}), 60_000);
    console.log(`baseline: client.getTwin (today's REST GET: the partition from offset 0), sequential: ${show(scan)}`);

    // 4. under writes ----------------------------------------------------------------------------
    if (STEADY_RATE > 0 && STEADY_S > 0) {
      const again = await startProjector({
        log,
        physicalNow: Date.now,
        group,
        ...(WORKERS > 0 ? { workers: WORKERS } : {}),
      });
      const loopDelay = monitorEventLoopDelay({ resolution: 10 });
      loopDelay.enable();
      closers.push(() => again.stop());
      const tSteady = performance.now();
      const steadyLags: number[] = [];
      let appended = 0;
      const startSnapshots = sum(await log.endOffsets(TOPICS.snapshots));
      const startRecords = readModel.stats().records;
      const writes = (async () => {
        const wr = seededRandom(7);
        for (let tick = 1; performance.now() - tSteady < STEADY_S * 1000; tick++) {
          const due = Math.floor((STEADY_RATE * (performance.now() - tSteady)) / 1000) - appended;
          if (due > 0) {
            const chunk: AppendRecord[] = [];
            for (let k = 0; k < due; k++)
              chunk.push(event(idOf(Math.floor(wr() * TWINS)), 'tags', { n: appended + k, at: Date.now() }));
            appended += due;
            await log.append(TOPICS.backend, chunk);
          }
          await sleep(50);
        }
      })();
      const sampler = (async () => {
        while (performance.now() - tSteady < STEADY_S * 1000) {
          await sleep(250);
          const ends = await log.endOffsets(TOPICS.snapshots);
          steadyLags.push(Math.max(0, sum(ends) - sum(decodeFreshness(readModel.freshness()).snapshots)));
        }
      })();
      const underWrites = await inChild({
        port: indexedAt.port,
        token,
        ids: ids.slice(0, Math.min(GETS, Math.floor((STEADY_S * 1000) / 3))),
        inFlight: 1,
      });
      await Promise.all([writes, sampler]);
      const steadyS = (performance.now() - tSteady) / 1000;
      const written = sum(await log.endOffsets(TOPICS.snapshots)) - startSnapshots;
      const applied = readModel.stats().records - startRecords;
      const ends = await log.endOffsets(TOPICS.backend);
      const tDrain = performance.now();
      await reflectsAll(readModel, ends);
      const drainS = (performance.now() - tDrain) / 1000;
      loopDelay.disable();
      const loopP99 = loopDelay.percentile(99) / 1e6;
      const loopMax = loopDelay.max / 1e6;
      console.log(
        `under writes (${fmt(STEADY_RATE)} tags patches/s for ${STEADY_S} s, ${fmt(appended)} appended, projector and read model in this process): ` +
          `projector wrote ${fmt(written / steadyS)} snapshot records/s, the read model applied ${fmt(applied / steadyS)}/s; ` +
          `read model lag (snapshot offsets, ${steadyLags.length} samples): p50 ${fmt(pct(steadyLags, 50))}, p99 ${fmt(pct(steadyLags, 99))}, max ${fmt(Math.max(...steadyLags))}; ` +
          `it reflected every write ${drainS.toFixed(1)} s after the window`,
      );
      console.log(`GET /twins/{id} from the read model under writes, sequential: ${show(underWrites)}`);
      console.log(
        `  this process's event loop meanwhile (projector${WORKERS > 0 ? ` with ${WORKERS} workers` : ''}, read model, gateway, appends): delay p99 ${loopP99.toFixed(1)} ms, max ${loopMax.toFixed(1)} ms`,
      );
      Object.assign(result, {
        steady_snapshots_per_s: Math.round(written / steadyS),
        steady_read_model_per_s: Math.round(applied / steadyS),
        steady_read_model_lag_p99: pct(steadyLags, 99),
        steady_drain_s: +drainS.toFixed(2),
        steady_get_p99_ms: +underWrites.p99.toFixed(3),
        steady_loop_delay_max_ms: +loopMax.toFixed(1),
        projector_workers: WORKERS,
      });
    }
    console.log(`load average at end: ${load()}`);
    Object.assign(result, {
      get_p50_ms: +seqRun.p50.toFixed(3),
      get_p99_ms: +seqRun.p99.toFixed(3),
      get_max_ms: +seqRun.max.toFixed(3),
      get_c16_p50_ms: +conc.p50.toFixed(3),
      get_c16_p99_ms: +conc.p99.toFixed(3),
      get_c16_per_s: Math.round(conc.perS),
      baseline_get_p99_ms: +scan.p99.toFixed(1),
      lookup_us: +lookupUs.toFixed(1),
      snapshot_reader_get_p99_ms: +snap.p99.toFixed(3),
    });
    const twins = result['twins'];
    const ordered = {
      twins,
      get_p50_ms: result['get_p50_ms'],
      get_p99_ms: result['get_p99_ms'],
      baseline_get_p99_ms: result['baseline_get_p99_ms'],
      read_model_ingest_per_s: result['read_model_ingest_per_s'],
      ...result,
    };
    console.log(`RESULT ${JSON.stringify(ordered)}`);
  } finally {
    for (const close of closers.reverse()) await close().catch((e: unknown) => console.log(`close: ${String(e)}`));
    await log.close().catch(() => {});
    if (process.env['BENCH_KEEP'] !== '1')
      await deleteRun(brokers).catch((e: unknown) => console.log(`cleanup: ${String(e)}`));
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const loadJob = process.env['BENCH_READ_LOAD'];
(loadJob === undefined ? main() : runLoad(JSON.parse(loadJob) as LoadJob)).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
