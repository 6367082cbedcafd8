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
  type TwinState,
} from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { expect, it } from 'vitest';
import { createSnapshotReader } from './snapshotReader.ts';

it('holds at most maxBytes, least recently used out, and still reads every device exactly', async () => {
  const log = createInMemoryLog({ now: Date.now });
  await ensureTwinTopics(log, 2);
  const clock = createHybridClock({ physicalNow: Date.now });
  let seq = 0;
  const states = new Map<string, TwinState>();
  const write = async (
    deviceId: string,
    section: TwinEvent['section'],
    patch: TwinEvent['patch'] = {},
  ): Promise<void> => {
    const state = states.get(deviceId) ?? createTwinState(deviceId);
    states.set(deviceId, state);
    applyEvent(state, {
      v: 1,
      id: { writer: 'w', seq: ++seq },
      deviceId,
      section,
      op: 'merge',
      patch,
      stamp: clock.now(),
      actor: 't',
    });
    const value = encodeOutputRecord({
      kind: 'snapshot',
      v: 1,
      deviceId,
      state: toStateDoc(state),
      exists: twinExists(state),
      version: twinVersion(state),
      offsets: { backend: seq, device: 0 },
    });
    await log.append(TOPICS.snapshots, [{ key: deviceId, partition: partitionFor(deviceId, 2), value }]);
  };
  const ids = Array.from({ length: 200 }, (_, i) => `dev-${i}`);
  for (const id of ids) {
    await write(id, 'create');
    await write(id, 'tags', { n: id });
  }
  const reader = createSnapshotReader(log, { maxBytes: 20_000 });
  for (let round = 0; round < 2; round++) {
    for (const id of ids) {
      const twin = await reader.getTwin(id);
      expect(twin.tags).toEqual(round === 0 ? { n: id } : { n: id, round: 1 });
      expect(reader.stats().bytes).toBeLessThanOrEqual(20_000);
    }
    expect(reader.stats().devices).toBeLessThan(ids.length);
    for (const id of ids.filter((_, i) => i % 3 === 0)) await write(id, 'tags', { round: 1 });
    for (const id of ids.filter((_, i) => i % 3 !== 0)) await write(id, 'tags', { round: 1 });
  }
  await write('dev-7', 'delete');
  await expect(reader.getTwin('dev-7')).rejects.toMatchObject({ code: 'DEVICE_NOT_FOUND' });
  await expect(reader.getTwin('never')).rejects.toMatchObject({ code: 'DEVICE_NOT_FOUND' });
  expect((await reader.getTwin('dev-0')).tags).toEqual({ n: 'dev-0', round: 1 });
  await log.close();
});
