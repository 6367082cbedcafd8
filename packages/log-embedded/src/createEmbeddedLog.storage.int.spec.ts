/**
 * The embedded log's storage discipline (docs/storage.md): retention by time and by size on the
 * topics that have it (and only those), compaction in the background while appends go on, files of
 * the previous schema migrated, free pages handed back, and the file's size over a 200,000-event
 * run kept within a stated multiple of the input bytes.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isTwinlogError, partitionFor, type LogRecord } from '@twinlog/core';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  createEmbeddedLog,
  EMBEDDED_LOG_MAINTENANCE_CHANNEL,
  type EmbeddedLog,
  type EmbeddedLogOptions,
} from './createEmbeddedLog.ts';

const dir = mkdtempSync(join(tmpdir(), 'twinlog-embedded-storage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const fresh = (): string => join(dir, `storage-${++n}.db`);
const logs: EmbeddedLog[] = [];
afterEach(async () => {
  await Promise.allSettled(logs.splice(0).map((l) => l.close()));
});
function open(options: EmbeddedLogOptions): EmbeddedLog {
  const log = createEmbeddedLog(options);
  logs.push(log);
  return log;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));

async function readAll(log: EmbeddedLog, topic: string, partition: number, to?: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const b of log.read(topic, partition, to === undefined ? { from: 0 } : { from: 0, to })) out.push(...b);
  return out;
}

/** What the file itself says a topic holds, independent of the log's own counters. */
function counted(path: string, topic: string): { records: number; bytes: number } {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare(
        `SELECT count(*) AS records, ifnull(sum(octet_length(key) + ifnull(length(value), 0) + ifnull(octet_length(headers), 0)), 0) AS bytes
         FROM records r JOIN topics t ON t.id = r.topic_id WHERE t.name = ?`,
      )
      .get(topic) as { records: number; bytes: number };
  } finally {
    db.close();
  }
}

const topicStats = (log: EmbeddedLog, name: string): { records: number; bytes: number } => {
  const t = log.storageStats().topics.find((x) => x.name === name);
  return { records: t?.records ?? 0, bytes: t?.bytes ?? 0 };
};

describe('embedded log retention', () => {
  it('deletes output records past retentionMs, oldest first, and keeps topics without retention', async () => {
    const path = fresh();
    let clock = 1_000_000;
    const log = open({ path, now: () => clock, maintenanceIntervalMs: 0 });
    await log.ensureTopics([
      { name: 'in', partitions: 1 },
      { name: 'out', partitions: 1, retentionMs: 60_000 },
    ]);
    for (let i = 0; i < 10; i++) {
      await log.append('in', [{ key: `k${i}`, value: bytes(`in-${i}`) }]);
      await log.append('out', [{ key: `k${i}`, value: bytes(`out-${i}`), headers: { i: String(i) } }]);
      clock += 10_000; // records at 1 000 000, 1 010 000, … 1 090 000
    }
    clock = 1_000_000 + 60_000 + 35_000; // cut-off 1 035 000: offsets 0–3 are due

    const report = await log.maintain();
    expect(report).toMatchObject({
      retentionDeletedByTime: 4,
      retentionDeletedBySize: 0,
      compacted: 0,
      interrupted: false,
    });
    expect((await readAll(log, 'out', 0)).map((r) => [r.offset, text(r.value)])).toEqual(
      [4, 5, 6, 7, 8, 9].map((i) => [i, `out-${i}`]),
    );
    expect(await log.endOffsets('out')).toEqual([10]); // offsets are never renumbered
    expect((await readAll(log, 'in', 0)).length).toBe(10); // no retention: the source of truth stays
    // A read over the deleted range ends, and appends go on from the same end offset.
    expect(await readAll(log, 'out', 0, 3)).toEqual([]);
    expect((await log.append('out', [{ key: 'k', value: bytes('next') }]))[0]).toEqual({ partition: 0, offset: 10 });
    // The per-partition counters follow the deletions exactly.
    expect(topicStats(log, 'out')).toEqual(counted(path, 'out'));
    expect(topicStats(log, 'in')).toEqual(counted(path, 'in'));
    expect(log.storageStats().maintenance).toMatchObject({ runs: 1, retentionDeletedByTime: 4 });

    // Retention configured on an existing input topic applies from then on; -1 lifts it.
    await log.ensureTopics([{ name: 'in', partitions: 1, retentionMs: 60_000 }]);
    expect(await log.maintain()).toMatchObject({ retentionDeletedByTime: 4 });
    expect((await readAll(log, 'in', 0))[0]?.offset).toBe(4);
    await log.ensureTopics([{ name: 'in', partitions: 1, retentionMs: -1 }]);
    clock += 1_000_000;
    expect(await log.maintain()).toMatchObject({ retentionDeletedByTime: 7 }); // `out` only
    expect((await readAll(log, 'in', 0)).length).toBe(6);
    expect(await readAll(log, 'out', 0)).toEqual([]);
  });

  it('deletes the oldest records of a partition holding more than retentionBytes, per partition', async () => {
    const path = fresh();
    const log = open({ path, maintenanceIntervalMs: 0 });
    await log.ensureTopics([{ name: 'capped', partitions: 2, retentionBytes: 1_000 }]);
    // 30 records of 100 bytes (1-byte key + 99-byte value) into each partition.
    for (const p of [0, 1]) {
      await log.append(
        'capped',
        Array.from({ length: 30 }, (_, i) => ({ key: 'k', partition: p, value: new Uint8Array(99).fill(i) })),
      );
    }
    expect(topicStats(log, 'capped')).toEqual({ records: 60, bytes: 6_000 });
    expect(await log.maintain()).toMatchObject({ retentionDeletedBySize: 40, retentionDeletedByTime: 0 });
    for (const p of [0, 1]) {
      const left = await readAll(log, 'capped', p);
      expect(left.map((r) => r.offset)).toEqual([20, 21, 22, 23, 24, 25, 26, 27, 28, 29]); // the newest 1 000 bytes
      expect(left[0]!.value?.[0]).toBe(20);
    }
    expect(topicStats(log, 'capped')).toEqual({ records: 20, bytes: 2_000 });
    expect(topicStats(log, 'capped')).toEqual(counted(path, 'capped'));
    expect(await log.maintain()).toMatchObject({ retentionDeletedBySize: 0 });
  });

  it('refuses a retention that is not a positive integer or -1', async () => {
    const log = open({ path: fresh(), maintenanceIntervalMs: 0 });
    for (const bad of [0, -2, 1.5, Number.NaN]) {
      await expect(log.ensureTopics([{ name: 't', partitions: 1, retentionMs: bad }])).rejects.toSatisfy((e) =>
        isTwinlogError(e, 'LOG_ARGUMENT_INVALID'),
      );
      await expect(log.ensureTopics([{ name: 't', partitions: 1, retentionBytes: bad }])).rejects.toSatisfy((e) =>
        isTwinlogError(e, 'LOG_ARGUMENT_INVALID'),
      );
    }
    expect(() => createEmbeddedLog({ path: fresh(), maintenanceIntervalMs: -1 })).toThrow(/maintenanceIntervalMs/);
  });
});

describe('embedded log compaction in the background', () => {
  it(
    'compacts while appends and a subscriber go on, never losing the latest record of a key',
    { timeout: 60_000 },
    async () => {
      const path = fresh();
      const log = open({ path, maintenanceIntervalMs: 5, minCompactionLagMs: 0 });
      await log.ensureTopics([{ name: 'snap', partitions: 2, compacted: true }]);
      const keys = Array.from({ length: 50 }, (_, i) => `dev-${i}`);
      // A subscriber that keeps up sees the latest record of every key (compaction's promise).
      const seen = new Map<string, string | null>();
      const subscription = await log.subscribe({
        group: 'g',
        topics: ['snap'],
        eachBatch: async ({ records }) => {
          for (const r of records) seen.set(r.key, text(r.value));
        },
      });
      let compactedWhileAppending = 0;
      const rounds = 400;
      for (let round = 0; round < rounds; round++) {
        await log.append(
          'snap',
          keys.map((k) => ({ key: k, value: bytes(`${k}@${round}`) })),
        );
        if (round % 50 === 49) {
          // Bounded reads over partitions being compacted end, within their range.
          const ends = await log.endOffsets('snap');
          for (const p of [0, 1])
            for (const r of await readAll(log, 'snap', p, ends[p])) expect(r.offset).toBeLessThan(ends[p]!);
        }
        await nextTurn();
        if (round === rounds - 2) compactedWhileAppending = log.storageStats().maintenance.compactedRecords;
      }
      expect(compactedWhileAppending).toBeGreaterThan(0);
      const written = keys.length * rounds;
      // Half a partition superseded at most before a pass runs: far below what was written.
      expect(topicStats(log, 'snap').records).toBeLessThan(written / 4);
      expect(topicStats(log, 'snap')).toEqual(counted(path, 'snap'));

      await vi.waitFor(
        () =>
          expect(seen.size === keys.length && [...seen.values()].every((v) => v?.endsWith(`@${rounds - 1}`))).toBe(
            true,
          ),
        {
          timeout: 10_000,
        },
      );
      await subscription.stop();
      await log.compact();
      const left = [...(await readAll(log, 'snap', 0)), ...(await readAll(log, 'snap', 1))];
      expect(left.map((r) => text(r.value)).sort()).toEqual(keys.map((k) => `${k}@${rounds - 1}`).sort());
      expect(await log.endOffsets('snap')).toEqual(
        [0, 1].map((p) => keys.filter((k) => partitionFor(k, 2) === p).length * rounds),
      );
    },
  );

  it('leaves records younger than minCompactionLagMs, and a pass waits for half the partition to be superseded', async () => {
    const path = fresh();
    let clock = 5_000_000;
    const log = open({ path, now: () => clock, maintenanceIntervalMs: 0, minCompactionLagMs: 30_000 });
    await log.ensureTopics([{ name: 'snap', partitions: 1, compacted: true }]);
    const versions = async (v: number): Promise<void> => {
      await log.append(
        'snap',
        ['a', 'b', 'c', 'd'].map((k) => ({ key: k, value: bytes(`${k}${v}`) })),
      );
    };
    await versions(1);
    clock += 40_000;
    await versions(2); // version 1 is superseded, but version 2 is younger than the lag
    expect(await log.maintain()).toMatchObject({ compacted: 0 });
    clock += 40_000;
    expect(await log.maintain()).toMatchObject({ compacted: 4 });
    expect((await readAll(log, 'snap', 0)).map((r) => text(r.value))).toEqual(['a2', 'b2', 'c2', 'd2']);
    clock += 40_000;
    await log.append('snap', [{ key: 'a', value: bytes('a3') }]); // 1 dirty record of 5: not yet worth a pass
    clock += 40_000;
    expect(await log.maintain()).toMatchObject({ compacted: 0 });
    await log.append(
      'snap',
      ['b', 'c', 'd'].map((k) => ({ key: k, value: bytes(`${k}3`) })),
    );
    clock += 40_000;
    expect(await log.maintain()).toMatchObject({ compacted: 4 });
    expect((await readAll(log, 'snap', 0)).map((r) => [r.offset, text(r.value)])).toEqual([
      [8, 'a3'],
      [9, 'b3'],
      [10, 'c3'],
      [11, 'd3'],
    ]);
  });

  it('stops a run at close without harm, and publishes on its diagnostics channel', async () => {
    const path = fresh();
    const log = createEmbeddedLog({ path, maintenanceIntervalMs: 0 });
    await log.ensureTopics([{ name: 'snap', partitions: 1, compacted: true }]);
    for (let v = 0; v < 20; v++)
      await log.append(
        'snap',
        Array.from({ length: 2_000 }, (_, i) => ({ key: `k${i}`, value: bytes(`${v}`) })),
      );
    const events: unknown[] = [];
    const onEvent = (e: unknown): void => void events.push(e);
    subscribe(EMBEDDED_LOG_MAINTENANCE_CHANNEL, onEvent);
    try {
      const running = log.compact();
      for (let i = 0; i < 10; i++) await nextTurn(); // a few steps in
      await log.close();
      const before = await running;
      expect(before).toBeLessThan(38_000); // interrupted between two steps
      expect(events).toMatchObject([{ path, report: { compacted: before, interrupted: true } }]);
      const again = open({ path, maintenanceIntervalMs: 0 });
      expect(before + (await again.compact())).toBe(38_000);
      expect(topicStats(again, 'snap')).toEqual(counted(path, 'snap'));
      expect(topicStats(again, 'snap').records).toBe(2_000);
      expect(events).toHaveLength(2);
    } finally {
      unsubscribe(EMBEDDED_LOG_MAINTENANCE_CHANNEL, onEvent);
    }
  });
});

describe('embedded log files', () => {
  it('creates new files with incremental vacuum and hands freed pages back', async () => {
    const path = fresh();
    let clock = 0;
    const log = open({ path, now: () => clock, maintenanceIntervalMs: 0 });
    await log.ensureTopics([{ name: 'out', partitions: 1, retentionMs: 1_000 }]);
    for (let i = 0; i < 20; i++)
      await log.append(
        'out',
        Array.from({ length: 100 }, () => ({ key: 'k', value: new Uint8Array(1_000) })),
      );
    expect(log.storageStats().incrementalVacuum).toBe(true);
    clock = 10_000;
    const report = await log.maintain();
    expect(report.retentionDeletedByTime).toBe(2_000);
    expect(report.vacuumedPages).toBeGreaterThan(200); // ~2 MB freed, all but a 1 MiB reserve handed back
    expect(log.storageStats().freeBytes).toBeLessThanOrEqual(256 * 4096);
    expect(log.storageStats().maintenance.vacuumedPages).toBe(report.vacuumedPages);
  });

  it('migrates a file of schema version 1: counts its records, keeps offsets, and reuses free pages', async () => {
    const path = fresh();
    const v1 = new Database(path);
    v1.pragma('journal_mode = WAL');
    v1.exec(SCHEMA_V1);
    v1.pragma('user_version = 1');
    v1.prepare('INSERT INTO topics (id, name, partitions, compacted) VALUES (1, ?, 1, 1), (2, ?, 1, 0)').run(
      'snap',
      'feed',
    );
    v1.prepare('INSERT INTO partitions VALUES (1, 0, 3, 7), (2, 0, 2, 7)').run();
    const insert = v1.prepare('INSERT INTO records VALUES (?, 0, ?, 7, ?, ?, ?)');
    insert.run(1, 0, 'a', Buffer.from('a1'), null);
    insert.run(1, 1, 'a', Buffer.from('a2'), '{"h":"é"}');
    insert.run(1, 2, 'b', null, null);
    insert.run(2, 0, 'x', Buffer.from('xxxx'), null);
    insert.run(2, 1, 'y', Buffer.from('yyyy'), null);
    v1.close();

    const log = open({ path, maintenanceIntervalMs: 0 });
    expect(topicStats(log, 'snap')).toEqual({ records: 3, bytes: 1 + 2 + 1 + 2 + 10 + 1 });
    expect(topicStats(log, 'feed')).toEqual({ records: 2, bytes: 10 });
    expect(log.storageStats().incrementalVacuum).toBe(false); // chosen at creation only: free pages are reused instead
    expect(await log.compact()).toBe(1);
    await log.ensureTopics([{ name: 'feed', partitions: 1, retentionBytes: 5 }]);
    expect(await log.maintain()).toMatchObject({ retentionDeletedBySize: 1, vacuumedPages: 0 });
    expect((await log.append('feed', [{ key: 'z', value: null }]))[0]?.offset).toBe(2);
    expect(topicStats(log, 'snap')).toEqual(counted(path, 'snap'));
    expect(topicStats(log, 'feed')).toEqual(counted(path, 'feed'));
  });
});

/** The schema of version 1, as files written before retention have it (a fixture: never change it). */
const SCHEMA_V1 = `
CREATE TABLE topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, partitions INTEGER NOT NULL, compacted INTEGER NOT NULL) STRICT;
CREATE TABLE partitions (topic_id INTEGER NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, last_timestamp INTEGER NOT NULL,
  PRIMARY KEY (topic_id, partition)) STRICT, WITHOUT ROWID;
CREATE TABLE records (topic_id INTEGER NOT NULL, partition INTEGER NOT NULL, record_offset INTEGER NOT NULL, timestamp INTEGER NOT NULL,
  key TEXT NOT NULL, value BLOB, headers TEXT, PRIMARY KEY (topic_id, partition, record_offset)) STRICT;
CREATE TABLE group_offsets (grp TEXT NOT NULL, topic_id INTEGER NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
  PRIMARY KEY (grp, topic_id, partition)) STRICT, WITHOUT ROWID;
CREATE TABLE fences (fence TEXT PRIMARY KEY, epoch INTEGER NOT NULL, owner TEXT NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE group_leases (grp TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, heartbeat INTEGER NOT NULL) STRICT, WITHOUT ROWID;
`;
