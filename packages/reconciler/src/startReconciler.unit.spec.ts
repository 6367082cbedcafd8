/**
 * The reconciler stage over the in-memory log, fed by a real projector and written to through the
 * client: emits on change only, idempotent across restart and replay, pending → converged, stale
 * after the configured time on a fake clock.
 */
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { decodeOutputRecord } from '@twinlog/codec';
import type { DeltaState, Log } from '@twinlog/core';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SOURCE_OFFSET_HEADER } from './internal/reconcilerPartition.ts';
import { startReconciler, type Reconciler, type ReconcilerOptions } from './startReconciler.ts';

const STALE_MS = 60_000;
let time: number;
const now = (): number => time;
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
const running: Reconciler[] = [];

beforeEach(async () => {
  time = 1_750_000_000_000;
  log = createInMemoryLog({ now });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: now, settleIntervalMs: 10 });
  client = createTwinClient({ log, physicalNow: now, actor: 'test', pollIntervalMs: 2 });
});

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await client.close();
  await projector.stop();
  await log.close();
});

async function start(options: Partial<ReconcilerOptions> = {}): Promise<Reconciler> {
  const r = await startReconciler({
    log,
    physicalNow: now,
    staleAfterMs: STALE_MS,
    sweepIntervalMs: 3_600_000,
    ...options,
  });
  running.push(r);
  return r;
}

async function stop(r: Reconciler): Promise<void> {
  running.splice(running.indexOf(r), 1);
  await r.stop();
}

/** Wait until `group` has consumed every snapshot. */
async function settled(group = 'twinlog-reconciler', l: Log = log): Promise<void> {
  await expect
    .poll(async () => {
      const [end, committed] = await Promise.all([
        l.endOffsets(TOPICS.snapshots),
        l.committedOffsets(group, TOPICS.snapshots),
      ]);
      return end.every((e, p) => e === 0 || committed[p] === e);
    })
    .toBe(true);
}

interface Emitted {
  readonly deviceId: string;
  readonly delta: DeltaState | null;
  readonly source: number;
}

/** Everything on twin.deltas for a device, in order. */
async function emitted(deviceId: string): Promise<Emitted[]> {
  const out: Emitted[] = [];
  const ends = await log.endOffsets(TOPICS.deltas);
  for (let p = 0; p < ends.length; p++) {
    for await (const records of log.read(TOPICS.deltas, p, { from: 0 })) {
      for (const r of records) {
        if (r.key !== deviceId) continue;
        if (r.value === null) out.push({ deviceId, delta: null, source: Number(r.headers[SOURCE_OFFSET_HEADER]) });
        else {
          const d = decodeOutputRecord(r.value, 'delta');
          out.push({ deviceId, delta: d.delta, source: d.source.offset });
        }
      }
    }
  }
  return out;
}

const statuses = (d: DeltaState | null | undefined): string[] =>
  (d?.entries ?? []).map((e) => `${e.path.join('.')}:${e.status}`);

describe('startReconciler', () => {
  it('emits when a device’s delta changes, and only then; pending → converged', async () => {
    const reconciler = await start();
    await client.createDevice('dev1', { wait: true });
    await settled();
    let all = await emitted('dev1');
    expect(all).toHaveLength(1);
    expect(all[0]!.delta).toMatchObject({ deviceId: 'dev1', entries: [], converged: true });

    // a tags write makes a new snapshot but leaves the delta as it was
    await client.mergeTags('dev1', { site: 'a' }, { wait: true });
    await settled();
    expect(await emitted('dev1')).toHaveLength(1);

    await client.mergeDesired('dev1', { fw: '2.0', mode: 'eco' }, { wait: true });
    await settled();
    all = await emitted('dev1');
    expect(all).toHaveLength(2);
    expect(statuses(all[1]!.delta)).toEqual(['fw:pending', 'mode:pending']);
    expect(all[1]!.delta?.converged).toBe(false);

    await client.mergeReported('dev1', { fw: '2.0' }, { wait: true });
    await settled();
    all = await emitted('dev1');
    expect(statuses(all.at(-1)!.delta)).toEqual(['fw:converged', 'mode:pending']);

    await client.mergeReported('dev1', { mode: { value: 'eco', ac: 200, av: 2 } }, { wait: true });
    await settled();
    all = await emitted('dev1');
    expect(all).toHaveLength(4);
    expect(statuses(all.at(-1)!.delta)).toEqual(['fw:converged', 'mode:converged']);
    expect(all.at(-1)!.delta?.converged).toBe(true);
    expect(reconciler.deltaOf('dev1')).toEqual(all.at(-1)!.delta);

    // the feed of the client sees the same records
    const feed = client.deltas({ from: 'earliest', deviceId: 'dev1' });
    const seen: DeltaState[] = [];
    for await (const d of feed) if (seen.push(d.delta) === 4) break;
    expect(seen).toEqual(all.map((e) => e.delta));
  });

  it('restart, redelivery and a replay from the earliest offset emit nothing twice', async () => {
    const first = await start();
    await client.createDevice('dev1', { wait: true });
    await client.createDevice('dev2', { wait: true });
    await client.mergeDesired('dev1', { fw: '1' }, { wait: true });
    await client.mergeReported('dev1', { fw: '1' }, { wait: true });
    await client.deleteDevice('dev2', { wait: true });
    await settled();
    const dev1 = await emitted('dev1');
    const dev2 = await emitted('dev2');
    expect(dev2.map((e) => e.delta === null)).toEqual([false, true]); // created, then a tombstone
    await stop(first);

    // another process, same group: resumes from the committed offsets
    const other = log.connect();
    const second = await startReconciler({ log: other, physicalNow: now, staleAfterMs: STALE_MS });
    running.push(second);
    await settled();
    // a new group replays every snapshot from offset 0 against the restored deltas
    const replay = await start({ group: 'replay' });
    await settled('replay');
    expect(await emitted('dev1')).toEqual(dev1);
    expect(await emitted('dev2')).toEqual(dev2);
    expect(replay.deltaOf('dev1')).toEqual(dev1.at(-1)!.delta);
    await stop(replay);

    // and the restarted one still reconciles new writes
    await client.mergeDesired('dev1', { fw: '2' }, { wait: true });
    await settled();
    expect(statuses((await emitted('dev1')).at(-1)!.delta)).toEqual(['fw:pending']);
    expect(await emitted('dev1')).toHaveLength(dev1.length + 1);
    await stop(second);
    await other.close();
  });

  it('stale after staleAfterMs without a new snapshot, on the fake clock; once', async () => {
    const reconciler = await start();
    await client.createDevice('dev1', { wait: true });
    await client.mergeDesired('dev1', { fw: '2.0' }, { wait: true });
    await settled();
    expect(statuses(reconciler.deltaOf('dev1'))).toEqual(['fw:pending']);

    time += STALE_MS - 1;
    expect(await reconciler.sweep()).toBe(0);
    time += 1;
    expect(await reconciler.sweep()).toBe(1);
    expect(await reconciler.sweep()).toBe(0);
    let all = await emitted('dev1');
    expect(statuses(all.at(-1)!.delta)).toEqual(['fw:stale']);
    expect(all.at(-1)!.delta?.counts).toMatchObject({ pending: 0, stale: 1 });
    expect(all.at(-1)!.source).toBe(all.at(-2)!.source); // same snapshot, later time

    // a new snapshot that leaves the entry stale says nothing new
    await client.mergeTags('dev1', { site: 'b' }, { wait: true });
    await settled();
    expect(await emitted('dev1')).toHaveLength(all.length);

    // a restart restores the stale delta: its sweep emits nothing
    await stop(reconciler);
    const again = await start();
    await settled();
    expect(await again.sweep()).toBe(0);
    expect(await emitted('dev1')).toHaveLength(all.length);

    await client.mergeReported('dev1', { fw: '2.0' }, { wait: true });
    await settled();
    all = await emitted('dev1');
    expect(statuses(all.at(-1)!.delta)).toEqual(['fw:converged']);
  });

  it('the periodic sweep marks entries stale by itself', async () => {
    const reconciler = await start({ sweepIntervalMs: 5 });
    await client.createDevice('dev1', { wait: true });
    await client.mergeDesired('dev1', { fw: '2.0' }, { wait: true });
    await settled();
    time += STALE_MS;
    await expect.poll(() => statuses(reconciler.deltaOf('dev1'))).toEqual(['fw:stale']);
    await expect.poll(async () => statuses((await emitted('dev1')).at(-1)?.delta)).toEqual(['fw:stale']);
  });

  it('without staleAfterMs nothing is ever stale', async () => {
    const reconciler = await start({ staleAfterMs: undefined });
    await client.createDevice('dev1', { wait: true });
    await client.mergeDesired('dev1', { fw: '2.0' }, { wait: true });
    await settled();
    time += 365 * 86_400_000;
    expect(await reconciler.sweep()).toBe(0);
    expect(statuses(reconciler.deltaOf('dev1'))).toEqual(['fw:pending']);
  });
});
