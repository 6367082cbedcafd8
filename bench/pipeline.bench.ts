/**
 * bench:pipeline — the projector end to end on a real Kafka broker and on the embedded SQLite log,
 * against floors measured in the same run: a raw kafkajs consumer, B1 (a bare exactly-once kafkajs
 * pipeline) and a plain `log.read` of the embedded file; then a steady-state run.
 *
 * Broker: `KAFKA_BROKERS` when set, else `startKafkaBroker()` (test/kafkaBroker.ts, as the tests
 * do: the developer's running `kafka-local.sh` broker, or a private one on free ports, stopped at
 * the end).
 *
 * Workload (deterministic, mulberry32 seed 42, as bench:fold): BENCH_EVENTS (200,000) envelopes
 * over BENCH_DEVICES (10,000) devices — one `create` per device, then patches, half desired
 * (`twin.backend`), half reported (`twin.device`), each writing ~5 leaves (4 groups × 8 leaves,
 * 10 % deletions), encoded with `encodeEvent`, keyed by device id. Stamps come from one HLC whose
 * physical clock starts at midnight UTC of the run's day (inside `validateEvent`'s skew window),
 * so the bytes are identical for every run of a day. Every round writes the workload (not timed)
 * to fresh twin topics (`ensureTwinTopics(log, BENCH_PARTITIONS)`, default 4 partitions) under a
 * fresh topic prefix, and to a fresh SQLite file.
 *
 * Rounds: BENCH_ROUNDS (3), each running every variant once; the Kafka variants share the round's
 * topics (each in its own group) and their order rotates from round to round, as does the embedded
 * pair's. Printed: per variant the median over the rounds, the range (min–max) and each round;
 * ratios from the medians; CPU µs per input record of this process (`process.cpuUsage()`) and of
 * the broker's JVM (/proc/<pid>/stat, bench/internal/brokerCpu.ts) over each variant's window.
 * - raw:       a kafkajs consumer, fresh group, `eachBatch` counting messages, nothing else, reading
 *              both input topics from the beginning with the adapter's fetch settings (read_committed,
 *              maxWait 250 ms, minBytes 1, maxBytes 16 MiB, 4 MiB per partition, one partition at
 *              a time). Timed from `connect()` until every record was counted.
 * - B1:        the bare exactly-once pipeline of bench/internal/b1.ts (kafkajs, the adapter's consumer
 *              and producer settings, one output record of the same size per input, one transaction
 *              with `sendOffsets` per fetched batch per partition, one transactional producer per
 *              partition number as the projector's fences). Timed as the projector.
 * - projector: `startProjector` on the same `Log` (createKafkaLog defaults), fresh group. Timed from
 *              `startProjector()` until the group's committed offsets of both inputs reach their end
 *              offsets (polled every 50 ms: `log.committedOffsets` vs `log.endOffsets`).
 * - read:      a plain `log.read` of both inputs on the round's SQLite file (the embedded baseline).
 * - embedded:  the same projector on `createEmbeddedLog` (defaults) on that file, timed as above.
 * `embedded_vs_read` = embedded / read (medians). The probe around the projector's `Log` also
 * reports batches, commits (and which of them were the timer's settles of parked device records),
 * snapshots written and the time inside `eachBatch` and `commitBatch`. Before round 1 a warm-up
 * transaction and group join make the broker's coordinators ready. A variant that does not catch up
 * within BENCH_TIMEOUT_S (150) counts what it covered; a round that would end past BENCH_BUDGET_S
 * (480) is not started.
 *
 * Steady state (BENCH_STEADY, on unless 0; bench/internal/steady.ts and steadyDriver.ts): a projector
 * on Kafka while a child process appends the workload at BENCH_STEADY_RATE (30,000/s) for
 * BENCH_STEADY_S (60 s), samples the group's lag every 250 ms and times each record from its append
 * to the checkpoint on `twin.snapshots` that covers it. Printed: lag p50/p99/max and growth,
 * end-to-end p50/p99, CPU per record, and whether the projector kept up.
 *
 * Topics and groups of the run are deleted at the end (BENCH_KEEP=1 keeps them). The last line is
 * `RESULT {…}` (medians; steady-state keys at the end).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEvent } from '@twinlog/codec';
import type { AppendRecord, Log, SubscribeOptions } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createPlatformaticKafkaLog } from '@twinlog/log-kafka-platformatic';
import { createKafkaLog } from '@twinlog/log-kafka';
import { CHECKPOINT_KEY, TOPICS, ensureTwinTopics, startProjector, type BatchStats } from '@twinlog/projector';
import { Kafka, logLevel } from 'kafkajs';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { findBrokerProcess, type BrokerProcess } from './internal/brokerCpu.ts';
import { startB1 } from './internal/b1.ts';
import { median, range } from './internal/stats.ts';
import { runSteady } from './internal/steady.ts';
import { benchEvents } from './workload.ts';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 200_000);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 10_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const PARTITIONS = Number(process.env['BENCH_PARTITIONS'] ?? 4);
/** Longest a variant may take before it is reported as not caught up, s. */
const TIMEOUT_S = Number(process.env['BENCH_TIMEOUT_S'] ?? 150);
/** A round is not started when the rounds so far suggest it would end after this, s. */
const BUDGET_S = Number(process.env['BENCH_BUDGET_S'] ?? 480);
const POLL_MS = 50;
/** B1's partitionsConsumedConcurrently: what the projector passes to the adapter (startProjector's `concurrency`, default 8). */
const B1_CONCURRENCY = Number(process.env['BENCH_B1_CONCURRENCY'] ?? 8);
/** Worker threads of the projector's `workers` variants (docs/write-path.md, "Both cores"). */
const WORKERS = Number(process.env['BENCH_WORKERS'] ?? 2);
/** The steady-state variant: on unless BENCH_STEADY=0. */
const STEADY = process.env['BENCH_STEADY'] !== '0';
const STEADY_RATE = Number(process.env['BENCH_STEADY_RATE'] ?? 30_000);
const STEADY_S = Number(process.env['BENCH_STEADY_S'] ?? 60);
/** How long the steady variant waits after its window for the projector to catch up, s. */
const STEADY_DRAIN_S = Number(process.env['BENCH_STEADY_DRAIN_S'] ?? 30);
/** The adapter's subscription fetch settings (createKafkaLog defaults). */
const FETCH = { maxWaitTimeInMs: 250, minBytes: 1, maxBytes: 16 * 1024 * 1024, maxBytesPerPartition: 4 * 1024 * 1024 };
const RUN = randomUUID().slice(0, 8);
/** Under `node --cpu-prof`, phase windows are printed in the profile's clock (µs, monotonic). */
const PROFILING = process.execArgv.some((a) => a.startsWith('--cpu-prof'));

interface Workload {
  readonly backend: AppendRecord[];
  readonly device: AppendRecord[];
  readonly bytes: number;
}

function makeWorkload(): Workload {
  const backend: AppendRecord[] = [];
  const device: AppendRecord[] = [];
  let bytes = 0;
  // midnight UTC of today: inside validateEvent's skew window
  for (const e of benchEvents({
    events: EVENTS,
    devices: DEVICES,
    startWall: Math.floor(Date.now() / 86_400_000) * 86_400_000,
  })) {
    const value = encodeEvent(e);
    bytes += value.length;
    (e.section === 'reported' ? device : backend).push({ key: e.deviceId, value });
  }
  return { backend, device, bytes };
}

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const micros = (): number => Number(process.hrtime.bigint() / 1000n);
const rate = (records: number, ms: number): number => Math.round(records / (ms / 1000));
const fmt = (n: number): string => n.toLocaleString('en-US');

function phase(name: string): () => void {
  const start = micros();
  return () => {
    if (PROFILING) console.log(`  [profile window] ${name}: ${start}..${micros()} µs`);
  };
}

/**
 * CPU over a variant's window: `process.cpuUsage()` of this process and utime + stime of the
 * broker's JVM (/proc), read at `begin()` and at `end()` (the moment the variant's clock stops).
 */
class Meter {
  private cpu0: NodeJS.CpuUsage | undefined;
  private broker0: number | undefined;
  nodeMs = Number.NaN;
  brokerMs: number | undefined;
  constructor(private readonly broker: BrokerProcess | undefined) {}
  begin(): void {
    this.cpu0 = process.cpuUsage();
    this.broker0 = this.broker?.cpuMs();
  }
  end(): void {
    if (this.cpu0 === undefined || !Number.isNaN(this.nodeMs)) return;
    const u = process.cpuUsage(this.cpu0);
    this.nodeMs = (u.user + u.system) / 1000;
    const b = this.broker?.cpuMs();
    this.brokerMs = b === undefined || this.broker0 === undefined ? undefined : b - this.broker0;
  }
  /** µs of CPU per record: [node, broker]. */
  perRecord(records: number): [number, number] {
    const per = (ms: number | undefined): number =>
      ms === undefined || records === 0 ? Number.NaN : (ms * 1000) / records;
    return [per(this.nodeMs), per(this.brokerMs)];
  }
  describe(records: number): string {
    const [n, b] = this.perRecord(records);
    return `CPU/record: node ${Number.isNaN(n) ? 'n/a' : n.toFixed(1)} µs, broker ${Number.isNaN(b) ? 'n/a' : b.toFixed(1)} µs`;
  }
}

/** Writes the workload to the twin topics of `log` (not timed by the variants). */
async function produce(log: Log, w: Workload): Promise<number> {
  const start = now();
  await ensureTwinTopics(log, PARTITIONS);
  const CHUNK = 10_000;
  for (const [topic, records] of [
    [TOPICS.backend, w.backend],
    [TOPICS.device, w.device],
  ] as const) {
    for (let i = 0; i < records.length; i += CHUNK) await log.append(topic, records.slice(i, i + CHUNK));
  }
  return now() - start;
}

// --- the raw kafkajs baseline --------------------------------------------------------------------

interface RawResult {
  readonly ms: number;
  readonly records: number;
  readonly batches: number;
  readonly firstBatchMs: number;
}

async function rawConsume(brokers: string[], prefix: string, total: number, meter: Meter): Promise<RawResult> {
  const kafka = new Kafka({ clientId: 'twinlog-bench-raw', brokers, logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({
    groupId: `${prefix}bench-raw`,
    readUncommitted: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    rebalanceTimeout: 60_000,
    ...FETCH,
  });
  let records = 0;
  let batches = 0;
  let first = 0;
  let finished: () => void = () => {};
  const all = new Promise<void>((resolve) => (finished = resolve));
  meter.begin();
  const start = now();
  let end = 0;
  try {
    await consumer.connect();
    await consumer.subscribe({
      topics: [`${prefix}${TOPICS.backend}`, `${prefix}${TOPICS.device}`],
      fromBeginning: true,
    });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch }) => {
        if (batches++ === 0) first = now() - start;
        records += batch.messages.length;
        if (records >= total && end === 0) {
          end = now();
          meter.end();
          finished();
        }
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, TIMEOUT_S * 1000)))]);
    clearTimeout(timer);
    meter.end();
  } finally {
    await consumer.disconnect().catch(() => {});
  }
  return { ms: (end === 0 ? now() : end) - start, records, batches, firstBatchMs: first };
}

// --- the projector, with a probe around its Log ----------------------------------------------------

interface Probe {
  batches: number;
  batchRecords: number;
  maxBatch: number;
  /** Wall time inside `eachBatch` (fold + encode + commit), ms. */
  batchMs: number;
  commits: number;
  /** Wall time inside `commitBatch`, ms (commits of batches and settles may overlap across partitions). */
  commitMs: number;
  /** Commits outside `eachBatch`: the projector's timer settling parked device records. */
  settleCommits: number;
  settleCommitMs: number;
  snapshots: number;
  snapshotBytes: number;
  outputRecords: number;
  firstBatchMs: number;
  stats: BatchStats;
}

function newProbe(): Probe {
  return {
    batches: 0,
    batchRecords: 0,
    maxBatch: 0,
    batchMs: 0,
    commits: 0,
    commitMs: 0,
    settleCommits: 0,
    settleCommitMs: 0,
    snapshots: 0,
    snapshotBytes: 0,
    outputRecords: 0,
    firstBatchMs: 0,
    stats: { applied: 0, duplicates: 0, skipped: 0, rejected: 0, deadLettered: 0, commands: 0, parked: 0 },
  };
}

/** Set while an `eachBatch` runs (the projector's per-partition queue keeps the async context). */
const inBatch = new AsyncLocalStorage<true>();

/** `log`, with `commitBatch` and `eachBatch` timed and counted (a few counters, no copies). */
function probed(log: Log, probe: Probe, start: () => number): Log {
  return {
    ensureTopics: (specs) => log.ensureTopics(specs),
    partitionCount: (topic) => log.partitionCount(topic),
    append: (topic, records) => log.append(topic, records),
    commitOffsets: (offsets) => log.commitOffsets(offsets),
    committedOffsets: (group, topic) => log.committedOffsets(group, topic),
    endOffsets: (topic) => log.endOffsets(topic),
    read: (topic, partition, options) => log.read(topic, partition, options),
    close: () => log.close(),
    async commitBatch(batch) {
      const t0 = now();
      await log.commitBatch(batch);
      const ms = now() - t0;
      probe.commitMs += ms;
      probe.commits++;
      if (inBatch.getStore() === undefined) {
        probe.settleCommits++;
        probe.settleCommitMs += ms;
      }
      for (const { topic, records } of batch.appends) {
        probe.outputRecords += records.length;
        if (topic !== TOPICS.snapshots) continue;
        for (const r of records) {
          if (r.key === CHECKPOINT_KEY) continue;
          probe.snapshots++;
          probe.snapshotBytes += r.value?.length ?? 0;
        }
      }
    },
    subscribe(options: SubscribeOptions) {
      return log.subscribe({
        ...options,
        async eachBatch(batch) {
          if (probe.batches++ === 0) probe.firstBatchMs = now() - start();
          probe.batchRecords += batch.records.length;
          probe.maxBatch = Math.max(probe.maxBatch, batch.records.length);
          const t0 = now();
          try {
            await inBatch.run(true, () => options.eachBatch(batch));
          } finally {
            probe.batchMs += now() - t0;
          }
        },
      });
    },
  };
}

interface ProjectorResult {
  readonly ms: number;
  /** Input records the committed offsets cover at the end (all of them when caught up). */
  readonly records: number;
  readonly caughtUp: boolean;
  readonly probe: Probe;
}

const sum = (xs: readonly (number | undefined)[]): number => xs.reduce<number>((a, x) => a + (x ?? 0), 0);

const INPUTS = [TOPICS.backend, TOPICS.device] as const;

/** The inputs' end offsets, per topic (INPUTS order), and their sum. */
async function inputEnds(log: Log): Promise<{ ends: number[][]; total: number }> {
  const ends = await Promise.all(INPUTS.map((t) => log.endOffsets(t)));
  return { ends, total: sum(ends.flat()) };
}

/**
 * Polls `group`'s committed offsets of the inputs every POLL_MS until they reach `ends` (the clock
 * of the variant stops then: `meter.end()`), a failure shows, or BENCH_TIMEOUT_S passed since `start`.
 */
async function awaitCommitted(
  log: Log,
  group: string,
  ends: number[][],
  start: number,
  meter: Meter,
  failed: () => unknown,
): Promise<{ ms: number; covered: number; caughtUp: boolean }> {
  let covered = 0;
  const deadline = start + TIMEOUT_S * 1000;
  while (failed() === undefined && now() < deadline) {
    const committed = await Promise.all(INPUTS.map((t) => log.committedOffsets(group, t)));
    covered = sum(committed.flat());
    if (committed.every((c, i) => c.every((o, p) => (o ?? 0) >= ends[i]![p]!))) {
      const end = now();
      meter.end();
      return { ms: end - start, covered, caughtUp: true };
    }
    await sleep(POLL_MS);
  }
  meter.end();
  return { ms: now() - start, covered, caughtUp: false };
}

async function runProjector(log: Log, group: string, meter: Meter, workers = 0): Promise<ProjectorResult> {
  const { ends, total } = await inputEnds(log);
  const probe = newProbe();
  let start = now();
  const instrumented = probed(log, probe, () => start);
  meter.begin();
  start = now();
  const projector = await startProjector({
    log: instrumented,
    group,
    physicalNow: () => Date.now(),
    workers,
    onBatch: (_p, s) => {
      for (const k of Object.keys(s) as (keyof BatchStats)[]) probe.stats[k] += s[k];
    },
  });
  let failed: unknown;
  projector.done.catch((e: unknown) => (failed = e));
  const { ms, covered, caughtUp } = await awaitCommitted(log, group, ends, start, meter, () => failed);
  await projector.stop().catch(() => {});
  if (failed !== undefined) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- whatever the projector rejected with
    console.log(`  projector failed: ${failed instanceof Error ? failed.message : String(failed)}`);
  }
  return { ms, records: caughtUp ? total : covered, caughtUp, probe };
}

// --- B1: the bare exactly-once pipeline ------------------------------------------------------------

interface B1Result {
  readonly ms: number;
  readonly records: number;
  readonly caughtUp: boolean;
  readonly transactions: number;
}

/** B1 (bench/internal/b1.ts) on the inputs of `log`, in a fresh group, timed as the projector. */
async function runB1(log: Log, brokers: string[], prefix: string, meter: Meter): Promise<B1Result> {
  const { ends, total } = await inputEnds(log);
  const group = 'bench-b1';
  await log.ensureTopics([{ name: 'bench-b1.out', partitions: PARTITIONS }]);
  meter.begin();
  const start = now();
  const pipe = await startB1({
    brokers,
    inputs: INPUTS.map((t) => `${prefix}${t}`),
    output: `${prefix}bench-b1.out`,
    groupId: `${prefix}${group}`,
    partitions: PARTITIONS,
    fetch: FETCH,
    partitionsConsumedConcurrently: B1_CONCURRENCY,
  });
  try {
    const { ms, covered, caughtUp } = await awaitCommitted(log, group, ends, start, meter, () => pipe.failure());
    if (pipe.failure() !== undefined) console.log(`  B1 failed: ${String(pipe.failure())}`);
    return { ms, records: caughtUp ? total : covered, caughtUp, transactions: pipe.transactions() };
  } finally {
    await pipe.stop();
  }
}

function describe(name: string, r: ProjectorResult): string {
  const p = r.probe;
  // with several partitions worked on at once, the time inside eachBatch adds up to more than the wall time
  return (
    `${name} ${fmt(rate(r.records, r.ms))}/s (${fmt(r.records)} records in ${(r.ms / 1000).toFixed(2)} s${r.caughtUp ? '' : ', NOT caught up'}); ` +
    `${fmt(p.batches)} batches (avg ${Math.round(p.batchRecords / Math.max(1, p.batches))}, max ${p.maxBatch} records), ` +
    `${fmt(p.commits)} commits (${fmt(p.settleCommits)} of them settles outside eachBatch, ${Math.round(p.settleCommitMs)} ms), ` +
    `${fmt(p.snapshots)} snapshots (${(p.snapshotBytes / 1e6).toFixed(1)} MB), ${fmt(p.outputRecords)} output records; ` +
    `first batch after ${Math.round(p.firstBatchMs)} ms; time in eachBatch ${Math.round(p.batchMs)} ms ` +
    `(commitBatch, all commits: ${Math.round(p.commitMs)} ms; both summed over the partitions' concurrent batches); ` +
    `applied ${fmt(p.stats.applied)}, rejected ${p.stats.rejected}, parked ${p.stats.parked}, dead-lettered ${p.stats.deadLettered}`
  );
}

async function embeddedRead(log: Log, meter: Meter): Promise<{ ms: number; records: number }> {
  meter.begin();
  const start = now();
  let records = 0;
  for (const topic of [TOPICS.backend, TOPICS.device]) {
    for (let p = 0; p < PARTITIONS; p++) {
      for await (const batch of log.read(topic, p, { from: 0 })) records += batch.length;
    }
  }
  const ms = now() - start;
  meter.end();
  return { ms, records };
}

// --- the run -------------------------------------------------------------------------------------

async function deleteTopics(brokers: string[], prefixes: readonly string[]): Promise<void> {
  const admin = new Kafka({ clientId: 'twinlog-bench-cleanup', brokers, logLevel: logLevel.NOTHING }).admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => prefixes.some((p) => t.startsWith(p)));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    const groups = (await admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => prefixes.some((p) => g.startsWith(p)));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}

/**
 * Makes the broker's group and transaction coordinators ready (a fresh broker creates
 * `__consumer_offsets` and `__transaction_state` on first use, ~1 s), so round 1 does not pay it.
 */
async function warmUp(brokers: string[], prefix: string): Promise<void> {
  const log = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'twinlog-bench-warmup' });
  try {
    await log.ensureTopics([{ name: 'warmup', partitions: 1 }]);
    await log.commitBatch({
      fence: 'warmup',
      appends: [{ topic: 'warmup', records: [{ key: 'k', value: new Uint8Array([1]) }] }],
      offsets: [{ group: 'warmup', topic: 'warmup', partition: 0, offset: 1 }],
    });
  } finally {
    await log.close();
  }
  const consumer = new Kafka({ clientId: 'twinlog-bench-warmup', brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: `${prefix}warmup-consumer`,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [`${prefix}warmup`], fromBeginning: true });
  await consumer.run({ eachBatch: async () => {} });
  await consumer.disconnect();
}

type Variant = 'raw' | 'b1' | 'projector' | 'projector-w' | 'projector-pf' | 'read' | 'embedded' | 'embedded-w';
const VARIANTS: readonly { key: Variant; label: string }[] = [
  { key: 'raw', label: 'raw kafkajs consume' },
  { key: 'b1', label: 'B1 bare exactly-once' },
  { key: 'projector', label: 'projector (Kafka)' },
  { key: 'projector-w', label: `projector, ${WORKERS} workers` },
  { key: 'projector-pf', label: 'projector, platformatic' },
  { key: 'read', label: 'embedded log.read' },
  { key: 'embedded', label: 'projector (embedded)' },
  { key: 'embedded-w', label: `embedded, ${WORKERS} workers` },
];

interface Sample {
  readonly rate: number;
  readonly nodeUs: number;
  readonly brokerUs: number;
}

const loadavg = (): string => {
  try {
    return readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
};
const f1 = (n: number): string => (Number.isNaN(n) ? 'n/a' : n.toFixed(1));
const ratio = (a: number, b: number): number => Number((a / Math.max(1, b)).toFixed(3));

async function main(): Promise<void> {
  const workload = makeWorkload();
  const total = workload.backend.length + workload.device.length;
  console.log(
    `bench:pipeline — ${fmt(total)} events over ${fmt(DEVICES)} devices (${fmt(workload.backend.length)} on twin.backend, ` +
      `${fmt(workload.device.length)} on twin.device, ${(workload.bytes / 1e6).toFixed(1)} MB), ${PARTITIONS} partitions, ${ROUNDS} rounds, ` +
      `steady state ${STEADY ? `${fmt(STEADY_RATE)}/s for ${STEADY_S} s` : 'off'}, Node ${process.version}`,
  );
  console.log(`load average at start: ${loadavg()}`);
  const broker = await startKafkaBroker();
  const brokers = broker.brokers.split(',');
  const brokerProcess = findBrokerProcess(brokers);
  console.log(
    `broker: ${broker.brokers} (${broker.source}); broker CPU from /proc: ${brokerProcess?.how ?? 'n/a (no local broker process found)'}`,
  );
  const prefixes: string[] = [];
  const samples = new Map<Variant, Sample[]>(VARIANTS.map((v) => [v.key, []]));
  const record = (v: Variant, records: number, ms: number, meter: Meter): void => {
    const [nodeUs, brokerUs] = meter.perRecord(records);
    samples.get(v)!.push({ rate: rate(records, ms), nodeUs, brokerUs });
  };
  let allCaughtUp = true;
  let rounds = 0;
  let steady: Awaited<ReturnType<typeof runSteady>> | undefined;
  try {
    prefixes.push(`bench-pipeline-${RUN}-warmup.`);
    await warmUp(brokers, prefixes[0]!);
    const began = now();
    let longest = 0;
    for (let r = 1; r <= ROUNDS; r++) {
      const elapsed = (now() - began) / 1000;
      if (r > 1 && elapsed + longest > BUDGET_S) {
        console.log(
          `round ${r} and later skipped: ${Math.round(elapsed)} s so far, a round takes up to ${Math.round(longest)} s (BENCH_BUDGET_S=${BUDGET_S})`,
        );
        break;
      }
      rounds = r;
      const roundStart = now();
      // the Kafka variants' order rotates from round to round, as does the embedded pair's
      const kafkaOrder = (['raw', 'b1', 'projector', 'projector-w', 'projector-pf'] as const).map(
        (_, i, all) => all[(i + r - 1) % all.length]!,
      );
      const embeddedOrder = (['read', 'embedded', 'embedded-w'] as const).map(
        (_, i, all) => all[(i + r - 1) % all.length]!,
      );
      console.log(
        `round ${r} (order: ${kafkaOrder.join(', ')}; ${embeddedOrder.join(', ')}; load average ${loadavg()}):`,
      );
      // Kafka: fresh prefix, workload written, then the three variants on the same topics, each in its own group.
      const prefix = `bench-pipeline-${RUN}-r${r}.`;
      prefixes.push(prefix);
      const log = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'twinlog-bench' });
      try {
        const produced = await produce(log, workload);
        console.log(`  kafka: wrote ${fmt(total)} records in ${(produced / 1000).toFixed(1)} s (not timed below)`);
        for (const v of kafkaOrder) {
          const meter = new Meter(brokerProcess);
          const end = phase(v);
          if (v === 'raw') {
            const raw = await rawConsume(brokers, prefix, total, meter);
            end();
            allCaughtUp &&= raw.records >= total;
            record('raw', raw.records, raw.ms, meter);
            console.log(
              `  raw kafkajs ${fmt(rate(raw.records, raw.ms))}/s (${fmt(raw.records)} records in ${(raw.ms / 1000).toFixed(2)} s, ${raw.batches} batches, first after ${Math.round(raw.firstBatchMs)} ms); ${meter.describe(raw.records)}`,
            );
          } else if (v === 'b1') {
            const b1 = await runB1(log, brokers, prefix, meter);
            end();
            allCaughtUp &&= b1.caughtUp;
            record('b1', b1.records, b1.ms, meter);
            console.log(
              `  B1 bare exactly-once ${fmt(rate(b1.records, b1.ms))}/s (${fmt(b1.records)} records in ${(b1.ms / 1000).toFixed(2)} s${b1.caughtUp ? '' : ', NOT caught up'}, ${b1.transactions} transactions); ${meter.describe(b1.records)}`,
            );
          } else {
            // A projector restores from the snapshots its topics hold, so each projector variant gets
            // topics of its own with the workload written again (untimed); the platformatic one is
            // on a log of that client.
            const own = v === 'projector' ? undefined : `${prefix}${v}.`;
            if (own !== undefined) prefixes.push(own);
            const pf =
              own === undefined
                ? undefined
                : v === 'projector-pf'
                  ? createPlatformaticKafkaLog({ brokers, topicPrefix: own, clientId: 'twinlog-bench-pf' })
                  : createKafkaLog({ brokers, topicPrefix: own, clientId: 'twinlog-bench' });
            try {
              if (pf !== undefined) await produce(pf, workload);
              const projected = await runProjector(pf ?? log, `bench-${v}`, meter, v === 'projector-w' ? WORKERS : 0);
              end();
              allCaughtUp &&= projected.caughtUp;
              record(v, projected.records, projected.ms, meter);
              console.log(
                `  ${describe(VARIANTS.find((x) => x.key === v)!.label, projected)}; ${meter.describe(projected.records)}`,
              );
            } finally {
              await pf?.close();
            }
          }
        }
      } finally {
        await log.close();
      }

      // Embedded: a fresh SQLite file with the same workload, then plain reads and the same projector.
      const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-'));
      const elog = createEmbeddedLog({ path: join(dir, 'twinlog.db') });
      try {
        const produced = await produce(elog, workload);
        console.log(`  embedded: wrote ${fmt(total)} records in ${(produced / 1000).toFixed(1)} s (not timed below)`);
        for (const v of embeddedOrder) {
          const meter = new Meter(brokerProcess);
          if (v === 'read') {
            const read = await embeddedRead(elog, meter);
            record('read', read.records, read.ms, meter);
            console.log(
              `  embedded log.read ${fmt(rate(read.records, read.ms))}/s (${fmt(read.records)} records in ${(read.ms / 1000).toFixed(2)} s); ${meter.describe(read.records)}`,
            );
          } else {
            // the workers variant on a file of its own (a projector restores from the snapshots its log holds)
            const own = v === 'embedded-w' ? createEmbeddedLog({ path: join(dir, 'workers.db') }) : undefined;
            try {
              if (own !== undefined) await produce(own, workload);
              const end = phase(v === 'embedded' ? 'projector (embedded)' : `projector (embedded, ${WORKERS} workers)`);
              const projected = await runProjector(own ?? elog, `bench-${v}`, meter, v === 'embedded-w' ? WORKERS : 0);
              end();
              allCaughtUp &&= projected.caughtUp;
              record(v, projected.records, projected.ms, meter);
              console.log(
                `  ${describe(VARIANTS.find((x) => x.key === v)!.label, projected)}; ${meter.describe(projected.records)}`,
              );
            } finally {
              await own?.close();
            }
          }
        }
      } finally {
        await elog.close();
        rmSync(dir, { recursive: true, force: true });
      }
      longest = Math.max(longest, (now() - roundStart) / 1000);
    }

    if (STEADY) {
      const prefix = `bench-pipeline-${RUN}-steady.`;
      prefixes.push(prefix);
      console.log(
        `steady state: ${fmt(STEADY_RATE)} events/s for ${STEADY_S} s into fresh topics, projector on Kafka (load average ${loadavg()})`,
      );
      try {
        steady = await runSteady({
          brokers,
          prefix,
          rate: STEADY_RATE,
          seconds: STEADY_S,
          devices: DEVICES,
          partitions: PARTITIONS,
          drainS: STEADY_DRAIN_S,
          sampleMs: 250,
          broker: brokerProcess,
          timeoutS: STEADY_S + STEADY_DRAIN_S + 90,
        });
      } catch (e) {
        console.log(`  steady state failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } finally {
    if (process.env['BENCH_KEEP'] !== '1')
      await deleteTopics(brokers, prefixes).catch((e: unknown) => console.log(`cleanup: ${String(e)}`));
    await broker.stop();
  }

  // --- summary ---
  const med = (v: Variant, k: keyof Sample): number => median(samples.get(v)!.map((x) => x[k]));
  console.log(
    `summary over ${rounds} round(s): median [min–max] input records/s; CPU µs per input record (median) of this Node process and of the broker`,
  );
  for (const { key, label } of VARIANTS) {
    const rates = samples.get(key)!.map((x) => x.rate);
    const { min, max } = range(rates);
    console.log(
      `  ${label.padEnd(22)} ${fmt(Math.round(med(key, 'rate'))).padStart(9)}/s [${fmt(min)}–${fmt(max)}]  node ${f1(med(key, 'nodeUs'))} µs  broker ${f1(med(key, 'brokerUs'))} µs  (rounds: ${rates.map(fmt).join(', ')})`,
    );
  }
  const m = {
    raw: Math.round(med('raw', 'rate')),
    b1: Math.round(med('b1', 'rate')),
    projector: Math.round(med('projector', 'rate')),
    projectorWorkers: Math.round(med('projector-w', 'rate')),
    projectorPlatformatic: Math.round(med('projector-pf', 'rate')),
    read: Math.round(med('read', 'rate')),
    embedded: Math.round(med('embedded', 'rate')),
    embeddedWorkers: Math.round(med('embedded-w', 'rate')),
  };
  const result: Record<string, number | boolean> = {
    raw_consume_per_s: m.raw,
    b1_per_s: m.b1,
    projector_per_s: m.projector,
    projector_vs_b1: ratio(m.projector, m.b1),
    projector_vs_raw: ratio(m.projector, m.raw),
    embedded_per_s: m.embedded,
    embedded_vs_read: ratio(m.embedded, m.read),
    projector_workers_per_s: m.projectorWorkers,
    projector_platformatic_per_s: m.projectorPlatformatic,
    embedded_workers_per_s: m.embeddedWorkers,
  };
  console.log(
    `ratios of medians: projector/B1 ${result['projector_vs_b1']}, projector/raw ${result['projector_vs_raw']}, B1/raw ${ratio(m.b1, m.raw)}, ` +
      `embedded/log.read ${result['embedded_vs_read']} (log.read ${fmt(m.read)}/s)`,
  );
  console.log(
    `both cores (${WORKERS} worker threads): Kafka ${ratio(m.projectorWorkers, m.projector)}× the projector without workers, embedded ${ratio(m.embeddedWorkers, m.embedded)}×; ` +
      `client: the projector on @platformatic/kafka ${ratio(m.projectorPlatformatic, m.projector)}× the one on kafkajs`,
  );
  if (!allCaughtUp)
    console.log('note: a variant did not catch up within BENCH_TIMEOUT_S; its rate counts what it covered');
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  console.log(
    `targets (issue #13, at 200k events / 10k devices): projector_per_s >= 50000 ${met(m.projector >= 50_000)}, projector_vs_b1 >= 0.6 ${met(Number(result['projector_vs_b1']) >= 0.6)}, ` +
      `embedded_per_s >= 50000 ${met(m.embedded >= 50_000)}, embedded_vs_read >= 0.25 ${met(Number(result['embedded_vs_read']) >= 0.25)}`,
  );

  if (steady !== undefined) {
    const s = steady.figures;
    const perRec = (ms: number | undefined): string =>
      ms === undefined || s.appended === 0 ? 'n/a' : f1((ms * 1000) / s.appended);
    const reachedRate = s.appendPerS >= 0.95 * STEADY_RATE;
    // kept up: the offered rate was appended, the lag did not grow over the second half (less than
    // 2 % of the rate per second) and the group caught up after the window
    const keptUp = reachedRate && s.drainS !== null && s.lagGrowthPerS < 0.02 * STEADY_RATE;
    console.log(
      `steady state: workload generated and encoded before the window in ${(s.generateMs / 1000).toFixed(1)} s; appended ${fmt(s.appended)} records at ${fmt(s.appendPerS)}/s (${fmt(s.appendCalls)} appends${reachedRate ? '' : `; the producer did NOT reach ${fmt(STEADY_RATE)}/s: ${fmt(s.notAppended)} records that fell due were still waiting for an append at the window's end and were not appended`}); ` +
        `the group committed ${fmt(s.committedPerS)}/s during the window`,
    );
    console.log(
      `  lag (input records, ${s.samples} samples every 250 ms): p50 ${fmt(s.lagP50)}, p99 ${fmt(s.lagP99)}, max ${fmt(s.lagMax)}, at the window's end ${fmt(s.lagAtEnd)}; ` +
        `growth over the second half ${fmt(s.lagGrowthPerS)}/s; caught up ${s.drainS === null ? `NOT within ${STEADY_DRAIN_S} s` : `${s.drainS.toFixed(1)} s after the window`}`,
    );
    // with more than 1 % of the records never reflected, the p99 is only a lower bound (they count at their latency so far)
    const bound = (p: number): string => (s.unmatched / Math.max(1, s.e2eN) > 1 - p / 100 ? '≥ ' : '');
    console.log(
      `  end-to-end append → checkpoint read back (${fmt(s.e2eN)} records${s.unmatched > 0 ? `, ${fmt(s.unmatched)} of them never reflected by the end, counted at their latency so far` : ''}): ` +
        `p50 ${bound(50)}${Math.round(s.e2eP50)} ms, p99 ${bound(99)}${Math.round(s.e2eP99)} ms, max ${s.unmatched > 0 ? '≥ ' : ''}${Math.round(s.e2eMax)} ms; ` +
        `from when each record fell due on the producer's schedule: p50 ${bound(50)}${Math.round(s.dueP50)} ms, p99 ${bound(99)}${Math.round(s.dueP99)} ms`,
    );
    console.log(
      `  CPU over the ${(steady.windowMs / 1000).toFixed(1)} s window, µs per appended record: projector process ${perRec(steady.nodeCpuMs)}, ` +
        `producer/reader process ${perRec(s.cpuMs)}, broker ${perRec(steady.brokerCpuMs)}${steady.rebalanced ? '; the projector lost or gained partitions during the window' : ''}`,
    );
    console.log(
      keptUp
        ? `  the projector kept up: lag stayed bounded at ${fmt(STEADY_RATE)}/s`
        : !reachedRate && s.drainS !== null && s.lagGrowthPerS < 0.02 * STEADY_RATE
          ? `  the producer did not reach ${fmt(STEADY_RATE)}/s; at the ${fmt(s.appendPerS)}/s it appended the projector kept up (no verdict at the offered rate)`
          : `  the projector did NOT keep up: it committed ${fmt(s.committedPerS)}/s against ${fmt(s.appendPerS)}/s appended, and the lag grew (${fmt(s.lagGrowthPerS)}/s over the second half)`,
    );
    result['steady_lag_p99'] = s.lagP99;
    result['steady_e2e_p99_ms'] = Math.round(s.e2eP99);
    if (bound(99) !== '') result['steady_e2e_p99_is_lower_bound'] = true;
    result['steady_kept_up'] = keptUp;
  }
  console.log(`load average at end: ${loadavg()}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
}

await main();
