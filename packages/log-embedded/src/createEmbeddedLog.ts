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
 */
import { randomUUID } from 'node:crypto';
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
import { migrate } from './internal/schema.ts';
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
}

/** The embedded log: a {@link Log} plus SQLite-specific maintenance. */
export interface EmbeddedLog extends Log {
  /** The database file. */
  readonly path: string;
  /**
   * Compacts compacted topics (all of them, or the one named): deletes every record that a later
   * record with the same key in the same partition supersedes, keeping the latest (tombstones
   * included). Offsets are not renumbered, so reads then see gaps, as on Kafka. Returns how many
   * records were deleted. Without calling it, compacted topics keep every record: compaction is an
   * optimization, and readers must already tolerate several records per key.
   *
   * @throws TwinlogError `LOG_TOPIC_NOT_FOUND` for a missing topic, `LOG_ARGUMENT_INVALID` for a
   * topic that is not compacted.
   */
  compact(topic?: string): Promise<number>;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

interface TopicRow {
  id: number;
  name: string;
  partitions: number;
  compacted: number;
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
}: EmbeddedLogOptions): EmbeddedLog {
  return new SqliteLog(path, now, synchronous, maxBatchSize, { pollIntervalMs, busyTimeoutMs, leaseMs: groupLeaseMs });
}

function invalid(message: string, details: Record<string, unknown> = {}): TwinlogError {
  return new TwinlogError('LOG_ARGUMENT_INVALID', message, { details });
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalid(`offset ${offset} is not a non-negative safe integer`, { offset });
}

function checkPartition(t: TopicRow, partition: number): void {
  if (!Number.isInteger(partition) || partition < 0 || partition >= t.partitions) {
    throw invalid(`partition ${partition} does not exist in topic ${t.name} (${t.partitions} partitions)`, { topic: t.name, partition });
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

  constructor(
    readonly path: string,
    private readonly now: () => number,
    synchronous: 'FULL' | 'NORMAL',
    readonly maxBatchSize: number,
    shared: { pollIntervalMs: number; busyTimeoutMs: number; leaseMs: number },
  ) {
    this.db = new Database(path);
    try {
      this.db.pragma(`busy_timeout = ${shared.busyTimeoutMs}`);
      const mode = this.db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`${path}: SQLite refused WAL mode (got ${String(mode)}); use a file on a local disk`);
      this.db.pragma(`synchronous = ${synchronous}`);
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
      insertTopic: db.prepare('INSERT INTO topics (name, partitions, compacted) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING'),
      insertPartition: db.prepare('INSERT INTO partitions (topic_id, partition, next_offset, last_timestamp) VALUES (?, ?, 0, 0)'),
      partitionState: db.prepare('SELECT next_offset, last_timestamp FROM partitions WHERE topic_id = ? AND partition = ?'),
      updatePartition: db.prepare('UPDATE partitions SET next_offset = ?, last_timestamp = ? WHERE topic_id = ? AND partition = ?'),
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
      committedOne: db.prepare('SELECT next_offset FROM group_offsets WHERE grp = ? AND topic_id = ? AND partition = ?').pluck(),
      commitOffset: db.prepare(
        `INSERT INTO group_offsets (grp, topic_id, partition, next_offset) VALUES (?, ?, ?, ?)
         ON CONFLICT (grp, topic_id, partition) DO UPDATE SET next_offset = excluded.next_offset`,
      ),
      fence: db.prepare('SELECT epoch FROM fences WHERE fence = ?').pluck(),
      setFence: db.prepare(
        `INSERT INTO fences (fence, epoch, owner) VALUES (?, ?, ?)
         ON CONFLICT (fence) DO UPDATE SET epoch = excluded.epoch, owner = excluded.owner`,
      ),
      compact: db.prepare(
        `DELETE FROM records WHERE topic_id = @topic AND partition = @partition AND record_offset NOT IN
           (SELECT MAX(record_offset) FROM records WHERE topic_id = @topic AND partition = @partition GROUP BY key)`,
      ),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new TwinlogError('LOG_CLOSED', `the embedded log on ${this.path} is closed`);
  }

  private topic(name: string): TopicRow {
    const cached = this.topicCache.get(name);
    if (cached !== undefined) return cached;
    const row = this.stmts.topic.get(name) as TopicRow | undefined;
    if (row === undefined) throw new TwinlogError('LOG_TOPIC_NOT_FOUND', `topic ${name} does not exist`, { details: { topic: name } });
    this.topicCache.set(name, row);
    return row;
  }

  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    this.assertOpen();
    for (const s of specs) {
      if (typeof s.name !== 'string' || !TOPIC_NAME.test(s.name)) throw invalid(`topic name ${String(s.name)} is not [a-zA-Z0-9._-]{1,249}`, { topic: s.name });
      if (!Number.isInteger(s.partitions) || s.partitions < 1) throw invalid(`topic ${s.name}: partitions must be a positive integer`, { topic: s.name });
    }
    this.db
      .transaction(() => {
        for (const s of specs) {
          const { changes, lastInsertRowid } = this.stmts.insertTopic.run(s.name, s.partitions, s.compacted === true ? 1 : 0);
          if (changes === 0) continue;
          for (let p = 0; p < s.partitions; p++) this.stmts.insertPartition.run(lastInsertRowid, p);
        }
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
      if (r.value !== null && !(r.value instanceof Uint8Array)) throw invalid('record value must be a Uint8Array or null', { topic: t.name });
      if (r.partition === undefined) return partitionFor(r.key, t.partitions);
      checkPartition(t, r.partition);
      return r.partition;
    });
    const now = this.now();
    const state = new Map<number, { next: number; last: number }>();
    const results = records.map((r, i) => {
      const partition = placed[i]!;
      let s = state.get(partition);
      if (s === undefined) {
        const row = this.stmts.partitionState.get(t.id, partition) as { next_offset: number; last_timestamp: number };
        s = { next: row.next_offset, last: row.last_timestamp };
        state.set(partition, s);
      }
      const offset = s.next;
      s.next += 1;
      s.last = Math.max(s.last, now);
      const value = r.value === null ? null : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.stmts.insertRecord.run(t.id, partition, offset, s.last, r.key, value, encodeHeaders(r.headers));
      return { partition, offset };
    });
    for (const [partition, s] of state) this.stmts.updatePartition.run(s.next, s.last, t.id, partition);
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
          throw new TwinlogError('LOG_FENCED', `fence ${batch.fence} was taken by a newer writer`, { details: { fence: batch.fence, epoch: mine, current } });
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
    for (const row of this.stmts.committed.all(group, t.id) as { partition: number; next_offset: number }[]) out[row.partition] = row.next_offset;
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
    let deleted = 0;
    for (const t of topics) {
      for (let p = 0; p < t.partitions; p++) {
        // One short transaction per partition, so writers are not held up for long.
        deleted += this.db.transaction(() => this.stmts.compact.run({ topic: t.id, partition: p }).changes).immediate();
      }
    }
    return deleted;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.members].map((m) => m.stop()));
    this.closed = true;
    this.file.release();
    this.db.close();
    this.file.changed.notify();
  }
}
