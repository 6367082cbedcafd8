/**
 * `twinlog job create|get|list|cancel` against a REST gateway serving the job runner of
 * `@twinlog/fleet` on an embedded log, as `twinlog serve` runs them (docs/iot-hub.md, "Jobs"): a job
 * updates exactly the matching twins and `--wait` reports its counts, a scheduled job is cancelled,
 * `list` pages through every job, and a refusal is one line with IoT Hub's error name (exit 1).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGatewayHub, type GatewayHub } from './gatewayHub.fixture.ts';
import { jobBodyOf } from './internal/jobCommands.ts';

let hub: GatewayHub;
beforeEach(async () => {
  hub = await startGatewayHub({ name: 'job', jobs: true });
});
afterEach(() => hub.close());

const cli = (...args: string[]): ReturnType<GatewayHub['cli']> => hub.cli('job', ...args);

describe('twinlog job', () => {
  it('create --wait updates the matching twins and prints the counts; get, list and cancel; refusals exit 1 with the IoT Hub error', async () => {
    for (const id of ['a1', 'a2', 'b1']) await hub.client.createDevice(id, { wait: true });
    await hub.client.patchTwin('a1', { tags: { site: 'a' } });
    await hub.client.patchTwin('a2', { tags: { site: 'a' } });
    const rows = async (): Promise<number> =>
      (await hub.readModel!.queryAll("SELECT deviceId FROM devices WHERE tags.site = 'a'")).rows.length;
    for (let i = 0; (await rows()) < 2 && i < 400; i++) await new Promise((r) => setTimeout(r, 25)); // the job matches what the read model shows

    const created = await cli(
      'create',
      'fw-2',
      '{"properties":{"desired":{"fw":"2.0"}}}',
      '--query',
      "tags.site = 'a'",
      '--wait',
      '--json',
    );
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    const job = JSON.parse(created.out) as Record<string, unknown>;
    expect(job).toMatchObject({
      jobId: 'fw-2',
      type: 'scheduleUpdateTwin',
      status: 'completed',
      queryCondition: "tags.site = 'a'",
    });
    expect(job['deviceJobStatistics']).toEqual({
      deviceCount: 2,
      failedCount: 0,
      succeededCount: 2,
      runningCount: 0,
      pendingCount: 0,
    });

    const got = await cli('get', 'fw-2');
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out)).toMatchObject({
      jobId: 'fw-2',
      status: 'completed',
      updateTwin: { etag: '*', properties: { desired: { fw: '2.0' } } },
    });

    const later = await cli(
      'create',
      'later',
      '{"tags":{"x":1}}',
      '--query',
      "deviceId = 'b1'",
      '--start',
      new Date(Date.now() + 3_600_000).toISOString(),
    );
    expect(later.code).toBe(0);
    expect(JSON.parse(later.out)).toMatchObject({ jobId: 'later', status: 'scheduled' });
    const cancelled = await cli('cancel', 'later', '--json');
    expect(JSON.parse(cancelled.out)).toMatchObject({ jobId: 'later', status: 'cancelled' });

    const list = await cli('list');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^fw-2 {2}completed {2}devices 2: succeeded 2, failed 0, running 0, pending 0/m);
    expect(list.out).toMatch(/^later {2}cancelled/m);
    const onlyCancelled = await cli('list', '--status', 'cancelled', '--json');
    expect(
      onlyCancelled.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { jobId: string }).jobId),
    ).toEqual(['later']);

    const again = await cli('create', 'fw-2', '{"tags":{"y":1}}', '--query', "tags.site = 'a'");
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^twinlog: JobAlreadyExists: .*\(409\)\n$/);
    const missing = await cli('get', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^twinlog: JobNotFound: .*\(404\)\n$/);
    expect((await cli('create', 'x', '{"tags":{"y":1}}')).err).toMatch(/--query <condition> is required/);
  });

  it('jobBodyOf builds IoT Hub’s scheduleUpdateTwin body', () => {
    expect(
      jobBodyOf('j1', '{"tags":{"a":1}}', {
        query: 'tags.b = 2',
        start: '2030-01-01T00:00:00Z',
        maxSeconds: '60',
        etag: 'AAAA',
      }),
    ).toEqual({
      jobId: 'j1',
      type: 'scheduleUpdateTwin',
      queryCondition: 'tags.b = 2',
      updateTwin: { tags: { a: 1 }, etag: 'AAAA' },
      startTime: '2030-01-01T00:00:00.000Z',
      maxExecutionTimeInSeconds: 60,
    });
    expect(() => jobBodyOf('j1', '{"properties":{"reported":{}}}', { query: '*' })).toThrow(
      /needs tags or properties.desired/,
    );
  });
});
