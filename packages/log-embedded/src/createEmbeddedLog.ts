/**
 * The embedded `Log`: one SQLite file (better-sqlite3) holding every topic, for `twinlog serve` on
 * one machine with no broker to run. It passes `runLogAcceptanceSuite` with Kafka's semantics:
 * murmur2 partitioning (`partitionFor`), dense per-partition offsets from 0, append-time
 * timestamps, committed group offsets, atomic fenced `commitBatch`, co-partitioned groups.
 *
 * Durability: WAL journal, and `synchronous = FULL` by default — every append and every
 * `commitBatch` is one SQLite transaction whose commit is fsynced before the promise resolves, so an
 * acknowledged write survives a process kill *and* a power cut, and a crash at any instant leaves a
 * prefix of whole transactions (never a torn batch). `NORMAL` is offered for throughput: still
 * crash-safe for the process, but a power cut may roll back the last acknowledged transactions
 * (consistently: records and offsets of a batch stay together).
 *
 * Storage is bounded as on Kafka (docs/storage.md): every client runs a background maintenance
 * step (every `maintenanceIntervalMs`) that deletes records past a topic's `retentionMs` /
 * `retentionBytes`, compacts compacted topics, and hands free pages back to the file system, in
 * small steps (a few ms each: the event loop and other writers run between them).
 * `storageStats()` reports the file's size and what maintenance did.
 */
import { randomUUID } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { statSync } from 'node:fs';
import {
  partitionFor,
  TwinlogError,
  type AppendRecord,
  type AppendResult,
  type CommitBatch,
  type Log,
  type LogRecord,
  type OffsetCommit,
  type ReadOptions,
  type SubscribeOptions,
  type Subscription,
  type TopicSpec,
} from '@twinlog/core';
import Database from 'better-sqlite3';
import type { Member, MemberSource } from '@twinlog/core';
import { Maintainer, type MaintenanceReport } from './internal/maintenance.ts';
import { chooseAutoVacuum, migrate } from './internal/schema.ts';
import { acquireSharedFile, type SharedFile } from './internal/sharedFile.ts';

/** Options of {@link createEmbeddedLog}. */
export interface EmbeddedLogOptions {
  /** The SQLite database file; created (with its directory's permission) when missing. */
  readonly path: string;
  /** Append-time clock in ms since the epoch (default `Date.now`). Times never go back within a partition. */
  readonly now?: () => number;
  /**
   * SQLite's `synchronous` setting (default `'FULL'`: acknowledged writes survive power loss).
   * `'NORMAL'` skips the fsync per transaction: crash-safe, but not power-loss durable.
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** How often to look for other processes' commits while someone waits (default 25 ms). */
  readonly pollIntervalMs?: number;
  /** Most records per `eachBatch` call and per `read` step (default 5000: a projector writes one snapshot per device per batch, so bigger batches write fewer). */
  readonly maxBatchSize?: number;
  /** How long a write waits for another process's transaction (default 10 000 ms). */
  readonly busyTimeoutMs?: number;
  /** A group lease not renewed for this long may be taken over by another process (default 10 000 ms). */
  readonly groupLeaseMs?: number;
  /**
   * How long this client waits between two background maintenance runs (retention, compaction,
   * vacuum), ms (default 30 000). `0` turns background maintenance off: then call `maintain()`.
   * Several clients of one file in one process take turns rather than run at once.
   */
  readonly maintenanceIntervalMs?: number;
  /**
   * Kafka's `min.compaction.lag.ms`: background compaction leaves records younger than this alone
   * (default 30 000 ms), so a bounded `read(…, { to })` of a compacted topic that takes less than
   * this never misses a key whose newer record was appended past `to`. `compact()` ignores it.
   */
  readonly minCompactionLagMs?: number;
}

/** What one maintenance run (or one `compact`) did. */
export type { MaintenanceReport };

/** The embedded log's storage figures: see {@link EmbeddedLog.storageStats}. */
export interface EmbeddedStorageStats {
  /** Bytes on disk now: the database file plus its `-wal` file. */
  readonly fileBytes: number;
  /** Of `fileBytes`, the `-wal` file (checkpointed into the database and reused, capped at 16 MiB when idle). */
  readonly walBytes: number;
  /** Free pages inside the database file, in bytes: reused by the next writes (or handed back by vacuum). */
  readonly freeBytes: number;
  /** Whether freed pages can be handed back to the file system (files created by this version), or are only reused. */
  readonly incrementalVacuum: boolean;
  /** Records held and their bytes (key + value + headers, what `retentionBytes` counts), per topic. */
  readonly topics: readonly { readonly name: string; readonly records: number; readonly bytes: number }[];
  /** What this client's maintenance did since it opened (background runs, `maintain()` and `compact()` calls). */
  readonly maintenance: {
    readonly runs: number;
    /** Records deleted by compaction (superseded by a later record of the same key). */
    readonly compactedRecords: number;
    /** Records deleted past `retentionMs`. */
    readonly retentionDeletedByTime: number;
    /** Records deleted over `retentionBytes`. */
    readonly retentionDeletedBySize: number;
    /** Pages handed back to the file system. */
    readonly vacuumedPages: number;
    /** Wall time of the last run, ms (`undefined` before the first). */
    readonly lastRunMs: number | undefined;
    /** Wall time of every run together, ms (the rest of the process runs between steps). */
    readonly totalRunMs: number;
    /** Time spent inside maintenance steps, ms: what maintenance cost this thread. */
    readonly busyMs: number;
    /**
     * The longest single step (one transaction or read) of any run: how long maintenance held the
     * write lock or the event loop at once, ms. Usually 2–5 ms; the longest are the steps whose
     * commit ran one of SQLite's WAL checkpoints, which the pipeline's own commits pay as often.
     */
    readonly longestStepMs: number;
    /** The last background run's failure, if it failed (the next run tries again). */
    readonly lastError: string | undefined;
  };
}

/**
 * The `diagnostics_channel` on which every maintenance run of an embedded log publishes
 * `{ path, report, ms }` (or `{ path, error }` when a background run failed).
 */
export const EMBEDDED_LOG_MAINTENANCE_CHANNEL = 'twinlog:log-embedded:maintenance';
const maintenanceEvents = channel(EMBEDDED_LOG_MAINTENANCE_CHANNEL);

/** Records one maintenance step reads at most. */
const STEP_ROWS = 1000;
/** Pages one maintenance step rewrites at most (see `MaintenanceSettings.stepPages`): 2–5 ms of work on a 2-core VM. */
const STEP_PAGES = 256;
/** A compaction step commits once it has deleted for this long, ms. */
const STEP_BUDGET_MS = 4;
/** Pages one vacuum step hands back at most (1 MiB of 4 KiB pages). */
const VACUUM_PAGES = 256;
/**
 * Page cache of a client's connection, KiB (SQLite's default is 2 MiB). Measured on the 200,000-event
 * storage test: with 2 MiB, compaction's deletes (scattered over the file) cost ~3× more and fell
 * behind the writes; with 16 MiB they keep up. Pages are cached as they are read, so an idle log
 * does not use it.
 */
const CACHE_KIB = 16 * 1024;
/** The `-wal` file is truncated to this after a checkpoint (SQLite's `journal_size_limit`). */
const WAL_SIZE_LIMIT = 16 * 1024 * 1024;

/** The embedded log: a {@link Log} plus SQLite-specific maintenance. */
export interface EmbeddedLog extends Log {
  /** The database file. */
  readonly path: string;
  /**
   * Compacts compacted topics (all of them, or the one named) now: deletes every record that a
   * later record with the same key in the same partition supersedes, keeping the latest (tombstones
   * included), whatever its age (unlike background maintenance, which honours
   * `minCompactionLagMs` and waits for half a partition to be superseded). Offsets are not
   * renumbered, so reads then see gaps, as on Kafka. Returns how many records were deleted.
   * Compaction is an optimization: readers must already tolerate several records per key.
   *
   * @throws TwinlogError `LOG_TOPIC_NOT_FOUND` for a missing topic, `LOG_ARGUMENT_INVALID` for a
   * topic that is not compacted.
   */
  compact(topic?: string): Promise<number>;
  /**
   * Runs one maintenance pass now, as the background timer does: retention by time and size,
   * compaction where due, vacuum. Resolves when done (runs of one client never overlap).
   */
  maintain(): Promise<MaintenanceReport>;
  /** The file's size and what maintenance did: see {@link EmbeddedStorageStats}. Synchronous and cheap (a few pragmas and a scan of the partition table). */
  storageStats(): EmbeddedStorageStats;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

interface TopicRow {
  id: number;
  name: string;
  partitions: number;
  compacted: number;
}

/** A stated retention: `undefined` leaves it as it is, `null` is no limit. */
function retentionValue(spec: TopicSpec, field: 'retentionMs' | 'retentionBytes'): number | null | undefined {
  const v = spec[field];
  if (v === undefined) return undefined;
  if (v === -1) return null;
  if (!Number.isSafeInteger(v) || v < 1)
    throw invalid(`topic ${spec.name}: ${field} must be a positive integer or -1 (no limit)`, {
      topic: spec.name,
      [field]: v,
    });
  return v;
}

interface RecordRow {
  partition: number;
  record_offset: number;
  timestamp: number;
  key: string;
  value: Buffer | null;
  headers: string | null;
}

/**
 * Opens (creating if needed) an embedded log on a SQLite file.
 *
 * Several `createEmbeddedLog` clients may share a file, in one process or in several (a writer
 * and a projector, say). Every client is its own fencing identity: the newest client to commit
 * under a fence id fences the older ones. Consumer groups are per process: members of one group in
 * this process — through any of its clients on this file — share the partitions; a second process
 * subscribing to a group that a live process consumes is refused with `LOG_GROUP_BUSY` (retryable:
 * it can take over once the holder dies or stops renewing its lease).
 *
 * Gotchas: the file must be on a local disk (SQLite WAL needs shared memory, so no network
 * filesystems and no sharing across hosts); records handed to `eachBatch` or yielded by `read`
 * carry `Buffer` values; do not await `subscription.stop()` inside `eachBatch` (it waits for that
 * very batch).
 *
 * @example
 * const log = createEmbeddedLog({ path: '.data/twinlog.db' });
 * await log.ensureTopics([{ name: 'twin.device', partitions: 4 }]);
 * await log.append('twin.device', [{ key: 'dev-1', value: bytes }]);
 * await log.close();
 *
 * @throws Error from better-sqlite3 when the file cannot be opened, or was written by a newer schema.
 */
export function createEmbeddedLog({
  path,
  now = Date.now,
  synchronous = 'FULL',
  pollIntervalMs = 25,
  maxBatchSize = 5000,
  busyTimeoutMs = 10_000,
  groupLeaseMs = 10_000,
  maintenanceIntervalMs = 30_000,
  minCompactionLagMs = 30_000,
}: EmbeddedLogOptions): EmbeddedLog {
  if (!(
    Number.isSafeInteger(maintenanceIntervalMs) &&
    maintenanceIntervalMs >= 0 &&
    maintenanceIntervalMs <= 2 ** 31 - 1
  )) {
    throw invalid('maintenanceIntervalMs must be a whole number of ms from 0 to 2^31 - 1', { maintenanceIntervalMs });
  }
  if (!(Number.isFinite(minCompactionLagMs) && minCompactionLagMs >= 0))
    throw invalid('minCompactionLagMs must be a non-negative number', { minCompactionLagMs });
  return new SqliteLog(
    path,
    now,
    synchronous,
    maxBatchSize,
    { pollIntervalMs, busyTimeoutMs, leaseMs: groupLeaseMs },
    { intervalMs: maintenanceIntervalMs, minCompactionLagMs },
  );
}

function invalid(message: string, details: Record<string, unknown> = {}): TwinlogError {
  return new TwinlogError('LOG_ARGUMENT_INVALID', message, { details });
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw invalid(`offset ${offset} is not a non-negative safe integer`, { offset });
}

function checkPartition(t: TopicRow, partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= t.partitions) {
    throw invalid(`partition ${partition} does not exist in topic ${t.name} (${t.partitions} partitions)`, {
      topic: t.name,
      partition,
    });
  }
}

function encodeHeaders(headers: Readonly<Record<string, string>> | undefined): string | null {
  if (headers === undefined) return null;
  const entries = Object.entries(headers);
  if (entries.length === 0) return null;
  for (const [k, v] of entries) if (typeof v !== 'string') throw invalid(`header ${k} must be a string`, { header: k });
  return JSON.stringify(headers);
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

class SqliteLog implements EmbeddedLog, MemberSource {
  private readonly db: Database.Database;
  private readonly file: SharedFile;
  /** This client's fencing identity. */
  private readonly token = randomUUID();
  /** Fence id → the epoch this client holds (taken at its first commit under that id). */
  private readonly epochs = new Map<string, number>();
  /** Topics never change once created, so they are cached; missing ones are not. */
  private readonly topicCache = new Map<string, TopicRow>();
  private readonly members = new Set<Member>();
  private closed = false;
  private readonly stmts;
  private readonly maintainer: Maintainer;
  /** Set when close() begins: maintenance stops at its next step. */
  private stopping = false;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  /** The tail of this client's maintenance runs (they run one after the other). */
  private maintenanceTail: Promise<unknown> = Promise.resolve();
  private lastMaintenanceError: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly now: () => number,
    synchronous: 'FULL' | 'NORMAL',
    readonly maxBatchSize: number,
    shared: { pollIntervalMs: number; busyTimeoutMs: number; leaseMs: number },
    private readonly maintenance: { intervalMs: number; minCompactionLagMs: number },
  ) {
    this.db = new Database(path);
    try {
      this.db.pragma(`busy_timeout = ${shared.busyTimeoutMs}`);
      chooseAutoVacuum(this.db);
      const mode = this.db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal')
        throw new Error(`${path}: SQLite refused WAL mode (got ${String(mode)}); use a file on a local disk`);
      this.db.pragma(`synchronous = ${synchronous}`);
      this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      this.db.pragma(`cache_size = -${CACHE_KIB}`);
      migrate(this.db);
      this.file = acquireSharedFile(path, shared);
    } catch (e) {
      this.db.close();
      throw e;
    }
    const db = this.db;
    this.stmts = {
      topic: db.prepare('SELECT id, name, partitions, compacted FROM topics WHERE name = ?'),
      compactedTopics: db.prepare('SELECT id, name, partitions, compacted FROM topics WHERE compacted = 1'),
      insertTopic: db.prepare(
        'INSERT INTO topics (name, partitions, compacted, retention_ms, retention_bytes) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING',
      ),
      setRetentionMs: db.prepare('UPDATE topics SET retention_ms = ? WHERE name = ?'),
      setRetentionBytes: db.prepare('UPDATE topics SET retention_bytes = ? WHERE name = ?'),
      insertPartition: db.prepare(
        'INSERT INTO partitions (topic_id, partition, next_offset, last_timestamp) VALUES (?, ?, 0, 0)',
      ),
      partitionState: db.prepare(
        'SELECT next_offset, last_timestamp FROM partitions WHERE topic_id = ? AND partition = ?',
      ),
      updatePartition: db.prepare(
        'UPDATE partitions SET next_offset = ?, last_timestamp = ?, records = records + ?, bytes = bytes + ? WHERE topic_id = ? AND partition = ?',
      ),
      topicSizes: db.prepare(
        'SELECT t.name, sum(p.records) AS records, sum(p.bytes) AS bytes FROM topics t JOIN partitions p ON p.topic_id = t.id GROUP BY t.id ORDER BY t.name',
      ),
      ends: db.prepare('SELECT next_offset FROM partitions WHERE topic_id = ? ORDER BY partition').pluck(),
      insertRecord: db.prepare(
        'INSERT INTO records (topic_id, partition, record_offset, timestamp, key, value, headers) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      fetch: db.prepare(
        `SELECT partition, record_offset, timestamp, key, value, headers FROM records
         WHERE topic_id = ? AND partition = ? AND record_offset >= ? AND record_offset < ?
         ORDER BY record_offset LIMIT ?`,
      ),
      committed: db.prepare('SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic_id = ?'),
      committedOne: db
        .prepare('SELECT next_offset FROM group_offsets WHERE grp = ? AND topic_id = ? AND partition = ?')
        .pluck(),
      commitOffset: db.prepare(
        `INSERT INTO group_offsets (grp, topic_id, partition, next_offset) VALUES (?, ?, ?, ?)
         ON CONFLICT (grp, topic_id, partition) DO UPDATE SET next_offset = excluded.next_offset`,
      ),
      fence: db.prepare('SELECT epoch FROM fences WHERE fence = ?').pluck(),
      setFence: db.prepare(
        `INSERT INTO fences (fence, epoch, owner) VALUES (?, ?, ?)
         ON CONFLICT (fence) DO UPDATE SET epoch = excluded.epoch, owner = excluded.owner`,
      ),
    };
    this.maintainer = new Maintainer(
      db,
      {
        now,
        minCompactionLagMs: maintenance.minCompactionLagMs,
        stepRows: STEP_ROWS,
        stepPages: STEP_PAGES,
        stepBudgetMs: STEP_BUDGET_MS,
        vacuumPages: VACUUM_PAGES,
      },
      () => this.stopping || this.closed,
    );
    this.scheduleMaintenance();
  }

  private assertOpen(): void {
    if (this.closed) throw new TwinlogError('LOG_CLOSED', `the embedded log on ${this.path} is closed`);
  }

  private topic(name: string): TopicRow {
    const cached = this.topicCache.get(name);
    if (cached !== undefined) return cached;
    const row = this.stmts.topic.get(name) as TopicRow | undefined;
    if (row === undefined)
      throw new TwinlogError('LOG_TOPIC_NOT_FOUND', `topic ${name} does not exist`, { details: { topic: name } });
    this.topicCache.set(name, row);
    return row;
  }

  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    this.assertOpen();
    const retention = specs.map((s) => {
      if (typeof s.name !== 'string' || !TOPIC_NAME.test(s.name))
        throw invalid(`topic name ${String(s.name)} is not [a-zA-Z0-9._-]{1,249}`, { topic: s.name });
      if (!Number.isInteger(s.partitions) || s.partitions < 1)
        throw invalid(`topic ${s.name}: partitions must be a positive integer`, { topic: s.name });
      return { ms: retentionValue(s, 'retentionMs'), bytes: retentionValue(s, 'retentionBytes') };
    });
    this.db
      .transaction(() => {
        specs.forEach((s, i) => {
          const { ms, bytes } = retention[i]!;
          const { changes, lastInsertRowid } = this.stmts.insertTopic.run(
            s.name,
            s.partitions,
            s.compacted === true ? 1 : 0,
            ms ?? null,
            bytes ?? null,
          );
          if (changes === 0) {
            // An existing topic keeps its partitions and compaction; retention is a config that may change.
            if (ms !== undefined) this.stmts.setRetentionMs.run(ms, s.name);
            if (bytes !== undefined) this.stmts.setRetentionBytes.run(bytes, s.name);
            return;
          }
          for (let p = 0; p < s.partitions; p++) this.stmts.insertPartition.run(lastInsertRowid, p);
        });
      })
      .immediate();
  }

  async partitionCount(topic: string): Promise<number> {
    this.assertOpen();
    return this.topic(topic).partitions;
  }

  /** Writes records inside the caller's transaction; offsets are dense per partition. */
  private write(t: TopicRow, records: readonly AppendRecord[]): AppendResult[] {
    const placed = records.map((r) => {
      if (typeof r.key !== 'string') throw invalid('record key must be a string', { topic: t.name });
      if (r.value !== null && !(r.value instanceof Uint8Array))
        throw invalid('record value must be a Uint8Array or null', { topic: t.name });
      if (r.partition === undefined) return partitionFor(r.key, t.partitions);
      checkPartition(t, r.partition);
      return r.partition;
    });
    const now = this.now();
    const state = new Map<number, { next: number; last: number; records: number; bytes: number }>();
    const results = records.map((r, i) => {
      const partition = placed[i]!;
      let s = state.get(partition);
      if (s === undefined) {
        const row = this.stmts.partitionState.get(t.id, partition) as { next_offset: number; last_timestamp: number };
        s = { next: row.next_offset, last: row.last_timestamp, records: 0, bytes: 0 };
        state.set(partition, s);
      }
      const offset = s.next;
      s.next += 1;
      s.last = Math.max(s.last, now);
      const value = r.value === null ? null : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      const headers = encodeHeaders(r.headers);
      this.stmts.insertRecord.run(t.id, partition, offset, s.last, r.key, value, headers);
      // What RECORD_BYTES measures in SQL: UTF-8 key + value + UTF-8 headers.
      s.records += 1;
      s.bytes +=
        Buffer.byteLength(r.key) + (value?.byteLength ?? 0) + (headers === null ? 0 : Buffer.byteLength(headers));
      return { partition, offset };
    });
    for (const [partition, s] of state)
      this.stmts.updatePartition.run(s.next, s.last, s.records, s.bytes, t.id, partition);
    return results;
  }

  async append(topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]> {
    this.assertOpen();
    const t = this.topic(topic);
    const results = this.db.transaction(() => this.write(t, records)).immediate();
    this.file.changed.notify();
    return results;
  }

  private writeOffsets(offsets: readonly OffsetCommit[]): void {
    for (const o of offsets) {
      const t = this.topic(o.topic);
      checkPartition(t, o.partition);
      checkOffset(o.offset);
      this.stmts.commitOffset.run(o.group, t.id, o.partition, o.offset);
    }
  }

  async commitBatch(batch: CommitBatch): Promise<void> {
    this.assertOpen();
    let taken: number | undefined;
    this.db
      .transaction(() => {
        const current = this.stmts.fence.get(batch.fence) as number | undefined;
        const mine = this.epochs.get(batch.fence);
        if (mine === undefined) {
          taken = (current ?? 0) + 1;
          this.stmts.setFence.run(batch.fence, taken, this.token);
        } else if (mine !== current) {
          throw new TwinlogError('LOG_FENCED', `fence ${batch.fence} was taken by a newer writer`, {
            details: { fence: batch.fence, epoch: mine, current },
          });
        }
        for (const a of batch.appends) this.write(this.topic(a.topic), a.records);
        this.writeOffsets(batch.offsets ?? []);
      })
      .immediate();
    if (taken !== undefined) this.epochs.set(batch.fence, taken);
    this.file.changed.notify();
  }

  async commitOffsets(offsets: readonly OffsetCommit[]): Promise<void> {
    this.assertOpen();
    this.db.transaction(() => this.writeOffsets(offsets)).immediate();
  }

  async committedOffsets(group: string, topic: string): Promise<(number | undefined)[]> {
    this.assertOpen();
    const t = this.topic(topic);
    const out: (number | undefined)[] = Array.from({ length: t.partitions }, () => undefined);
    for (const row of this.stmts.committed.all(group, t.id) as { partition: number; next_offset: number }[])
      out[row.partition] = row.next_offset;
    return out;
  }

  async endOffsets(topic: string): Promise<number[]> {
    this.assertOpen();
    return this.endOffsetsSync(topic);
  }

  private endOffsetsSync(topic: string): number[] {
    return this.stmts.ends.all(this.topic(topic).id) as number[];
  }

  private rows(t: TopicRow, partition: number, from: number, to: number, max: number): LogRecord[] {
    return (this.stmts.fetch.all(t.id, partition, from, to, max) as RecordRow[]).map((r) =>
      Object.freeze({
        topic: t.name,
        partition: r.partition,
        offset: r.record_offset,
        key: r.key,
        value: r.value,
        timestamp: r.timestamp,
        headers: r.headers === null ? NO_HEADERS : (Object.freeze(JSON.parse(r.headers)) as Record<string, string>),
      }),
    );
  }

  async *read(topic: string, partition: number, options: ReadOptions): AsyncIterable<readonly LogRecord[]> {
    this.assertOpen();
    const t = this.topic(topic);
    checkPartition(t, partition);
    checkOffset(options.from);
    if (options.to !== undefined) checkOffset(options.to);
    const end = options.to ?? this.endOffsetsSync(topic)[partition]!;
    let position = options.from;
    let unwatch: (() => void) | undefined;
    try {
      while (position < end) {
        this.assertOpen();
        const records = this.rows(t, partition, position, end, this.maxBatchSize);
        if (records.length > 0) {
          position = records[records.length - 1]!.offset + 1;
          yield records;
          continue;
        }
        const written = this.endOffsetsSync(topic)[partition]!;
        if (written >= end) break; // the rest of the range was compacted away
        position = Math.max(position, written);
        // `to` lies past the end: wait for appends, from this process or (polled) another.
        unwatch ??= this.file.watch();
        await this.file.changed.wait();
      }
    } finally {
      unwatch?.();
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.assertOpen();
    if (options.topics.length === 0) throw invalid('subscribe needs at least one topic');
    const { concurrency } = options;
    if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && concurrency >= 1)) {
      throw invalid('subscribe: concurrency must be a positive integer', { concurrency });
    }
    const counts = options.topics.map((name) => this.topic(name).partitions);
    const partitions = counts[0]!;
    if (counts.some((c) => c !== partitions)) {
      throw new TwinlogError(
        'LOG_CO_PARTITIONING',
        `co-partitioned topics need equal partition counts: ${options.topics.map((name, i) => `${name}=${counts[i]}`).join(', ')}`,
        { details: { topics: options.topics, counts } },
      );
    }
    const member = this.file.group(options.group).join(this, options, partitions);
    this.members.add(member);
    return { stop: () => member.stop() };
  }

  // MemberSource: what this client's group members read through.

  committedOffsetOf(group: string, topic: string, partition: number): number | undefined {
    return this.stmts.committedOne.get(group, this.topic(topic).id, partition) as number | undefined;
  }

  currentEndOffsets(topic: string): number[] {
    return this.endOffsetsSync(topic);
  }

  fetchRecords(topic: string, partition: number, from: number, max: number): LogRecord[] {
    return this.rows(this.topic(topic), partition, from, Number.MAX_SAFE_INTEGER, max);
  }

  forget(member: Member): void {
    this.members.delete(member);
  }

  async compact(topic?: string): Promise<number> {
    this.assertOpen();
    let topics: TopicRow[];
    if (topic === undefined) topics = this.stmts.compactedTopics.all() as TopicRow[];
    else {
      const t = this.topic(topic);
      if (t.compacted !== 1) throw invalid(`topic ${topic} is not compacted`, { topic });
      topics = [t];
    }
    return (await this.exclusive(() => this.maintainer.compactNow(topics))).compacted;
  }

  async maintain(): Promise<MaintenanceReport> {
    this.assertOpen();
    return this.exclusive(() => this.maintainer.run());
  }

  /** Runs `f` after this client's earlier maintenance runs, timing and publishing it. */
  private exclusive(f: () => Promise<MaintenanceReport>): Promise<MaintenanceReport> {
    const run = this.maintenanceTail.then(async () => {
      const started = performance.now();
      const report = await f();
      if (maintenanceEvents.hasSubscribers)
        maintenanceEvents.publish({ path: this.path, report, ms: performance.now() - started });
      return report;
    });
    this.maintenanceTail = run.catch(() => {});
    return run;
  }

  private scheduleMaintenance(): void {
    if (this.maintenance.intervalMs <= 0 || this.stopping || this.closed) return;
    this.maintenanceTimer = setTimeout(() => {
      this.maintenanceTimer = undefined;
      void this.backgroundMaintenance().finally(() => this.scheduleMaintenance());
    }, this.maintenance.intervalMs).unref();
  }

  private async backgroundMaintenance(): Promise<void> {
    // Clients of one file in one process take turns: the work is the file's, not the client's.
    if (this.file.maintaining) return;
    this.file.maintaining = true;
    try {
      await this.exclusive(() => this.maintainer.run());
      this.lastMaintenanceError = undefined;
    } catch (e) {
      this.lastMaintenanceError = e instanceof Error ? e.message : String(e);
      if (maintenanceEvents.hasSubscribers) maintenanceEvents.publish({ path: this.path, error: e });
    } finally {
      this.file.maintaining = false;
    }
  }

  storageStats(): EmbeddedStorageStats {
    this.assertOpen();
    const size = (file: string): number => statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    const main = size(this.path);
    const wal = size(`${this.path}-wal`);
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const t = this.maintainer.totals;
    return {
      fileBytes: main + wal,
      walBytes: wal,
      freeBytes: (this.db.pragma('freelist_count', { simple: true }) as number) * pageSize,
      incrementalVacuum: this.db.pragma('auto_vacuum', { simple: true }) === 2,
      topics: this.stmts.topicSizes.all() as { name: string; records: number; bytes: number }[],
      maintenance: {
        runs: t.runs,
        compactedRecords: t.compacted,
        retentionDeletedByTime: t.retentionDeletedByTime,
        retentionDeletedBySize: t.retentionDeletedBySize,
        vacuumedPages: t.vacuumedPages,
        lastRunMs: t.lastRunMs,
        totalRunMs: t.totalRunMs,
        busyMs: t.busyMs,
        longestStepMs: t.longestStepMs,
        lastError: this.lastMaintenanceError,
      },
    };
  }

  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  private async shutDown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.maintenanceTimer);
    await this.maintenanceTail;
    await Promise.allSettled([...this.members].map((m) => m.stop()));
    this.closed = true;
    this.file.release();
    this.db.close();
    this.file.changed.notify();
  }
}
