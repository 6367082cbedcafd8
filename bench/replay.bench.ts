/**
 * bench:replay — rebuilding and auditing against reading the log, in the same run (issue #17).
 *
 * Workload: BENCH_EVENTS (1,000,000) events of the benchmarks' generator (bench/workload.ts) over
 * BENCH_DEVICES (10,000) devices, encoded with `encodeEvent`, `reported` to `twin.device` and the
 * rest to `twin.backend`, 4 partitions. It is appended (not timed) to a fresh embedded log (a
 * SQLite file in a temporary folder) and to fresh topics on Kafka (`KAFKA_BROKERS`, else
 * `startKafkaBroker()`; client `BENCH_KAFKA_CLIENT`, default `platformatic` as `serve`).
 *
 * Legs, on each log, in this order, timed with CPU µs per record of this process (and of the
 * broker on Kafka, from /proc):
 * - read:    `log.read` of both inputs of every partition, one partition after another, as `replay`
 *            reads them (nothing decoded): the floor of any replay; 5 rounds interleaved with the
 *            legs below (before the legs in this thread, before each round on the workers, after
 *            the last), the median.
 * - replay ×1: `replay({ log })` of everything into this thread's memory (the states returned).
 * - replay ×n: the same on one worker thread per core (`workers`), the states counted where they
 *            were folded, not copied back (`keepStates: false`): what `twinlog replay` does — on the
 *            embedded log each worker opens it itself, on Kafka this thread reads and feeds the
 *            workers (docs/write-path.md, "Replay", "Replay on Kafka").
 * - rebuild ×1, ×n: `replay({ log, into })` in this thread, then on the workers, writing the snapshots
 *            and checkpoints to a fresh log's `twin.snapshots` (a fresh SQLite file; fresh topics on Kafka).
 * - audit ×1, ×n: `auditLines` of the whole fleet with the CLI's own line module, as
 *            `twinlog audit --all --format json` makes them (counted, not written).
 * - ceiling: each leg's rate if the least CPU a record cost in any of its runs (this process, and
 *            the broker on Kafka) were spread perfectly over the machine's cores: what no split
 *            of the same work can beat on this machine (`*_ceiling_vs_read`, with `cores`).
 * - device:  `history({ log, deviceId })` of one device against a plain read of that device's
 *            partition (both inputs, its records picked by key), 3 interleaved rounds, medians:
 *            `device_history_ms` vs `device_read_ms`.
 * Targets of issue #17: `replay_vs_read` ≥ 0.4, `rebuild_vs_read` ≥ 0.25, `device_history_ms` ≤
 * 1.5 × `device_read_ms`, on both logs, and the audit at the replay's target. The headline
 * `replay_*`, `rebuild_*` and `audit_*` figures are those of the CLI's default on each log
 * (`mode`: a worker thread per core); `*_thread_*` and `*_workers_*` are both ways. The last line is
 * `RESULT {"read_per_s":…,"replay_per_s":…,"replay_vs_read":…,"rebuild_per_s":…,"rebuild_vs_read":…,"device_history_ms":…,"device_read_ms":…,"kafka_…":…}`,
 * the unprefixed names being the embedded log's and `kafka_` the same on Kafka.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEvent } from '@twinlog/codec';
import { partitionFor, type AppendRecord, type Log } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { auditLines, ensureTwinTopics, history, replay, TOPICS, type WorkerLogSpec } from '@twinlog/projector';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { findBrokerProcess, type BrokerProcess } from './internal/brokerCpu.ts';
import { median } from './internal/stats.ts';
import { benchEvents } from './workload.ts';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 10_000);
const KAFKA_CLIENT = process.env['BENCH_KAFKA_CLIENT'] ?? 'platformatic';
const PARTITIONS = 4;
const DEVICE = 'dev-42';
/** The CLI's audit line module (`twinlog audit --format json`), compiled, as the worker threads import it. */
const AUDIT_LINE_MODULE = new URL('../packages/cli/dist/internal/auditLine.js', import.meta.url).href;

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const ratio = (a: number, b: number): number => Number((a / b).toFixed(3));

/** The workload's records per input topic (not timed). */
function makeWorkload(): { backend: AppendRecord[]; device: AppendRecord[] } {
  const backend: AppendRecord[] = [];
  const device: AppendRecord[] = [];
  for (const e of benchEvents({
    events: EVENTS,
    devices: DEVICES,
    startWall: Math.floor(Date.now() / 86_400_000) * 86_400_000,
  })) {
    (e.section === 'reported' ? device : backend).push({ key: e.deviceId, value: encodeEvent(e) });
  }
  return { backend, device };
}

async function fill(log: Log, w: { backend: AppendRecord[]; device: AppendRecord[] }): Promise<void> {
  await ensureTwinTopics(log, PARTITIONS);
  for (const [topic, records] of [
    [TOPICS.backend, w.backend],
    [TOPICS.device, w.device],
  ] as const) {
    for (let i = 0; i < records.length; i += 10_000) await log.append(topic, records.slice(i, i + 10_000));
  }
}

interface Timed<T> {
  readonly value: T;
  readonly ms: number;
  /** CPU of this process and of the broker over the leg, ms. */
  readonly nodeCpuMs: number;
  readonly brokerCpuMs: number | undefined;
}

async function timed<T>(broker: BrokerProcess | undefined, run: () => Promise<T>): Promise<Timed<T>> {
  const cpu0 = process.cpuUsage();
  const b0 = broker?.cpuMs();
  const t0 = performance.now();
  const value = await run();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const b1 = broker?.cpuMs();
  return {
    value,
    ms,
    nodeCpuMs: (cpu.user + cpu.system) / 1000,
    brokerCpuMs: b0 === undefined || b1 === undefined ? undefined : b1 - b0,
  };
}

/** Plain reads of both inputs of `partitions`, one partition after another; `key` picks records. */
async function readInputs(log: Log, partitions: readonly number[], key?: string): Promise<number> {
  let n = 0;
  const ends = { backend: await log.endOffsets(TOPICS.backend), device: await log.endOffsets(TOPICS.device) };
  for (const p of partitions) {
    for (const topic of ['backend', 'device'] as const) {
      for await (const records of log.read(TOPICS[topic], p, { from: 0, to: ends[topic][p] ?? 0 })) {
        if (key === undefined) n += records.length;
        else for (const r of records) if (r.key === key) n++;
      }
    }
  }
  return n;
}

type Leg = 'replay' | 'rebuild' | 'audit';
const LEGS: readonly Leg[] = ['replay', 'rebuild', 'audit'];
type LegFigures = Record<string, number | string>;

async function runLegs(
  kind: string,
  log: Log,
  /** How a worker opens the log itself; undefined: this thread reads and feeds the workers. */
  workerLog: WorkerLogSpec | undefined,
  freshInto: () => Promise<{ log: Log; close: () => Promise<void> }>,
  broker: BrokerProcess | undefined,
): Promise<LegFigures> {
  const total = EVENTS;
  const perRecord = (t: Timed<unknown>): string =>
    `node ${((t.nodeCpuMs * 1000) / total).toFixed(1)} µs/record${t.brokerCpuMs === undefined ? '' : `, broker ${((t.brokerCpuMs * 1000) / total).toFixed(1)} µs/record`}`;
  const all = Array.from({ length: PARTITIONS }, (_, p) => p);

  // The read varies from run to run and within one (rounds of 160,000 to 330,000/s on Kafka the
  // same day): it is sampled across the legs it is compared with — once before the legs in this
  // thread, once before each round on the workers and once after the last — and the median taken.
  const reads: Timed<number>[] = [];
  const readRound = async (): Promise<void> => {
    const r = await timed(broker, () => readInputs(log, all));
    if (r.value !== total) throw new Error(`${kind}: read ${r.value} records, expected ${total}`);
    reads.push(r);
  };

  const rates: Record<Leg, Record<'thread' | 'workers', number>> = {
    replay: { thread: 0, workers: 0 },
    rebuild: { thread: 0, workers: 0 },
    audit: { thread: 0, workers: 0 },
  };
  // one worker thread per core, each opening the log itself or fed by this thread
  const workers = Math.min(availableParallelism(), PARTITIONS);
  const parallel = { workers, ...(workerLog === undefined ? {} : { workerLog }) };
  /** One leg, once: its timing, and what it did (the states are dropped once counted: the next legs run on a CLI-sized heap). */
  const runLeg = async (leg: Leg, mode: 'thread' | 'workers'): Promise<Timed<string>> => {
    const how = mode === 'workers' ? { ...parallel, keepStates: false } : {};
    if (leg === 'replay')
      return timed(broker, async () => {
        const r = await replay({ log, ...how });
        return mode === 'thread'
          ? `${fmt(r.states.size)} twins in this thread's memory, ${fmt(r.counts.applied)} applied`
          : `${fmt(r.counts.devices)} twins folded in the workers, not copied back (twinlog replay)`;
      });
    if (leg === 'rebuild') {
      const into = await freshInto();
      const t = await timed(broker, async () => {
        await replay({ log, into: into.log, ...how, keepStates: false });
        return 'into fresh snapshots';
      });
      await into.close();
      return t;
    }
    // the fleet's audit as `twinlog audit --all --format json` makes it (the CLI's own line module), counted, not written
    return timed(broker, async () => {
      let bytes = 0;
      const r = await auditLines({
        log,
        lines: { module: AUDIT_LINE_MODULE, export: 'fleetAuditLine', options: { format: 'json' } },
        ...(mode === 'workers' ? parallel : {}),
        onChunk: (chunk) => void (bytes += chunk.length),
      });
      return `${fmt(r.lines)} JSON lines, ${fmt(bytes / 1e6)} MB`;
    });
  };
  // in this thread once; on the workers (the CLI's default, the headline) 3 interleaved rounds, the median
  const samples: Record<'thread' | 'workers', Record<Leg, Timed<string>[]>> = {
    thread: { replay: [], rebuild: [], audit: [] },
    workers: { replay: [], rebuild: [], audit: [] },
  };
  for (const mode of ['thread', 'workers'] as const)
    for (let round = 0; round < (mode === 'thread' ? 1 : 3); round++) {
      await readRound();
      for (const leg of LEGS) samples[mode][leg].push(await runLeg(leg, mode));
    }
  await readRound();
  const read = [...reads].sort((a, b) => a.ms - b.ms)[Math.floor(reads.length / 2)]!;
  const readPerS = total / (read.ms / 1000);
  console.log(
    `  read         ${fmt(readPerS)}/s (${(read.ms / 1000).toFixed(1)} s, median of ${reads.map((r) => fmt(total / (r.ms / 1000))).join(', ')}/s in run order; ${perRecord(read)})`,
  );
  for (const mode of ['thread', 'workers'] as const) {
    for (const leg of LEGS) {
      const sorted = [...samples[mode][leg]].sort((x, y) => x.ms - y.ms);
      const t = sorted[Math.floor(sorted.length / 2)]!;
      const perS = total / (t.ms / 1000);
      rates[leg][mode] = perS;
      const label = `${leg} ${mode === 'thread' ? '×1' : `×${workers}`}`;
      const rounds =
        samples[mode][leg].length === 1
          ? ''
          : `, median of ${samples[mode][leg].map((x) => fmt(total / (x.ms / 1000))).join(', ')}/s`;
      console.log(
        `  ${label.padEnd(12)} ${fmt(perS)}/s (${(t.ms / 1000).toFixed(1)} s${rounds}, ${t.value}; ${perRecord(t)}) = ${ratio(perS, readPerS)} × read`,
      );
    }
  }

  // The ceiling of each leg on this machine's cores: the least CPU a record of the leg cost in any
  // of its runs, in this thread or on the workers (this process and, on Kafka, the broker, which
  // runs on the same cores), spread perfectly over every core with none left idle. Splitting the
  // same work between threads or processes does not go faster than that; a leg whose ceiling is
  // below its target needs less work per record or more cores (docs/write-path.md, "Where replay
  // stands").
  const cores = availableParallelism();
  const ceilings: Record<Leg, number> = { replay: 0, rebuild: 0, audit: 0 };
  for (const leg of LEGS) {
    const cpuMs = Math.min(
      ...[...samples.thread[leg], ...samples.workers[leg]].map((t) => t.nodeCpuMs + (t.brokerCpuMs ?? 0)),
    );
    ceilings[leg] = (cores * total * 1000) / cpuMs;
  }
  console.log(
    `  ceiling      on ${cores} cores, at the least CPU per record of each leg's runs: ${LEGS.map((leg) => `${leg} ${fmt(ceilings[leg])}/s = ${ratio(ceilings[leg], readPerS)} × read`).join(', ')}`,
  );

  // the device's legs are short: 3 interleaved rounds, medians
  const partition = partitionFor(DEVICE, PARTITIONS);
  const readMs: number[] = [];
  const historyMs: number[] = [];
  let entries = 0;
  let deviceRecords = 0;
  for (let round = 0; round < 3; round++) {
    const r = await timed(broker, () => readInputs(log, [partition], DEVICE));
    const h = await timed(broker, () => history({ log, deviceId: DEVICE }));
    readMs.push(r.ms);
    historyMs.push(h.ms);
    deviceRecords = r.value;
    entries = h.value.length;
  }
  const deviceRead = { ms: median(readMs) };
  const deviceHistory = { ms: median(historyMs) };
  console.log(
    `  device       history of ${DEVICE} ${deviceHistory.ms.toFixed(0)} ms (${entries} entries; rounds ${historyMs.map((x) => x.toFixed(0)).join(', ')}) against a plain read of its partition ` +
      `${deviceRead.ms.toFixed(0)} ms (${deviceRecords} of its records; rounds ${readMs.map((x) => x.toFixed(0)).join(', ')}) = ${ratio(deviceHistory.ms, deviceRead.ms)} ×`,
  );
  // the headline figures are the twinlog CLI's default on both logs: a worker per core (docs/write-path.md, "Replay")
  const headline = (leg: Leg): LegFigures => ({
    [`${leg}_per_s`]: Math.round(rates[leg].workers),
    [`${leg}_vs_read`]: ratio(rates[leg].workers, readPerS),
  });
  const each = (leg: Leg): LegFigures =>
    Object.fromEntries(
      (['thread', 'workers'] as const).flatMap((mode) => [
        [`${leg}_${mode}_per_s`, Math.round(rates[leg][mode])],
        [`${leg}_${mode}_vs_read`, ratio(rates[leg][mode], readPerS)],
      ]),
    );
  const ceiling = (leg: Leg): LegFigures => ({ [`${leg}_ceiling_vs_read`]: ratio(ceilings[leg], readPerS) });
  return {
    read_per_s: Math.round(readPerS),
    ...headline('replay'),
    ...headline('rebuild'),
    device_history_ms: Math.round(deviceHistory.ms),
    device_read_ms: Math.round(deviceRead.ms),
    ...headline('audit'),
    mode: `${workers} worker threads, ${workerLog === undefined ? 'fed by this thread' : 'each reading the log'}`,
    ...each('replay'),
    ...each('rebuild'),
    ...each('audit'),
    cores,
    ...ceiling('replay'),
    ...ceiling('rebuild'),
    ...ceiling('audit'),
  };
}

const targets = (f: LegFigures): string => {
  const n = (k: string): number => f[k] as number;
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  return `replay_vs_read >= 0.4 ${met(n('replay_vs_read') >= 0.4)}, rebuild_vs_read >= 0.25 ${met(n('rebuild_vs_read') >= 0.25)}, audit_vs_read >= 0.4 ${met(n('audit_vs_read') >= 0.4)}, device_history_ms <= 1.5 x device_read_ms ${met(n('device_history_ms') <= 1.5 * n('device_read_ms'))} (${f['mode']})`;
};

async function openKafka(brokers: string, prefix: string): Promise<Log> {
  if (KAFKA_CLIENT === 'kafkajs') {
    const { createKafkaLog } = await import('@twinlog/log-kafka');
    return createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'twinlog-bench-replay' });
  }
  const { createPlatformaticKafkaLog } = await import('@twinlog/log-kafka-platformatic');
  return createPlatformaticKafkaLog({ brokers, topicPrefix: prefix, clientId: 'twinlog-bench-replay' });
}

const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-replay-'));
// both logs are filled first, in a function whose workload is garbage after it: the legs run on the
// small heap a CLI process has (with a million records held, every collection of this thread marks them)
const embedded = createEmbeddedLog({ path: join(dir, 'input.db') });
const broker = await startKafkaBroker();
const brokerProcess = findBrokerProcess(broker.brokers.split(','));
const run = randomUUID().slice(0, 8);
const kafka = await openKafka(broker.brokers, `bench-replay-${run}.`);
await (async () => {
  const t0 = performance.now();
  const workload = makeWorkload();
  console.log(
    `bench:replay — ${fmt(EVENTS)} events over ${fmt(DEVICES)} devices, ${PARTITIONS} partitions (${fmt(workload.backend.length)} twin.backend, ${fmt(workload.device.length)} twin.device); generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  await fill(embedded, workload);
  await fill(kafka, workload);
})();

console.log('embedded log (SQLite):');
let intoCount = 0;
const embeddedFigures = await runLegs(
  'embedded',
  embedded,
  {
    module: import.meta.resolve('@twinlog/log-embedded'),
    export: 'createEmbeddedLog',
    options: { path: join(dir, 'input.db') },
  },
  async () => {
    const log = createEmbeddedLog({ path: join(dir, `into-${++intoCount}.db`) });
    await ensureTwinTopics(log, PARTITIONS);
    return { log, close: () => log.close() };
  },
  undefined,
);
await embedded.close();
console.log(`  targets: ${targets(embeddedFigures)}`);

console.log(
  `Kafka (${broker.brokers}, ${broker.source}; client ${KAFKA_CLIENT}; broker CPU ${brokerProcess === undefined ? 'not found' : `pid ${brokerProcess.pid}`}):`,
);
// on Kafka the workers are fed by this thread, as `twinlog replay` and `twinlog audit` do
const kafkaFigures = await runLegs(
  'kafka',
  kafka,
  undefined,
  async () => {
    const log = await openKafka(broker.brokers, `bench-replay-${run}-into-${++intoCount}.`);
    await ensureTwinTopics(log, PARTITIONS);
    return { log, close: () => log.close() };
  },
  brokerProcess,
);
await kafka.close();
await broker.stop();
console.log(`  targets: ${targets(kafkaFigures)}`);
rmSync(dir, { recursive: true, force: true });

console.log(
  `RESULT ${JSON.stringify({ ...embeddedFigures, ...Object.fromEntries(Object.entries(kafkaFigures).map(([k, v]) => [`kafka_${k}`, v])) })}`,
);
