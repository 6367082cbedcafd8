/** One partition's reconciler state: change detection, redelivery, restore, the checkpoint. */
import { encodeOutputRecord } from '@twinlog/codec';
import {
  applyEvent,
  createTwinState,
  toStateDoc,
  twinExists,
  twinVersion,
  type LogRecord,
  type Patch,
  type TwinState,
} from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { CHECKPOINT_KEY, ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { describe, expect, it } from 'vitest';
import { checkpointOf, checkpointRecord } from './checkpoint.ts';
import { emptyStats, ReconcilerPartition } from './reconcilerPartition.ts';

const T0 = 1_750_000_000_000;
let seq = 0;

function write(
  state: TwinState,
  section: 'create' | 'desired' | 'reported' | 'tags' | 'delete',
  patch: Patch = {},
): void {
  seq++;
  applyEvent(state, {
    v: 1,
    id: { writer: 'w', seq },
    deviceId: state.deviceId,
    section,
    op: 'merge',
    patch,
    stamp: { wall: T0 + seq, counter: 0 },
    actor: 'a',
  });
}

function snapshot(state: TwinState, offset: number): LogRecord {
  const value = encodeOutputRecord({
    kind: 'snapshot',
    v: 1,
    deviceId: state.deviceId,
    state: toStateDoc(state),
    exists: twinExists(state),
    version: twinVersion(state),
    offsets: { backend: offset, device: 0 },
  });
  return {
    topic: TOPICS.snapshots,
    partition: 0,
    offset,
    key: state.deviceId,
    value,
    timestamp: T0 + 100,
    headers: {},
  };
}

describe('ReconcilerPartition', () => {
  it('emits per change, skips what it already reflects, survives a restore', async () => {
    const dev = createTwinState('dev1');
    write(dev, 'create');
    const r0 = snapshot(dev, 0);
    write(dev, 'tags', { site: 'a' });
    const r1 = snapshot(dev, 1);
    write(dev, 'desired', { fw: '1' });
    const r2 = snapshot(dev, 2);
    const ghost = createTwinState('ghost'); // a refused command on an unknown device leaves such a snapshot
    const checkpoint: LogRecord = {
      ...r0,
      offset: 4,
      key: CHECKPOINT_KEY,
      value: encodeOutputRecord({ kind: 'checkpoint', v: 1, partition: 0, offsets: { backend: 3, device: 0 } }),
    };
    const bad: LogRecord = { ...r0, offset: 5, key: 'dev2', value: new Uint8Array([0xc1]) };
    const batch = [r0, r1, r2, snapshot(ghost, 3), checkpoint, bad];

    const task = new ReconcilerPartition(0, { acks: true, staleAfterMs: 60_000 });
    const stats = emptyStats();
    const out = task.process(batch, stats);
    expect(out.map((r) => r.key)).toEqual(['dev1', 'dev1']); // create, then desired; tags changed nothing
    expect(stats).toEqual({ snapshots: 4, emitted: 2, skipped: 0, bad: 1 });
    expect(task.position).toBe(6);
    expect(task.deltaOf('dev1')?.entries.map((e) => e.status)).toEqual(['pending']);

    // redelivery of the same batch
    const again = emptyStats();
    expect(task.process(batch, again)).toEqual([]);
    expect(again.skipped).toBe(3);

    // restore from what was emitted, then the batch once more
    const log = createInMemoryLog({ now: () => T0 });
    await ensureTwinTopics(log, 1);
    await log.append(TOPICS.deltas, out);
    const restored = await ReconcilerPartition.restore(log, 0, 'g', { acks: true, staleAfterMs: 60_000 });
    expect(restored.deltaOf('dev1')).toEqual(task.deltaOf('dev1'));
    expect(restored.process(batch, emptyStats())).toEqual([]);

    // deletion: a tombstone carrying its snapshot's offset, restored as such
    write(dev, 'delete');
    const tomb = restored.process([snapshot(dev, 6)], emptyStats());
    expect(tomb).toMatchObject([{ key: 'dev1', value: null, headers: { 'twinlog-source-offset': '6' } }]);
    await log.append(TOPICS.deltas, tomb);
    const afterDelete = await ReconcilerPartition.restore(log, 0, 'g', { acks: true, staleAfterMs: 60_000 });
    expect(afterDelete.deltaOf('dev1')).toBeUndefined();
    expect(afterDelete.process([...batch, snapshot(dev, 6)], emptyStats())).toEqual([]);
    await log.close();
  });

  it("restores its group's last checkpoint, skips snapshots below it, and ignores other groups'", async () => {
    const dev = createTwinState('dev1');
    write(dev, 'create');
    const r0 = snapshot(dev, 0);
    write(dev, 'desired', { fw: '1' });
    const r1 = snapshot(dev, 1);
    const log = createInMemoryLog({ now: () => T0 });
    await ensureTwinTopics(log, 1);
    const fresh = await ReconcilerPartition.restore(log, 0, 'g', { acks: true, staleAfterMs: undefined });
    expect([fresh.checkpoint, fresh.position]).toEqual([undefined, undefined]); // none: nothing to check

    const out = fresh.process([r0], emptyStats());
    await log.append(TOPICS.deltas, [...out, checkpointRecord(0, 'g', 1), checkpointRecord(0, 'other', 7)]);
    const restored = await ReconcilerPartition.restore(log, 0, 'g', { acks: true, staleAfterMs: undefined });
    expect([restored.checkpoint, restored.position]).toEqual([1, 1]);
    const stats = emptyStats();
    const again = restored.process([r0, r1], stats); // r0 lies below the checkpoint
    expect(stats).toMatchObject({ skipped: 1, snapshots: 1, emitted: 1 });
    expect(again.map((r) => r.key)).toEqual(['dev1']);
    expect(restored.position).toBe(2);

    // the record itself: not a tombstone, and only its own group's
    const read: LogRecord[] = [];
    for await (const records of log.read(TOPICS.deltas, 0, { from: 1, to: 2 })) read.push(...records);
    expect(read[0]).toMatchObject({ key: CHECKPOINT_KEY, headers: { 'twinlog-snapshots-position': '1' } });
    expect(read[0]?.value).not.toBeNull();
    expect([checkpointOf(read[0]!, 'g'), checkpointOf(read[0]!, 'other')]).toEqual([1, undefined]);
    await log.close();
  });
});
