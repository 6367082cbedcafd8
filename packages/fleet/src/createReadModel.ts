/**
 * The query read model: `twin.snapshots` folded into SQLite, answering the IoT Hub query language
 * with a freshness token on every answer.
 *
 * Consumption: a consumer group of its own (one per read-model file, id kept in the file) on
 * `twin.snapshots`, all partitions. Each batch is applied in **one SQLite transaction together
 * with the consumed offsets** (table `positions`), so a crash at any instant leaves a read model
 * that matches a prefix of the topic, and a restart resumes exactly there (records below the
 * stored position are skipped, whatever the group's committed offsets say). The view is
 * rebuildable: {@link ReadModel.rebuild} (or a fresh file) replays the compacted topic from 0.
 * Works on any `Log` (embedded SQLite log, Kafka).
 *
 * Freshness: `positions` also keeps, per partition, the input offsets (`twin.backend`,
 * `twin.device`) that the consumed checkpoints reflect (the projector closes every output batch with
 * a checkpoint; a snapshot's own offsets are not used, since a consumer batch may end in the middle
 * of a projector batch), so a writer holding a `WriteReceipt` can wait until its write is visible
 * to queries ({@link ReadModel.waitFor}), and the gateways read their own writes (docs/reads.md).
 */
import { randomUUID } from 'node:crypto';
import { decodeOutputRecord } from '@twinlog/codec';
import {
  fromStateDoc,
  renderTwin,
  type BackoffOptions,
  type Log,
  type LogRecord,
  type ObservableSubscription,
  type StageHealth,
  type StageState,
  type SupervisedStage,
} from '@twinlog/core';
import { CHECKPOINT_KEY, superviseOnNode, TOPICS } from '@twinlog/projector';
import { parseQuery, type Query, type QueryRow } from '@twinlog/query';
import Database from 'better-sqlite3';
import { fleetError } from './fleetError.ts';
import { decodeFreshness, encodeFreshness, reflects, type LogPosition, type Positions } from './freshness.ts';
import { isAggregateQuery, TwinStore } from './internal/twinStore.ts';

/** Options of {@link createReadModel}. */
export interface ReadModelOptions {
  /** The log holding `twin.snapshots` (it must exist: `ensureTwinTopics`). */
  readonly log: Log;
  /** The SQLite file of the read model (created when missing). `':memory:'` works for tests. */
  readonly path: string;
  /** Consumer group (default: `twinlog-fleet-<uuid>`, chosen once and kept in the file). */
  readonly group?: string;
  /** Default bound of {@link ReadModel.waitFor} and of queries given `after`, ms (default 10 000). */
  readonly waitTimeoutMs?: number;
  /** Start consuming at once (default true); otherwise call {@link ReadModel.start}. */
  readonly start?: boolean;
  /** SQLite page cache, MiB (default 256). */
  readonly cacheMiB?: number;
  /** Memory-mapped reads, MiB (default 1024; 0 turns it off). */
  readonly mmapMiB?: number;
  /**
   * Restart the consumer after a failure (its crash, the broker gone, a batch that failed) with
   * exponential backoff (default `{}`: 250 ms doubling to 30 s), forever; `false`: the first
   * failure stops consuming (`stats().failed`).
   */
  readonly restart?: BackoffOptions | false;
  /** The stage's name in `health()` (default `read-model`). */
  readonly name?: string;
  /**
   * Most `twin.snapshots` records applied in one SQLite transaction (default 1,000). A longer
   * consumer batch is applied in several, each with its offsets, yielding the event loop between
   * them; each holds about 50 ms of work at the recent cost per record, and this many at most.
   */
  readonly maxRecordsPerTransaction?: number;
  /** Called once per state change of the consumer, not per retry. */
  readonly onStateChange?: (health: StageHealth, previous: StageState) => void;
}

/** Options of {@link ReadModel.query}. */
export interface QueryOptions {
  /** Rows per page (default 100, at most 100: docs/iot-hub.md "REST (back ends)"). */
  readonly pageSize?: number | undefined;
  /** The token of the previous page. */
  readonly continuation?: string | undefined;
  /** Wait until the read model reflects this first (a freshness token or write receipts). */
  readonly after?: FreshnessTarget | undefined;
  /** Bound of that wait, ms. */
  readonly timeoutMs?: number | undefined;
}

/** One page of a query. */
export interface QueryAnswer {
  readonly rows: QueryRow[];
  /** Present only when another page exists (never `''`, docs/iot-hub.md "REST (back ends)"). */
  readonly continuationToken: string | undefined;
  /** What the answer reflects (see `freshness.ts`): pass it to `waitFor` / `after` elsewhere. */
  readonly freshness: string;
  /** IoT Hub's `x-ms-item-type`: `Twin` for `SELECT *` over devices, else `Raw` (docs/iot-hub.md "REST (back ends)"). */
  readonly itemType: 'Twin' | 'DeviceJob' | 'Raw';
}

/** What to wait for: a freshness token, or where writes landed (e.g. the client's `WriteReceipt`s). */
export type FreshnessTarget = string | LogPosition | readonly LogPosition[];

/** What one committed batch changed. */
export interface ReadModelUpdate {
  readonly partition: number;
  /** Devices whose twin was inserted or replaced. */
  readonly upserted: readonly string[];
  /** Devices whose twin was deleted. */
  readonly removed: readonly string[];
  readonly freshness: string;
}

export interface ReadModel {
  /** Start consuming (when created with `start: false`). */
  start(): Promise<void>;
  /** Run a query: one page and the freshness it reflects. */
  query(text: string | Query, options?: QueryOptions): Promise<QueryAnswer>;
  /** Every row of a query at once (jobs, configurations, tools). */
  queryAll(
    text: string | Query,
    options?: Pick<QueryOptions, 'after' | 'timeoutMs'>,
  ): Promise<{ rows: QueryRow[]; freshness: string }>;
  /** The twin as the read model holds it, or `undefined`. */
  getTwin(deviceId: string): Record<string, unknown> | undefined;
  /** What the read model reflects now. */
  freshness(): string;
  /**
   * Resolve once the read model reflects `target`, with the freshness then.
   * @throws {TwinlogError} `READ_MODEL_TIMEOUT` (retryable) after `timeoutMs`;
   *   `FRESHNESS_TOKEN_INVALID`; `READ_MODEL_FAILED` when the consumer has stopped on an error.
   */
  waitFor(target: FreshnessTarget, options?: { readonly timeoutMs?: number }): Promise<string>;
  /**
   * Wait until every record now on `twin.snapshots` is applied. Exact on logs with dense offsets
   * (embedded); on Kafka, transaction markers take offsets, so prefer `waitFor(writeReceipts)`.
   */
  catchUp(options?: { readonly timeoutMs?: number }): Promise<string>;
  /** Listen to committed batches (configurations re-evaluate on them). Returns the unsubscribe. */
  onUpdate(listener: (update: ReadModelUpdate) => void): () => void;
  /** Drop every row and replay `twin.snapshots` from offset 0. */
  rebuild(): Promise<void>;
  /**
   * Record a device's status for an automatic configuration (`configurations.<id>.status` in its
   * twin, docs/iot-hub.md "Automatic configurations"); `undefined` removes it. Re-renders the stored twin at once.
   */
  setConfigurationStatus(deviceId: string, configurationId: string, status: string | undefined): void;
  /** Counters: twins, applied records, records that did not decode. */
  stats(): {
    readonly twins: number;
    readonly records: number;
    readonly badRecords: number;
    readonly failed: Error | undefined;
  };
  /** Whether the consumer consumes its partitions, and why not (`stopped` before `start()` and after `close()`). */
  health(): StageHealth;
  /** The SQLite connection (jobs and configurations keep their tables in the same file). */
  readonly db: Database.Database;
  /** The store (internal use: jobs publish `devices.jobs` rows through it). */
  readonly store: TwinStore;
  close(): Promise<void>;
}

interface Waiter {
  readonly done: (positions: Positions) => boolean;
  readonly resolve: (freshness: string) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Open (creating if needed) a read model on a SQLite file and start consuming `twin.snapshots`.
 *
 * @example
 * const readModel = await createReadModel({ log, path: '.data/fleet.db' })
 * const receipt = await client.mergeTags('dev1', { site: 'b' })
 * const page = await readModel.query("SELECT * FROM devices WHERE tags.site = 'b'", { after: receipt })
 * page.rows.length     // 1: the write is visible
 * page.freshness       // pass to another read model's waitFor
 * @throws Error from better-sqlite3 when the file cannot be opened; `LOG_TOPIC_NOT_FOUND` when
 *   `twin.snapshots` does not exist.
 */
export async function createReadModel({
  log,
  path,
  group,
  waitTimeoutMs = 10_000,
  start = true,
  cacheMiB = 256,
  mmapMiB = 1024,
  restart = {},
  name = 'read-model',
  maxRecordsPerTransaction = 1_000,
  onStateChange,
}: ReadModelOptions): Promise<ReadModel> {
  if (!Number.isSafeInteger(maxRecordsPerTransaction) || maxRecordsPerTransaction < 1) {
    throw new TypeError(`maxRecordsPerTransaction must be a positive integer, not ${maxRecordsPerTransaction}`);
  }
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL'); // rows and offsets commit together; a power cut only rewinds both
  db.pragma(`cache_size = -${cacheMiB * 1024}`); // the leaves index is written at random places: keep it in memory
  db.pragma(`mmap_size = ${mmapMiB * 2 ** 20}`);
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS positions (partition INTEGER PRIMARY KEY, snapshots INTEGER NOT NULL, backend INTEGER NOT NULL, device INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS twin_configurations (device_id TEXT NOT NULL, config_id TEXT NOT NULL, status TEXT NOT NULL, PRIMARY KEY (device_id, config_id)) WITHOUT ROWID;
  `);
  const store = new TwinStore(db);

  const metaGet = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
  const metaSet = db.prepare<[string, string]>(
    'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
  );
  const groupId = group ?? metaGet.get('group')?.value ?? `twinlog-fleet-${randomUUID()}`;
  metaSet.run('group', groupId);

  const partitions = await log.partitionCount(TOPICS.snapshots);
  const savePosition = db.prepare<[number, number, number, number]>(
    'INSERT INTO positions (partition, snapshots, backend, device) VALUES (?, ?, ?, ?) ON CONFLICT (partition) DO UPDATE SET snapshots = excluded.snapshots, backend = excluded.backend, device = excluded.device',
  );
  const positions = {
    snapshots: new Array<number>(partitions).fill(0),
    backend: new Array<number>(partitions).fill(0),
    device: new Array<number>(partitions).fill(0),
  };
  const loadPositions = (): void => {
    positions.snapshots.fill(0);
    positions.backend.fill(0);
    positions.device.fill(0);
    for (const row of db.prepare('SELECT partition, snapshots, backend, device FROM positions').all() as {
      partition: number;
      snapshots: number;
      backend: number;
      device: number;
    }[]) {
      if (row.partition >= partitions) continue;
      positions.snapshots[row.partition] = row.snapshots;
      positions.backend[row.partition] = row.backend;
      positions.device[row.partition] = row.device;
    }
  };
  loadPositions();

  const configStatuses = db.prepare<[string], { config_id: string; status: string }>(
    'SELECT config_id, status FROM twin_configurations WHERE device_id = ? ORDER BY config_id',
  );
  const anyConfigurationStatus = db.prepare('SELECT 1 FROM twin_configurations LIMIT 1').pluck();
  /** The stored document: the rendered twin plus `configurations` (docs/iot-hub.md "The twin document") when the device has any. */
  const decorate = (deviceId: string, twin: Record<string, unknown>): Record<string, unknown> => {
    const statuses = configStatuses.all(deviceId);
    if (statuses.length === 0) return twin;
    const configurations: Record<string, { status: string }> = {};
    for (const s of statuses) configurations[s.config_id] = { status: s.status };
    return { ...twin, configurations };
  };

  let records = 0;
  let badRecords = 0;
  let failed: Error | undefined;
  const listeners = new Set<(u: ReadModelUpdate) => void>();
  const waiters = new Set<Waiter>();
  const current = (): Positions => ({
    snapshots: [...positions.snapshots],
    backend: [...positions.backend],
    device: [...positions.device],
  });
  const freshness = (): string => encodeFreshness(current());

  /** Recent cost of applying one record, ms (sizes the transactions of a long batch). */
  let msPerRecord = 0.1;
  const sliceMs = 50;
  const applyBatch = db.transaction(
    (partition: number, batch: readonly LogRecord[]): { upserted: string[]; removed: string[] } => {
      const latest = new Map<string, LogRecord>();
      let next = positions.snapshots[partition]!;
      let backend = positions.backend[partition]!;
      let device = positions.device[partition]!;
      for (const r of batch) {
        if (r.offset < next) continue; // already reflected (redelivery after a restart or rebalance)
        next = r.offset + 1;
        records++;
        if (r.key === CHECKPOINT_KEY) {
          if (r.value === null) continue;
          try {
            const cp = decodeOutputRecord(r.value, 'checkpoint');
            backend = Math.max(backend, cp.offsets.backend);
            device = Math.max(device, cp.offsets.device);
          } catch {
            badRecords++;
          }
          continue;
        }
        latest.set(r.key, r);
      }
      const upserted: string[] = [];
      const removed: string[] = [];
      // one query per batch, not one per twin, while no configuration has statuses (the usual case)
      const decorating = anyConfigurationStatus.get() !== undefined;
      for (const [key, r] of latest) {
        if (r.value === null) {
          if (store.remove(key)) removed.push(key);
          continue;
        }
        try {
          const snap = decodeOutputRecord(r.value, 'snapshot');
          // The input positions advance at checkpoints only: the projector ends each output batch
          // with one, and a consumer batch may end inside a projector batch, where a snapshot's
          // offsets already name inputs whose other devices' snapshots are not applied yet.
          if (!snap.exists) {
            if (store.remove(snap.deviceId)) removed.push(snap.deviceId);
            continue;
          }
          const twin = renderTwin(fromStateDoc(snap.state)) as unknown as Record<string, unknown>;
          store.upsert(snap.deviceId, decorating ? decorate(snap.deviceId, twin) : twin);
          upserted.push(snap.deviceId);
        } catch {
          badRecords++; // a record that does not decode is skipped, never crashes the view
        }
      }
      positions.snapshots[partition] = next;
      positions.backend[partition] = backend;
      positions.device[partition] = device;
      savePosition.run(partition, next, backend, device);
      return { upserted, removed };
    },
  );

  const settleWaiters = (): void => {
    const now = current();
    for (const w of waiters) {
      if (!w.done(now)) continue;
      waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(encodeFreshness(now));
    }
  };

  const fail = (e: Error): void => {
    failed = e;
    for (const w of waiters) {
      waiters.delete(w);
      clearTimeout(w.timer);
      w.reject(fleetError('READ_MODEL_FAILED', `the read model stopped consuming: ${e.message}`, { cause: e }));
    }
  };

  /** One run of the consumer: subscribe from the stored positions; ends on its own when a batch or the consumer fails. */
  const startRun = async (): Promise<{
    ended: Promise<void>;
    stop: () => Promise<void>;
    status: () => { partitions: number[]; fetching?: boolean; standby?: boolean; reason?: string };
  }> => {
    let endRun: (e: unknown) => void = () => {};
    const ended = new Promise<void>((_, reject) => (endRun = reject));
    ended.catch(() => {});
    const held = new Set<number>();
    await log.commitOffsets(
      positions.snapshots.map((offset, partition) => ({ group: groupId, topic: TOPICS.snapshots, partition, offset })),
    );
    const sub: ObservableSubscription = await log.subscribe({
      group: groupId,
      topics: [TOPICS.snapshots],
      onAssign: async (ps) => {
        for (const p of ps) held.add(p);
      },
      onRevoke: async (ps) => {
        for (const p of ps) held.delete(p);
      },
      eachBatch: async ({ partition, records: fetched }) => {
        if (partition >= partitions) return;
        // A long batch is applied as several transactions of about 50 ms each, yielding the event
        // loop between them: the read model shares its process with the gateways and the projector
        // (serve), and one transaction of a whole fetch would hold every request for seconds.
        for (let from = 0; from < fetched.length;) {
          if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
          // as many records as fit in about `sliceMs` at the recent cost per record (at most maxRecordsPerTransaction)
          const n = Math.min(maxRecordsPerTransaction, Math.max(10, Math.floor(sliceMs / msPerRecord)));
          const batch = from === 0 && fetched.length <= n ? fetched : fetched.slice(from, from + n);
          from += batch.length;
          let changed: { upserted: string[]; removed: string[] };
          try {
            const started = performance.now();
            changed = applyBatch(partition, batch);
            msPerRecord = 0.7 * msPerRecord + 0.3 * ((performance.now() - started) / batch.length);
          } catch (e) {
            // positions in memory may be ahead of the rolled-back transaction: reload them
            loadPositions();
            store.loadPaths();
            fail(e as Error);
            endRun(e);
            throw e;
          }
          settleWaiters();
          if (listeners.size > 0 && (changed.upserted.length > 0 || changed.removed.length > 0)) {
            const update: ReadModelUpdate = { partition, ...changed, freshness: freshness() };
            for (const l of listeners) {
              try {
                l(update);
              } catch {
                // a listener's failure is its own
              }
            }
          }
        }
      },
    });
    failed = undefined;
    sub.done?.then(
      () => {},
      (e: unknown) => endRun(e),
    );
    return {
      ended,
      stop: () => sub.stop().catch(() => {}), // a failed run's stop rejects with the error `ended` carries
      status: () => {
        const s = sub.status?.();
        return {
          partitions: s?.partitions !== undefined ? [...s.partitions] : [...held].sort((a, b) => a - b),
          ...(s === undefined
            ? {}
            : {
                fetching: s.fetching,
                ...(s.standby === true ? { standby: true } : {}),
                ...(s.reason === undefined ? {} : { reason: s.reason }),
              }),
        };
      },
    };
  };

  let supervisor: SupervisedStage | undefined;
  let plain: Awaited<ReturnType<typeof startRun>> | undefined;
  let stoppedAt = Date.now();
  const startConsuming = async (): Promise<void> => {
    if (supervisor !== undefined || plain !== undefined) return;
    failed = undefined;
    const first = await startRun(); // the first run's errors are the caller's
    if (restart === false) {
      plain = first;
      return;
    }
    let pending: typeof first | undefined = first;
    supervisor = superviseOnNode({
      name,
      ...restart,
      start: async () => {
        const next = pending ?? (await startRun());
        pending = undefined;
        return next;
      },
      ...(onStateChange === undefined ? {} : { onChange: onStateChange }),
    });
  };
  const stopConsuming = async (): Promise<void> => {
    const s = supervisor;
    const p = plain;
    supervisor = undefined;
    plain = undefined;
    stoppedAt = Date.now();
    await s?.stop();
    await p?.stop();
  };

  const toCondition = (target: FreshnessTarget): ((p: Positions) => boolean) => {
    if (typeof target === 'string') {
      const wanted = decodeFreshness(target);
      return (p) => reflects(p, wanted);
    }
    const list: readonly LogPosition[] = Array.isArray(target)
      ? (target as readonly LogPosition[])
      : [target as LogPosition];
    const checks = list.map((w) => {
      const key =
        w.topic === TOPICS.backend
          ? 'backend'
          : w.topic === TOPICS.device
            ? 'device'
            : w.topic === TOPICS.snapshots
              ? 'snapshots'
              : undefined;
      if (
        key === undefined ||
        !Number.isSafeInteger(w.partition) ||
        w.partition < 0 ||
        w.partition >= partitions ||
        !Number.isSafeInteger(w.offset)
      ) {
        throw fleetError(
          'FRESHNESS_TOKEN_INVALID',
          `cannot wait for ${String(w.topic)}/${String(w.partition)}@${String(w.offset)}`,
          {
            details: { topic: w.topic, partition: w.partition, offset: w.offset },
          },
        );
      }
      return (p: Positions) => (p[key][w.partition] ?? 0) > w.offset;
    });
    return (p) => checks.every((c) => c(p));
  };

  const waitFor = (
    target: FreshnessTarget,
    { timeoutMs = waitTimeoutMs }: { readonly timeoutMs?: number } = {},
  ): Promise<string> => {
    let done: (p: Positions) => boolean;
    try {
      done = toCondition(target);
    } catch (e) {
      return Promise.reject(e);
    }
    if (done(current())) return Promise.resolve(freshness());
    if (failed !== undefined) {
      return Promise.reject(
        fleetError('READ_MODEL_FAILED', `the read model stopped consuming: ${failed.message}`, { cause: failed }),
      );
    }
    return new Promise<string>((resolve, reject) => {
      const waiter: Waiter = {
        done,
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters.delete(waiter);
          reject(
            fleetError(
              'READ_MODEL_TIMEOUT',
              `the read model did not reflect the requested position within ${timeoutMs} ms`,
              {
                canRetry: true,
                details: { timeoutMs, freshness: freshness() },
              },
            ),
          );
        }, timeoutMs),
      };
      waiters.add(waiter);
    });
  };

  const parse = (text: string | Query): Query => (typeof text === 'string' ? parseQuery(text) : text);

  const readModel: ReadModel = {
    db,
    store,
    start: startConsuming,
    async query(text, { pageSize, continuation, after, timeoutMs } = {}) {
      const query = parse(text);
      if (after !== undefined) await waitFor(after, timeoutMs === undefined ? {} : { timeoutMs });
      const fresh = freshness(); // read in the same synchronous step as the rows
      const page = store.run(query, { pageSize, continuation });
      const itemType =
        query.from === 'devices.jobs' ? 'DeviceJob' : query.select === '*' && !isAggregateQuery(query) ? 'Twin' : 'Raw';
      return { rows: page.rows, continuationToken: page.continuationToken, freshness: fresh, itemType };
    },
    async queryAll(text, { after, timeoutMs } = {}) {
      const query = parse(text);
      if (after !== undefined) await waitFor(after, timeoutMs === undefined ? {} : { timeoutMs });
      const fresh = freshness();
      return { rows: store.run(query, { all: true }).rows, freshness: fresh };
    },
    getTwin: (deviceId) => store.get(deviceId),
    freshness,
    waitFor,
    async catchUp(options = {}) {
      const ends = await log.endOffsets(TOPICS.snapshots);
      return waitFor(encodeFreshness({ snapshots: ends, backend: [], device: [] }), options);
    },
    onUpdate(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async rebuild() {
      await stopConsuming();
      db.transaction(() => {
        store.clear();
        db.exec('DELETE FROM positions');
      })();
      loadPositions();
      await startConsuming();
    },
    setConfigurationStatus(deviceId, configurationId, status) {
      db.transaction(() => {
        if (status === undefined)
          db.prepare('DELETE FROM twin_configurations WHERE device_id = ? AND config_id = ?').run(
            deviceId,
            configurationId,
          );
        else {
          db.prepare(
            'INSERT INTO twin_configurations (device_id, config_id, status) VALUES (?, ?, ?) ON CONFLICT (device_id, config_id) DO UPDATE SET status = excluded.status',
          ).run(deviceId, configurationId, status);
        }
        const doc = store.get(deviceId);
        if (doc === undefined) return;
        delete doc['configurations'];
        store.upsert(deviceId, decorate(deviceId, doc));
      })();
    },
    stats: () => ({ twins: store.count(), records, badRecords, failed }),
    health: () =>
      supervisor?.health() ?? {
        stage: name,
        state: plain !== undefined && failed === undefined ? 'consuming' : 'stopped',
        reason: failed?.message,
        since: stoppedAt,
        partitions: plain?.status().partitions ?? [],
        restarts: 0,
      },
    async close() {
      await stopConsuming();
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.reject(fleetError('READ_MODEL_FAILED', 'the read model was closed'));
      }
      waiters.clear();
      db.close();
    },
  };
  if (start) await startConsuming();
  return readModel;
}
