/**
 * Jobs over REST (issue #14, item 1; docs/iot-hub.md, "Jobs"): the unmodified `JobClient` of
 * `azure-iothub` schedules twin-update jobs, reads, cancels and lists them against twinlog's gateway
 * with the job runner of `@twinlog/fleet` behind it, on the embedded backend and on Kafka.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackendKind } from './support/backends.ts';
import { eventually, startHub, type Hub } from './support/compatHarness.ts';

interface JobJson {
  jobId: string;
  type: string;
  status: string;
  queryCondition: string;
  createdTime: string;
  startTime: string;
  startTimeUtc: string;
  endTime?: string;
  endTimeUtc?: string;
  maxExecutionTimeInSeconds: number;
  updateTwin: Record<string, unknown>;
  deviceJobStatistics: {
    deviceCount: number;
    failedCount: number;
    succeededCount: number;
    runningCount: number;
    pendingCount: number;
  };
}

const jobOf = (r: { jobStatus: unknown }): JobJson => r.jobStatus as JobJson;

function compat(kind: BackendKind): void {
  describe(`the JobClient of azure-iothub on the ${kind} backend`, () => {
    let hub: Hub;
    beforeEach(async () => {
      hub = await startHub(kind, { jobs: true });
    });
    afterEach(async () => {
      await hub.close();
    });

    /** Three devices, two of them tagged site b, visible to queries (and so to jobs). */
    async function fleet(): Promise<void> {
      for (const id of ['dev1', 'dev2', 'dev3']) await hub.registry.create({ deviceId: id });
      await hub.registry.updateTwin('dev1', { tags: { site: 'b' } }, '*');
      await hub.registry.updateTwin('dev3', { tags: { site: 'b' } }, '*');
      await eventually(async () => {
        const page = await hub.registry.createQuery("SELECT deviceId FROM devices WHERE tags.site = 'b'").next();
        return (page.result as unknown[]).length === 2 ? true : undefined;
      }, 'the tagged twins in the read model');
    }

    it('scheduleTwinUpdate runs to completed with IoT Hub’s job JSON and device counts, and updates exactly the matching twins', async () => {
      await fleet();
      const jobClient = hub.jobClient();
      const created = jobOf(
        await jobClient.scheduleTwinUpdate(
          'fw-2',
          "tags.site = 'b'",
          { etag: '*', properties: { desired: { fw: '2.0' } } },
          new Date(),
          600,
        ),
      );
      expect(created).toMatchObject({
        jobId: 'fw-2',
        type: 'scheduleUpdateTwin',
        queryCondition: "tags.site = 'b'",
        maxExecutionTimeInSeconds: 600,
      });
      expect(['queued', 'running', 'completed']).toContain(created.status);
      expect(created.updateTwin).toEqual({ etag: '*', properties: { desired: { fw: '2.0' } } });

      const done = await eventually(async () => {
        const job = jobOf(await jobClient.getJob('fw-2'));
        return job.status === 'completed' ? job : undefined;
      }, 'the job to complete');
      expect(done.deviceJobStatistics).toEqual({
        deviceCount: 2,
        failedCount: 0,
        succeededCount: 2,
        runningCount: 0,
        pendingCount: 0,
      });
      expect(Date.parse(done.createdTime)).toBeGreaterThan(0);
      expect(done.startTimeUtc).toBe(done.startTime);
      expect(done.endTimeUtc).toBe(done.endTime);
      expect(Date.parse(done.endTime!)).toBeGreaterThanOrEqual(Date.parse(done.startTime));

      // a device succeeds once its write is in the log; the twin shows it once the projector applied it
      const desired = async (id: string): Promise<unknown> =>
        (await hub.registry.getTwin(id)).responseBody.properties.desired['fw'];
      await eventually(
        async () => ((await desired('dev1')) === '2.0' && (await desired('dev3')) === '2.0' ? true : undefined),
        'the job’s writes applied',
      );
      expect(await desired('dev2')).toBeUndefined();
      // applied once: desired $version 2 (fresh twin 1, one job write)
      expect((await hub.registry.getTwin('dev1')).responseBody.properties.desired['$version']).toBe(2);

      // a job id is taken for good; a device-method job is refused as an unsupported job type
      await expect(jobClient.scheduleTwinUpdate('fw-2', "tags.site = 'b'", { tags: { x: 1 } })).rejects.toMatchObject({
        response: { statusCode: 409 },
      });
      await expect(
        jobClient.scheduleDeviceMethod('reboot-1', "tags.site = 'b'", { methodName: 'reboot' }),
      ).rejects.toMatchObject({
        name: 'ArgumentError',
        message: expect.stringContaining('scheduleDeviceMethod is not supported'),
      });
      await expect(jobClient.getJob('no-such-job')).rejects.toMatchObject({ response: { statusCode: 404 } });
    });

    it('a twin patch with an etag writes only the twins that still have it; the others count as failed', async () => {
      await fleet();
      await hub.registry.updateTwin('dev3', { properties: { desired: { other: 1 } } }, '*'); // dev3's etag moves on
      const etag = (await hub.registry.getTwin('dev1')).responseBody.etag;
      const jobClient = hub.jobClient();
      await jobClient.scheduleTwinUpdate('fw-etag', "tags.site = 'b'", {
        etag,
        properties: { desired: { fw: '3.0' } },
      });
      const done = await eventually(async () => {
        const job = jobOf(await jobClient.getJob('fw-etag'));
        return job.status === 'completed' ? job : undefined;
      }, 'the conditional job to complete');
      expect(done.deviceJobStatistics).toEqual({
        deviceCount: 2,
        failedCount: 1,
        succeededCount: 1,
        runningCount: 0,
        pendingCount: 0,
      });
      expect((await hub.registry.getTwin('dev1')).responseBody.properties.desired['fw']).toBe('3.0');
      expect((await hub.registry.getTwin('dev3')).responseBody.properties.desired['fw']).toBeUndefined();
    });

    it('a job scheduled for later is scheduled until cancelled; the job query filters by type and status and pages with x-ms-continuation', async () => {
      await fleet();
      const jobClient = hub.jobClient();
      const later = new Date(Date.now() + 3_600_000);
      for (const id of ['later-1', 'later-2', 'later-3']) {
        const job = jobOf(
          await jobClient.scheduleTwinUpdate(id, "tags.site = 'b'", { tags: { batch: id } }, later, 3600),
        );
        expect(job.status).toBe('scheduled');
        expect(job.deviceJobStatistics.deviceCount).toBe(0);
      }
      const cancelled = jobOf(await jobClient.cancelJob('later-2'));
      expect(cancelled.status).toBe('cancelled');
      expect(jobOf(await jobClient.getJob('later-2')).status).toBe('cancelled');

      const pages = async (query: ReturnType<typeof jobClient.createQuery>): Promise<string[][]> => {
        const out: string[][] = [];
        // the SDK's promise form of next() drops the continuation unless it is passed back (its callback form keeps it)
        while (query.hasMoreResults)
          out.push(((await query.next(query.continuationToken)).result as JobJson[]).map((j) => j.jobId));
        return out;
      };
      const scheduled = await pages(jobClient.createQuery('scheduleUpdateTwin', 'scheduled', 1));
      expect(scheduled.map((p) => p.length)).toEqual([1, 1]); // newest first (creation time, then id)
      expect(scheduled.flat().sort()).toEqual(['later-1', 'later-3']);
      expect(await pages(jobClient.createQuery('scheduleUpdateTwin', 'cancelled'))).toEqual([['later-2']]);
      expect((await pages(jobClient.createQuery(undefined, undefined, 2))).flat().sort()).toEqual([
        'later-1',
        'later-2',
        'later-3',
      ]);
      expect(await pages(jobClient.createQuery('scheduleDeviceMethod'))).toEqual([[]]);
      // nothing was written: dev1's tags are as the test left them
      expect((await hub.registry.getTwin('dev1')).responseBody.tags).toEqual({ site: 'b' });
    });
  });
}

compat('embedded');
compat('kafka');
