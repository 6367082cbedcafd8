/**
 * Jobs on the embedded log with a real projector and read model: progress and results, devices.jobs
 * rows, cancellation, conditional writes, refusals — and a crash test: a child process running a
 * job is killed (SIGKILL) right after an acknowledged append and before its record, the job is
 * resumed here, and every matching twin has the patch applied exactly once.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { decodeEvent } from '@twinlog/codec';
import { createTwinClient, type TwinClient, type WriteReceipt } from '@twinlog/client';
import { isTwinlogError } from '@twinlog/core';
import { seededRandom } from '@twinlog/core/testing';
import { createEmbeddedLog, type EmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJobRunner } from './createJobRunner.ts';
import { createReadModel, type ReadModel } from './createReadModel.ts';
import { isFleetError } from './fleetError.ts';

let dir: string;
let log: EmbeddedLog;
let projector: Projector;
let client: TwinClient;
let readModel: ReadModel | undefined;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-jobs-'));
  log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: () => Date.now() });
  client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'jobs-test', pollIntervalMs: 5 });
});

afterEach(async () => {
  await readModel?.close();
  readModel = undefined;
  await client.close();
  await projector.stop();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Devices dev-00 … dev-<n-1>: wave 1 for even numbers, battery = 10·i % 100 (< 20 for i ≡ 0, 1 mod 10). */
async function fleet(n: number): Promise<WriteReceipt[]> {
  const receipts: WriteReceipt[] = [];
  for (let i = 0; i < n; i++) {
    const id = `dev-${String(i).padStart(2, '0')}`;
    await client.createDevice(id, { wait: true });
    receipts.push(...(await client.patchTwin(id, { tags: { wave: i % 2 === 0 ? 1 : 2 }, desired: { fw: '1.0' } })));
    receipts.push(await client.mergeReported(id, { battery: (10 * i) % 100 }));
  }
  return receipts;
}
const matching = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => i)
    .filter((i) => i % 2 === 0 && (10 * i) % 100 >= 20)
    .map((i) => `dev-${String(i).padStart(2, '0')}`);

/** Wait until the read model reflects everything now on the input topics. */
async function settled(rm: ReadModel): Promise<void> {
  const ends = await log.endOffsets(TOPICS.backend);
  await rm.waitFor(
    ends.flatMap((end, partition) => (end === 0 ? [] : [{ topic: TOPICS.backend, partition, offset: end - 1 }])),
    { timeoutMs: 30_000 },
  );
}

describe('jobs: scheduleUpdateTwin', () => {
  it('updates the matching twins once each, reports progress and devices.jobs rows', async () => {
    const receipts = await fleet(20);
    readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
    await readModel.waitFor(receipts);
    const progress: string[] = [];
    const jobs = createJobRunner({
      readModel,
      log,
      physicalNow: Date.now,
      concurrency: 3,
      onDevice: (p) => void progress.push(p.deviceId),
    });
    const queued = jobs.scheduleUpdateTwin({
      jobId: 'job-1',
      type: 'scheduleUpdateTwin',
      queryCondition: 'tags.wave = 1 AND properties.reported.battery >= 20',
      updateTwin: { tags: { rollout: 'wave-1' }, properties: { desired: { fw: '2.0' } }, etag: '*' },
    });
    expect(queued).toMatchObject({ status: 'queued', deviceJobStatistics: { deviceCount: 0 } });
    const done = await jobs.run('job-1');
    const expected = matching(20);
    expect(done.status).toBe('completed');
    expect(done.deviceJobStatistics).toEqual({
      deviceCount: expected.length,
      succeededCount: expected.length,
      failedCount: 0,
      runningCount: 0,
      pendingCount: 0,
    });
    expect(progress.sort()).toEqual(expected);

    await settled(readModel);
    const updated = await readModel.queryAll(
      "SELECT deviceId FROM devices WHERE tags.rollout = 'wave-1' AND properties.desired.fw = '2.0'",
    );
    expect(updated.rows.map((r) => r['deviceId'])).toEqual(expected);
    for (const id of expected)
      expect(readModel.getTwin(id)).toMatchObject({ properties: { desired: { $version: 3 } } }); // create, fw 1.0, the job

    // devices.jobs (docs/iot-hub.md "Escaped names and query examples") and the job list
    const rows = await readModel.queryAll(
      "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-1' AND devices.jobs.status = 'completed'",
    );
    expect(rows.rows.map((r) => r['deviceId'])).toEqual(expected);
    expect(jobs.list({ status: 'completed' }).map((j) => j.jobId)).toEqual(['job-1']);

    // running it again changes nothing
    expect((await jobs.run('job-1')).deviceJobStatistics.succeededCount).toBe(expected.length);
  });

  it('cancels before and during a run, refuses bad requests, and counts refused conditional writes as failed', async () => {
    const receipts = await fleet(12);
    readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
    await readModel.waitFor(receipts);
    let cancelAfter = Infinity;
    const jobs = createJobRunner({
      readModel,
      log,
      physicalNow: Date.now,
      concurrency: 1,
      onDevice: ({ jobId }) => {
        if (--cancelAfter === 0) jobs.cancel(jobId);
      },
    });
    const req = (jobId: string, etag = '*') => ({
      jobId,
      type: 'scheduleUpdateTwin' as const,
      queryCondition: 'IS_DEFINED(tags.wave)',
      updateTwin: { properties: { desired: { mode: jobId } }, etag },
    });

    jobs.scheduleUpdateTwin(req('early'));
    expect(jobs.cancel('early').status).toBe('cancelled');
    expect((await jobs.run('early')).deviceJobStatistics.succeededCount).toBe(0);

    cancelAfter = 4;
    jobs.scheduleUpdateTwin(req('midway'));
    const midway = await jobs.run('midway');
    expect(midway.status).toBe('cancelled');
    expect(midway.deviceJobStatistics).toMatchObject({ deviceCount: 12, succeededCount: 4, pendingCount: 8 });
    cancelAfter = Infinity;

    jobs.scheduleUpdateTwin(req('stale', 'not-the-etag'));
    const stale = await jobs.run('stale');
    expect(stale.status).toBe('completed');
    expect(stale.deviceJobStatistics).toMatchObject({ deviceCount: 12, succeededCount: 0, failedCount: 12 });
    expect(jobs.deviceJobs('stale')[0]).toMatchObject({ status: 'failed', outcome: { error: 'PRECONDITION_FAILED' } });

    const codeOf = (f: () => unknown): unknown => {
      try {
        f();
        return 'no error';
      } catch (e) {
        return isTwinlogError(e) ? e.code : e;
      }
    };
    expect(codeOf(() => jobs.scheduleUpdateTwin(req('midway')))).toBe('JOB_ALREADY_EXISTS');
    expect(codeOf(() => jobs.scheduleUpdateTwin({ ...req('bad id!') }))).toBe('JOB_INVALID');
    expect(codeOf(() => jobs.scheduleUpdateTwin({ ...req('q'), queryCondition: 'tags.x = = 1' }))).toBe('QUERY_SYNTAX');
    expect(
      codeOf(() => jobs.scheduleUpdateTwin({ ...req('p'), updateTwin: { properties: { desired: { $x: 1 } } } })),
    ).toBe('KEY_INVALID');
    expect(codeOf(() => jobs.scheduleUpdateTwin({ ...req('e'), updateTwin: {} }))).toBe('JOB_INVALID');
    expect(
      isFleetError(
        (() => {
          try {
            jobs.get('nope');
          } catch (e) {
            return e;
          }
        })(),
        'JOB_NOT_FOUND',
      ),
    ).toBe(true);
  });
});

describe('jobs: the background loop', () => {
  it('runs queued jobs, waits for a scheduled start time, and lists them by status', async () => {
    const receipts = await fleet(6);
    readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
    await readModel.waitFor(receipts);
    let now = Date.now();
    const jobs = createJobRunner({ readModel, log, physicalNow: () => now, pollIntervalMs: 10 });
    const req = (jobId: string, startTime?: string) => ({
      jobId,
      type: 'scheduleUpdateTwin' as const,
      queryCondition: 'tags.wave = 2',
      updateTwin: { tags: { [jobId]: true } },
      ...(startTime === undefined ? {} : { startTime }),
    });
    jobs.scheduleUpdateTwin(req('now'));
    expect(jobs.scheduleUpdateTwin(req('later', new Date(now + 60_000).toISOString())).status).toBe('scheduled');
    jobs.start();
    try {
      const until = async (check: () => boolean): Promise<void> => {
        for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
        expect(check()).toBe(true);
      };
      await until(() => jobs.get('now').status === 'completed');
      expect(jobs.get('now').deviceJobStatistics.succeededCount).toBe(3);
      expect(jobs.get('later').status).toBe('scheduled');
      now += 61_000; // the start time passes
      await until(() => jobs.get('later').status === 'completed');
      expect(
        jobs
          .list({ status: 'completed' })
          .map((j) => j.jobId)
          .sort(),
      ).toEqual(['later', 'now']);
    } finally {
      await jobs.stop();
    }
  });
});

describe('jobs: retention', () => {
  it('deletes a finished job and its device rows once its retention has passed, and keeps the others', async () => {
    const receipts = await fleet(4);
    readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
    await readModel.waitFor(receipts);
    let now = Date.now();
    const jobs = createJobRunner({
      readModel,
      log,
      physicalNow: () => now,
      pollIntervalMs: 10,
      retentionMs: 3_600_000,
    });
    const req = (jobId: string, startTime?: string) => ({
      jobId,
      type: 'scheduleUpdateTwin' as const,
      queryCondition: 'tags.wave = 2',
      updateTwin: { tags: { [jobId]: true } },
      ...(startTime === undefined ? {} : { startTime }),
    });
    jobs.scheduleUpdateTwin(req('old'));
    jobs.start();
    try {
      const until = async (check: () => boolean): Promise<void> => {
        for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
        expect(check()).toBe(true);
      };
      await until(() => jobs.get('old').status === 'completed');
      expect(jobs.deviceJobs('old').length).toBe(2);
      // a job scheduled far ahead is not finished: retention never touches it
      jobs.scheduleUpdateTwin(req('ahead', new Date(now + 10 * 3_600_000).toISOString()));
      now += 3_600_000 + 61_000; // past the retention of 'old', and past the runner's expiry interval
      await until(() => jobs.list().every((j) => j.jobId !== 'old'));
      expect(() => jobs.get('old')).toThrow(expect.objectContaining({ code: 'JOB_NOT_FOUND' }));
      expect(jobs.deviceJobs('old')).toEqual([]);
      expect(jobs.get('ahead').status).toBe('scheduled');
    } finally {
      await jobs.stop();
    }
  });
});

describe('jobs: crash and resume', () => {
  it('a job killed between an acknowledged append and its record resumes without applying anything twice', async () => {
    const seed = Number(process.env['CRASH_SEED'] ?? Date.now() % 1e9);
    console.log(`job crash test: seed ${seed}`);
    const killAt = 2 + Math.floor(seededRandom(seed)() * 6); // after the 2nd … 7th written device
    const n = 30;
    const receipts = await fleet(n);
    const fleetPath = join(dir, 'fleet.db');
    readModel = await createReadModel({ log, path: fleetPath });
    await readModel.waitFor(receipts);
    await readModel.close();
    readModel = undefined;

    const child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        join(import.meta.dirname, 'jobChild.fixture.ts'),
        join(dir, 'log.db'),
        fleetPath,
        'crash-job',
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let written = 0;
    let killedAfter = '';
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line) as { written?: string; done?: unknown };
      if (msg.done !== undefined) throw new Error('the child finished before it was killed');
      if (msg.written !== undefined && ++written === killAt) {
        killedAfter = msg.written;
        child.kill('SIGKILL');
        break;
      }
    }
    await exited;

    // resume in this process
    readModel = await createReadModel({ log, path: fleetPath });
    const jobs = createJobRunner({ readModel, log, physicalNow: Date.now });
    const before = jobs.get('crash-job');
    expect(before.status).toBe('running');
    expect(before.deviceJobStatistics.succeededCount).toBe(killAt - 1); // the last write was acknowledged, not recorded
    const done = await jobs.run('crash-job');
    const expected = matching(n);
    expect(done.status).toBe('completed');
    expect(done.deviceJobStatistics).toMatchObject({
      deviceCount: expected.length,
      succeededCount: expected.length,
      failedCount: 0,
    });

    // the killed device's events were appended twice (same ids) …
    let copies = 0;
    for (let p = 0; p < 4; p++) {
      for await (const records of log.read(TOPICS.backend, p, { from: 0 })) {
        for (const r of records) {
          if (r.key !== killedAfter || r.value === null) continue;
          if (decodeEvent(r.value).id.writer === 'job-crash-job') copies++;
        }
      }
    }
    expect(copies).toBe(4); // tags + desired, twice

    // … and every matching twin shows the job exactly once
    await settled(readModel);
    for (let i = 0; i < n; i++) {
      const id = `dev-${String(i).padStart(2, '0')}`;
      const twin = readModel.getTwin(id) as {
        tags: Record<string, unknown>;
        properties: { desired: Record<string, unknown> };
      };
      if (expected.includes(id)) {
        expect(twin.properties.desired).toMatchObject({ fw: '2.0', $version: 3 });
        expect(twin.tags['rollout']).toBe('wave-1');
        expect(twin).toMatchObject({ version: 7 }); // desired 3 + reported 2 + tags 2 (the fleet's and the job's)
      } else {
        expect(twin.properties.desired).toMatchObject({ fw: '1.0', $version: 2 });
      }
    }
  });
});
