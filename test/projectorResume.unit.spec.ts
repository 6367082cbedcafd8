/**
 * A projector restored from snapshots that miss its last transaction (their commit marker not yet
 * visible, while that transaction's group offsets are) must not fold on from the group's offsets
 * without the records in between: the run stops with `PROJECTOR_RESUME_AHEAD`, restarts, restores
 * again, and the twin holds every write (docs/architecture.md, "Restore and resume").
 */
import { createTwinClient } from '@twinlog/client';
import type { StageHealth } from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, listTwins, startProjector, TOPICS } from '@twinlog/projector';
import { expect, it } from 'vitest';
import { staleEndOnce } from './logWith.ts';
import { until } from './until.ts';

it('restores again instead of folding on when its consumer resumes past records the restored snapshots lack', async () => {
  const inner = createInMemoryLog({ now: () => Date.now() });
  await ensureTwinTopics(inner, 1);
  const client = createTwinClient({ log: inner, physicalNow: () => Date.now(), actor: 't', pollIntervalMs: 5 });
  const first = await startProjector({ log: inner, physicalNow: () => Date.now() });
  const created = await client.createDevice('d', { wait: true });
  const baseline = created.accepted ? created.version : Number.NaN;
  expect((await client.mergeTags('d', { a: 1 }, { wait: true })).accepted).toBe(true);
  // what a restore sees while the next transaction's snapshots are not yet visible
  const staleEnd = await inner.endOffsets(TOPICS.snapshots);
  expect((await client.mergeTags('d', { b: 2 }, { wait: true })).accepted).toBe(true);
  await first.stop();

  // the next restore reads twin.snapshots only up to staleEnd
  const { log, answered } = staleEndOnce(inner, TOPICS.snapshots, staleEnd);
  const health: StageHealth[] = [];
  const second = await startProjector({
    log,
    physicalNow: () => Date.now(),
    restart: { minBackoffMs: 20, maxBackoffMs: 100 },
    onStateChange: (h) => health.push(h),
  });
  try {
    const decision = await client.mergeTags('d', { c: 3 }, { wait: true });
    expect(decision.accepted).toBe(true);
    if (decision.accepted) expect(decision.version).toBe(baseline + 3); // a, b and c, each once
    expect(answered()).toBe(true);
    const stopped = health.find((h) => h.state === 'restarting');
    expect(stopped?.reason).toMatch(/resumed at offset \d+, after 1 records the restored state has not folded/);
    await until(() => second.health().state === 'consuming');
    const twin = (await listTwins(inner)).find((t) => t.deviceId === 'd');
    expect(twin?.tags).toEqual({ a: 1, b: 2, c: 3 });
  } finally {
    await client.close();
    await second.stop();
  }
});
