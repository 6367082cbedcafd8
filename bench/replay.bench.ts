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
 *            reads them (nothing decoded): the floor of any replay.
 * - replay:  `replay({ log })` of everything into memory, no outputs.
 * - rebuild: `replay({ log, into })`, writing the snapshots and checkpoints to a fresh log's
 *            `twin.snapshots` (a fresh SQLite file; fresh topics on Kafka).
 * - replay ×n, rebuild ×n: the same with one worker thread per core (`workers`, each opening the log
 *            itself) and `keepStates: false` — the states stay in the workers (docs/write-path.md, "Replay").
 * - audit:   `auditTrail({ log })` of the whole fleet, each entry serialized to JSON as
 *            `twinlog audit --all --format json` prints it.
 * - device:  `history({ log, deviceId })` of one device against a plain read of that device's
 *            partition (both inputs, its records picked by key), 3 interleaved rounds, medians:
 *            `device_history_ms` vs `device_read_ms`.
 * Targets of issue #17: `replay_vs_read` ≥ 0.4, `rebuild_vs_read` ≥ 0.25, `device_history_ms` ≤
 * 1.5 × `device_read_ms`, on both logs. The last line is
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
import { auditTrail, ensureTwinTopics, history, replay, TOPICS, type WorkerLogSpec } from '@twinlog/projector';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { findBrokerProcess, type BrokerProcess } from './internal/brokerCpu.ts';
import { median } from './internal/stats.ts';
import { benchEvents } from './workload.ts';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 10_000);
const KAFKA_CLIENT = process.env['BENCH_KAFKA_CLIENT'] ?? 'platformatic';
const PARTITIONS = 4;
const DEVICE = 'dev-42';

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

type LegFigures = Record<
  | 'read_per_s'
  | 'replay_per_s'
  | 'replay_vs_read'
  | 'rebuild_per_s'
  | 'rebuild_vs_read'
  | 'device_history_ms'
  | 'device_read_ms'
  | 'audit_per_s'
  | 'audit_vs_read'
  | 'replay_workers_per_s'
  | 'replay_workers_vs_read'
  | 'rebuild_workers_per_s'
  | 'rebuild_workers_vs_read',
  number
>;

async function runLegs(
  kind: string,
  log: Log,
  workerLog: WorkerLogSpec,
  freshInto: () => Promise<{ log: Log; close: () => Promise<void> }>,
  broker: BrokerProcess | undefined,
): Promise<LegFigures> {
  const total = EVENTS;
  const perRecord = (t: Timed<unknown>): string =>
    `node ${((t.nodeCpuMs * 1000) / total).toFixed(1)} µs/record${t.brokerCpuMs === undefined ? '' : `, broker ${((t.brokerCpuMs * 1000) / total).toFixed(1)} µs/record`}`;
  const all = Array.from({ length: PARTITIONS }, (_, p) => p);

  const read = await timed(broker, () => readInputs(log, all));
  if (read.value !== total) throw new Error(`${kind}: read ${read.value} records, expected ${total}`);
  const readPerS = total / (read.ms / 1000);
  console.log(`  read      ${fmt(readPerS)}/s (${(read.ms / 1000).toFixed(1)} s; ${perRecord(read)})`);

  const replayed = await timed(broker, () => replay({ log }));
  const replayPerS = total / (replayed.ms / 1000);
  console.log(
    `  replay    ${fmt(replayPerS)}/s (${(replayed.ms / 1000).toFixed(1)} s, ${fmt(replayed.value.states.size)} twins, ${fmt(replayed.value.counts.applied)} applied; ${perRecord(replayed)}) = ${ratio(replayPerS, readPerS)} × read`,
  );

  const into = await freshInto();
  const rebuilt = await timed(broker, () => replay({ log, into: into.log }));
  await into.close();
  const rebuildPerS = total / (rebuilt.ms / 1000);
  console.log(
    `  rebuild   ${fmt(rebuildPerS)}/s (${(rebuilt.ms / 1000).toFixed(1)} s into fresh snapshots; ${perRecord(rebuilt)}) = ${ratio(rebuildPerS, readPerS)} × read`,
  );

  // both cores: one worker thread per core, each opening the log itself; states are not sent back
  const workers = Math.min(availableParallelism(), PARTITIONS);
  const counted = await timed(broker, () => replay({ log, workers, workerLog, keepStates: false }));
  const countedPerS = total / (counted.ms / 1000);
  console.log(
    `  replay ×${workers} ${fmt(countedPerS)}/s (${(counted.ms / 1000).toFixed(1)} s in ${workers} worker threads, ${fmt(counted.value.counts.devices)} twins, states not kept; ${perRecord(counted)}) = ${ratio(countedPerS, readPerS)} × read`,
  );
  const intoWorkers = await freshInto();
  const rebuiltWorkers = await timed(broker, () =>
    replay({ log, into: intoWorkers.log, workers, workerLog, keepStates: false }),
  );
  await intoWorkers.close();
  const rebuildWorkersPerS = total / (rebuiltWorkers.ms / 1000);
  console.log(
    `  rebuild ×${workers} ${fmt(rebuildWorkersPerS)}/s (${(rebuiltWorkers.ms / 1000).toFixed(1)} s in ${workers} worker threads; ${perRecord(rebuiltWorkers)}) = ${ratio(rebuildWorkersPerS, readPerS)} × read`,
  );

  // the fleet's audit trail, each entry serialized as `twinlog audit --all --format json` prints it (not written)
  let auditBytes = 0;
  const audited = await timed(broker, () =>
    auditTrail({ log, onEntry: (e) => void (auditBytes += JSON.stringify(e).length) }),
  );
  const auditPerS = total / (audited.ms / 1000);
  console.log(
    `  audit     ${fmt(auditPerS)}/s (${(audited.ms / 1000).toFixed(1)} s, ${fmt(audited.value.counts.applied)} entries, ${fmt(auditBytes / 1e6)} MB of JSON; ${perRecord(audited)}) = ${ratio(auditPerS, readPerS)} × read`,
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
    `  device    history of ${DEVICE} ${deviceHistory.ms.toFixed(0)} ms (${entries} entries; rounds ${historyMs.map((x) => x.toFixed(0)).join(', ')}) against a plain read of its partition ` +
      `${deviceRead.ms.toFixed(0)} ms (${deviceRecords} of its records; rounds ${readMs.map((x) => x.toFixed(0)).join(', ')}) = ${ratio(deviceHistory.ms, deviceRead.ms)} ×`,
  );
  return {
    read_per_s: Math.round(readPerS),
    replay_per_s: Math.round(replayPerS),
    replay_vs_read: ratio(replayPerS, readPerS),
    rebuild_per_s: Math.round(rebuildPerS),
    rebuild_vs_read: ratio(rebuildPerS, readPerS),
    device_history_ms: Math.round(deviceHistory.ms),
    device_read_ms: Math.round(deviceRead.ms),
    audit_per_s: Math.round(auditPerS),
    audit_vs_read: ratio(auditPerS, readPerS),
    replay_workers_per_s: Math.round(countedPerS),
    replay_workers_vs_read: ratio(countedPerS, readPerS),
    rebuild_workers_per_s: Math.round(rebuildWorkersPerS),
    rebuild_workers_vs_read: ratio(rebuildWorkersPerS, readPerS),
  };
}

const targets = (f: LegFigures): string => {
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  return `replay_vs_read >= 0.4 ${met(f.replay_vs_read >= 0.4)}, rebuild_vs_read >= 0.25 ${met(f.rebuild_vs_read >= 0.25)}, device_history_ms <= 1.5 x device_read_ms ${met(f.device_history_ms <= 1.5 * f.device_read_ms)}`;
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
const t0 = performance.now();
const workload = makeWorkload();
console.log(
  `bench:replay — ${fmt(EVENTS)} events over ${fmt(DEVICES)} devices, ${PARTITIONS} partitions (${fmt(workload.backend.length)} twin.backend, ${fmt(workload.device.length)} twin.device); generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

console.log('embedded log (SQLite):');
const embedded = createEmbeddedLog({ path: join(dir, 'input.db') });
await fill(embedded, workload);
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

const broker = await startKafkaBroker();
const brokerProcess = findBrokerProcess(broker.brokers.split(','));
console.log(
  `Kafka (${broker.brokers}, ${broker.source}; client ${KAFKA_CLIENT}; broker CPU ${brokerProcess === undefined ? 'not found' : `pid ${brokerProcess.pid}`}):`,
);
const run = randomUUID().slice(0, 8);
const kafka = await openKafka(broker.brokers, `bench-replay-${run}.`);
await fill(kafka, workload);
const kafkaFigures = await runLegs(
  'kafka',
  kafka,
  KAFKA_CLIENT === 'kafkajs'
    ? {
        module: import.meta.resolve('@twinlog/log-kafka'),
        export: 'createKafkaLog',
        options: {
          brokers: broker.brokers,
          topicPrefix: `bench-replay-${run}.`,
          clientId: 'twinlog-bench-replay-worker',
        },
      }
    : {
        module: import.meta.resolve('@twinlog/log-kafka-platformatic'),
        export: 'createPlatformaticKafkaLog',
        options: {
          brokers: broker.brokers,
          topicPrefix: `bench-replay-${run}.`,
          clientId: 'twinlog-bench-replay-worker',
        },
      },
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
