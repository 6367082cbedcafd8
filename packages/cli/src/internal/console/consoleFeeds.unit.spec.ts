import { encodeOutputRecord } from '@twinlog/codec';
import { delta } from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { CHECKPOINT_KEY, ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { afterEach, describe, expect, it } from 'vitest';
import { followDeltas, problemsOf, type DeltaBoard } from './consoleFeeds.ts';

const source = { topic: TOPICS.backend, partition: 0, offset: 0 };

async function openLog() {
  let now = 1_000;
  const log = createInMemoryLog({ now: () => (now += 10) });
  await ensureTwinTopics(log, 2);
  return log;
}

describe('what the console reads from the output topics', () => {
  let board: DeltaBoard | undefined;
  afterEach(async () => {
    await board?.stop();
    board = undefined;
  });

  it("a device's rejections and dead letters, oldest first, and no one else's", async () => {
    const log = await openLog();
    const rejection = (deviceId: string, code: string) =>
      encodeOutputRecord({
        kind: 'rejection',
        v: 1,
        deviceId,
        code,
        message: `${code} for ${deviceId}`,
        id: { writer: 'w', seq: 1 },
        source,
      });
    await log.append(TOPICS.rejections, [
      { key: 'dev1', value: rejection('dev1', 'PRECONDITION_FAILED') },
      { key: 'dev2', value: rejection('dev2', 'EVENT_LATE') },
    ]);
    await log.append(TOPICS.deadLetter, [
      {
        key: 'dev1',
        value: encodeOutputRecord({
          kind: 'dead-letter',
          v: 1,
          key: 'dev1',
          code: 'CODEC_BAD_DATA',
          message: 'not msgpack',
          bytes: new Uint8Array([1]),
          source,
        }),
      },
      { key: 'dev1', value: new Uint8Array([0xc1]) }, // undecodable itself: left out
    ]);
    const problems = await problemsOf(log, 'dev1');
    expect(problems.map((p) => [p.kind, p.code])).toEqual([
      ['rejection', 'PRECONDITION_FAILED'],
      ['dead-letter', 'CODEC_BAD_DATA'],
    ]);
    expect(problems[0]).toMatchObject({ message: 'PRECONDITION_FAILED for dev1', id: { writer: 'w', seq: 1 }, source });
    expect(await problemsOf(log, 'nobody')).toEqual([]);
  });

  it("keeps every device's latest delta and the fleet's totals, and forgets a deleted one", async () => {
    const log = await openLog();
    const twin = (deviceId: string, desired: Record<string, number>, reported: Record<string, number>) => ({
      deviceId,
      properties: { desired: { ...desired, $version: 2 }, reported: { ...reported, $version: 2 } },
    });
    const record = (d: ReturnType<typeof delta>) =>
      encodeOutputRecord({ kind: 'delta', v: 1, deviceId: d.deviceId, delta: d, source });
    await log.append(TOPICS.deltas, [
      { key: 'a', value: record(delta(twin('a', { x: 1, y: 2 }, {}))) },
      { key: 'b', value: record(delta(twin('b', { x: 1 }, { x: 1 }))) },
      { key: 'a', value: record(delta(twin('a', { x: 1, y: 2 }, { x: 1 }))) },
      { key: 'c', value: record(delta(twin('c', { z: 1 }, {}))) },
      { key: 'c', value: null },
      // the reconciler's checkpoint (docs/formats.md, "Reconciler checkpoints"): not a device
      { key: CHECKPOINT_KEY, partition: 0, value: Uint8Array.of(0xc0), headers: { 'twinlog-snapshots-position': '5' } },
    ]);
    board = followDeltas(log, { pollIntervalMs: 5, onError: (e) => expect.fail(String(e)) });
    await board.caughtUp(5_000);
    expect(board.get('a')).toMatchObject({ counts: { converged: 1, pending: 1 }, converged: false });
    expect(board.get('c')).toBeUndefined();
    expect(board.get(CHECKPOINT_KEY)).toBeUndefined();
    expect(board.totals()).toEqual({
      entries: { pending: 1, acknowledged: 0, rejected: 0, converged: 2, stale: 0 },
      converged: 1,
      notConverged: 1,
    });
  });
});
