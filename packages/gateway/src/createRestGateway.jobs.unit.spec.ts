/**
 * The job routes of the REST gateway (docs/iot-hub.md, "Jobs") over a fake `JobService`: the
 * request the service gets from the `JobClient`'s body, IoT Hub's rights (`registryReadWrite` to
 * create and cancel, `registryRead` to read), the refused job types, paging of the job query, and
 * 404 without a service.
 */
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { TwinlogError } from '@twinlog/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRestGateway,
  type JobService,
  type JobServiceRequest,
  type JobServiceStatus,
  type ListeningGateway,
  type RestGateway,
} from './createRestGateway.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');
const READER_KEY = Buffer.alloc(32, 9).toString('base64');
const API = 'api-version=2021-04-12';
const NOW = 1_750_000_000_000;

/** An in-memory JobService: jobs kept in creation order, listed newest first. */
function fakeJobs(): JobService & { requests: JobServiceRequest[] } {
  const jobs = new Map<string, JobServiceStatus>();
  const requests: JobServiceRequest[] = [];
  const statusOf = (r: JobServiceRequest): JobServiceStatus => ({
    jobId: r.jobId,
    type: 'scheduleUpdateTwin',
    status: r.startTime === undefined ? 'queued' : 'scheduled',
    queryCondition: r.queryCondition,
    updateTwin: r.updateTwin,
    createdTime: new Date(NOW).toISOString(),
    startTime: r.startTime ?? new Date(NOW).toISOString(),
    maxExecutionTimeInSeconds: r.maxExecutionTimeInSeconds ?? 3600,
    deviceJobStatistics: { deviceCount: 0, failedCount: 0, succeededCount: 0, runningCount: 0, pendingCount: 0 },
  });
  const get = (id: string): JobServiceStatus => {
    const j = jobs.get(id);
    if (j === undefined) throw new TwinlogError('JOB_NOT_FOUND', `no job ${id}`);
    return j;
  };
  return {
    requests,
    scheduleUpdateTwin(r) {
      if (jobs.has(r.jobId)) throw new TwinlogError('JOB_ALREADY_EXISTS', `job ${r.jobId} exists`);
      requests.push(r);
      jobs.set(r.jobId, statusOf(r));
      return get(r.jobId);
    },
    get,
    cancel(id) {
      const j = get(id);
      jobs.set(id, { ...j, status: 'cancelled', endTime: new Date(NOW).toISOString() });
      return get(id);
    },
    list({ type, status } = {}) {
      return [...jobs.values()]
        .reverse()
        .filter((j) => (type === undefined || j.type === type) && (status === undefined || j.status === status));
    },
  };
}

let log: InMemoryLog;
let jobs: ReturnType<typeof fakeJobs>;
let gateway: RestGateway;
let server: ListeningGateway;
let bare: RestGateway;
let bareServer: ListeningGateway;

beforeEach(async () => {
  log = createInMemoryLog({ now: () => NOW });
  jobs = fakeJobs();
  const policies = [
    { name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] as const },
    { name: 'registryRead', key: READER_KEY, rights: ['registryRead'] as const },
  ];
  gateway = createRestGateway({ log, hubName: HUB, physicalNow: () => NOW, policies, jobs });
  server = await gateway.listen({ port: 0, host: '127.0.0.1' });
  bare = createRestGateway({ log, hubName: HUB, physicalNow: () => NOW, policies });
  bareServer = await bare.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  await server.close();
  await gateway.close();
  await bareServer.close();
  await bare.close();
  await log.close();
});

const token = (policy: 'iothubowner' | 'registryRead'): string =>
  signServiceSas(HUB, policy, policy === 'iothubowner' ? OWNER_KEY : READER_KEY, Math.floor(NOW / 1000) + 3600);

async function call(
  path: string,
  {
    method = 'GET',
    body,
    policy = 'iothubowner',
    headers = {},
    port = server.port,
  }: {
    method?: string;
    body?: unknown;
    policy?: 'iothubowner' | 'registryRead';
    headers?: Record<string, string>;
    port?: number;
  } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}${path.includes('?') ? '&' : '?'}${API}`, {
    method,
    headers: {
      authorization: token(policy),
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown), headers: res.headers };
}

/** What `JobClient.scheduleTwinUpdate(id, condition, patch)` sends without a start time. */
const sdkBody = (jobId: string, extra: object = {}): object => ({
  jobId,
  type: 'scheduleUpdateTwin',
  updateTwin: { etag: '*', properties: { desired: { fw: '2.0' } } },
  startTime: null,
  queryCondition: "tags.site = 'b'",
  ...extra,
});

const message = (body: unknown): string => (body as { Message: string }).Message;

describe('REST gateway job routes', () => {
  it('PUT /jobs/v2/{id} hands the service the request (startTime null = now) and answers IoT Hub’s job JSON', async () => {
    const put = await call('/jobs/v2/fw-2', {
      method: 'PUT',
      body: sdkBody('fw-2', { maxExecutionTimeInSeconds: 120 }),
    });
    expect(put.status).toBe(200);
    expect(jobs.requests).toEqual([
      {
        jobId: 'fw-2',
        type: 'scheduleUpdateTwin',
        queryCondition: "tags.site = 'b'",
        updateTwin: { etag: '*', properties: { desired: { fw: '2.0' } } },
        maxExecutionTimeInSeconds: 120,
      },
    ]);
    expect(put.body).toEqual({
      jobId: 'fw-2',
      type: 'scheduleUpdateTwin',
      status: 'queued',
      queryCondition: "tags.site = 'b'",
      updateTwin: { etag: '*', properties: { desired: { fw: '2.0' } } },
      createdTime: '2025-06-15T15:06:40.000Z',
      startTime: '2025-06-15T15:06:40.000Z',
      startTimeUtc: '2025-06-15T15:06:40.000Z',
      maxExecutionTimeInSeconds: 120,
      deviceJobStatistics: { deviceCount: 0, failedCount: 0, succeededCount: 0, runningCount: 0, pendingCount: 0 },
    });
    const again = await call('/jobs/v2/fw-2', { method: 'PUT', body: sdkBody('fw-2') });
    expect(again.status).toBe(409);
    expect(message(again.body)).toMatch(/^ErrorCode:JobAlreadyExists;/);

    const cancelled = await call('/jobs/v2/fw-2/cancel', { method: 'POST' });
    expect(cancelled.body).toMatchObject({
      jobId: 'fw-2',
      status: 'cancelled',
      endTime: '2025-06-15T15:06:40.000Z',
      endTimeUtc: '2025-06-15T15:06:40.000Z',
    });
    expect((await call('/jobs/v2/fw-2')).body).toMatchObject({ status: 'cancelled' });
    const missing = await call('/jobs/v2/nope');
    expect(missing.status).toBe(404);
    expect(message(missing.body)).toMatch(/^ErrorCode:JobNotFound;/);
  });

  it('refuses device-method jobs and other types as unsupported (400 ArgumentInvalid), and bodies that do not match the path', async () => {
    const method = await call('/jobs/v2/reboot', {
      method: 'PUT',
      body: {
        jobId: 'reboot',
        type: 'scheduleDeviceMethod',
        cloudToDeviceMethod: { methodName: 'reboot', payload: null, responseTimeoutInSeconds: 30 },
        startTime: null,
        queryCondition: '*',
      },
    });
    expect(method.status).toBe(400);
    expect(message(method.body)).toMatch(/^ErrorCode:ArgumentInvalid;Job type scheduleDeviceMethod is not supported/);
    expect(message((await call('/jobs/v2/x', { method: 'PUT', body: sdkBody('x', { type: 'export' }) })).body)).toMatch(
      /Job type export is not supported/,
    );
    expect((await call('/jobs/v2/x', { method: 'PUT', body: sdkBody('y') })).status).toBe(400);
    expect((await call('/jobs/v2/x', { method: 'PUT', body: sdkBody('x', { updateTwin: 'nope' }) })).status).toBe(400);
    expect((await call('/jobs/v2/x', { method: 'PUT', body: sdkBody('x', { startTime: 'yesterday' }) })).status).toBe(
      400,
    );
    expect(jobs.requests).toEqual([]);
  });

  it('needs registryReadWrite to create and cancel, registryRead to read and query', async () => {
    await call('/jobs/v2/j1', { method: 'PUT', body: sdkBody('j1') });
    expect((await call('/jobs/v2/j2', { method: 'PUT', body: sdkBody('j2'), policy: 'registryRead' })).status).toBe(
      403,
    );
    expect((await call('/jobs/v2/j1/cancel', { method: 'POST', policy: 'registryRead' })).status).toBe(403);
    expect((await call('/jobs/v2/j1', { policy: 'registryRead' })).status).toBe(200);
    expect((await call('/jobs/v2/query', { policy: 'registryRead' })).status).toBe(200);
    expect((await call('/jobs/v2/j1', { method: 'DELETE' })).status).toBe(405);
  });

  it('GET /jobs/v2/query filters by type and status, newest first, paged with x-ms-continuation only while more remain', async () => {
    for (const id of ['a', 'b', 'c']) await call(`/jobs/v2/${id}`, { method: 'PUT', body: sdkBody(id) });
    await call('/jobs/v2/b/cancel', { method: 'POST' });
    const first = await call('/jobs/v2/query?jobType=scheduleUpdateTwin', { headers: { 'x-ms-max-item-count': '2' } });
    expect((first.body as { jobId: string }[]).map((j) => j.jobId)).toEqual(['c', 'b']);
    const token1 = first.headers.get('x-ms-continuation');
    expect(token1).toBe('b');
    const second = await call('/jobs/v2/query?jobType=scheduleUpdateTwin', {
      headers: { 'x-ms-max-item-count': '2', 'x-ms-continuation': token1! },
    });
    expect((second.body as { jobId: string }[]).map((j) => j.jobId)).toEqual(['a']);
    expect(second.headers.get('x-ms-continuation')).toBeNull();
    expect(
      ((await call('/jobs/v2/query?jobStatus=cancelled', { method: 'POST' })).body as { jobId: string }[]).map(
        (j) => j.jobId,
      ),
    ).toEqual(['b']);
    expect((await call('/jobs/v2/query?jobType=scheduleDeviceMethod')).body).toEqual([]);
    expect((await call('/jobs/v2/query?jobStatus=sleeping')).status).toBe(400);
    expect((await call('/jobs/v2/query', { headers: { 'x-ms-max-item-count': '101' } })).status).toBe(400);
    expect((await call('/jobs/v2/query', { headers: { 'x-ms-continuation': 'zzz' } })).status).toBe(400);
  });

  it('answers 404 NotFound on every job route of a gateway without a job service', async () => {
    for (const [path, method] of [
      ['/jobs/v2/j1', 'GET'],
      ['/jobs/v2/j1', 'PUT'],
      ['/jobs/v2/j1/cancel', 'POST'],
      ['/jobs/v2/query', 'GET'],
    ] as const) {
      const r = await call(path, {
        method,
        port: bareServer.port,
        ...(method === 'PUT' ? { body: sdkBody('j1') } : {}),
      });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(message(r.body)).toMatch(/^ErrorCode:NotFound;Jobs are not served/);
    }
  });
});
