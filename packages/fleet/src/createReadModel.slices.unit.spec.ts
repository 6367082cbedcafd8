/**
 * The read model applies a long consumer batch in several transactions (each with its offsets),
 * and its input positions advance at checkpoints only (docs/reads.md).
 */
import { encodeOutputRecord } from '@twinlog/codec';
import {
  applyEvent,
  createHybridClock,
  createTwinState,
  partitionFor,
  toStateDoc,
  twinExists,
  twinVersion,
  type TwinEvent,
} from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { CHECKPOINT_KEY, ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { expect, it } from 'vitest';
import { createReadModel } from './createReadModel.ts';
import { decodeFreshness } from './freshness.ts';

it('a long batch in slices gives the same twins; input positions move only at checkpoints', async () => {
  const log = createInMemoryLog({ now: Date.now, maxBatchSize: 5_000 });
  await ensureTwinTopics(log, 1);
  const clock = createHybridClock({ physicalNow: Date.now });
  let seq = 0;
  const snapshot = (deviceId: string, n: number, backend: number) => {
    const state = createTwinState(deviceId);
    const ev = (section: TwinEvent['section'], patch: TwinEvent['patch']): TwinEvent => ({
      v: 1,
      id: { writer: 'w', seq: ++seq },
      deviceId,
      section,
      op: 'merge',
      patch,
      stamp: clock.now(),
      actor: 't',
    });
    applyEvent(state, ev('create', {}));
    applyEvent(state, ev('tags', { n }));
    return {
      key: deviceId,
      partition: partitionFor(deviceId, 1),
      value: encodeOutputRecord({
        kind: 'snapshot',
        v: 1,
        deviceId,
        state: toStateDoc(state),
        exists: twinExists(state),
        version: twinVersion(state),
        offsets: { backend, device: 0 },
      }),
    };
  };
  const checkpoint = (backend: number) => ({
    key: CHECKPOINT_KEY,
    partition: 0,
    value: encodeOutputRecord({ kind: 'checkpoint', v: 1, partition: 0, offsets: { backend, device: 0 } }),
  });
  // a projector batch: snapshots carrying its end position (50), then its checkpoint
  await log.append(TOPICS.snapshots, [
    ...Array.from({ length: 300 }, (_, i) => snapshot(`d${i % 120}`, i, 50)),
    checkpoint(50),
  ]);
  // the first part of a next one, its checkpoint not written yet
  await log.append(
    TOPICS.snapshots,
    Array.from({ length: 20 }, (_, i) => snapshot(`d${i}`, 1000 + i, 90)),
  );

  const sliced = await createReadModel({ log, path: ':memory:', maxRecordsPerTransaction: 7 });
  const whole = await createReadModel({ log, path: ':memory:' });
  try {
    const updates: number[] = [];
    sliced.onUpdate((u) => updates.push(u.upserted.length));
    for (const rm of [sliced, whole]) await rm.catchUp({ timeoutMs: 10_000 });
    expect(updates.length).toBeGreaterThan(1); // applied in several transactions
    const rows = async (rm: typeof sliced) => (await rm.queryAll('SELECT * FROM devices')).rows;
    expect(await rows(sliced)).toEqual(await rows(whole));
    expect((await rows(sliced)).length).toBe(120);
    expect(sliced.getTwin('d3')?.['tags']).toEqual({ n: 1003 });
    for (const rm of [sliced, whole]) {
      const p = decodeFreshness(rm.freshness());
      expect(p.snapshots).toEqual([321]);
      expect(p.backend).toEqual([50]); // not 90: that batch's checkpoint has not been consumed
    }
    await expect(
      sliced.waitFor({ topic: TOPICS.backend, partition: 0, offset: 60 }, { timeoutMs: 50 }),
    ).rejects.toMatchObject({ code: 'READ_MODEL_TIMEOUT' });
    await log.append(TOPICS.snapshots, [checkpoint(90)]);
    await sliced.waitFor({ topic: TOPICS.backend, partition: 0, offset: 89 }, { timeoutMs: 10_000 });
  } finally {
    await sliced.close();
    await whole.close();
    await log.close();
  }
});
