/**
 * bench:pipeline — the projector end to end on a real Kafka broker and on the embedded SQLite log,
 * against a raw kafkajs consumer measured in the same run.
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
 * Variants, each round (best round counts):
 * - raw:       a kafkajs consumer, fresh group, `eachBatch` counting messages, nothing else, reading
 *              both input topics from the beginning with the adapter's fetch settings (read_committed,
 *              maxWait 250 ms, minBytes 1, maxBytes 16 MiB, 4 MiB per partition, one partition at
 *              a time). Timed from `connect()` until every record was counted — the baseline.
 * - projector: `startProjector` on the same `Log` (createKafkaLog defaults), fresh group. Timed from
 *              `startProjector()` until the group's committed offsets of both inputs reach their end
 *              offsets (polled every 50 ms: `log.committedOffsets` vs `log.endOffsets`).
 * - embedded:  the same projector on `createEmbeddedLog` (defaults: synchronous FULL, batches of at
 *              most 500 records), timed the same way. Printed beside it: a plain `log.read` of both
 *              inputs on that file (the embedded log's own baseline).
 * Rates are input records per second. The ratio is projector / raw of this same run. The probe
 * around the projector's `Log` also reports batches, commits (and which of them were the timer's
 * settles of parked device records), snapshots written and the time inside `eachBatch` and
 * `commitBatch`. Before round 1 a warm-up transaction and group join make the broker's
 * coordinators ready. A variant that does not catch up within BENCH_TIMEOUT_S (150) counts what it
 * covered; a round that would end past BENCH_BUDGET_S (480) is not started. Topics and groups of
 * the run are deleted at the end (BENCH_KEEP=1 keeps them).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEvent } from '@twinlog/codec';
import type { AppendRecord, Log, SubscribeOptions } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createKafkaLog } from '@twinlog/log-kafka';
import { CHECKPOINT_KEY, TOPICS, ensureTwinTopics, startProjector, type BatchStats } from '@twinlog/projector';
import { Kafka, logLevel } from 'kafkajs';
import { startKafkaBroker } from '../test/kafkaBroker.ts';
import { benchEvents } from './workload.ts';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 200_000);
const DEVICES = Number(process.env['BENCH_DEVICES'] ?? 10_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const PARTITIONS = Number(process.env['BENCH_PARTITIONS'] ?? 4);
/** Longest a variant may take before it is reported as not caught up, s. */
const TIMEOUT_S = Number(process.env['BENCH_TIMEOUT_S'] ?? 150);
/** A round is not started when the rounds so far suggest it would end after this, s. */
const BUDGET_S = Number(process.env['BENCH_BUDGET_S'] ?? 480);
const POLL_MS = 50;
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
  for (const e of benchEvents({ events: EVENTS, devices: DEVICES, startWall: Math.floor(Date.now() / 86_400_000) * 86_400_000 })) {
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

async function rawConsume(brokers: string[], prefix: string, total: number): Promise<RawResult> {
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
  const start = now();
  let end = 0;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [`${prefix}${TOPICS.backend}`, `${prefix}${TOPICS.device}`], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch }) => {
        if (batches++ === 0) first = now() - start;
        records += batch.messages.length;
        if (records >= total && end === 0) {
          end = now();
          finished();
        }
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, TIMEOUT_S * 1000)))]);
    clearTimeout(timer);
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

async function runProjector(log: Log, group: string): Promise<ProjectorResult> {
  const inputs = [TOPICS.backend, TOPICS.device] as const;
  const ends = await Promise.all(inputs.map((t) => log.endOffsets(t)));
  const total = sum(ends.flat());
  const probe = newProbe();
  let start = now();
  const instrumented = probed(log, probe, () => start);
  start = now();
  const projector = await startProjector({
    log: instrumented,
    group,
    physicalNow: () => Date.now(),
    onBatch: (_p, s) => {
      for (const k of Object.keys(s) as (keyof BatchStats)[]) probe.stats[k] += s[k];
    },
  });
  let failed: unknown;
  projector.done.catch((e: unknown) => (failed = e));
  let covered = 0;
  let caughtUp = false;
  let end = 0;
  const deadline = start + TIMEOUT_S * 1000;
  while (failed === undefined && now() < deadline) {
    const committed = await Promise.all(inputs.map((t) => log.committedOffsets(group, t)));
    covered = sum(committed.flat());
    if (committed.every((c, i) => c.every((o, p) => (o ?? 0) >= ends[i]![p]!))) {
      end = now();
      caughtUp = true;
      break;
    }
    await sleep(POLL_MS);
  }
  const ms = (end === 0 ? now() : end) - start;
  await projector.stop().catch(() => {});
  if (failed !== undefined) console.log(`  projector failed: ${failed instanceof Error ? failed.message : String(failed)}`);
  return { ms, records: caughtUp ? total : covered, caughtUp, probe };
}

function describe(name: string, r: ProjectorResult): string {
  const p = r.probe;
  const idle = r.ms - p.batchMs;
  return (
    `${name} ${fmt(rate(r.records, r.ms))}/s (${fmt(r.records)} records in ${(r.ms / 1000).toFixed(2)} s${r.caughtUp ? '' : ', NOT caught up'}); ` +
    `${fmt(p.batches)} batches (avg ${Math.round(p.batchRecords / Math.max(1, p.batches))}, max ${p.maxBatch} records), ` +
    `${fmt(p.commits)} commits (${fmt(p.settleCommits)} of them settles outside eachBatch, ${Math.round(p.settleCommitMs)} ms), ` +
    `${fmt(p.snapshots)} snapshots (${(p.snapshotBytes / 1e6).toFixed(1)} MB), ${fmt(p.outputRecords)} output records; ` +
    `first batch after ${Math.round(p.firstBatchMs)} ms; time in eachBatch ${Math.round(p.batchMs)} ms ` +
    `(commitBatch, all commits: ${Math.round(p.commitMs)} ms), outside ${Math.round(idle)} ms; ` +
    `applied ${fmt(p.stats.applied)}, rejected ${p.stats.rejected}, parked ${p.stats.parked}, dead-lettered ${p.stats.deadLettered}`
  );
}

async function embeddedRead(log: Log): Promise<{ ms: number; records: number }> {
  const start = now();
  let records = 0;
  for (const topic of [TOPICS.backend, TOPICS.device]) {
    for (let p = 0; p < PARTITIONS; p++) {
      for await (const batch of log.read(topic, p, { from: 0 })) records += batch.length;
    }
  }
  return { ms: now() - start, records };
}

// --- the run -------------------------------------------------------------------------------------

async function deleteTopics(brokers: string[], prefixes: readonly string[]): Promise<void> {
  const admin = new Kafka({ clientId: 'twinlog-bench-cleanup', brokers, logLevel: logLevel.NOTHING }).admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => prefixes.some((p) => t.startsWith(p)));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => prefixes.some((p) => g.startsWith(p)));
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
  const consumer = new Kafka({ clientId: 'twinlog-bench-warmup', brokers, logLevel: logLevel.NOTHING }).consumer({ groupId: `${prefix}warmup-consumer` });
  await consumer.connect();
  await consumer.subscribe({ topics: [`${prefix}warmup`], fromBeginning: true });
  await consumer.run({ eachBatch: async () => {} });
  await consumer.disconnect();
}

async function main(): Promise<void> {
  const workload = makeWorkload();
  const total = workload.backend.length + workload.device.length;
  console.log(
    `bench:pipeline — ${fmt(total)} events over ${fmt(DEVICES)} devices (${fmt(workload.backend.length)} on twin.backend, ` +
      `${fmt(workload.device.length)} on twin.device, ${(workload.bytes / 1e6).toFixed(1)} MB), ${PARTITIONS} partitions, ${ROUNDS} rounds, Node ${process.version}`,
  );
  const broker = await startKafkaBroker();
  const brokers = broker.brokers.split(',');
  console.log(`broker: ${broker.brokers} (${broker.source})`);
  const prefixes: string[] = [];
  const best = { raw: 0, projector: 0, embedded: 0, embeddedRead: 0 };
  let allCaughtUp = true;
  let rounds = 0;
  try {
    prefixes.push(`bench-pipeline-${RUN}-warmup.`);
    await warmUp(brokers, prefixes[0]!);
    const began = now();
    let longest = 0;
    for (let r = 1; r <= ROUNDS; r++) {
      const elapsed = (now() - began) / 1000;
      if (r > 1 && elapsed + longest > BUDGET_S) {
        console.log(`round ${r} and later skipped: ${Math.round(elapsed)} s so far, a round takes up to ${Math.round(longest)} s (BENCH_BUDGET_S=${BUDGET_S})`);
        break;
      }
      rounds = r;
      const roundStart = now();
      console.log(`round ${r}:`);
      // Kafka: fresh prefix, workload written, then raw and projector on the same topics.
      const prefix = `bench-pipeline-${RUN}-r${r}.`;
      prefixes.push(prefix);
      const log = createKafkaLog({ brokers, topicPrefix: prefix, clientId: 'twinlog-bench' });
      try {
        const produced = await produce(log, workload);
        console.log(`  kafka: wrote ${fmt(total)} records in ${(produced / 1000).toFixed(1)} s (not timed below)`);
        let end = phase('raw');
        const raw = await rawConsume(brokers, prefix, total);
        end();
        const rawRate = rate(raw.records, raw.ms);
        console.log(
          `  raw kafkajs ${fmt(rawRate)}/s (${fmt(raw.records)} records in ${(raw.ms / 1000).toFixed(2)} s, ${raw.batches} batches, first after ${Math.round(raw.firstBatchMs)} ms)`,
        );
        end = phase('projector (kafka)');
        const projected = await runProjector(log, 'bench-projector');
        end();
        console.log(`  ${describe('projector (kafka)', projected)}`);
        allCaughtUp &&= raw.records >= total && projected.caughtUp;
        best.raw = Math.max(best.raw, rawRate);
        best.projector = Math.max(best.projector, rate(projected.records, projected.ms));
      } finally {
        await log.close();
      }

      // Embedded: a fresh SQLite file with the same workload, then the same projector.
      const dir = mkdtempSync(join(tmpdir(), 'twinlog-bench-'));
      const elog = createEmbeddedLog({ path: join(dir, 'twinlog.db') });
      try {
        const produced = await produce(elog, workload);
        console.log(`  embedded: wrote ${fmt(total)} records in ${(produced / 1000).toFixed(1)} s (not timed below)`);
        const read = await embeddedRead(elog);
        const readRate = rate(read.records, read.ms);
        console.log(`  embedded log.read ${fmt(readRate)}/s (${fmt(read.records)} records in ${(read.ms / 1000).toFixed(2)} s)`);
        const end = phase('projector (embedded)');
        const projected = await runProjector(elog, 'bench-projector');
        end();
        console.log(`  ${describe('projector (embedded)', projected)}`);
        allCaughtUp &&= projected.caughtUp;
        best.embedded = Math.max(best.embedded, rate(projected.records, projected.ms));
        best.embeddedRead = Math.max(best.embeddedRead, readRate);
      } finally {
        await elog.close();
        rmSync(dir, { recursive: true, force: true });
      }
      longest = Math.max(longest, (now() - roundStart) / 1000);
    }
  } finally {
    if (process.env['BENCH_KEEP'] !== '1') await deleteTopics(brokers, prefixes).catch((e: unknown) => console.log(`cleanup: ${String(e)}`));
    await broker.stop();
  }

  const result = {
    raw_consume_per_s: best.raw,
    projector_per_s: best.projector,
    projector_vs_raw: Number((best.projector / Math.max(1, best.raw)).toFixed(3)),
    embedded_per_s: best.embedded,
  };
  console.log(
    `best of ${rounds}: raw ${fmt(best.raw)}/s, projector ${fmt(best.projector)}/s (${result.projector_vs_raw} of raw), ` +
      `embedded ${fmt(best.embedded)}/s (${(best.embedded / Math.max(1, best.embeddedRead)).toFixed(3)} of its log.read at ${fmt(best.embeddedRead)}/s)`,
  );
  if (!allCaughtUp) console.log('note: a variant did not catch up within BENCH_TIMEOUT_S; its rate counts what it covered');
  console.log(
    `targets: projector_vs_raw >= 0.6 ${result.projector_vs_raw >= 0.6 ? 'met' : 'MISSED'}, ` +
      `projector_per_s >= 50000 ${result.projector_per_s >= 50_000 ? 'met' : 'MISSED'}`,
  );
  console.log(`RESULT ${JSON.stringify(result)}`);
}

await main();
