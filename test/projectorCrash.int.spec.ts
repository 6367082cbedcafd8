/**
 * Crash and scale: real projector processes on a real log (Kafka broker and embedded SQLite), killed
 * with SIGKILL at random moments and restarted; and three instances in one group (one with worker threads) through rebalances
 * mid-stream. At the end every snapshot must equal a clean replay byte for byte, and the change
 * feed must hold exactly one record per applied event (nothing lost, nothing applied twice).
 *
 * Scale is set by CRASH_EVENTS / CRASH_DEVICES (defaults 100,000 over 2,000).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeEvent } from '@twinlog/codec';
import { createHybridClock, type AppendRecord, type Log, type Patch } from '@twinlog/core';
import { ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { cleanReplay, latestSnapshots, readAll, waitFor } from '@twinlog/projector/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openLog, targetEnv, type LogTarget } from './support/openLog.ts';
import { seededRandom } from '@twinlog/core/testing';

const EVENTS = Number(process.env['CRASH_EVENTS'] ?? 100_000);
const DEVICES = Number(process.env['CRASH_DEVICES'] ?? 2_000);
const PARTITIONS = 4;
const ROOT = join(import.meta.dirname, '..');

/** The workload as chunks of encoded records per input topic. */
function workload(seed: number): { backend: AppendRecord[]; device: AppendRecord[] }[] {
  const rnd = seededRandom(seed);
  const clock = createHybridClock({ physicalNow: () => Date.now() });
  let seq = 0;
  const chunks: { backend: AppendRecord[]; device: AppendRecord[] }[] = [];
  let chunk = { backend: [] as AppendRecord[], device: [] as AppendRecord[] };
  const push = (deviceId: string, section: 'create' | 'desired' | 'reported', patch: Patch): void => {
    const e = {
      v: 1,
      id: { writer: `crash-${seed}`, seq: ++seq },
      deviceId,
      section,
      op: 'merge' as const,
      patch,
      stamp: clock.now(),
      actor: 'crash-test',
    };
    (section === 'reported' ? chunk.device : chunk.backend).push({ key: deviceId, value: encodeEvent(e) });
    if (chunk.backend.length + chunk.device.length >= 2_000) {
      chunks.push(chunk);
      chunk = { backend: [], device: [] };
    }
  };
  for (let d = 0; d < DEVICES; d++) push(`dev-${d}`, 'create', {});
  for (let i = DEVICES; i < EVENTS; i++) {
    const patch: Patch = {};
    for (let k = 0; k < 5; k++) {
      const group = (patch[`g${Math.floor(rnd() * 4)}`] ??= {}) as Patch;
      group[`l${Math.floor(rnd() * 8)}`] = rnd() < 0.1 ? null : Math.floor(rnd() * 1000);
    }
    push(`dev-${Math.floor(rnd() * DEVICES)}`, rnd() < 0.5 ? 'desired' : 'reported', patch);
  }
  if (chunk.backend.length + chunk.device.length > 0) chunks.push(chunk);
  return chunks;
}

function spawnProjector(target: LogTarget, group: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(ROOT, 'test/support/projectorProcess.ts')],
    {
      cwd: ROOT,
      env: { ...process.env, ...targetEnv(target), TWINLOG_GROUP: group, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  child.stdout.resume();
  return child;
}

async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

async function caughtUp(log: Log, group: string): Promise<boolean> {
  try {
    for (const topic of [TOPICS.backend, TOPICS.device]) {
      const [ends, committed] = await Promise.all([log.endOffsets(topic), log.committedOffsets(group, topic)]);
      if (ends.some((end, p) => (committed[p] ?? 0) < end)) return false;
    }
    return true;
  } catch (e) {
    console.log(`caught-up check failed, retrying: ${String(e)}`); // e.g. the group coordinator moving during a rebalance
    return false;
  }
}

async function verify(log: Log): Promise<void> {
  const [snapshots, replay] = await Promise.all([latestSnapshots(log), cleanReplay(log)]);
  let compared = 0;
  for (const [id, twin] of replay) {
    if (twin === null) continue;
    expect(snapshots.get(id), id).toBe(twin);
    compared++;
  }
  expect(compared).toBe(DEVICES);
  // exactly one change per applied event: the feed is exactly-once too
  expect((await readAll(log, TOPICS.changes)).length).toBe(EVENTS);
}

const targets: (() => LogTarget)[] = [
  () => ({ kind: 'kafka', where: `crash-${Date.now()}-${Math.floor(Math.random() * 1e6)}.` }),
  () => ({ kind: 'embedded', where: join(mkdtempSync(join(tmpdir(), 'twinlog-crash-')), 'log.db') }),
];

describe.each(targets.map((t) => [t().kind, t] as const))('projector processes on %s', (kind, makeTarget) => {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const c of children) await kill(c, 'SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it(
    `survives SIGKILL at 5 random moments over ${EVENTS} events on ${DEVICES} devices`,
    { timeout: 900_000 },
    async () => {
      const seed = Number(process.env['CRASH_SEED'] ?? Date.now() % 1e9);
      console.log(`crash test on ${kind}: seed ${seed}`);
      const rnd = seededRandom(seed ^ 0x5eed);
      const target = makeTarget();
      if (target.kind === 'embedded') dirs.push(join(target.where, '..'));
      const log = openLog(target);
      try {
        await ensureTwinTopics(log, PARTITIONS);
        const group = 'crash-projector';
        let child = spawnProjector(target, group);
        children.push(child);
        const chunks = workload(seed);
        const killAt = new Set(Array.from({ length: 5 }, () => 1 + Math.floor(rnd() * (chunks.length - 1))));
        while (killAt.size < Math.min(5, chunks.length - 1)) killAt.add(1 + Math.floor(rnd() * (chunks.length - 1)));
        for (let i = 0; i < chunks.length; i++) {
          const { backend, device } = chunks[i]!;
          if (backend.length > 0) await log.append(TOPICS.backend, backend);
          if (device.length > 0) await log.append(TOPICS.device, device);
          if (killAt.has(i)) {
            await new Promise((r) => setTimeout(r, Math.floor(rnd() * 400)));
            await kill(child, 'SIGKILL');
            child = spawnProjector(target, group);
            children.push(child);
          }
        }
        await waitFor(() => caughtUp(log, group), 600_000, 'the projector to consume everything');
        await kill(child, 'SIGTERM');
        await verify(log);
      } finally {
        await log.close();
      }
    },
  );
});

// Scale-out is Kafka's: the embedded log serves one projector process per group and file (a lease),
// so the rebalance scenario runs on the broker only.
describe('projector processes on kafka, scaled out', () => {
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) await kill(c, 'SIGKILL');
  });

  it(
    'three instances in one group (one with worker threads) through rebalances mid-stream',
    { timeout: 900_000 },
    async () => {
      const target = targets[0]!();
      const log = openLog(target);
      try {
        await ensureTwinTopics(log, PARTITIONS);
        const group = 'rebalance-projector';
        const first = spawnProjector(target, group);
        children.push(first);
        const chunks = workload(7);
        const others: ChildProcess[] = [];
        for (let i = 0; i < chunks.length; i++) {
          const { backend, device } = chunks[i]!;
          if (backend.length > 0) await log.append(TOPICS.backend, backend);
          if (device.length > 0) await log.append(TOPICS.device, device);
          // joins move partitions to the newcomers; the first one's death moves them back
          if (i === Math.floor(chunks.length / 4)) others.push(spawnProjector(target, group));
          if (i === Math.floor(chunks.length / 2))
            others.push(spawnProjector(target, group, { TWINLOG_PROJECTOR_WORKERS: '2' }));
          if (i === Math.floor((3 * chunks.length) / 4)) await kill(first, 'SIGKILL');
        }
        children.push(...others);
        await waitFor(() => caughtUp(log, group), 600_000, 'the group to consume everything');
        for (const c of others) await kill(c, 'SIGTERM');
        await verify(log);
      } finally {
        await log.close();
      }
    },
  );
});
