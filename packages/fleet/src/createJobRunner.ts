/**
 * Jobs: IoT Hub's `scheduleUpdateTwin` (docs/iot-hub.md, "Jobs and automatic configurations") over the read model. A job is "update
 * twins where <queryCondition>": it appends one tags and/or desired patch per matching device to
 * the log through @twinlog/client, reports progress (matched / succeeded / failed / pending), can be
 * cancelled, and survives a crash without applying anything twice.
 *
 * State, in the read model's SQLite file:
 * - `jobs`: the request, status, times, the matched count once the device list is fixed.
 * - `job_devices(job_id, idx, device_id, status, error)`: the matching devices in deviceId order,
 *   fixed once in one transaction when the job starts (so a resumed job works on the same list).
 *
 * Exactly-once effect: the patch for device number `idx` is written with the event ids
 * `(writer "job-<jobId>", seq idx·k … idx·k + k − 1)` (k = sections patched), a pure function of the
 * job and the device. A device is marked done only after its append is acknowledged; a crash in
 * between makes the resumed job append the same events again, and the fold drops them as
 * duplicates (ids are its dedupe key). With an `etag` other than `*` each write is a command, and
 * the device's outcome is the projector's decision (`PRECONDITION_FAILED` counts as failed).
 *
 * Status values: `queued` at creation (a twinlog choice, docs/iot-hub.md "Jobs"), `scheduled` until `startTime`, then `running`,
 * and `completed`, `failed` (the job itself failed: over `maxExecutionTimeInSeconds`, or the query
 * could not run) or `cancelled`.
 */
import { createTwinClient, type TwinPatch } from '@twinlog/client';
import {
  backoffDelay,
  describeError,
  isPlainObject,
  isTwinlogError,
  validatePatch,
  type BackoffOptions,
  type Log,
  type Patch,
  type StageHealth,
  type StageState,
} from '@twinlog/core';
import { parseQuery, type Query } from '@twinlog/query';
import type { ReadModel } from './createReadModel.ts';
import { fleetError } from './fleetError.ts';

/** How often the runner deletes the finished jobs past their retention, ms (by its clock). */
const EXPIRY_INTERVAL_MS = 60_000;

/** The body of `PUT /jobs/v2/{jobId}` for a twin update (docs/iot-hub.md "Jobs"). */
export interface UpdateTwinJobRequest {
  readonly jobId: string;
  readonly type: 'scheduleUpdateTwin';
  readonly updateTwin: {
    readonly tags?: Patch;
    readonly properties?: { readonly desired?: Patch };
    /** `*` (default) for unconditional writes; another value makes each write conditional on it. */
    readonly etag?: string;
  };
  /** A WHERE condition over device twins (docs/iot-hub.md "Queries"). */
  readonly queryCondition: string;
  /** ISO time; default now. */
  readonly startTime?: string;
  /** Default 3600 (Node SDK default). */
  readonly maxExecutionTimeInSeconds?: number;
}

export type JobState = 'queued' | 'scheduled' | 'running' | 'completed' | 'failed' | 'cancelled';

/** A job as `GET /jobs/v2/{jobId}` shows it. */
export interface JobStatus {
  readonly jobId: string;
  readonly type: 'scheduleUpdateTwin';
  readonly status: JobState;
  readonly queryCondition: string;
  readonly updateTwin: UpdateTwinJobRequest['updateTwin'];
  readonly createdTime: string;
  readonly startTime: string;
  readonly endTime?: string;
  readonly maxExecutionTimeInSeconds: number;
  readonly failureReason?: string;
  /** `deviceCount` is 0 until the device list is fixed. */
  readonly deviceJobStatistics: {
    readonly deviceCount: number;
    readonly failedCount: number;
    readonly succeededCount: number;
    readonly runningCount: number;
    readonly pendingCount: number;
  };
}

export interface JobRunnerOptions {
  /** Where the matching devices come from; jobs keep their tables in its file. */
  readonly readModel: ReadModel;
  /** The log the twin writes go to. */
  readonly log: Log;
  /** Physical clock (ms) of the writers' HLC and of job times. */
  readonly physicalNow: () => number;
  /** The writes' `actor` (default `twinlog-jobs`). */
  readonly actor?: string;
  /** Devices written at once (default 16). */
  readonly concurrency?: number;
  /** How long a conditional write waits for its decision, ms (default 10 000). */
  readonly decisionTimeoutMs?: number;
  /** How often `start()` looks for due jobs, ms (default 200). */
  readonly pollIntervalMs?: number;
  /**
   * Called after a device's write is acknowledged by the log and before its outcome is recorded:
   * the window in which a crash makes the resumed job write the same events again (crash tests).
   */
  readonly onWritten?: (progress: { readonly jobId: string; readonly deviceId: string }) => void | Promise<void>;
  /** Called after each device is recorded (tests, progress bars). */
  readonly onDevice?: (progress: {
    readonly jobId: string;
    readonly deviceId: string;
    readonly outcome: 'succeeded' | 'failed';
  }) => void | Promise<void>;
  /** Backoff of the background loop after a job could not progress (the log unavailable): 250 ms doubling to 30 s by default. */
  readonly restart?: BackoffOptions;
  /** The stage's name in `health()` (default `job-runner`). */
  readonly name?: string;
  /** Called once per state change of the background loop, not per retry. */
  readonly onStateChange?: (health: StageHealth, previous: StageState) => void;
  /**
   * How long a finished job (completed, failed or cancelled) is kept, with its per-device rows,
   * after it ended, ms (default 30 days, as IoT Hub keeps a job's history); older ones are deleted.
   */
  readonly retentionMs?: number;
}

export interface JobRunner {
  /**
   * Create a job (status `queued`, or `scheduled` with a future `startTime`). It runs when
   * {@link JobRunner.run} is called or, with {@link JobRunner.start}, in the background.
   * @throws {TwinlogError} `JOB_INVALID`, `JOB_ALREADY_EXISTS`, `QUERY_*` for the condition.
   */
  scheduleUpdateTwin(request: UpdateTwinJobRequest): JobStatus;
  /** Run (or resume) a job to its end now, whatever its start time. */
  run(jobId: string): Promise<JobStatus>;
  /** Request cancellation: the job stops before its next device. */
  cancel(jobId: string): JobStatus;
  /** @throws {TwinlogError} `JOB_NOT_FOUND` */
  get(jobId: string): JobStatus;
  /** Jobs, newest first (`GET /jobs/v2/query?jobType=&jobStatus=`). */
  list(filter?: { readonly type?: string; readonly status?: JobState }): JobStatus[];
  /** `devices.jobs` rows (docs/iot-hub.md "Escaped names and query examples") of every job (or one). */
  deviceJobs(jobId?: string): DeviceJobRow[];
  /** Run due jobs in the background, resuming those a crash left `running`. */
  start(): void;
  /** Stop the background loop and wait for the job in progress to pause. */
  stop(): Promise<void>;
  /**
   * The background loop: `consuming` while jobs progress (or none is due), `restarting` with the
   * reason while a job cannot (it is retried with backoff), `stopped` outside `start()`/`stop()`.
   */
  health(): StageHealth;
}

/** A `devices.jobs` row (docs/iot-hub.md "Escaped names and query examples"). */
export interface DeviceJobRow {
  readonly deviceId: string;
  readonly jobId: string;
  readonly jobType: 'scheduleUpdateTwin';
  readonly status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  readonly startTimeUtc: string;
  readonly endTimeUtc?: string;
  readonly createdDateTimeUtc: string;
  readonly lastUpdatedDateTimeUtc: string;
  readonly outcome?: { readonly error?: string };
}

interface JobRow {
  job_id: string;
  request: string;
  status: JobState;
  created: number;
  start_at: number;
  started: number | null;
  ended: number | null;
  matched: number | null;
  cancel_requested: number;
  failure: string | null;
}

const JOB_ID = /^[A-Za-z0-9-]{1,64}$/;
const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Create the job runner over a read model's file.
 *
 * @example
 * const jobs = createJobRunner({ readModel, log, physicalNow: Date.now })
 * jobs.scheduleUpdateTwin({ jobId: 'fw-2', type: 'scheduleUpdateTwin', queryCondition: "tags.site = 'b'",
 *   updateTwin: { properties: { desired: { fw: '2.0' } }, etag: '*' } })
 * const done = await jobs.run('fw-2')
 * done.deviceJobStatistics // { deviceCount: 40, succeededCount: 40, failedCount: 0, … }
 */
export function createJobRunner({
  readModel,
  log,
  physicalNow,
  actor = 'twinlog-jobs',
  concurrency = 16,
  decisionTimeoutMs = 10_000,
  pollIntervalMs = 200,
  onDevice,
  onWritten,
  restart = {},
  name = 'job-runner',
  onStateChange,
  retentionMs = 30 * 86_400_000,
}: JobRunnerOptions): JobRunner {
  const db = readModel.db;
  db.exec(`
    CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, request TEXT NOT NULL, status TEXT NOT NULL, created INTEGER NOT NULL,
      start_at INTEGER NOT NULL, started INTEGER, ended INTEGER, matched INTEGER, cancel_requested INTEGER NOT NULL DEFAULT 0, failure TEXT,
      freshness TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS job_devices (job_id TEXT NOT NULL, idx INTEGER NOT NULL, device_id TEXT NOT NULL, status TEXT NOT NULL,
      error TEXT, updated INTEGER NOT NULL, PRIMARY KEY (job_id, idx)) WITHOUT ROWID;
  `);
  const selectJob = db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE job_id = ?');
  const counts = db.prepare<[string], { status: string; n: number }>(
    'SELECT status, COUNT(*) AS n FROM job_devices WHERE job_id = ? GROUP BY status',
  );
  const setStatus = db.prepare<[JobState, number | null, string | null, string]>(
    'UPDATE jobs SET status = ?, ended = ?, failure = ? WHERE job_id = ?',
  );
  const markDevice = db.prepare<[string, string | null, number, string, number]>(
    'UPDATE job_devices SET status = ?, error = ?, updated = ? WHERE job_id = ? AND idx = ?',
  );
  // retention: finished jobs that ended before the cut-off go, their device rows first
  const expiredDevices = db.prepare<[number]>(
    "DELETE FROM job_devices WHERE job_id IN (SELECT job_id FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') AND ended < ?)",
  );
  const expiredJobs = db.prepare<[number]>(
    "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') AND ended < ?",
  );
  const expire = db.transaction((cutoff: number) => {
    expiredDevices.run(cutoff);
    expiredJobs.run(cutoff);
  });
  let lastExpiry = -Infinity;
  const pendingDevices = db.prepare<[string, number], { idx: number; device_id: string }>(
    "SELECT idx, device_id FROM job_devices WHERE job_id = ? AND status = 'pending' ORDER BY idx LIMIT ?",
  );

  const status = (row: JobRow): JobStatus => {
    const request = JSON.parse(row.request) as UpdateTwinJobRequest;
    const byStatus = new Map(counts.all(row.job_id).map((c) => [c.status, c.n]));
    const pending = byStatus.get('pending') ?? 0;
    const running = row.status === 'running' ? Math.min(pending, concurrency) : 0;
    return {
      jobId: row.job_id,
      type: 'scheduleUpdateTwin',
      status: row.status,
      queryCondition: request.queryCondition,
      updateTwin: request.updateTwin,
      createdTime: iso(row.created),
      startTime: iso(row.started ?? row.start_at),
      ...(row.ended === null ? {} : { endTime: iso(row.ended) }),
      maxExecutionTimeInSeconds: request.maxExecutionTimeInSeconds ?? 3600,
      ...(row.failure === null ? {} : { failureReason: row.failure }),
      deviceJobStatistics: {
        deviceCount: row.matched ?? 0,
        failedCount: byStatus.get('failed') ?? 0,
        succeededCount: byStatus.get('succeeded') ?? 0,
        runningCount: running,
        pendingCount: pending - running,
      },
    };
  };

  const getRow = (jobId: string): JobRow => {
    const row = typeof jobId === 'string' ? selectJob.get(jobId) : undefined;
    if (row === undefined) throw fleetError('JOB_NOT_FOUND', `no job ${String(jobId)}`, { details: { jobId } });
    return row;
  };

  const patchOf = (request: UpdateTwinJobRequest): TwinPatch => {
    const { tags, properties } = request.updateTwin;
    return {
      ...(tags === undefined ? {} : { tags }),
      ...(properties?.desired === undefined ? {} : { desired: properties.desired }),
    };
  };

  const validate = (request: UpdateTwinJobRequest): Query => {
    const invalid = (message: string): never => {
      throw fleetError('JOB_INVALID', message, { details: { jobId: request?.jobId } });
    };
    if (!isPlainObject(request)) invalid('a job request must be an object');
    if (typeof request.jobId !== 'string' || !JOB_ID.test(request.jobId))
      invalid('jobId must be 1 to 64 ASCII letters, digits or -');
    if (request.type !== 'scheduleUpdateTwin')
      invalid(`job type ${String(request.type)} is not supported (scheduleUpdateTwin only)`);
    if (typeof request.queryCondition !== 'string') invalid('queryCondition must be a string');
    if (!isPlainObject(request.updateTwin)) invalid('updateTwin must be an object');
    const { properties, etag } = request.updateTwin;
    if (etag !== undefined && typeof etag !== 'string') invalid('updateTwin.etag must be a string');
    if (
      properties !== undefined &&
      (!isPlainObject(properties) || Object.keys(properties).some((k) => k !== 'desired'))
    ) {
      invalid('updateTwin.properties may hold desired only');
    }
    const patch = patchOf(request);
    if (patch.tags === undefined && patch.desired === undefined) invalid('updateTwin needs tags or properties.desired');
    for (const [section, p] of [
      ['tags', patch.tags],
      ['desired', patch.desired],
    ] as const) {
      if (p === undefined) continue;
      const r = validatePatch(section, p);
      if (!r.ok) throw r.error;
    }
    if (
      request.maxExecutionTimeInSeconds !== undefined &&
      !(Number.isSafeInteger(request.maxExecutionTimeInSeconds) && request.maxExecutionTimeInSeconds > 0)
    ) {
      invalid('maxExecutionTimeInSeconds must be a positive whole number');
    }
    if (request.startTime !== undefined && Number.isNaN(Date.parse(request.startTime)))
      invalid('startTime must be an ISO date-time');
    return parseQuery(`SELECT deviceId FROM devices WHERE ${request.queryCondition}`);
  };

  const scheduleUpdateTwin = (request: UpdateTwinJobRequest): JobStatus => {
    validate(request);
    const now = physicalNow();
    const startAt = request.startTime === undefined ? now : Date.parse(request.startTime);
    const state: JobState = startAt > now ? 'scheduled' : 'queued';
    const inserted = db
      .prepare(
        'INSERT INTO jobs (job_id, request, status, created, start_at, freshness) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING',
      )
      .run(request.jobId, JSON.stringify(request), state, now, startAt, readModel.freshness());
    if (inserted.changes === 0)
      throw fleetError('JOB_ALREADY_EXISTS', `job ${request.jobId} exists`, { details: { jobId: request.jobId } });
    return status(getRow(request.jobId));
  };

  const running = new Map<string, Promise<JobStatus>>();

  const execute = async (jobId: string): Promise<JobStatus> => {
    let row = getRow(jobId);
    if (row.status === 'completed' || row.status === 'failed' || row.status === 'cancelled') return status(row);
    const request = JSON.parse(row.request) as UpdateTwinJobRequest;
    if (row.status !== 'running') {
      db.prepare("UPDATE jobs SET status = 'running', started = ? WHERE job_id = ?").run(physicalNow(), jobId);
      row = getRow(jobId);
    }
    const finish = (state: JobState, failure: string | null = null): JobStatus => {
      setStatus.run(state, physicalNow(), failure, jobId);
      return status(getRow(jobId));
    };
    if (row.matched === null) {
      // the device list: what the read model showed when the job was created, at least
      let deviceIds: string[];
      try {
        const freshness = (
          db.prepare('SELECT freshness FROM jobs WHERE job_id = ?').get(jobId) as { freshness: string }
        ).freshness;
        const { rows } = await readModel.queryAll(validate(request), { after: freshness });
        deviceIds = rows.map((r) => r['deviceId'] as string);
      } catch (e) {
        return finish('failed', `the query condition could not run: ${(e as Error).message}`);
      }
      db.transaction(() => {
        const insert = db.prepare(
          "INSERT INTO job_devices (job_id, idx, device_id, status, updated) VALUES (?, ?, ?, 'pending', ?)",
        );
        const now = physicalNow();
        deviceIds.forEach((id, idx) => insert.run(jobId, idx, id, now));
        db.prepare('UPDATE jobs SET matched = ? WHERE job_id = ?').run(deviceIds.length, jobId);
      })();
      row = getRow(jobId);
    }
    const patch = patchOf(request);
    const k = (patch.tags === undefined ? 0 : 1) + (patch.desired === undefined ? 0 : 1);
    const etag = request.updateTwin.etag;
    const conditional = etag !== undefined && etag !== '*' && etag !== '"*"';
    const deadline = (row.started ?? physicalNow()) + (request.maxExecutionTimeInSeconds ?? 3600) * 1000;

    const writeOne = async (
      idx: number,
      deviceId: string,
    ): Promise<{ outcome: 'succeeded' | 'failed'; error: string | null }> => {
      const client = createTwinClient({
        log,
        physicalNow,
        actor,
        writerId: `job-${jobId}`,
        firstSeq: idx * k,
        decisionTimeoutMs,
        pollIntervalMs: 10,
      });
      try {
        if (!conditional) {
          await client.patchTwin(deviceId, patch);
          return { outcome: 'succeeded', error: null };
        }
        const d = await client.patchTwin(deviceId, patch, { ifMatch: etag });
        return d.accepted ? { outcome: 'succeeded', error: null } : { outcome: 'failed', error: d.code };
      } catch (e) {
        if (isTwinlogError(e) && e.code !== 'DECISION_TIMEOUT') return { outcome: 'failed', error: e.code };
        throw e; // the log is unavailable (or no decision came): the device stays pending, the job pauses
      } finally {
        await client.close();
      }
    };

    for (;;) {
      if (stopping) return status(getRow(jobId));
      const current = getRow(jobId);
      if (current.cancel_requested === 1) return finish('cancelled');
      if (physicalNow() > deadline)
        return finish(
          'failed',
          `the job ran past maxExecutionTimeInSeconds (${request.maxExecutionTimeInSeconds ?? 3600})`,
        );
      const chunk = pendingDevices.all(jobId, concurrency);
      if (chunk.length === 0) return finish('completed');
      const results = await Promise.all(
        chunk.map(async (d) => {
          const r = await writeOne(d.idx, d.device_id);
          await onWritten?.({ jobId, deviceId: d.device_id });
          return { ...d, ...r };
        }),
      );
      const now = physicalNow();
      db.transaction(() => {
        for (const r of results) markDevice.run(r.outcome, r.error, now, jobId, r.idx);
      })();
      for (const r of results) await onDevice?.({ jobId, deviceId: r.device_id, outcome: r.outcome });
      // a log whose appends complete without I/O (the embedded one) would otherwise run the whole
      // job in one turn of the event loop, starving what shares the process (serve's gateways)
      await new Promise<void>((r) => setImmediate(r));
    }
  };

  const run = (jobId: string): Promise<JobStatus> => {
    let p = running.get(jobId);
    if (p === undefined) {
      p = execute(jobId).finally(() => running.delete(jobId));
      running.set(jobId, p);
    }
    return p;
  };

  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let loop: Promise<void> = Promise.resolve();
  let health: StageHealth = {
    stage: name,
    state: 'stopped',
    reason: undefined,
    since: physicalNow(),
    partitions: [],
    restarts: 0,
  };
  let failures = 0;
  const setState = (state: StageState, reason: string | undefined, retryInMs?: number): void => {
    const previous = health.state;
    const restarts = health.restarts + (state === 'restarting' && previous !== 'restarting' ? 1 : 0);
    if (previous === state) {
      health = { ...health, reason, ...(retryInMs === undefined ? {} : { retryInMs }) };
      return;
    }
    health = {
      stage: name,
      state,
      reason,
      since: physicalNow(),
      partitions: [],
      restarts,
      ...(retryInMs === undefined ? {} : { retryInMs }),
    };
    try {
      onStateChange?.(health, previous);
    } catch {
      // a listener's failure is its own
    }
  };

  const deviceJobs = (jobId?: string): DeviceJobRow[] => {
    const rows = (
      jobId === undefined
        ? db
            .prepare(
              'SELECT d.*, j.status AS job_status, j.created, j.started, j.start_at, j.ended FROM job_devices d JOIN jobs j USING (job_id) ORDER BY d.job_id, d.idx',
            )
            .all()
        : db
            .prepare(
              'SELECT d.*, j.status AS job_status, j.created, j.started, j.start_at, j.ended FROM job_devices d JOIN jobs j USING (job_id) WHERE d.job_id = ? ORDER BY d.idx',
            )
            .all(jobId)
    ) as (Omit<JobRow, 'status'> & {
      idx: number;
      device_id: string;
      status: string;
      error: string | null;
      updated: number;
      job_status: JobState;
    })[];
    return rows.map((r) => ({
      deviceId: r.device_id,
      jobId: r.job_id,
      jobType: 'scheduleUpdateTwin',
      status:
        r.status === 'succeeded'
          ? 'completed'
          : r.status === 'failed'
            ? 'failed'
            : r.job_status === 'cancelled'
              ? 'cancelled'
              : r.job_status === 'running'
                ? 'running'
                : 'pending',
      startTimeUtc: iso(r.started ?? r.start_at),
      ...(r.status === 'pending' ? {} : { endTimeUtc: iso(r.updated) }),
      createdDateTimeUtc: iso(r.created),
      lastUpdatedDateTimeUtc: iso(r.updated),
      ...(r.error === null ? {} : { outcome: { error: r.error } }),
    }));
  };
  readModel.store.jobRows = () => deviceJobs();

  return {
    scheduleUpdateTwin,
    run,
    cancel(jobId) {
      const row = getRow(jobId);
      if (row.status === 'queued' || row.status === 'scheduled') {
        db.prepare("UPDATE jobs SET status = 'cancelled', cancel_requested = 1, ended = ? WHERE job_id = ?").run(
          physicalNow(),
          jobId,
        );
      } else if (row.status === 'running') {
        db.prepare('UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?').run(jobId);
      }
      return status(getRow(jobId));
    },
    get: (jobId) => status(getRow(jobId)),
    list({ type, status: state } = {}) {
      if (type !== undefined && type !== 'scheduleUpdateTwin') return [];
      const rows = db.prepare('SELECT * FROM jobs ORDER BY created DESC, job_id').all() as JobRow[];
      return rows.filter((r) => state === undefined || r.status === state).map(status);
    },
    deviceJobs,
    health: () => health,
    start() {
      stopping = false;
      setState('consuming', undefined);
      const tick = (): void => {
        let failure: unknown;
        loop = (async () => {
          if (physicalNow() - lastExpiry >= EXPIRY_INTERVAL_MS) {
            lastExpiry = physicalNow();
            expire(lastExpiry - retentionMs);
          }
          const due = db
            .prepare(
              "SELECT job_id FROM jobs WHERE status IN ('running', 'queued', 'scheduled') AND start_at <= ? ORDER BY created, job_id",
            )
            .pluck()
            .all(physicalNow()) as string[];
          for (const id of due) {
            if (stopping) return;
            try {
              await run(id);
            } catch (e) {
              // the log was unavailable: the job stays running and is resumed after a backoff
              failure = e;
              break;
            }
          }
        })().finally(() => {
          if (stopping) return;
          if (failure === undefined) {
            failures = 0;
            setState('consuming', undefined);
            timer = setTimeout(tick, pollIntervalMs);
          } else {
            const delay = backoffDelay(failures++, restart, Math.random);
            setState('restarting', describeError(failure), delay);
            timer = setTimeout(tick, Math.max(pollIntervalMs, delay));
          }
        });
      };
      tick();
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      await loop;
      await Promise.allSettled([...running.values()]);
      setState('stopped', undefined);
    },
  };
}
