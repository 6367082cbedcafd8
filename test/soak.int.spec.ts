/**
 * Soak (issue 11, acceptance item 5), on a real Kafka broker and on the embedded log: one chatty
 * device reports SOAK_EVENTS times (default 100,000) while 100 other devices get normal traffic
 * (desired writes from a back end and reports, through the client package), with a real projector
 * process running. Afterwards:
 *
 * - the projector is alive and refused nothing;
 * - the chatty twin's snapshot is under 4 KB (before the compact causal context it grew ~24 bytes
 *   per event and passed Kafka's 1 MB record limit after ~46,000 events);
 * - every other twin converged (reported = desired) and equals an independent fold of the log;
 * - a twin read (`GET /twins/{id}` through the REST gateway) of an untouched device in the chatty
 *   device's partition is no slower than 2× before the soak (medians of SOAK_READS reads, after a
 *   warm-up; the only timing assertion, and a relative one);
 * - the projector process's memory stays flat: heap used after forced GC (`--expose-gc` in the
 *   child process) at the end of the soak is at most MEMORY_SLACK above its value half-way;
 * - a restart restores every snapshot byte for byte (the states a restarted task restores encode to
 *   the very records on `twin.snapshots`), and after more traffic on the restarted projector every
 *   snapshot equals a replay of the log byte for byte (the GC horizon is derived from append times).
 *
 * The projector runs with short GC windows (offline 30 s, skew 1 s, margin 10 s), so that its GC
 * horizon moves during a soak of a minute or two, as it does over a day with the defaults.
 * Events are paced so that the projector is never more than ~5,000 records behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { decodeOutputRecord, encodeEvent, encodeOutputRecord } from '@twinlog/codec';
import {
  createHybridClock,
  partitionFor,
  toStateDoc,
  twinExists,
  twinVersion,
  type AppendRecord,
  type Log,
  type LogRecord,
  type TwinStateDoc,
} from '@twinlog/core';
import { createRestGateway, signServiceSas, type ListeningGateway, type RestGateway } from '@twinlog/gateway';
import { CHECKPOINT_KEY, ensureTwinTopics, PartitionTask, replay, TOPICS } from '@twinlog/projector';
import { cleanReplay, latestSnapshots, readAll, waitFor } from '@twinlog/projector/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openLog, targetEnv, type LogTarget } from './support/openLog.ts';

const CHATTY_EVENTS = Number(process.env['SOAK_EVENTS'] ?? 100_000);
const OTHERS = 100;
const ROUNDS = 10;
const PARTITIONS = 4;
const CHUNK = 1_000;
const MAX_LAG = 5_000;
const READS = Number(process.env['SOAK_READS'] ?? 200);
/**
 * Heap growth allowed from the half-way sample to the final one (after forced GC), bytes. Measured
 * noise is about ±1 MB; a state that kept ~100 bytes per folded event (the old dot lists) would add
 * ~5 MB over the second half of 100,000 events.
 */
const MEMORY_SLACK = 3 * 1024 * 1024;
const WINDOWS = { maxOfflineWindowMs: 30_000, maxSkewMs: 1_000, gcMarginMs: 10_000 };
const GROUP = 'soak-projector';
const HUB = 'soak-hub';
const KEY = Buffer.alloc(32, 11).toString('base64');
const ROOT = join(import.meta.dirname, '..');
const CHATTY = 'soak-chatty';
const others = Array.from({ length: OTHERS }, (_, i) => `soak-dev-${i}`);
/** An untouched device in the chatty device's partition. */
const IDLE = Array.from({ length: 64 }, (_, i) => `soak-idle-${i}`).find(
  (id) => partitionFor(id, PARTITIONS) === partitionFor(CHATTY, PARTITIONS),
)!;

interface Mem {
  readonly heapUsed: number;
  readonly rss: number;
  readonly gc: boolean;
}

/** The projector as a child process (test/support/soakProjector.ts), with its batch counts. */
class ProjectorProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  applied = 0;
  rejected = 0;
  batches = 0;
  readonly rejectedByCode: Record<string, number> = {};
  private memWaiters: ((m: Mem) => void)[] = [];

  constructor(target: LogTarget) {
    this.child = spawn(
      process.execPath,
      ['--expose-gc', '--conditions=source', '--import', 'tsx', join(ROOT, 'test/support/soakProjector.ts')],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          ...targetEnv(target),
          TWINLOG_GROUP: GROUP,
          SOAK_PROJECTOR_OPTIONS: JSON.stringify(WINDOWS),
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    let markReady: () => void = () => {};
    this.ready = new Promise((r) => (markReady = r));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as {
        ready?: boolean;
        mem?: Mem;
        batch?: { stats: { applied: number; rejected: number }; rejectedByCode: Record<string, number> };
      };
      if (msg.ready === true) markReady();
      if (msg.mem !== undefined) this.memWaiters.shift()?.(msg.mem);
      if (msg.batch !== undefined) {
        this.batches++;
        this.applied += msg.batch.stats.applied;
        this.rejected += msg.batch.stats.rejected;
        for (const [code, n] of Object.entries(msg.batch.rejectedByCode))
          this.rejectedByCode[code] = (this.rejectedByCode[code] ?? 0) + n;
      }
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  mem(): Promise<Mem> {
    const answer = new Promise<Mem>((r) => this.memWaiters.push(r));
    this.child.stdin!.write('mem\n');
    return answer;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill(signal);
    await exited;
  }
}

async function caughtUp(log: Log): Promise<boolean> {
  try {
    for (const topic of [TOPICS.backend, TOPICS.device]) {
      const [ends, committed] = await Promise.all([log.endOffsets(topic), log.committedOffsets(GROUP, topic)]);
      if (ends.some((end, p) => (committed[p] ?? 0) < end)) return false;
    }
    return true;
  } catch {
    return false; // e.g. the group coordinator moving: ask again
  }
}

/** The latest record per device on `twin.snapshots`, and how many records the topic holds per partition. */
async function latestSnapshotRecords(log: Log): Promise<{ latest: Map<string, LogRecord>; perPartition: number[] }> {
  const latest = new Map<string, LogRecord>();
  const perPartition = Array.from({ length: PARTITIONS }, () => 0);
  for (const r of await readAll(log, TOPICS.snapshots)) {
    perPartition[r.partition]!++;
    if (r.key !== CHECKPOINT_KEY && r.value !== null) latest.set(r.key, r);
  }
  return { latest, perPartition };
}

/** Records and distinct keys in one partition of `twin.snapshots` (checkpoints included). */
async function partitionFill(log: Log, partition: number): Promise<{ records: number; keys: number }> {
  const end = (await log.endOffsets(TOPICS.snapshots))[partition] ?? 0;
  const keys = new Set<string>();
  let records = 0;
  for await (const batch of log.read(TOPICS.snapshots, partition, { from: 0, to: end })) {
    records += batch.length;
    for (const r of batch) keys.add(r.key);
  }
  return { records, keys: keys.size };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function medianReadMs(port: number, id: string): Promise<number> {
  const get = async (): Promise<number> => {
    const started = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/twins/${encodeURIComponent(id)}?api-version=2021-04-12`, {
      headers: { authorization: signServiceSas(HUB, 'iothubowner', KEY, Math.floor(Date.now() / 1000) + 3600) },
    });
    expect(res.status).toBe(200);
    await res.json();
    return performance.now() - started;
  };
  for (let i = 0; i < 20; i++) await get();
  const times: number[] = [];
  for (let i = 0; i < READS; i++) times.push(await get());
  return median(times);
}

/** A state document's canonical bytes (the snapshot encoding, with fixed surroundings). */
function stateBytes(state: TwinStateDoc): Uint8Array {
  return encodeOutputRecord({
    kind: 'snapshot',
    v: 1,
    deviceId: '-',
    state,
    exists: true,
    version: 0,
    offsets: { backend: 0, device: 0 },
  });
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

const targets = (
  [
    () => ({ kind: 'kafka', where: `soak-${Date.now()}-${Math.floor(Math.random() * 1e6)}.` }),
    () => ({ kind: 'embedded', where: join(mkdtempSync(join(tmpdir(), 'twinlog-soak-')), 'log.db') }),
  ] as (() => LogTarget)[]
).filter((t) => (process.env['SOAK_LOGS'] ?? 'kafka,embedded').split(',').includes(t().kind));

describe.each(targets.map((t) => [t().kind, t] as const))('soak on %s', (kind, makeTarget) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });

  it(
    `${CHATTY_EVENTS} reports of one device and traffic from ${OTHERS} others: bounded snapshot, converged twins, steady reads, flat memory, byte-identical restart`,
    { timeout: 600_000 },
    async () => {
      const started = Date.now();
      const target = makeTarget();
      if (target.kind === 'embedded')
        cleanups.push(async () => rmSync(join(target.where, '..'), { recursive: true, force: true }));
      const log = openLog(target);
      cleanups.push(() => log.close());
      await ensureTwinTopics(log, PARTITIONS);
      let projector = new ProjectorProcess(target);
      cleanups.push(() => projector.stop('SIGKILL'));
      await projector.ready;

      const client: TwinClient = createTwinClient({
        log,
        physicalNow: () => Date.now(),
        actor: 'soak-backend',
        pollIntervalMs: 5,
      });
      cleanups.push(() => client.close());
      const gateway: RestGateway = createRestGateway({
        log,
        client,
        hubName: HUB,
        physicalNow: Date.now,
        policies: [{ name: 'iothubowner', key: KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
      });
      cleanups.push(() => gateway.close());
      const server: ListeningGateway = await gateway.listen({ port: 0, host: '127.0.0.1' });
      cleanups.push(() => server.close());

      // the fleet before the soak
      let expected = 0;
      await Promise.all([CHATTY, IDLE, ...others].map((id) => client.createDevice(id)));
      await client.mergeDesired(IDLE, { cfg: { rate: 1 } });
      await client.mergeReported(IDLE, { cfg: { rate: 1 } });
      expected += others.length + 4;
      await waitFor(() => caughtUp(log), 120_000, 'the projector to fold the fleet');
      const before = await latestSnapshotRecords(log);
      const readBefore = await medianReadMs(server.port, IDLE);
      const memStart = await projector.mem();

      // the soak: chatty reports appended directly (encoded as a device gateway would), normal traffic through the client
      const clock = createHybridClock({ physicalNow: () => Date.now() });
      let seq = 0;
      const chunks = Math.ceil(CHATTY_EVENTS / CHUNK);
      const normal = Array.from({ length: ROUNDS }, (_, round) =>
        others.flatMap((id) => [
          { id, round, section: 'desired' as const },
          { id, round, section: 'reported' as const },
        ]),
      ).flat();
      const normalPerChunk = Math.ceil(normal.length / chunks);
      const memSamples: Mem[] = [];
      for (let c = 0; c < chunks; c++) {
        const records: AppendRecord[] = [];
        for (let i = 0; i < CHUNK && seq < CHATTY_EVENTS; i++) {
          seq++;
          const e = {
            v: 1,
            id: { writer: CHATTY, seq },
            deviceId: CHATTY,
            section: 'reported' as const,
            op: 'merge' as const,
            patch: { temp: 20 + (seq % 10), seq },
            stamp: clock.now(),
            actor: CHATTY,
          };
          records.push({ key: CHATTY, value: encodeEvent(e) });
        }
        await log.append(TOPICS.device, records);
        expected += records.length;
        const writes = normal.slice(c * normalPerChunk, (c + 1) * normalPerChunk);
        await Promise.all(
          writes.map(({ id, round, section }) =>
            section === 'desired'
              ? client.mergeDesired(id, { cfg: { rate: round } })
              : client.mergeReported(id, { cfg: { rate: round }, n: round }),
          ),
        );
        expected += writes.length;
        await waitFor(
          () => projector.applied + projector.rejected >= expected - MAX_LAG || !projector.alive,
          120_000,
          'the projector to keep up',
        );
        expect(projector.alive, 'projector alive during the soak').toBe(true);
        if ((c + 1) % Math.ceil(chunks / 4) === 0 && c + 1 < chunks) {
          await waitFor(() => caughtUp(log), 120_000, 'the projector to catch up');
          memSamples.push(await projector.mem());
        }
      }
      await waitFor(() => caughtUp(log), 300_000, 'the projector to catch up');
      await waitFor(
        () => projector.applied + projector.rejected >= expected || !projector.alive,
        30_000,
        'the last batch reports',
      ); // committed before reported
      const memEnd = await projector.mem();
      memSamples.push(memEnd);
      // the larger of the first two quarters' samples: noise in either does not fail the check
      const memHalf = memSamples.slice(0, 2).reduce((a, b) => (b.heapUsed > a.heapUsed ? b : a));
      const soakSeconds = (Date.now() - started) / 1000;

      const after = await latestSnapshotRecords(log);
      const chattyRecord = after.latest.get(CHATTY)!;
      const chattySnap = decodeOutputRecord(chattyRecord.value!, 'snapshot');
      const chattyBytes = chattyRecord.value!.length;

      // reads of an untouched twin of the same partition: right away, and (embedded) once the log's
      // background compaction has had its turn (records no more than twice the keys, the bound its
      // dirty ratio keeps); Kafka compacts only closed segments, and its reads cost fetch round trips
      const p = partitionFor(CHATTY, PARTITIONS);
      const readRightAfter = await medianReadMs(server.port, IDLE);
      let readAfter = readRightAfter;
      let settle = '';
      if (kind === 'embedded') {
        const waitStarted = Date.now();
        let fill = await partitionFill(log, p);
        await waitFor(
          async () => {
            fill = await partitionFill(log, p);
            return fill.records <= 2 * fill.keys;
          },
          150_000,
          `twin.snapshots partition ${p} to be compacted by the embedded log's background maintenance (still ${fill.records} records for ${fill.keys} keys)`,
        ).catch((e: unknown) => {
          throw new Error(`${String(e)}: ${fill.records} records for ${fill.keys} keys`);
        });
        readAfter = await medianReadMs(server.port, IDLE);
        settle = `, ${readAfter.toFixed(2)} ms after compaction (${((Date.now() - waitStarted) / 1000).toFixed(0)} s later, ${fill.records} records)`;
      }

      console.log(
        `[soak ${kind}] ${CHATTY_EVENTS} chatty events + ${normal.length} normal writes in ${soakSeconds.toFixed(0)} s, ${projector.batches} batches; ` +
          `chatty snapshot ${chattyBytes} B (version ${chattySnap.version}); ` +
          `GET /twins/${IDLE} median ${readBefore.toFixed(2)} ms before, ${readRightAfter.toFixed(2)} ms right after${settle} (${(readAfter / readBefore).toFixed(2)}×; ` +
          `twin.snapshots partition ${p}: ${before.perPartition[p]} records before, ${after.perPartition[p]} right after); ` +
          `projector heap after GC ${[memStart, ...memSamples].map((m) => mb(m.heapUsed)).join(' → ')} (start, each quarter), ` +
          `rss ${[memStart, ...memSamples].map((m) => mb(m.rss)).join(' → ')}; gc ${memEnd.gc ? 'forced' : 'NOT available'}; ` +
          `rejections ${JSON.stringify(projector.rejectedByCode)}`,
      );
      // alive, nothing refused (before the compact causal context: SNAPSHOT_TOO_LARGE past ~46,000 events), everything applied once
      expect(projector.alive).toBe(true);
      expect(projector.rejectedByCode).toEqual({});
      expect(projector.applied).toBe(expected);
      expect(chattyBytes, 'the chatty twin snapshot (bytes)').toBeLessThan(4_096);
      expect(chattySnap.version).toBeGreaterThan(CHATTY_EVENTS);

      // every other twin converged, and equals an independent fold of the log
      const oracle = await cleanReplay(log);
      const live = await latestSnapshots(log);
      for (const id of [...others, IDLE, CHATTY]) expect(live.get(id), id).toBe(oracle.get(id));
      for (const id of others) {
        const twin = JSON.parse(live.get(id)!) as {
          properties: { desired: Record<string, unknown>; reported: Record<string, unknown> };
        };
        expect(twin.properties.desired['cfg'], id).toEqual({ rate: ROUNDS - 1 });
        expect(twin.properties.reported['cfg'], id).toEqual(twin.properties.desired['cfg']);
      }

      expect(readAfter, `median GET ms after the soak vs 2× before (${readBefore.toFixed(2)} ms)`).toBeLessThanOrEqual(
        2 * readBefore,
      );
      expect(memEnd.gc).toBe(true);
      expect(
        memEnd.heapUsed - memHalf.heapUsed,
        'heap growth over the second half of the soak (bytes)',
      ).toBeLessThanOrEqual(MEMORY_SLACK);

      // a restart restores every snapshot byte for byte
      await projector.stop();
      const clockForRestore = createHybridClock({ physicalNow: () => Date.now() });
      let restored = 0;
      for (let partition = 0; partition < PARTITIONS; partition++) {
        const task = await PartitionTask.restore(log, { partition, clock: clockForRestore, ...WINDOWS });
        for (const [id, state] of task.states()) {
          const record = after.latest.get(id)!;
          const snap = decodeOutputRecord(record.value!, 'snapshot');
          const again = encodeOutputRecord({
            kind: 'snapshot',
            v: 1,
            deviceId: id,
            state: toStateDoc(state),
            exists: twinExists(state),
            version: twinVersion(state),
            offsets: snap.offsets,
          });
          expect(Buffer.from(again).equals(Buffer.from(record.value!)), `restored snapshot of ${id}`).toBe(true);
          restored++;
        }
      }
      expect(restored).toBe(others.length + 2);

      // the restarted projector goes on; its snapshots equal a replay of the log byte for byte
      projector = new ProjectorProcess(target);
      await projector.ready;
      const more: AppendRecord[] = [];
      for (let i = 0; i < CHUNK; i++) {
        seq++;
        more.push({
          key: CHATTY,
          value: encodeEvent({
            v: 1,
            id: { writer: CHATTY, seq },
            deviceId: CHATTY,
            section: 'reported',
            op: 'merge',
            patch: { temp: 30, seq },
            stamp: clock.now(),
            actor: CHATTY,
          }),
        });
      }
      await log.append(TOPICS.device, more);
      await Promise.all(others.map((id) => client.mergeReported(id, { restarted: true })));
      await waitFor(() => caughtUp(log), 120_000, 'the restarted projector to catch up');
      await waitFor(
        () => projector.applied >= CHUNK + others.length || !projector.alive,
        30_000,
        'the last batch reports',
      );
      expect(projector.alive).toBe(true);
      expect(projector.applied).toBe(CHUNK + others.length);
      const rebuilt = await replay({ log, ...WINDOWS });
      const final = await latestSnapshotRecords(log);
      let compared = 0;
      for (const [id, state] of rebuilt.states) {
        const snap = decodeOutputRecord(final.latest.get(id)!.value!, 'snapshot');
        expect(
          Buffer.from(stateBytes(toStateDoc(state))).equals(Buffer.from(stateBytes(snap.state))),
          `replayed state of ${id}`,
        ).toBe(true);
        compared++;
      }
      expect(compared).toBe(others.length + 2);
      expect((await latestSnapshots(log)).get(CHATTY)).toContain(`"seq":${seq}`);
      console.log(
        `[soak ${kind}] restart and replay checks done, ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
      );
    },
  );
});
