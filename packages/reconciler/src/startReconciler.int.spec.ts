/**
 * The reconciler on the embedded SQLite log: deltas survive closing and reopening the database,
 * and a restarted or replaying reconciler emits nothing twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient } from '@twinlog/client';
import type { Log } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { CHECKPOINT_KEY, ensureTwinTopics, startProjector, TOPICS } from '@twinlog/projector';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { startReconciler } from './startReconciler.ts';

let dir: string;
let skew = 0;
const now = (): number => Date.now() + skew;
const open = (): Log => createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-reconciler-'));
  skew = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function settled(log: Log, group: string): Promise<void> {
  await expect
    .poll(async () => {
      const [end, committed] = await Promise.all([
        log.endOffsets(TOPICS.snapshots),
        log.committedOffsets(group, TOPICS.snapshots),
      ]);
      return end.every((e, p) => e === 0 || committed[p] === e);
    })
    .toBe(true);
}

/** Delta records and tombstones on `twin.deltas` (not the checkpoints). */
async function total(log: Log): Promise<number> {
  let n = 0;
  for (let p = 0; p < (await log.partitionCount(TOPICS.deltas)); p++) {
    for await (const records of log.read(TOPICS.deltas, p, { from: 0 })) {
      n += records.filter((r) => r.key !== CHECKPOINT_KEY).length;
    }
  }
  return n;
}

it('reconciles on SQLite; reopening, replaying and sweeping emit nothing twice', async () => {
  const log = open();
  await ensureTwinTopics(log, 2);
  const projector = await startProjector({ log, physicalNow: now });
  const client = createTwinClient({ log, physicalNow: now, actor: 'int', pollIntervalMs: 5 });
  const reconciler = await startReconciler({ log, physicalNow: now, staleAfterMs: 60_000, sweepIntervalMs: 3_600_000 });
  for (const id of ['a', 'b', 'c']) {
    await client.createDevice(id, { wait: true });
    await client.mergeDesired(id, { fw: '2' }, { wait: true });
  }
  await client.mergeReported('a', { fw: '2' }, { wait: true });
  await settled(log, 'twinlog-reconciler');
  expect(reconciler.deltaOf('a')?.converged).toBe(true);
  expect(reconciler.deltaOf('b')?.entries.map((e) => e.status)).toEqual(['pending']);
  const emitted = await total(log);
  expect(emitted).toBe(7); // 3 creates, 3 pending, 1 converged

  skew = 60_000;
  expect(await reconciler.sweep()).toBe(2); // b and c turn stale
  await reconciler.stop();
  await client.close();
  await projector.stop();
  await log.close();

  const reopened = open();
  const again = await startReconciler({
    log: reopened,
    physicalNow: now,
    staleAfterMs: 60_000,
    sweepIntervalMs: 3_600_000,
  });
  const replay = await startReconciler({
    log: reopened,
    group: 'replay',
    physicalNow: now,
    staleAfterMs: 60_000,
    sweepIntervalMs: 3_600_000,
  });
  await settled(reopened, 'replay');
  await expect.poll(() => again.partitions()).toEqual([0, 1]);
  expect(await again.sweep()).toBe(0);
  expect(await replay.sweep()).toBe(0);
  expect(await total(reopened)).toBe(emitted + 2);
  expect(replay.deltaOf('c')?.entries.map((e) => e.status)).toEqual(['stale']);
  await replay.stop();
  await again.stop();
  await reopened.close();
});
