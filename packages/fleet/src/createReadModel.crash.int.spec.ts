/**
 * The read model killed mid-stream: a child process consumes `twin.snapshots` (small batches) and
 * is SIGKILLed after a seeded number of batches. The file it leaves must match a prefix of the
 * topic exactly — for each partition, the twins are the latest snapshot per device among the
 * records below the stored position — and a restarted read model resumes from there to the same
 * view as a fresh one built from the whole topic.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { decodeOutputRecord, encodeOutputRecord } from '@twinlog/codec';
import {
  applyEvent,
  createHybridClock,
  createTwinState,
  fromStateDoc,
  partitionFor,
  renderTwin,
  toStateDoc,
  twinExists,
  twinVersion,
  type Patch,
  type TwinEvent,
  type TwinState,
} from '@twinlog/core';
import { seededRandom } from '@twinlog/core/testing';
import { createEmbeddedLog, type EmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, TOPICS } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createReadModel, type ReadModel } from './createReadModel.ts';
import { decodeFreshness } from './freshness.ts';

let dir: string;
let log: EmbeddedLog;
const models: ReadModel[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-rm-crash-'));
  log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL' });
  await ensureTwinTopics(log, 4);
});

afterEach(async () => {
  for (const m of models.splice(0)) await m.close();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

/** 2,400 snapshot records: 300 devices written 8 times each in random order, some deleted and re-created. */
async function writeSnapshots(seed: number): Promise<void> {
  const rnd = seededRandom(seed);
  let wall = 1_750_000_000_000;
  const clock = createHybridClock({ physicalNow: () => wall });
  const states = new Map<string, TwinState>();
  let seq = 0;
  const ev = (deviceId: string, section: 'create' | 'delete' | 'tags', patch: Patch = {}): TwinEvent => ({
    v: 1,
    id: { writer: 'crash', seq: ++seq },
    deviceId,
    section,
    op: 'merge' as const,
    patch,
    stamp: clock.now(),
    actor: 'crash',
  });
  const records = [];
  for (let n = 0; n < 2400; n++) {
    wall++;
    const deviceId = `dev-${String(Math.floor(rnd() * 300)).padStart(3, '0')}`;
    let state = states.get(deviceId);
    if (state === undefined) {
      state = createTwinState(deviceId);
      states.set(deviceId, state);
      applyEvent(state, ev(deviceId, 'create'));
    }
    const r = rnd();
    if (r < 0.05) applyEvent(state, ev(deviceId, twinExists(state) ? 'delete' : 'create'));
    else applyEvent(state, ev(deviceId, 'tags', { n, site: `s${Math.floor(rnd() * 5)}` }));
    records.push({
      key: deviceId,
      partition: partitionFor(deviceId, 4),
      value: encodeOutputRecord({
        kind: 'snapshot',
        v: 1,
        deviceId,
        state: toStateDoc(state),
        exists: twinExists(state),
        version: twinVersion(state),
        offsets: { backend: n, device: 0 },
      }),
    });
  }
  for (let i = 0; i < records.length; i += 100) await log.append(TOPICS.snapshots, records.slice(i, i + 100));
}

/** The twins a prefix of the topic gives: latest snapshot per device below `positions[p]`. */
async function expectedView(positions: readonly number[]): Promise<Map<string, unknown>> {
  const view = new Map<string, unknown>();
  for (let p = 0; p < 4; p++) {
    if (positions[p] === 0) continue;
    for await (const records of log.read(TOPICS.snapshots, p, { from: 0, to: positions[p]! })) {
      for (const r of records) {
        const snap = decodeOutputRecord(r.value!, 'snapshot');
        if (snap.exists) view.set(snap.deviceId, JSON.parse(JSON.stringify(renderTwin(fromStateDoc(snap.state)))));
        else view.delete(snap.deviceId);
      }
    }
  }
  return view;
}

async function actualView(m: ReadModel): Promise<Map<string, unknown>> {
  const rows = (await m.queryAll('SELECT * FROM devices')).rows;
  return new Map(rows.map((r) => [r['deviceId'] as string, r]));
}

describe('read model: crash consistency', () => {
  it('a killed read model holds an exact prefix and resumes to the full view', async () => {
    const seed = Number(process.env['CRASH_SEED'] ?? Date.now() % 1e9);
    console.log(`read model crash test: seed ${seed}`);
    await writeSnapshots(seed);
    const killAfter = 3 + Math.floor(seededRandom(seed ^ 0x51)() * 20);
    const fleetPath = join(dir, 'fleet.db');
    const child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        join(import.meta.dirname, 'readModelChild.fixture.ts'),
        join(dir, 'log.db'),
        fleetPath,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let batches = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const msg = JSON.parse(line) as { batch?: number };
      if (msg.batch !== undefined && ++batches >= killAfter) {
        child.kill('SIGKILL');
        break;
      }
    }
    await exited;

    // what the file holds is exactly the prefix its positions say
    const stopped = await createReadModel({ log, path: fleetPath, start: false });
    models.push(stopped);
    const positions = decodeFreshness(stopped.freshness()).snapshots;
    const total = (await log.endOffsets(TOPICS.snapshots)).reduce((a, b) => a + b, 0);
    const covered = positions.reduce((a, b) => a + b, 0);
    console.log(`killed after ${batches} batches: ${covered} of ${total} records reflected`);
    expect(covered).toBeGreaterThan(0);
    expect(await actualView(stopped)).toEqual(await expectedView(positions));
    await stopped.close();
    models.pop();

    // resumed in the dead child's group (the embedded log hands a dead process's group over) …
    const resumed = await createReadModel({ log, path: fleetPath });
    models.push(resumed);
    await resumed.catchUp({ timeoutMs: 30_000 });
    // … equals a read model built from scratch, and the whole topic
    const fresh = await createReadModel({ log, path: join(dir, 'fresh.db') });
    models.push(fresh);
    await fresh.catchUp({ timeoutMs: 30_000 });
    const full = await expectedView(await log.endOffsets(TOPICS.snapshots));
    expect(await actualView(resumed)).toEqual(full);
    expect(await actualView(fresh)).toEqual(full);
    expect(resumed.freshness()).toBe(fresh.freshness());
  });
});
