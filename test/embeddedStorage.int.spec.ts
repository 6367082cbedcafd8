/**
 * The embedded log's storage stays bounded (docs/storage.md): 200,000 real encoded events on the
 * input topics, plus what the projector and the reconciler would write for them, on the twin
 * topics as `twinTopicSpecs` creates them (inputs kept, feeds retained 7 days / 256 MiB a
 * partition, snapshots and deltas compacted), with background maintenance at its defaults except
 * the interval (20 ms, as the run compresses time). The file's size (database + WAL) must stay
 * within a stated multiple of the input bytes (key + value of the input records).
 *
 * The workload, per round (one projector batch per partition):
 * - 200 events over 2,000 devices (`encodeEvent`, ~5 leaves each, half desired on twin.backend,
 *   half reported on twin.device): ~170 bytes each, as bench:pipeline's.
 * - per partition, one `commitBatch` as the projector's: one snapshot per device of the batch (so
 *   about one per event: the worst case for compaction) plus the checkpoint record on
 *   twin.snapshots, one change per event on twin.changes, a rejection for 1 % of events, and the
 *   input offsets. Sizes follow what the real projector wrote on bench:pipeline's workload: a
 *   snapshot grows with its device's history, 350 bytes + 50 a event up to ~1.9 KB (from ~30 events
 *   a device on, when most leaves are set), a change is its event plus ~120 bytes.
 * - per partition, one `commitBatch` as the reconciler's: a delta (~0.9 of the snapshot) for 60 % of
 *   the batch's devices, and the snapshot offsets.
 * - the log's clock moves 1 s a round (200 events/s: 2,000 devices reporting every 10 s), so the
 *   200,000 events span ~17 minutes: within the feeds' 7 days, so no time retention happens and
 *   twin.changes is kept whole; the 30 s compaction lag holds back ~5,600 snapshots and ~3,400
 *   deltas.
 * - the writer is busy two thirds of the time (it sleeps half as long as its round took): a
 *   pipeline at 200 events/s is idle most of the time, and maintenance runs in that idle time (and
 *   between its own steps otherwise). `synchronous: 'NORMAL'` keeps the run short; durability is
 *   not what is measured.
 *
 * What bounds the file (docs/storage.md): the inputs and the retained feeds grow with the input
 * (twin.changes alone is ~1.7× the input bytes), the compacted topics stay within twice the
 * fleet's latest snapshots and deltas plus the lag's tail, and the WAL under its 16 MiB limit plus
 * one transaction. So besides the total at the end the test checks the growth over the second
 * half against the input written in that half, and what twin.snapshots holds after one more run.
 * Measured on a 2-core VM: 4.9–5.0× at the end, 3.7–3.9× over the second half, 25–40 s. Without
 * maintenance the same run ends at 20.3× (second half 22×), most of it superseded snapshots and
 * deltas.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeEvent } from '@twinlog/codec';
import { createHybridClock, partitionFor, type AppendRecord, type Patch } from '@twinlog/core';
import { seededRandom } from '@twinlog/core/testing';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { CHECKPOINT_KEY, DEFAULT_PARTITIONS, TOPICS, twinTopicSpecs } from '@twinlog/projector';
import { afterAll, describe, expect, it } from 'vitest';

const EVENTS = 200_000;
const DEVICES = 2_000;
const PER_ROUND = 200;
const PARTITIONS = DEFAULT_PARTITIONS;
/** The stated bounds: the file at the end, and its growth over the second half, as multiples of the input bytes. */
const BOUND_TOTAL = 5.5;
const BOUND_SECOND_HALF = 4.5;

const dir = mkdtempSync(join(tmpdir(), 'twinlog-storage-bound-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fileBytes = (path: string): number =>
  (statSync(path, { throwIfNoEntry: false })?.size ?? 0) +
  (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);

describe('embedded log storage over 200,000 events', () => {
  it(
    `keeps the file within ${BOUND_TOTAL}× the input bytes (and its growth within ${BOUND_SECOND_HALF}×)`,
    { timeout: 120_000 },
    async () => {
      const path = join(dir, 'twinlog.db');
      let clock = Date.UTC(2026, 0, 1);
      const log = createEmbeddedLog({ path, now: () => clock, synchronous: 'NORMAL', maintenanceIntervalMs: 20 });
      try {
        await log.ensureTopics(twinTopicSpecs(PARTITIONS));
        const rnd = seededRandom(11);
        const hlc = createHybridClock({ physicalNow: () => clock });
        const pool = new Uint8Array(1 << 16).map(() => Math.floor(rnd() * 256));
        const filler = (size: number): Uint8Array => {
          const at = Math.floor(rnd() * (pool.length - size));
          return pool.slice(at, at + size);
        };
        const history = new Map<string, number>();
        /** Log time and count of every snapshot batch, to know what the compaction lag holds back. */
        const snapshotBatches: { at: number; count: number }[] = [];
        let inputBytes = 0;
        let seq = 0;
        const samples: { events: number; input: number; file: number }[] = [];

        for (let round = 0; round < EVENTS / PER_ROUND; round++) {
          const roundStarted = performance.now();
          const events = Array.from({ length: PER_ROUND }, () => {
            const deviceId = `dev-${Math.floor(rnd() * DEVICES)}`;
            const section = rnd() < 0.5 ? ('desired' as const) : ('reported' as const);
            const patch: Patch = {};
            for (let i = 0; i < 5; i++) {
              const group = (patch[`group${Math.floor(rnd() * 4)}`] ??= {}) as Patch;
              group[`leaf${Math.floor(rnd() * 8)}`] =
                rnd() < 0.1 ? null : rnd() < 0.5 ? Math.floor(rnd() * 1000) : `v${Math.floor(rnd() * 100)}`;
            }
            const value = encodeEvent({
              v: 1,
              op: 'merge',
              actor: 'bench',
              id: { writer: 'gw-1', seq: ++seq },
              deviceId,
              section,
              patch,
              stamp: hlc.now(),
            });
            inputBytes += Buffer.byteLength(deviceId) + value.length;
            return { topic: section === 'desired' ? TOPICS.backend : TOPICS.device, record: { key: deviceId, value } };
          });
          for (const topic of [TOPICS.backend, TOPICS.device]) {
            await log.append(
              topic,
              events.filter((e) => e.topic === topic).map((e) => e.record),
            );
          }
          const [backendEnds, deviceEnds, snapshotEnds] = await Promise.all([
            log.endOffsets(TOPICS.backend),
            log.endOffsets(TOPICS.device),
            log.endOffsets(TOPICS.snapshots),
          ]);

          for (let p = 0; p < PARTITIONS; p++) {
            const mine = events.filter((e) => partitionFor(e.record.key, PARTITIONS) === p);
            if (mine.length === 0) continue;
            const devices = [...new Set(mine.map((e) => e.record.key))];
            for (const e of mine) history.set(e.record.key, (history.get(e.record.key) ?? 0) + 1);
            const snapshotSize = (d: string): number =>
              Math.min(1_900, 350 + 50 * (history.get(d) ?? 0)) + Math.floor(rnd() * 100);
            const snapshots: AppendRecord[] = devices.map((d) => ({ key: d, value: filler(snapshotSize(d)) }));
            snapshots.push({ key: CHECKPOINT_KEY, partition: p, value: filler(60) });
            const changes: AppendRecord[] = mine.map((e) => ({
              key: e.record.key,
              value: filler(e.record.value.length + 120),
            }));
            const rejections: AppendRecord[] = mine
              .filter(() => rnd() < 0.01)
              .map((e) => ({ key: e.record.key, value: filler(190) }));
            snapshotBatches.push({ at: clock, count: snapshots.length });
            await log.commitBatch({
              fence: `projector-${p}`,
              appends: [
                { topic: TOPICS.snapshots, records: snapshots },
                { topic: TOPICS.changes, records: changes },
                ...(rejections.length === 0 ? [] : [{ topic: TOPICS.rejections, records: rejections }]),
              ],
              offsets: [
                { group: 'twinlog-projector', topic: TOPICS.backend, partition: p, offset: backendEnds[p]! },
                { group: 'twinlog-projector', topic: TOPICS.device, partition: p, offset: deviceEnds[p]! },
              ],
            });
            const deltas: AppendRecord[] = devices
              .filter(() => rnd() < 0.6)
              .map((d) => ({ key: d, value: filler(Math.floor(0.9 * snapshotSize(d))) }));
            await log.commitBatch({
              fence: `reconciler-${p}`,
              appends: [{ topic: TOPICS.deltas, records: deltas }],
              offsets: [
                {
                  group: 'twinlog-reconciler',
                  topic: TOPICS.snapshots,
                  partition: p,
                  offset: snapshotEnds[p]! + snapshots.length,
                },
              ],
            });
          }
          clock += 1_000;
          // A pipeline at 200 events/s is idle most of the time; this one compresses ~17 minutes of log
          // time into seconds, and is busy two thirds of the time: it leaves the event loop half as
          // long as its round took (maintenance runs then, and between its own steps).
          await sleep(Math.max(1, 0.5 * (performance.now() - roundStarted)));

          const written = (round + 1) * PER_ROUND;
          if (written % 25_000 === 0) samples.push({ events: written, input: inputBytes, file: fileBytes(path) });
        }

        const stats = log.storageStats();
        const half = samples.find((x) => x.events === EVENTS / 2)!;
        const end = samples.at(-1)!;
        const secondHalf = (end.file - half.file) / (end.input - half.input);
        // One more run, then twin.snapshots holds at most one record per key below the lag, twice
        // that while a pass is not yet due, plus the records the lag holds back.
        await log.maintain();
        const lagged = snapshotBatches.filter((b) => b.at > clock - 30_000).reduce((sum, b) => sum + b.count, 0);
        const snapshotsHeld = log.storageStats().topics.find((t) => t.name === TOPICS.snapshots)!.records;
        console.log(
          [
            'embedded storage over 200,000 events:',
            ...samples.map(
              (x) => `${x.events} events: file ${mb(x.file)} = ${(x.file / x.input).toFixed(2)}× input ${mb(x.input)}`,
            ),
            `second half: file grew ${secondHalf.toFixed(2)}× the input written`,
            `twin.snapshots after one more run: ${snapshotsHeld} records (${DEVICES} devices + ${PARTITIONS} checkpoints, ${lagged} within the lag)`,
            `topics: ${stats.topics.map((t) => `${t.name} ${t.records} records ${mb(t.bytes)}`).join(', ')}`,
            `WAL ${mb(stats.walBytes)}, free ${mb(stats.freeBytes)}; maintenance: ${stats.maintenance.runs} runs, ${stats.maintenance.compactedRecords} compacted, ` +
              `${stats.maintenance.vacuumedPages} pages vacuumed, ${Math.round(stats.maintenance.busyMs)} ms busy, longest step ${stats.maintenance.longestStepMs.toFixed(1)} ms`,
          ].join('\n  '),
        );

        // Maintenance ran, compacted, and left the inputs and the feeds (within 7 days) whole.
        expect(stats.maintenance.compactedRecords).toBeGreaterThan(EVENTS / 2);
        expect(stats.maintenance.lastError).toBeUndefined();
        const held = Object.fromEntries(stats.topics.map((t) => [t.name, t.records]));
        expect(held[TOPICS.backend]! + held[TOPICS.device]!).toBe(EVENTS);
        expect(held[TOPICS.changes]).toBe(EVENTS);
        expect(snapshotsHeld).toBeLessThanOrEqual(2 * (DEVICES + PARTITIONS) + lagged);
        // The stated bounds.
        expect(end.file).toBeLessThanOrEqual(BOUND_TOTAL * end.input);
        expect(secondHalf).toBeLessThanOrEqual(BOUND_SECOND_HALF);
      } finally {
        await log.close();
      }
    },
  );
});

function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
