/**
 * A projector with worker threads writes what one without writes: the same change records per
 * partition, byte for byte and in order, and the same final state of every twin
 * (docs/write-path.md, "Both cores").
 */
import { decodeOutputRecord, encodeEvent } from '@twinlog/codec';
import type { Log } from '@twinlog/core';
import { createInMemoryLog } from '@twinlog/core/testing';
import { describe, expect, it } from 'vitest';
import { benchEvents } from '../../../../bench/workload.ts';
import { ensureTwinTopics, startProjector, TOPICS } from '../index.ts';
import { CHECKPOINT_KEY } from '../topics.ts';
import { packAppends, packRecords, unpackAppends, unpackLogRecords } from './packedRecords.ts';

const PARTITIONS = 4;

async function project(workers: number): Promise<{ changes: string[][]; states: Map<string, string> }> {
  const day = new Date();
  day.setUTCHours(0, 0, 0, 0);
  // one append time for both runs: the GC horizon in the states derives from it
  const log = createInMemoryLog({ now: () => day.getTime() + 60_000 });
  await ensureTwinTopics(log, PARTITIONS);
  const backend: { key: string; value: Uint8Array }[] = [];
  const device: { key: string; value: Uint8Array }[] = [];
  for (const e of benchEvents({ events: 6_000, devices: 300, startWall: day.getTime() })) {
    (e.section === 'reported' ? device : backend).push({ key: e.deviceId, value: encodeEvent(e) });
  }
  await log.append(TOPICS.backend, backend);
  await log.append(TOPICS.device, device);
  const projector = await startProjector({ log, physicalNow: () => Date.now(), workers });
  try {
    await caughtUp(log);
  } finally {
    await projector.stop();
  }
  const changes: string[][] = [];
  const states = new Map<string, string>();
  for (let p = 0; p < PARTITIONS; p++) {
    const mine: string[] = [];
    for await (const records of log.read(TOPICS.changes, p, { from: 0 }))
      for (const r of records) mine.push(Buffer.from(r.value!).toString('hex'));
    changes.push(mine);
    for await (const records of log.read(TOPICS.snapshots, p, { from: 0 })) {
      for (const r of records)
        if (r.key !== CHECKPOINT_KEY && r.value !== null)
          states.set(r.key, JSON.stringify(decodeOutputRecord(r.value, 'snapshot').state));
    }
  }
  await log.close();
  return { changes, states };
}

async function caughtUp(log: Log): Promise<void> {
  for (;;) {
    let done = true;
    for (const topic of [TOPICS.backend, TOPICS.device]) {
      const [ends, committed] = await Promise.all([
        log.endOffsets(topic),
        log.committedOffsets('twinlog-projector', topic),
      ]);
      if (ends.some((e, p) => (committed[p] ?? 0) < e)) done = false;
    }
    if (done) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('projector worker threads', () => {
  it(
    'write the same change records and final states as the projector without workers',
    { timeout: 60_000 },
    async () => {
      const plain = await project(0);
      const threaded = await project(2);
      expect(plain.changes.flat().length).toBe(6_000); // every event applied once
      expect(threaded.changes).toEqual(plain.changes);
      expect(threaded.states).toEqual(plain.states);
    },
  );

  it('packing keeps keys, values (null too), offsets, timestamps and partitions', () => {
    const records = [
      {
        topic: 't',
        partition: 1,
        offset: 7,
        key: 'a',
        value: new Uint8Array([1, 2, 3]),
        timestamp: 1_700_000_000_123,
        headers: {},
      },
      { topic: 't', partition: 1, offset: 9, key: 'b', value: null, timestamp: 5, headers: {} },
      {
        topic: 't',
        partition: 1,
        offset: 10,
        key: 'c',
        value: new Uint8Array(new ArrayBuffer(16), 4, 2).fill(9),
        timestamp: 6,
        headers: {},
      },
    ];
    expect(
      unpackLogRecords(packRecords(records), 't', 1).map((r) => ({
        ...r,
        value: r.value === null ? null : [...r.value],
      })),
    ).toEqual(records.map((r) => ({ ...r, value: r.value === null ? null : [...r.value] })));
    const appends = [
      {
        topic: 'x',
        records: [
          { key: 'k', value: new Uint8Array([4]), partition: 2 },
          { key: 'l', value: new Uint8Array([5, 6]) },
        ],
      },
    ];
    expect(
      unpackAppends(packAppends(appends)).map((a) => a.records.map((r) => ({ ...r, value: [...r.value!] }))),
    ).toEqual([
      [
        { key: 'k', value: [4], partition: 2 },
        { key: 'l', value: [5, 6] },
      ],
    ]);
  });
});
