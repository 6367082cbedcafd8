/**
 * Issue 12, self-healing: a projector whose consumer ends by itself (as kafkajs's does when it
 * gives up on the broker) or whose subscribe is refused restarts with backoff, says so in
 * `health()`, and folds what was written meanwhile exactly once.
 */
import { createTwinClient } from '@twinlog/client';
import type { StageHealth, SubscribeOptions } from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector } from '@twinlog/projector';
import { expect, it } from 'vitest';
import { logWith } from './logWith.ts';
import { until } from './until.ts';

it('restarts after its consumer crashed and after refused subscribes, then consumes again; nothing folded twice', async () => {
  const inner = createInMemoryLog({ now: () => Date.now() });
  await ensureTwinTopics(inner, 2);
  let crash: (e: Error) => void = () => {};
  let refuse = 0;
  let subscribes = 0;
  // The in-memory log plus what the Kafka log adds to a subscription: `done`, rejected when the consumer gives up.
  const log = logWith(inner, {
    subscribe: async (options: SubscribeOptions) => {
      subscribes++;
      if (refuse > 0) {
        refuse--;
        throw new Error('Connection refused');
      }
      const sub = await inner.subscribe(options);
      const done = new Promise<void>((_, reject) => (crash = reject));
      done.catch(() => {});
      return { stop: () => sub.stop(), done };
    },
  });
  const changes: string[] = [];
  const projector = await startProjector({
    log,
    physicalNow: () => Date.now(),
    restart: { minBackoffMs: 20, maxBackoffMs: 100 },
    onStateChange: (h: StageHealth, previous) => changes.push(`${previous}->${h.state}`),
  });
  const client = createTwinClient({ log: inner, physicalNow: () => Date.now(), actor: 't', pollIntervalMs: 5 });
  try {
    await until(() => projector.health().state === 'consuming');
    expect(projector.health().partitions).toEqual([0, 1]);
    const created = await client.createDevice('d', { wait: true });
    const baseline = created.accepted ? created.version : Number.NaN;

    refuse = 3;
    crash(new Error('Failed to find group coordinator'));
    await until(() => projector.health().state === 'restarting');
    expect(projector.health().reason).toBe('Failed to find group coordinator');
    for (let i = 0; i < 5; i++) await client.mergeTags('d', { [`k${i}`]: i }); // written while it restarts
    await until(() => projector.health().state === 'consuming');
    expect(subscribes).toBe(5); // the first, three refused, the one that works
    expect(projector.health().restarts).toBe(4);
    expect(changes).toEqual(['starting->consuming', 'consuming->restarting', 'restarting->consuming']);

    const decision = await client.mergeTags('d', { last: true }, { wait: true });
    expect(decision.accepted).toBe(true);
    if (decision.accepted) expect(decision.version).toBe(baseline + 6); // 6 tag writes, each once
  } finally {
    await client.close();
    await projector.stop();
  }
  expect(projector.health().state).toBe('stopped');
  await projector.done; // resolves after stop()
});
