import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTwinlogError, type LogRecord } from '@twinlog/core';
import { runLogAcceptanceSuite } from '@twinlog/core/testing';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createEmbeddedLog, type EmbeddedLog } from './createEmbeddedLog.ts';

const dir = mkdtempSync(join(tmpdir(), 'twinlog-embedded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// One file for the suite, as one broker: every setup() is another client of it.
const suitePath = join(dir, 'suite.db');
runLogAcceptanceSuite('embedded (SQLite)', async () => ({
  log: createEmbeddedLog({ path: suitePath }),
  now: () => Date.now(),
  clockToleranceMs: 0,
}));

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));

async function readAll(log: EmbeddedLog, topic: string, partition: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const b of log.read(topic, partition, { from: 0 })) out.push(...b);
  return out;
}

describe('createEmbeddedLog specifics', () => {
  let n = 0;
  const fresh = (): string => join(dir, `specific-${++n}.db`);

  it('opens the file in WAL mode and keeps records, offsets and fences across reopening', async () => {
    const path = fresh();
    const log = createEmbeddedLog({ path, now: () => 1_000 });
    await log.ensureTopics([{ name: 't', partitions: 2 }]);
    await log.commitBatch({
      fence: 'f',
      appends: [{ topic: 't', records: [{ key: 'k', value: bytes('v'), headers: { h: 'x' } }] }],
      offsets: [{ group: 'g', topic: 't', partition: 1, offset: 7 }],
    });
    await log.close();

    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();

    const again = createEmbeddedLog({ path, now: () => 500 });
    const p = (await again.append('t', [{ key: 'k', value: null }]))[0]!.partition;
    const records = await readAll(again, 't', p);
    expect(records.map((r) => [r.offset, text(r.value), r.timestamp, { ...r.headers }])).toEqual([
      [0, 'v', 1_000, { h: 'x' }],
      [1, null, 1_000, {}], // the clock went back: append times never do within a partition
    ]);
    expect(await again.committedOffsets('g', 't')).toEqual([undefined, 7]);
    // A new client takes the fence over; the zombie of the old one could not commit.
    await again.commitBatch({ fence: 'f', appends: [] });
    await again.close();
  });

  it('rejects a fenced commit atomically: no record, no offset', async () => {
    const path = fresh();
    const older = createEmbeddedLog({ path });
    const newer = createEmbeddedLog({ path });
    await older.ensureTopics([{ name: 't', partitions: 1 }]);
    await older.commitBatch({ fence: 'f', appends: [] });
    await newer.commitBatch({ fence: 'f', appends: [] });
    const error = await older
      .commitBatch({
        fence: 'f',
        appends: [{ topic: 't', records: [{ key: 'k', value: null }] }],
        offsets: [{ group: 'g', topic: 't', partition: 0, offset: 1 }],
      })
      .catch((e: unknown) => e);
    expect(isTwinlogError(error, 'LOG_FENCED')).toBe(true);
    expect(await newer.endOffsets('t')).toEqual([0]);
    expect(await newer.committedOffsets('g', 't')).toEqual([undefined]);
    await older.close();
    await newer.close();
  });

  it('compact() keeps the latest record per key, tombstones included, without renumbering', async () => {
    const path = fresh();
    const log = createEmbeddedLog({ path });
    await log.ensureTopics([
      { name: 'snap', partitions: 1, compacted: true },
      { name: 'plain', partitions: 1 },
    ]);
    await log.append('snap', [
      { key: 'a', value: bytes('a1') },
      { key: 'b', value: bytes('b1') },
      { key: 'a', value: bytes('a2') },
      { key: 'b', value: null },
      { key: 'c', value: bytes('c1') },
    ]);
    expect(await log.compact()).toBe(2);
    expect((await readAll(log, 'snap', 0)).map((r) => [r.offset, r.key, text(r.value)])).toEqual([
      [2, 'a', 'a2'],
      [3, 'b', null],
      [4, 'c', 'c1'],
    ]);
    expect(await log.endOffsets('snap')).toEqual([5]);
    const [next] = await log.append('snap', [{ key: 'a', value: bytes('a3') }]);
    expect(next?.offset).toBe(5);
    expect(await log.compact('snap')).toBe(1);
    // A read over a fully compacted range still ends.
    const ranged: LogRecord[] = [];
    for await (const b of log.read('snap', 0, { from: 0, to: 2 })) ranged.push(...b);
    expect(ranged).toEqual([]);
    await expect(log.compact('plain')).rejects.toSatisfy((e) => isTwinlogError(e, 'LOG_ARGUMENT_INVALID'));
    await log.close();
  });

  it('rejects topic names Kafka would refuse, and calls on a closed log', async () => {
    const log = createEmbeddedLog({ path: fresh() });
    await expect(log.ensureTopics([{ name: 'bad name', partitions: 1 }])).rejects.toSatisfy((e) =>
      isTwinlogError(e, 'LOG_ARGUMENT_INVALID'),
    );
    await expect(log.ensureTopics([{ name: 't', partitions: 0 }])).rejects.toSatisfy((e) =>
      isTwinlogError(e, 'LOG_ARGUMENT_INVALID'),
    );
    await log.close();
    await expect(log.endOffsets('t')).rejects.toSatisfy((e) => isTwinlogError(e, 'LOG_CLOSED'));
  });
});
