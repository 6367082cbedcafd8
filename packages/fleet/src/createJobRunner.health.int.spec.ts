/**
 * Issue 12, self-healing: the job runner's background loop backs off while the log refuses its
 * writes, says so in `health()` (one state change, not one per retry), and finishes the job once
 * the log is back. The read model's consumer reports `consuming` with its partitions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient } from '@twinlog/client';
import type { Log, StageHealth } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, startProjector } from '@twinlog/projector';
import { expect, it } from 'vitest';
import { createJobRunner } from './createJobRunner.ts';
import { createReadModel } from './createReadModel.ts';

const until = async (check: () => boolean, ms = 20_000): Promise<void> => {
  for (const deadline = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error('timed out');
  }
};

it('backs off while the log refuses writes, reports restarting with the reason once, then completes the job', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-jobs-health-'));
  const log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });
  try {
    await ensureTwinTopics(log, 2);
    const projector = await startProjector({ log, physicalNow: () => Date.now() });
    const client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'test', pollIntervalMs: 5 });
    const receipts = [];
    for (const id of ['a', 'b', 'c']) {
      await client.createDevice(id, { wait: true });
      receipts.push(await client.mergeTags(id, { site: 'x' }));
    }
    const readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
    await readModel.waitFor(receipts);
    await until(() => readModel.health().state === 'consuming');
    expect(readModel.health().partitions).toEqual([0, 1]);

    let down = true;
    let refused = 0;
    const flaky: Log = new Proxy(log, {
      get(target, prop, receiver) {
        if (prop === 'append' && down) {
          return async () => {
            refused++;
            throw new Error('broker unreachable');
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const changes: StageHealth[] = [];
    const jobs = createJobRunner({
      readModel,
      log: flaky,
      physicalNow: Date.now,
      restart: { minBackoffMs: 40, maxBackoffMs: 200 },
      onStateChange: (h) => void changes.push(h),
    });
    jobs.scheduleUpdateTwin({
      jobId: 'j',
      type: 'scheduleUpdateTwin',
      queryCondition: "tags.site = 'x'",
      updateTwin: { tags: { done: true }, etag: '*' },
    });
    jobs.start();
    await until(() => refused >= 4);
    expect(jobs.health()).toMatchObject({ stage: 'job-runner', state: 'restarting', reason: 'broker unreachable' });
    down = false;
    await until(() => jobs.get('j').status === 'completed');
    await until(() => jobs.health().state === 'consuming');
    expect(changes.map((h) => h.state)).toEqual(['consuming', 'restarting', 'consuming']);
    await jobs.stop();
    expect(jobs.health().state).toBe('stopped');
    await readModel.close();
    expect(readModel.health().state).toBe('stopped');
    await client.close();
    await projector.stop();
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
