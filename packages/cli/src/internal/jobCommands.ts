/**
 * `twinlog job create|get|list|cancel`: IoT Hub's twin-update jobs (docs/iot-hub.md, "Jobs"), sent
 * to a running `twinlog serve` over its REST gateway, the same `/jobs/v2` routes the `JobClient` of
 * `azure-iothub` calls; `serve` runs the jobs (durable across its restarts). The gateway and the
 * signing policy are found as for `twinlog config` (`--gateway`, `TWINLOG_POLICY_KEY` or
 * `<data>/service-policy.json`).
 */
import { isPlainObject } from '@twinlog/core';
import { CliError } from './CliError.ts';
import type { CliIo } from './commands.ts';
import { call, type GatewayOptions } from './gatewayCall.ts';
import type { CliConfig } from './resolveConfig.ts';

export interface JobCreateOptions extends GatewayOptions {
  /** The WHERE condition over device twins. */
  readonly query?: string;
  /** Only with this etag (`*`, the default, for any). */
  readonly etag?: string;
  readonly start?: string;
  readonly maxSeconds?: string;
  readonly wait?: boolean;
  readonly timeout?: string;
  readonly json?: boolean;
}

const STATUSES = ['queued', 'scheduled', 'running', 'completed', 'failed', 'cancelled'] as const;
const TERMINAL: readonly string[] = ['completed', 'failed', 'cancelled'];

type Job = Record<string, unknown> & {
  jobId: string;
  status: string;
  deviceJobStatistics?: {
    deviceCount: number;
    failedCount: number;
    succeededCount: number;
    runningCount: number;
    pendingCount: number;
  };
};

const path = (id: string): string => `/jobs/v2/${encodeURIComponent(id)}`;

/**
 * The body of `PUT /jobs/v2/{id}` for `twinlog job create`: the patch is IoT Hub's twin patch
 * (`{"tags":…, "properties":{"desired":…}}`).
 *
 * @example
 * jobBodyOf('fw-2', '{"properties":{"desired":{"fw":"2.0"}}}', { query: "tags.site = 'b'" })
 * // { jobId: 'fw-2', type: 'scheduleUpdateTwin', queryCondition: "tags.site = 'b'", updateTwin: { properties: …, etag: '*' } }
 */
export function jobBodyOf(id: string, patchJson: string, opts: JobCreateOptions): Record<string, unknown> {
  if (opts.query === undefined || opts.query.trim() === '')
    throw new CliError('--query <condition> is required, e.g. --query "tags.site = \'b\'"');
  let patch: unknown;
  try {
    patch = JSON.parse(patchJson);
  } catch (e) {
    throw new CliError(`the patch is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(patch))
    throw new CliError('the patch must be a JSON object: {"tags":…, "properties":{"desired":…}}');
  const p = patch;
  if (p['tags'] === undefined && (p['properties'] as Record<string, unknown> | undefined)?.['desired'] === undefined) {
    throw new CliError('the patch needs tags or properties.desired: {"tags":…, "properties":{"desired":…}}');
  }
  if (opts.start !== undefined && !(/^[0-9]{4}-/.test(opts.start) && Number.isFinite(Date.parse(opts.start)))) {
    throw new CliError(`--start must be an ISO-8601 time such as 2026-11-28T12:00:00Z, got '${opts.start}'`);
  }
  if (opts.maxSeconds !== undefined && !/^[1-9][0-9]*$/.test(opts.maxSeconds))
    throw new CliError(`--max-seconds must be a positive whole number, got '${opts.maxSeconds}'`);
  return {
    jobId: id,
    type: 'scheduleUpdateTwin',
    queryCondition: opts.query,
    updateTwin: { ...p, etag: opts.etag ?? p['etag'] ?? '*' },
    ...(opts.start === undefined ? {} : { startTime: new Date(Date.parse(opts.start)).toISOString() }),
    ...(opts.maxSeconds === undefined ? {} : { maxExecutionTimeInSeconds: Number(opts.maxSeconds) }),
  };
}

/** `fw-2  completed  devices 2: succeeded 2, failed 0, running 0, pending 0`. */
function summary(job: Job): string {
  const s = job.deviceJobStatistics;
  const devices =
    s === undefined
      ? ''
      : `  devices ${s.deviceCount}: succeeded ${s.succeededCount}, failed ${s.failedCount}, running ${s.runningCount}, pending ${s.pendingCount}`;
  const reason = typeof job['failureReason'] === 'string' ? `  (${job['failureReason']})` : '';
  return `${job.jobId}  ${job.status}${devices}${reason}`;
}

function printJob(io: CliIo, job: Job, json: boolean | undefined): void {
  io.out(json === true ? `${JSON.stringify(job)}\n` : `${JSON.stringify(job, null, 2)}\n`);
}

export async function jobCreateCommand(
  config: CliConfig,
  io: CliIo,
  id: string,
  patchJson: string,
  opts: JobCreateOptions,
): Promise<number> {
  const timeoutMs = opts.timeout === undefined ? 60_000 : Number(opts.timeout);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1)
    throw new CliError(`--timeout must be a positive whole number of ms, got '${opts.timeout}'`);
  let { body: job } = await call(config, opts, 'PUT', path(id), jobBodyOf(id, patchJson, opts));
  if (opts.wait === true) {
    const deadline = Date.now() + timeoutMs;
    while (!TERMINAL.includes((job as Job).status)) {
      if (Date.now() > deadline)
        throw new CliError(
          `job ${id} is still ${(job as Job).status} after ${timeoutMs} ms (it keeps running in serve: twinlog job get ${id})`,
          1,
        );
      await new Promise((r) => setTimeout(r, 200));
      job = (await call(config, opts, 'GET', path(id))).body;
    }
    if (opts.json !== true) io.err(`${summary(job as Job)}\n`);
  }
  printJob(io, job as Job, opts.json);
  return opts.wait === true && (job as Job).status !== 'completed' ? 1 : 0;
}

export async function jobGetCommand(
  config: CliConfig,
  io: CliIo,
  id: string,
  opts: GatewayOptions & { json?: boolean },
): Promise<number> {
  printJob(io, (await call(config, opts, 'GET', path(id))).body as Job, opts.json);
  return 0;
}

export async function jobCancelCommand(
  config: CliConfig,
  io: CliIo,
  id: string,
  opts: GatewayOptions & { json?: boolean },
): Promise<number> {
  printJob(io, (await call(config, opts, 'POST', `${path(id)}/cancel`)).body as Job, opts.json);
  return 0;
}

/** Every job (newest first), all pages of `GET /jobs/v2/query`. */
export async function jobListCommand(
  config: CliConfig,
  io: CliIo,
  opts: GatewayOptions & { json?: boolean; status?: string },
): Promise<number> {
  if (opts.status !== undefined && !(STATUSES as readonly string[]).includes(opts.status))
    throw new CliError(`--status must be one of ${STATUSES.join(', ')}, got '${opts.status}'`);
  const jobs: Job[] = [];
  let continuation: string | undefined;
  do {
    const { body, headers } = await call(
      config,
      opts,
      'GET',
      `/jobs/v2/query?jobType=scheduleUpdateTwin${opts.status === undefined ? '' : `&jobStatus=${opts.status}`}`,
      undefined,
      continuation === undefined ? {} : { 'x-ms-continuation': continuation },
    );
    jobs.push(...(body as Job[]));
    const next = headers['x-ms-continuation'];
    continuation = typeof next === 'string' && next !== '' ? next : undefined;
  } while (continuation !== undefined);
  if (opts.json === true) {
    for (const j of jobs) io.out(`${JSON.stringify(j)}\n`);
    return 0;
  }
  if (jobs.length === 0) io.out('no jobs\n');
  for (const j of jobs) io.out(`${summary(j)}  created ${String(j['createdTime'])}  ${String(j['queryCondition'])}\n`);
  return 0;
}
