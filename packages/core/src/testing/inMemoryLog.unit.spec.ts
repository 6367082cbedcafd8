import { describe, expect, it, vi } from 'vitest';
import { isTwinlogError } from '../errors.ts';
import type { Batch } from '../log.ts';
import { createInMemoryLog } from './inMemoryLog.ts';
import { runLogAcceptanceSuite } from './runLogAcceptanceSuite.ts';

// One store for the whole file, as one broker serves every test; each `setup()` is a new client.
const shared = createInMemoryLog({ now: () => Date.now() });
runLogAcceptanceSuite('in-memory', async () => ({ log: shared.connect(), now: () => Date.now(), clockToleranceMs: 0 }));

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('createInMemoryLog specifics', () => {
  it('stamps with a logical counter by default (core reads no clock)', async () => {
    const log = createInMemoryLog();
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    await log.append('t', [{ key: 'a', value: null }]);
    await log.append('t', [{ key: 'b', value: null }]);
    const records = [];
    for await (const b of log.read('t', 0, { from: 0 })) records.push(...b);
    expect(records.map((r) => r.timestamp)).toEqual([0, 1]);
  });

  it('copies appended values, so later mutation of the caller’s buffer changes nothing', async () => {
    const log = createInMemoryLog();
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    const value = bytes('abc');
    await log.append('t', [{ key: 'k', value }]);
    value[0] = 0;
    for await (const [r] of log.read('t', 0, { from: 0 })) expect(r?.value?.[0]).toBe(97);
  });

  it('a read whose `to` lies past the end waits for the appends', async () => {
    const log = createInMemoryLog();
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    const keys: string[] = [];
    const reading = (async () => {
      for await (const b of log.read('t', 0, { from: 0, to: 2 })) keys.push(...b.map((r) => r.key));
    })();
    await log.append('t', [{ key: 'x', value: null }]);
    await log.append('t', [
      { key: 'y', value: null },
      { key: 'z', value: null },
    ]);
    await reading;
    expect(keys).toEqual(['x', 'y']);
  });

  it('a closed client rejects with LOG_CLOSED; its sibling stays open', async () => {
    const log = createInMemoryLog();
    const other = log.connect();
    await log.ensureTopics([{ name: 't', partitions: 1 }]);
    await log.close();
    await expect(log.endOffsets('t')).rejects.toSatisfy((e) => isTwinlogError(e, 'LOG_CLOSED'));
    expect(await other.endOffsets('t')).toEqual([0]);
  });

  it('a batch that throws stops its member, whose stop() rejects with the error, and its partitions move', async () => {
    const log = createInMemoryLog();
    await log.ensureTopics([{ name: 't', partitions: 2 }]);
    await log.append('t', [
      { key: 'a', value: null, partition: 0 },
      { key: 'b', value: null, partition: 1 },
    ]);
    const boom = new Error('boom');
    const healthy: Batch[] = [];
    const failing = await log.subscribe({
      group: 'g',
      topics: ['t'],
      eachBatch: async () => {
        throw boom;
      },
    });
    const survivor = await log.connect().subscribe({
      group: 'g',
      topics: ['t'],
      eachBatch: async (b) => {
        healthy.push(b);
      },
    });
    await vi.waitFor(() => expect(new Set(healthy.map((b) => b.partition))).toEqual(new Set([0, 1])));
    await expect(failing.stop()).rejects.toBe(boom);
    await survivor.stop();
  });

  it('members of one group must subscribe to the same topics', async () => {
    const log = createInMemoryLog();
    await log.ensureTopics([
      { name: 'a', partitions: 1 },
      { name: 'b', partitions: 1 },
    ]);
    const s = await log.subscribe({ group: 'g', topics: ['a'], eachBatch: async () => undefined });
    await expect(log.subscribe({ group: 'g', topics: ['a', 'b'], eachBatch: async () => undefined })).rejects.toSatisfy(
      (e) => isTwinlogError(e, 'LOG_ARGUMENT_INVALID'),
    );
    await s.stop();
  });
});
