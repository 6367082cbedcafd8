/**
 * The REST routes of IoT Hub's jobs (docs/iot-hub.md, "Jobs"), as the `JobClient` of `azure-iothub`
 * calls them, over a {@link JobService} the gateway is given (in `twinlog serve`, the job runner of
 * `@twinlog/fleet`, durable in the read model's file):
 *
 * - `PUT /jobs/v2/{id}`: a `scheduleUpdateTwin` job (query condition, twin patch with `etag`, start
 *   time, max execution time) → 200 and the job. `scheduleDeviceMethod` (and any other type) is
 *   400 `ArgumentInvalid` naming the type: twinlog does not deliver direct methods.
 * - `GET /jobs/v2/{id}` → 200 and the job; unknown id: 404 `JobNotFound`.
 * - `POST /jobs/v2/{id}/cancel` → 200 and the job (a running job stops before its next devices).
 * - `GET /jobs/v2/query?jobType=&jobStatus=` (also `POST`): the jobs, newest first, paged by
 *   `x-ms-max-item-count` (at most 100, default 100) and `x-ms-continuation` (present only while
 *   another page exists; the SDK loops forever on an empty one).
 *
 * The job JSON is IoT Hub's: `jobId`, `type`, `status`, `queryCondition`, `updateTwin`,
 * `createdTime`, `startTime`/`endTime` (and the same values as `startTimeUtc`/`endTimeUtc`, the
 * names the C# SDK reads), `maxExecutionTimeInSeconds`, `failureReason` when failed, and
 * `deviceJobStatistics` (`deviceCount` is 0 until the job starts and fixes its device list).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPlainObject, TwinlogError, type JsonObject, type Patch } from '@twinlog/core';
import { GatewayError, sendJson } from './iotHubError.ts';
import { readJsonBody } from './readJsonBody.ts';
import { header } from './requestHeaders.ts';

/** IoT Hub's job statuses that twinlog's jobs go through. */
export type JobServiceState = 'queued' | 'scheduled' | 'running' | 'completed' | 'failed' | 'cancelled';

/** A twin-update job as the gateway hands it to the {@link JobService} (the body of `PUT /jobs/v2/{id}`, checked). */
export interface JobServiceRequest {
  readonly jobId: string;
  readonly type: 'scheduleUpdateTwin';
  readonly updateTwin: {
    readonly tags?: Patch;
    readonly properties?: { readonly desired?: Patch };
    readonly etag?: string;
  };
  readonly queryCondition: string;
  readonly startTime?: string;
  readonly maxExecutionTimeInSeconds?: number;
}

/** A job as the {@link JobService} describes it (the shape of `@twinlog/fleet`'s `JobStatus`). */
export interface JobServiceStatus {
  readonly jobId: string;
  readonly type: 'scheduleUpdateTwin';
  readonly status: JobServiceState;
  readonly queryCondition: string;
  readonly updateTwin: JobServiceRequest['updateTwin'];
  readonly createdTime: string;
  readonly startTime: string;
  readonly endTime?: string;
  readonly maxExecutionTimeInSeconds: number;
  readonly failureReason?: string;
  readonly deviceJobStatistics: {
    readonly deviceCount: number;
    readonly failedCount: number;
    readonly succeededCount: number;
    readonly runningCount: number;
    readonly pendingCount: number;
  };
}

/**
 * What the gateway's job routes need (`RestGatewayOptions.jobs`). `@twinlog/fleet`'s job runner
 * (`createJobRunner`) has this shape and is what `twinlog serve` passes; errors are twinlog codes
 * (`JOB_NOT_FOUND` 404, `JOB_INVALID` and `QUERY_*` 400, `JOB_ALREADY_EXISTS` 409).
 *
 * @example
 * const gateway = createRestGateway({ log, hubName, policies, physicalNow: Date.now, jobs: createJobRunner({ readModel, log, physicalNow: Date.now }) })
 */
export interface JobService {
  scheduleUpdateTwin(request: JobServiceRequest): JobServiceStatus | Promise<JobServiceStatus>;
  get(jobId: string): JobServiceStatus | Promise<JobServiceStatus>;
  cancel(jobId: string): JobServiceStatus | Promise<JobServiceStatus>;
  /** Every job of the type and status, newest first. */
  list(filter?: {
    readonly type?: string;
    readonly status?: JobServiceState;
  }): readonly JobServiceStatus[] | Promise<readonly JobServiceStatus[]>;
}

/** What a job route handler gets from the gateway (a subset of its request context). */
export interface JobRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The decoded job id (`''` for the query). */
  readonly id: string;
}

export interface JobRoutes {
  putJob(ctx: JobRequest): Promise<void>;
  getJob(ctx: JobRequest): Promise<void>;
  cancelJob(ctx: JobRequest): Promise<void>;
  queryJobs(ctx: JobRequest): Promise<void>;
}

const STATES: readonly string[] = ['queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled'];
const MAX_PAGE = 100;

/** The job as IoT Hub answers it (docs/iot-hub.md, "Jobs"). */
export function jobJson(job: JobServiceStatus): Record<string, unknown> {
  return {
    jobId: job.jobId,
    type: job.type,
    status: job.status,
    queryCondition: job.queryCondition,
    updateTwin: job.updateTwin,
    createdTime: job.createdTime,
    startTime: job.startTime,
    startTimeUtc: job.startTime,
    ...(job.endTime === undefined ? {} : { endTime: job.endTime, endTimeUtc: job.endTime }),
    maxExecutionTimeInSeconds: job.maxExecutionTimeInSeconds,
    ...(job.failureReason === undefined ? {} : { failureReason: job.failureReason }),
    deviceJobStatistics: job.deviceJobStatistics,
  };
}

const invalid = (message: string): never => {
  throw new GatewayError('ARGUMENT_INVALID', message);
};

/**
 * The body of `PUT /jobs/v2/{id}` as a {@link JobServiceRequest}: `null` start time and max
 * execution time (the SDK sends `startTime: null` when none is given) mean the defaults (now, 3600 s).
 */
export function jobRequestOf(id: string, body: JsonObject): JobServiceRequest {
  const type = body['type'];
  if (type !== 'scheduleUpdateTwin') {
    if (type === 'scheduleDeviceMethod') {
      invalid(
        'Job type scheduleDeviceMethod is not supported: twinlog does not deliver direct methods (docs/iot-hub.md), only scheduleUpdateTwin jobs run',
      );
    }
    invalid(
      `Job type ${typeof type === 'string' ? type : JSON.stringify(type ?? null)} is not supported, only scheduleUpdateTwin`,
    );
  }
  const bodyId = body['jobId'];
  if (bodyId !== undefined && bodyId !== null && bodyId !== id) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the value as sent, whatever it is
    const got = String(bodyId);
    invalid(`The jobId in the body (${got}) differs from the one in the path (${id})`);
  }
  const queryCondition = body['queryCondition'];
  if (typeof queryCondition !== 'string' || queryCondition.trim() === '')
    invalid('queryCondition must be a WHERE condition over device twins');
  const updateTwin = body['updateTwin'];
  if (!isPlainObject(updateTwin))
    invalid('updateTwin must be an object (tags and/or properties.desired, and an optional etag)');
  const twin = updateTwin as JsonObject;
  const { tags, properties, etag } = twin;
  const startTime = body['startTime'];
  if (
    startTime !== undefined &&
    startTime !== null &&
    (typeof startTime !== 'string' || Number.isNaN(Date.parse(startTime)))
  ) {
    invalid('startTime must be an ISO-8601 date-time');
  }
  const max = body['maxExecutionTimeInSeconds'];
  if (max !== undefined && max !== null && typeof max !== 'number')
    invalid('maxExecutionTimeInSeconds must be a number');
  return {
    jobId: id,
    type: 'scheduleUpdateTwin',
    queryCondition: queryCondition as string,
    updateTwin: {
      ...(tags === undefined || tags === null ? {} : { tags: tags as Patch }),
      ...(properties === undefined || properties === null ? {} : { properties: properties as { desired?: Patch } }),
      ...(etag === undefined || etag === null ? {} : { etag: etag as string }),
    },
    ...(typeof startTime === 'string' ? { startTime } : {}),
    ...(typeof max === 'number' ? { maxExecutionTimeInSeconds: max } : {}),
  };
}

/**
 * The job route handlers over a {@link JobService}; without one every job route answers 404
 * `NotFound` saying that jobs need `twinlog serve` (or a gateway given `jobs`).
 *
 * @example
 * const routes = createJobRoutes({ jobs: jobRunner, maxBodyBytes: 256 * 1024 })
 * await routes.getJob({ req, res, id: 'fw-2' })
 */
export function createJobRoutes({
  jobs,
  maxBodyBytes,
}: {
  readonly jobs: JobService | undefined;
  readonly maxBodyBytes: number;
}): JobRoutes {
  const service = (): JobService => {
    if (jobs === undefined)
      throw new GatewayError('NOT_FOUND', 'Jobs are not served by this gateway (twinlog serve runs them)');
    return jobs;
  };
  return {
    async putJob({ req, res, id }) {
      const s = service();
      const body = await readJsonBody(req, { maxBytes: maxBodyBytes });
      sendJson(res, 200, jobJson(await s.scheduleUpdateTwin(jobRequestOf(id, body))));
    },
    async getJob({ res, id }) {
      sendJson(res, 200, jobJson(await service().get(id)));
    },
    async cancelJob({ res, id }) {
      sendJson(res, 200, jobJson(await service().cancel(id)));
    },
    async queryJobs({ req, res }) {
      const s = service();
      const url = new URL(req.url ?? '/', 'http://gateway');
      const type = url.searchParams.get('jobType') ?? undefined;
      const status = url.searchParams.get('jobStatus') ?? undefined;
      if (status !== undefined && status !== '' && !STATES.includes(status))
        invalid(`jobStatus must be one of ${STATES.join(', ')}`);
      const sizeHeader = header(req, 'x-ms-max-item-count') ?? url.searchParams.get('pageSize') ?? undefined;
      const pageSize = sizeHeader === undefined ? MAX_PAGE : Number(sizeHeader);
      if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE) {
        throw new TwinlogError(
          'QUERY_PAGE_SIZE_INVALID',
          `x-ms-max-item-count must be a whole number from 1 to ${MAX_PAGE}`,
        );
      }
      const all = await s.list({
        ...(type === undefined || type === '' ? {} : { type }),
        ...(status === undefined || status === '' ? {} : { status: status as JobServiceState }),
      });
      // keyset paging: the token is the last job id returned (jobs are never deleted, new ones come first)
      const continuation = header(req, 'x-ms-continuation') ?? url.searchParams.get('continuationToken') ?? undefined;
      let from = 0;
      if (continuation !== undefined && continuation !== '') {
        const after = all.findIndex((j) => j.jobId === continuation);
        if (after < 0)
          throw new TwinlogError('QUERY_CONTINUATION_INVALID', 'The continuation token names no job of this query');
        from = after + 1;
      }
      const page = all.slice(from, from + pageSize);
      const headers: Record<string, string> = { 'x-ms-item-type': 'JobResponse' };
      if (from + pageSize < all.length) headers['x-ms-continuation'] = page[page.length - 1]!.jobId;
      sendJson(res, 200, page.map(jobJson), headers);
    },
  };
}
