import { describe, expect, it } from 'vitest';
import { positionsOfResult } from './trackWrites.ts';
import {
  createAckedWrites,
  createIndexedReader,
  createReadPath,
  type InputPosition,
  type TwinIndex,
  type TwinReader,
} from './twinReader.ts';

const at = (partition: number, offset: number, topic = 'twin.backend'): InputPosition => ({ topic, partition, offset });

describe('createAckedWrites', () => {
  it('keeps the latest position per topic and partition of a device', () => {
    const acked = createAckedWrites();
    acked.note('a', [at(0, 5), at(0, 3, 'twin.device')]);
    acked.note('a', [at(0, 4), at(0, 9, 'twin.device')]);
    expect(acked.positionsOf('a')).toEqual([at(0, 5), at(0, 9, 'twin.device')]);
    expect(acked.positionsOf('b')).toEqual([]);
  });

  it('is bounded: the least recently written devices are folded into a floor every read then reflects', () => {
    const acked = createAckedWrites({ maxDevices: 3 });
    for (let i = 0; i < 1000; i++) acked.note(`d${i}`, [at(i % 2, i)]);
    expect(acked.size()).toBe(3);
    // d0..d996 were forgotten: their highest positions per partition (996 on 0, 995 on 1) remain as the floor
    expect(acked.positionsOf('never-written')).toEqual([at(0, 996), at(1, 995)]);
    expect(acked.positionsOf('d999')).toEqual([at(0, 996), at(1, 999)]);
    // a device written again moves to the back and is kept
    acked.note('d997', [at(1, 2000)]);
    acked.note('x', [at(0, 1)]);
    acked.note('y', [at(0, 2)]);
    expect(acked.size()).toBe(3);
    expect(acked.positionsOf('d997')).toEqual([at(0, 998), at(1, 2000)]); // d998 and d999 were forgotten meanwhile
  });
});

describe('positionsOfResult', () => {
  it('reads receipts, accepted decisions, and nothing from refusals and duplicates', () => {
    expect(positionsOfResult({ id: { writer: 'w', seq: 1 }, topic: 'twin.device', partition: 2, offset: 7 })).toEqual([
      at(2, 7, 'twin.device'),
    ]);
    expect(positionsOfResult([at(1, 1), at(1, 2)])).toEqual([at(1, 1), at(1, 2)]);
    expect(positionsOfResult({ accepted: true, changes: [{ source: at(3, 4) }, { source: at(3, 5) }] })).toEqual([
      at(3, 4),
      at(3, 5),
    ]);
    expect(positionsOfResult({ accepted: true, duplicateOf: { writer: 'w', seq: 1 }, changes: [] })).toEqual([]);
    expect(positionsOfResult({ accepted: false, code: 'PRECONDITION_FAILED' })).toEqual([]);
    expect(positionsOfResult(undefined)).toEqual([]);
  });
});

describe('createIndexedReader', () => {
  const twin = (version: number) => ({
    deviceId: 'a',
    etag: `e${version}`,
    version,
    status: 'enabled',
    tags: {},
    properties: { desired: {}, reported: {} },
  });

  it('waits for positions and versions in the index; a miss is DEVICE_NOT_FOUND', async () => {
    let doc: Record<string, unknown> | undefined = twin(1);
    const listeners = new Set<(u: { upserted: readonly string[]; removed: readonly string[] }) => void>();
    const waited: InputPosition[][] = [];
    const index: TwinIndex = {
      getTwin: (id) => (id === 'a' ? doc : undefined),
      waitFor: async (t) => {
        waited.push([...t]);
      },
      onUpdate: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    };
    const fallback: TwinReader = { getTwin: () => Promise.reject(new Error('not used')) };
    const acked = createAckedWrites();
    const reader = createReadPath(createIndexedReader(index, { fallback }), acked);
    expect((await reader.getTwin('a')).version).toBe(1);
    expect(waited).toEqual([]); // nothing written: one lookup
    acked.note('a', [at(0, 10)]);
    await reader.getTwin('a');
    expect(waited).toEqual([[at(0, 10)]]);

    const later = reader.getTwin('a', { minVersion: 3 });
    doc = twin(3);
    for (const l of listeners) l({ upserted: ['a'], removed: [] });
    expect((await later).version).toBe(3);
    expect(listeners.size).toBe(0);
    await expect(reader.getTwin('b')).rejects.toMatchObject({ code: 'DEVICE_NOT_FOUND' });
  });

  it('falls back when the index rejects the wait (stopped) or the version does not come', async () => {
    const index: TwinIndex = {
      getTwin: () => twin(1),
      waitFor: () => Promise.reject(new Error('stopped')),
      onUpdate: () => () => {},
    };
    const fallback: TwinReader = { getTwin: async () => twin(9) as never };
    const reader = createIndexedReader(index, { fallback, waitMs: 20 });
    expect((await reader.getTwin('a', { after: [at(0, 1)] })).version).toBe(9);
    expect((await reader.getTwin('a', { minVersion: 5 })).version).toBe(9);
    expect((await reader.getTwin('a')).version).toBe(1);
  });
});
