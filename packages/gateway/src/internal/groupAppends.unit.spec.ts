import { createInMemoryLog } from '@twinlog/core/testing';
import type { AppendRecord, AppendResult, Log } from '@twinlog/core';
import { describe, expect, it } from 'vitest';
import { groupAppends } from './groupAppends.ts';

const rec = (key: string): AppendRecord => ({ key, value: new TextEncoder().encode(key), partition: 0 });

describe('groupAppends', () => {
  it('coalesces the appends made while one is in flight, in call order, each caller getting its own offsets', async () => {
    const inner = createInMemoryLog({ now: () => 0 });
    await inner.ensureTopics([{ name: 't', partitions: 1 }]);
    const calls: number[] = [];
    const counting: Log = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'append') {
          return (topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]> => {
            calls.push(records.length);
            return target.append(topic, records);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const log = groupAppends(counting);
    const results = await Promise.all([
      log.append('t', [rec('a')]),
      log.append('t', [rec('b'), rec('c')]),
      log.append('t', [rec('d')]),
    ]);
    expect(results.map((r) => r.map((x) => x.offset))).toEqual([[0], [1, 2], [3]]);
    expect(calls).toEqual([1, 3]); // the first alone, the rest grouped while it was in flight
    const keys: string[] = [];
    for await (const batch of log.read('t', 0, { from: 0, to: 4 })) keys.push(...batch.map((r) => r.key));
    expect(keys).toEqual(['a', 'b', 'c', 'd']);
    await log.close();
  });

  it('fails every caller of a failed group and keeps working', async () => {
    const log = groupAppends(createInMemoryLog({ now: () => 0 }));
    await expect(log.append('missing', [rec('a')])).rejects.toMatchObject({ code: 'LOG_TOPIC_NOT_FOUND' });
    await log.ensureTopics([{ name: 'missing', partitions: 1 }]);
    expect(await log.append('missing', [rec('a')])).toEqual([{ partition: 0, offset: 0 }]);
    await log.close();
  });
});
