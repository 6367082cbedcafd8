/**
 * The embedded log across real processes: a writer SIGKILLed at random instants leaves a prefix of
 * whole transactions; another process's appends reach this process's subscribers (polling); a
 * group consumed by a live process is refused, and taken over once that process is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { isTwinlogError, type LogRecord } from '@twinlog/core';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createEmbeddedLog, type EmbeddedLog } from './createEmbeddedLog.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const FIXTURE = join(import.meta.dirname, 'embeddedLogChild.fixture.ts');
const dir = mkdtempSync(join(tmpdir(), 'twinlog-embedded-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Child {
  readonly process: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly exited: Promise<unknown>;
}

const children: Child[] = [];
const logs: EmbeddedLog[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
    await c.exited;
  }
  await Promise.allSettled(logs.splice(0).map((l) => l.close()));
});

function child(...args: string[]): Child {
  const p = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', FIXTURE, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: p.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  const c = { process: p, lines, exited: once(p, 'exit') };
  children.push(c);
  return c;
}

async function kill(c: Child): Promise<void> {
  c.process.kill('SIGKILL');
  await c.exited;
}

function open(path: string): EmbeddedLog {
  const log = createEmbeddedLog({ path });
  logs.push(log);
  return log;
}

async function readAll(log: EmbeddedLog, topic: string, partition: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const b of log.read(topic, partition, { from: 0 })) out.push(...b);
  return out;
}

const waitFor = <T>(check: () => T): Promise<T> => vi.waitFor(check, { timeout: 30_000, interval: 20 });

describe('embedded log across processes', () => {
  it(
    'a writer killed at random instants leaves whole batches, dense offsets and matching group offsets',
    { timeout: 120_000 },
    async () => {
      const path = join(dir, 'crash.db');
      const seed = Date.now();
      let state = seed >>> 0;
      const rnd = (): number => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state / 2 ** 32;
      };
      console.log(`embedded crash test: seed ${seed}`);
      let previousBatches = 0;
      for (let round = 0; round < 4; round++) {
        const writer = child('writer', path);
        await waitFor(() => expect(writer.lines.length).toBeGreaterThan(0));
        await new Promise((r) => setTimeout(r, 30 + Math.floor(rnd() * 300)));
        await kill(writer);

        const db = new Database(path, { readonly: true });
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        db.close();

        const log = open(path);
        const committed = (await log.committedOffsets('crash', 'crash-a'))[0] ?? 0;
        expect(committed).toBeGreaterThan(previousBatches); // every round commits, and nothing went back
        previousBatches = committed;
        const perBatch = new Map<number, number>();
        for (const [topic, partitions] of [
          ['crash-a', 4],
          ['crash-b', 4],
          ['crash-c', 2],
        ] as const) {
          const ends = await log.endOffsets(topic);
          const cBatches: number[] = [];
          for (let p = 0; p < partitions; p++) {
            const records = await readAll(log, topic, p);
            expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => i)); // dense from 0
            expect(ends[p]).toBe(records.length);
            for (const r of records) {
              const batch = Number(r.headers['batch']);
              if (topic === 'crash-c') cBatches.push(batch);
              else perBatch.set(batch, (perBatch.get(batch) ?? 0) + 1);
            }
          }
          if (topic === 'crash-c') {
            // A plain append follows each commit: one per committed batch, no duplicate, except
            // at most one per kill (between a commit and its append).
            expect(new Set(cBatches).size).toBe(cBatches.length);
            expect(cBatches.every((b) => b >= 0 && b < committed)).toBe(true);
            expect(cBatches.length).toBeGreaterThanOrEqual(committed - (round + 1));
          }
        }
        // No torn batch: every batch has its 5 records, batches are exactly 0..committed-1.
        expect([...perBatch.keys()].sort((x, y) => x - y)).toEqual(Array.from({ length: committed }, (_, i) => i));
        for (const [batch, count] of perBatch) expect(count, `batch ${batch}`).toBe(5);
        await log.close();
      }
      console.log(`embedded crash test: ${previousBatches} whole batches over 4 kills`);
    },
  );

  it("another process's appends reach this process's subscriber", { timeout: 60_000 }, async () => {
    const path = join(dir, 'poll.db');
    const log = open(path);
    await log.ensureTopics([{ name: 'remote', partitions: 3 }]);
    const received: string[] = [];
    const sub = await log.subscribe({
      group: 'local',
      topics: ['remote'],
      eachBatch: async (b) => {
        received.push(...b.records.map((r) => r.key));
      },
    });
    const appender = child('appender', path, 'remote', '40');
    await waitFor(() => expect(received.length).toBe(40));
    await appender.exited;
    expect(new Set(received).size).toBe(40);
    await sub.stop();
  });

  it(
    'a group consumed by a live process is refused with LOG_GROUP_BUSY, and taken over once it dies',
    { timeout: 60_000 },
    async () => {
      const path = join(dir, 'lease.db');
      const log = open(path);
      await log.ensureTopics([{ name: 'leased', partitions: 2 }]);
      const holder = child('subscriber', path, 'busy', 'leased');
      await waitFor(() => expect(holder.lines).toContainEqual(expect.objectContaining({ subscribed: 'busy' })));
      const refused = await log
        .subscribe({ group: 'busy', topics: ['leased'], eachBatch: async () => undefined })
        .catch((e: unknown) => e);
      expect(isTwinlogError(refused, 'LOG_GROUP_BUSY')).toBe(true);
      expect((refused as { canRetry: boolean }).canRetry).toBe(true);
      // Other groups are free meanwhile.
      const other = await log.subscribe({ group: 'free', topics: ['leased'], eachBatch: async () => undefined });
      await other.stop();

      await kill(holder);
      const assigned: number[] = [];
      const taken = await log.subscribe({
        group: 'busy',
        topics: ['leased'],
        onAssign: async (ps) => {
          assigned.push(...ps);
        },
        eachBatch: async () => undefined,
      });
      await waitFor(() => expect(assigned.sort()).toEqual([0, 1]));
      await taken.stop();
      // Stopping the last member gives the lease back: the group is free for another process.
      const db = new Database(path, { readonly: true });
      expect(db.prepare("SELECT COUNT(*) FROM group_leases WHERE grp = 'busy'").pluck().get()).toBe(0);
      db.close();
    },
  );
});
