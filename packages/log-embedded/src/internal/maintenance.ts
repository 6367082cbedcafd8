/**
 * The embedded log's storage maintenance: retention by time and by size, compaction of compacted
 * topics, and handing free pages back to the file system. docs/storage.md gives the policy; this
 * is the mechanism.
 *
 * **Small steps.** better-sqlite3 runs on the caller's thread, so a long statement stalls the whole
 * process (the projector, the gateway) and an open write transaction stalls other processes'
 * writers. Every step here reads at most `stepRows` records and rewrites about `stepPages` pages
 * (or hands back `vacuumPages`) in one short transaction, and a run yields to the event loop
 * (`setImmediate`) between steps. A run can be stopped between any two steps and leaves a
 * consistent file; the next run picks up from there.
 *
 * **Retention** deletes a prefix of a partition: append times never go back within a partition, so
 * the records past `retention_ms` are the oldest ones, and those over `retention_bytes` are taken
 * oldest first. Each step reads up to `stepRows` records from the partition's start (the primary
 * key's order) and deletes the ones due with one range `DELETE`, adjusting the partition's
 * `records` and `bytes` in the same transaction.
 *
 * **Compaction** (Kafka's log cleaner, per partition): `[0, cleaned_offset)` holds at most one record
 * per key. A pass runs when the cleanable dirty part `[cleaned_offset, E)` is at least
 * {@link MIN_CLEANABLE_DIRTY_RATIO} of the clean and cleanable records together, where `E` is the
 * first offset appended less than `minCompactionLagMs` ago (a binary search over the primary key:
 * times are monotonic), so the lag's tail counts in neither. A pass reads about as many records as
 * it may delete, so compaction costs a bounded amount per superseded record. It reads the dirty part's keys into a map (key → latest offset, at most
 * {@link MAX_KEYS_PER_PASS} keys, so a pass may cover less), sweeps `[first, E)` deleting every record
 * that the map says is superseded, then moves `cleaned_offset` to `E`. The lag protects readers:
 * a bounded `read(…, { to })` that finishes within the lag never loses a key whose newer record lies
 * past its `to`. Tombstones are kept (the latest record of a key is never deleted by compaction).
 *
 * Offsets are never renumbered; readers already step over gaps (see `read`).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type Database from 'better-sqlite3';
import { RECORD_BYTES } from './schema.ts';

/** Kafka's `min.cleanable.dirty.ratio` default: compact once the dirty part is half the partition. */
export const MIN_CLEANABLE_DIRTY_RATIO = 0.5;
/** Most distinct keys one compaction pass maps (bounds its memory; the next pass goes on). */
export const MAX_KEYS_PER_PASS = 250_000;

/** Settings of a {@link Maintainer}. */
export interface MaintenanceSettings {
  /** The log's append-time clock (retention cut-offs and the compaction lag are measured on it). */
  readonly now: () => number;
  /** Records a compaction pass leaves alone while younger than this, ms. */
  readonly minCompactionLagMs: number;
  /** Most records one step reads. */
  readonly stepRows: number;
  /**
   * Most pages' worth of deletions one step commits: a transaction's cost is mostly the pages it
   * rewrites. Retention deletes contiguous records, so it is counted in bytes (`stepPages` pages);
   * compaction deletes scattered ones, so at most `stepPages` records, each a page rewritten.
   */
  readonly stepPages: number;
  /** A compaction step also stops deleting once it has run this long, ms. */
  readonly stepBudgetMs: number;
  /** Most pages one `incremental_vacuum` step releases. */
  readonly vacuumPages: number;
}

/** What one run (or one `compact`) did. */
export interface MaintenanceReport {
  /** Records deleted because a later record of the same key superseded them. */
  readonly compacted: number;
  /** Records deleted past `retentionMs`. */
  readonly retentionDeletedByTime: number;
  /** Records deleted over `retentionBytes`. */
  readonly retentionDeletedBySize: number;
  /** Free pages handed back to the file system. */
  readonly vacuumedPages: number;
  /** Whether the run stopped early (the log closing). */
  readonly interrupted: boolean;
}

/** Running totals of a {@link Maintainer}, since it was created. */
export interface MaintenanceTotals {
  runs: number;
  compacted: number;
  retentionDeletedByTime: number;
  retentionDeletedBySize: number;
  vacuumedPages: number;
  /** Wall time of the last completed run, ms (`undefined` before the first). */
  lastRunMs: number | undefined;
  /** Total wall time of all runs, ms (other work runs between their steps, so this is more than their cost). */
  totalRunMs: number;
  /** Total time spent inside maintenance steps, ms: what maintenance cost the thread. */
  busyMs: number;
  /** The longest single step (one transaction, one read or one vacuum step) of any run, ms. */
  longestStepMs: number;
}

interface TopicConfigRow {
  id: number;
  name: string;
  partitions: number;
  compacted: number;
  retention_ms: number | null;
  retention_bytes: number | null;
}

interface PartitionRow {
  next_offset: number;
  records: number;
  bytes: number;
  cleaned_offset: number;
}

interface SizedRow {
  record_offset: number;
  timestamp: number;
  size: number;
}

interface KeyRow {
  record_offset: number;
  key: string;
}

class Interrupted extends Error {}

/** Runs maintenance steps on one connection; see the module comment. */
export class Maintainer {
  readonly totals: MaintenanceTotals = {
    runs: 0,
    compacted: 0,
    retentionDeletedByTime: 0,
    retentionDeletedBySize: 0,
    vacuumedPages: 0,
    lastRunMs: undefined,
    totalRunMs: 0,
    busyMs: 0,
    longestStepMs: 0,
  };
  private readonly stmts;
  private readonly pageSize: number;

  constructor(
    private readonly db: Database.Database,
    private readonly settings: MaintenanceSettings,
    /** Asked between steps: true stops the run. */
    private readonly shouldStop: () => boolean,
  ) {
    this.pageSize = db.pragma('page_size', { simple: true }) as number;
    this.stmts = {
      topics: db.prepare(
        'SELECT id, name, partitions, compacted, retention_ms, retention_bytes FROM topics ORDER BY id',
      ),
      partition: db.prepare(
        'SELECT next_offset, records, bytes, cleaned_offset FROM partitions WHERE topic_id = ? AND partition = ?',
      ),
      head: db.prepare(
        `SELECT record_offset, timestamp, ${RECORD_BYTES} AS size FROM records
         WHERE topic_id = ? AND partition = ? ORDER BY record_offset LIMIT ?`,
      ),
      firstAtOrAfter: db.prepare(
        'SELECT record_offset, timestamp FROM records WHERE topic_id = ? AND partition = ? AND record_offset >= ? ORDER BY record_offset LIMIT 1',
      ),
      deleteBelow: db.prepare('DELETE FROM records WHERE topic_id = ? AND partition = ? AND record_offset < ?'),
      keys: db.prepare(
        'SELECT record_offset, key FROM records WHERE topic_id = ? AND partition = ? AND record_offset >= ? AND record_offset < ? ORDER BY record_offset LIMIT ?',
      ),
      deleteOne: db
        .prepare(
          `DELETE FROM records WHERE topic_id = ? AND partition = ? AND record_offset = ? RETURNING ${RECORD_BYTES} AS size`,
        )
        .pluck(),
      shrink: db.prepare(
        'UPDATE partitions SET records = max(records - ?, 0), bytes = max(bytes - ?, 0) WHERE topic_id = ? AND partition = ?',
      ),
      cleaned: db.prepare(
        'UPDATE partitions SET cleaned_offset = max(cleaned_offset, ?) WHERE topic_id = ? AND partition = ?',
      ),
    };
  }

  /**
   * One maintenance run over every topic: retention, then compaction where due, then vacuum.
   * Never throws for a busy database: a step that cannot get the write lock within the busy
   * timeout ends the run (SqliteError `SQLITE_BUSY` is caught), and the next run tries again.
   */
  async run(): Promise<MaintenanceReport> {
    return this.measure(async (report) => {
      for (const t of this.stmts.topics.all() as TopicConfigRow[]) {
        for (let p = 0; p < t.partitions; p++) {
          if (t.retention_ms !== null)
            report.retentionDeletedByTime += await this.retainByTime(t, p, this.settings.now() - t.retention_ms);
          if (t.retention_bytes !== null)
            report.retentionDeletedBySize += await this.retainBySize(t, p, t.retention_bytes);
          if (t.compacted === 1)
            report.compacted += await this.compactPartition(t, p, {
              force: false,
              lagMs: this.settings.minCompactionLagMs,
            });
        }
      }
      report.vacuumedPages += await this.vacuum();
    });
  }

  /** Compacts every superseded record of the given compacted topics now (no lag, no ratio). */
  async compactNow(topicIds: readonly { id: number; partitions: number }[]): Promise<MaintenanceReport> {
    return this.measure(async (report) => {
      for (const t of topicIds) {
        for (let p = 0; p < t.partitions; p++)
          report.compacted += await this.compactPartition(t, p, { force: true, lagMs: 0 });
      }
      report.vacuumedPages += await this.vacuum();
    });
  }

  private async measure(
    body: (report: { -readonly [K in keyof MaintenanceReport]: MaintenanceReport[K] }) => Promise<void>,
  ): Promise<MaintenanceReport> {
    const started = performance.now();
    const report = {
      compacted: 0,
      retentionDeletedByTime: 0,
      retentionDeletedBySize: 0,
      vacuumedPages: 0,
      interrupted: false,
    };
    try {
      await body(report);
    } catch (e) {
      if (e instanceof Interrupted) report.interrupted = true;
      else if (!isBusy(e)) throw e;
    } finally {
      const ms = performance.now() - started;
      const t = this.totals;
      t.runs += 1;
      t.compacted += report.compacted;
      t.retentionDeletedByTime += report.retentionDeletedByTime;
      t.retentionDeletedBySize += report.retentionDeletedBySize;
      t.vacuumedPages += report.vacuumedPages;
      t.lastRunMs = ms;
      t.totalRunMs += ms;
    }
    return report;
  }

  /** Runs one synchronous step, timing it, then yields to the event loop. */
  private async step<T>(f: () => T): Promise<T> {
    if (this.shouldStop()) throw new Interrupted();
    const started = performance.now();
    const out = f();
    const ms = performance.now() - started;
    this.totals.busyMs += ms;
    this.totals.longestStepMs = Math.max(this.totals.longestStepMs, ms);
    await yieldToLoop();
    return out;
  }

  /** Deletes, oldest first, the records of one partition that `due` selects from its head; returns how many. */
  private async deletePrefix(
    t: TopicConfigRow,
    partition: number,
    due: (rows: readonly SizedRow[], state: PartitionRow) => number,
  ): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await this.step(() =>
        this.db
          .transaction(() => {
            const state = this.stmts.partition.get(t.id, partition) as PartitionRow;
            const rows = this.stmts.head.all(t.id, partition, this.settings.stepRows) as SizedRow[];
            const wanted = due(rows, state);
            if (wanted === 0) return 0;
            // Bound the pages this transaction rewrites (at least one record, to make progress).
            let n = 1;
            let bytes = rows[0]!.size;
            while (n < wanted && bytes + rows[n]!.size <= this.settings.stepPages * this.pageSize)
              bytes += rows[n++]!.size;
            this.stmts.deleteBelow.run(t.id, partition, rows[n - 1]!.record_offset + 1);
            this.stmts.shrink.run(n, bytes, t.id, partition);
            return n;
          })
          .immediate(),
      );
      total += deleted;
      if (deleted === 0) return total;
    }
  }

  private async retainByTime(t: TopicConfigRow, partition: number, cutoff: number): Promise<number> {
    // Cheap test first: the oldest record of the partition, one index lookup.
    const oldest = this.stmts.firstAtOrAfter.get(t.id, partition, 0) as { timestamp: number } | undefined;
    if (oldest === undefined || oldest.timestamp >= cutoff) return 0;
    return this.deletePrefix(t, partition, (rows) => {
      let n = 0;
      while (n < rows.length && rows[n]!.timestamp < cutoff) n++;
      return n;
    });
  }

  private async retainBySize(t: TopicConfigRow, partition: number, cap: number): Promise<number> {
    const state = this.stmts.partition.get(t.id, partition) as PartitionRow;
    if (state.bytes <= cap) return 0;
    return this.deletePrefix(t, partition, (rows, { bytes }) => {
      let n = 0;
      while (n < rows.length && bytes > cap) bytes -= rows[n++]!.size;
      return n;
    });
  }

  /** The first offset in `[from, to)` whose record was appended after `cutoff` (`to` when none). */
  private firstYoungerThan(t: { id: number }, partition: number, from: number, to: number, cutoff: number): number {
    let lo = from;
    let hi = to;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const row = this.stmts.firstAtOrAfter.get(t.id, partition, mid) as
        { record_offset: number; timestamp: number } | undefined;
      if (row === undefined || row.record_offset >= hi || row.timestamp > cutoff) hi = mid;
      else lo = row.record_offset + 1;
    }
    return lo;
  }

  private async compactPartition(
    t: { id: number },
    partition: number,
    { force, lagMs }: { force: boolean; lagMs: number },
  ): Promise<number> {
    let total = 0;
    for (;;) {
      const state = this.stmts.partition.get(t.id, partition) as PartitionRow;
      const end =
        lagMs <= 0
          ? state.next_offset
          : await this.step(() =>
              this.firstYoungerThan(t, partition, state.cleaned_offset, state.next_offset, this.settings.now() - lagMs),
            );
      const dirty = end - state.cleaned_offset;
      if (dirty <= 0) return total;
      // Kafka's dirty ratio: cleanable dirty / (clean + cleanable dirty); the lag's tail counts in neither.
      const clean = Math.max(0, state.records - (state.next_offset - state.cleaned_offset));
      if (!force && dirty / (clean + dirty) < MIN_CLEANABLE_DIRTY_RATIO) return total;

      // 1. The dirty part's keys, latest offset each (read-only steps).
      const latest = new Map<string, number>();
      let position = state.cleaned_offset;
      while (position < end && latest.size < MAX_KEYS_PER_PASS) {
        const rows = await this.step(
          () => this.stmts.keys.all(t.id, partition, position, end, this.settings.stepRows) as KeyRow[],
        );
        if (rows.length === 0) {
          position = end;
          break;
        }
        for (const r of rows) latest.set(r.key, r.record_offset);
        position = rows[rows.length - 1]!.record_offset + 1;
      }
      const cleanedTo = position; // [0, cleanedTo) will hold one record per key

      // 2. Sweep [0, cleanedTo): delete what the map supersedes, one transaction per step. A step
      //    stops early when over its time budget (superseded records sit on scattered pages, and
      //    each one deleted is a page rewritten), and the next one resumes where it stopped.
      let sweep = 0;
      while (sweep < cleanedTo) {
        const from = sweep;
        const [deleted, next] = await this.step(() =>
          this.db
            .transaction((): [number, number] => {
              const started = performance.now();
              const rows = this.stmts.keys.all(t.id, partition, from, cleanedTo, this.settings.stepRows) as KeyRow[];
              if (rows.length === 0) return [0, cleanedTo];
              let n = 0;
              let bytes = 0;
              let resume = rows[rows.length - 1]!.record_offset + 1;
              for (const r of rows) {
                const keep = latest.get(r.key);
                if (keep === undefined || r.record_offset >= keep) continue;
                if (
                  n >= this.settings.stepPages ||
                  (n % 16 === 15 && performance.now() - started > this.settings.stepBudgetMs)
                ) {
                  resume = r.record_offset;
                  break;
                }
                const size = this.stmts.deleteOne.get(t.id, partition, r.record_offset) as number | undefined;
                if (size === undefined) continue;
                n += 1;
                bytes += size;
              }
              if (n > 0) this.stmts.shrink.run(n, bytes, t.id, partition);
              return [n, resume];
            })
            .immediate(),
        );
        total += deleted;
        sweep = next;
      }
      await this.step(() => this.stmts.cleaned.run(cleanedTo, t.id, partition));
      if (cleanedTo >= end) return total;
      // The key map filled up: go on from where it stopped.
    }
  }

  /** With `auto_vacuum = INCREMENTAL`, hands free pages beyond a small reserve back to the file system. */
  private async vacuum(): Promise<number> {
    if ((this.db.pragma('auto_vacuum', { simple: true }) as number) !== 2) return 0;
    const pageCount = (): number => this.db.pragma('page_count', { simple: true }) as number;
    let released = 0;
    for (;;) {
      const free = this.db.pragma('freelist_count', { simple: true }) as number;
      const before = pageCount();
      // Keep some free pages for the next writes: releasing and regrowing costs I/O for nothing.
      const reserve = Math.max(256, Math.floor(before / 16));
      const excess = free - reserve;
      if (excess <= 0) return released;
      const gone = await this.step(() => {
        this.db.pragma(`incremental_vacuum(${Math.min(excess, this.settings.vacuumPages)})`);
        return before - pageCount();
      });
      if (gone <= 0) return released;
      released += gone;
    }
  }
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_'));
}
