/**
 * A reconciler restored from `twin.deltas` that misses its last transaction (its commit marker not
 * yet visible, while that transaction's group offsets are) must not evaluate on from the group's
 * offsets against the stale deltas: the run stops with `RECONCILER_RESUME_AHEAD`, restarts,
 * restores again, and `twin.deltas` ends with the right delta (docs/architecture.md, "Restore and
 * resume").
 */
import { createTwinClient } from '@twinlog/client';
import { decodeOutputRecord } from '@twinlog/codec';
import type { DeltaState, Log, StageHealth } from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, TOPICS } from '@twinlog/projector';
import { startReconciler } from '@twinlog/reconciler';
import { expect, it } from 'vitest';
import { staleEndOnce } from './logWith.ts';
import { until } from './until.ts';

const GROUP = 'twinlog-reconciler';

/** Whether the reconciler group has consumed every snapshot. */
async function settled(log: Log): Promise<boolean> {
  const [end, committed] = await Promise.all([
    log.endOffsets(TOPICS.snapshots),
    log.committedOffsets(GROUP, TOPICS.snapshots),
  ]);
  return end.every((e, p) => committed[p] === e);
}

/** The last record for `deviceId` on `twin.deltas` partition 0: its delta, `null` for a tombstone. */
async function lastDelta(log: Log, deviceId: string): Promise<DeltaState | null | undefined> {
  let last: DeltaState | null | undefined;
  for await (const records of log.read(TOPICS.deltas, 0, { from: 0 })) {
    for (const r of records) {
      if (r.key === deviceId) last = r.value === null ? null : decodeOutputRecord(r.value, 'delta').delta;
    }
  }
  return last;
}

it('restores again instead of evaluating on when its consumer resumes past snapshots the restored deltas lack', async () => {
  const inner = createInMemoryLog({ now: () => Date.now() });
  await ensureTwinTopics(inner, 1);
  const client = createTwinClient({ log: inner, physicalNow: () => Date.now(), actor: 't', pollIntervalMs: 5 });
  const projector = await startProjector({ log: inner, physicalNow: () => Date.now() });
  const first = await startReconciler({ log: inner, physicalNow: () => Date.now() });
  expect((await client.createDevice('d', { wait: true })).accepted).toBe(true);
  await until(() => settled(inner));
  const created = await lastDelta(inner, 'd');
  expect(created).toMatchObject({ deviceId: 'd', converged: true, entries: [] });
  // what a restore sees while the next transaction's deltas are not yet visible
  const staleEnd = await inner.endOffsets(TOPICS.deltas);
  expect((await client.deleteDevice('d', { wait: true })).accepted).toBe(true);
  await until(() => settled(inner));
  expect(await lastDelta(inner, 'd')).toBeNull(); // the tombstone
  await first.stop();

  // the next restore reads twin.deltas only up to staleEnd: it sees `d` as created
  const { log, answered } = staleEndOnce(inner, TOPICS.deltas, staleEnd);
  const health: StageHealth[] = [];
  const second = await startReconciler({
    log,
    physicalNow: () => Date.now(),
    restart: { minBackoffMs: 20, maxBackoffMs: 100 },
    onStateChange: (h) => health.push(h),
  });
  try {
    // created again: its delta equals the one the stale restore holds, not the tombstone on the log
    expect((await client.createDevice('d', { wait: true })).accepted).toBe(true);
    await until(() => settled(inner));
    expect(answered()).toBe(true);
    expect(await lastDelta(inner, 'd')).toEqual(created); // not the tombstone: the twin exists
    expect(second.deltaOf('d')).toEqual(created);
    const stopped = health.find((h) => h.state === 'restarting');
    expect(stopped?.reason).toMatch(
      /resumed at offset \d+, after \d+ snapshot records the restored deltas do not reflect .*\(RECONCILER_RESUME_AHEAD\)/,
    );
    await until(() => second.health().state === 'consuming');
  } finally {
    await second.stop();
    await client.close();
    await projector.stop();
  }
});

it('a sweep from deltas that miss the last transaction is re-evaluated from the checkpoint it commits', async () => {
  const inner = createInMemoryLog({ now: () => Date.now() });
  await ensureTwinTopics(inner, 1);
  const client = createTwinClient({ log: inner, physicalNow: () => Date.now(), actor: 't', pollIntervalMs: 5 });
  const projector = await startProjector({ log: inner, physicalNow: () => Date.now() });
  let skew = 0;
  const options = { physicalNow: () => Date.now() + skew, staleAfterMs: 60_000, sweepIntervalMs: 3_600_000 };
  const first = await startReconciler({ log: inner, ...options });
  await client.createDevice('d', { wait: true });
  await client.mergeDesired('d', { fw: '2' }, { wait: true });
  await until(() => settled(inner));
  expect((await lastDelta(inner, 'd'))?.counts.pending).toBe(1);
  const staleEnd = await inner.endOffsets(TOPICS.deltas);
  await client.mergeReported('d', { fw: '2' }, { wait: true });
  await until(() => settled(inner));
  const converged = await lastDelta(inner, 'd');
  expect(converged?.converged).toBe(true);
  await first.stop();

  // the next restore sees `d` still pending
  const { log, answered } = staleEndOnce(inner, TOPICS.deltas, staleEnd);
  const second = await startReconciler({ log, ...options, restart: { minBackoffMs: 20, maxBackoffMs: 100 } });
  try {
    await until(() => second.partitions().length === 1);
    expect(answered()).toBe(true); // restored from the stale end
    skew = 60_000;
    expect(await second.sweep()).toBe(1); // before any batch: `d` turns stale from the stale restore
    expect((await lastDelta(inner, 'd'))?.counts.stale).toBe(1);
    // a snapshot of another device: the run stops, restores again, and evaluates `d` again
    await client.createDevice('e', { wait: true });
    await until(() => settled(inner));
    await until(() => second.health().state === 'consuming');
    expect(await lastDelta(inner, 'd')).toEqual(converged);
    expect(second.deltaOf('d')).toEqual(converged);
  } finally {
    await second.stop();
    await client.close();
    await projector.stop();
  }
});
