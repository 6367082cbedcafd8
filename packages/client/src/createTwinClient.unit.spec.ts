/**
 * The client end to end over the in-memory log, with a real projector folding what it writes.
 */
import { isTwinlogError, partitionFor, type JsonObject, type Log } from '@twinlog/core';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { encodeOutputRecord, type ChangeRecord } from '@twinlog/codec';
import { CHECKPOINT_KEY, ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTwinClient, sectionOf, type TwinClient, type WriteDecision } from './createTwinClient.ts';

const PARTITIONS = 4;
let time: number;
const now = (): number => time;
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;

beforeEach(async () => {
  time = 1_750_000_000_000;
  log = createInMemoryLog({ now });
  await ensureTwinTopics(log, PARTITIONS);
  projector = await startProjector({ log, physicalNow: now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: now,
    actor: 'test-app',
    writerId: 'client-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 2000,
  });
});

afterEach(async () => {
  await client.close();
  await projector.stop();
  await log.close();
});

function accepted(d: WriteDecision): asserts d is Extract<WriteDecision, { accepted: true }> {
  if (!d.accepted) throw new Error(`expected acceptance, got ${d.code}: ${d.message}`);
}

async function endOffsets(l: Log, topic: string): Promise<number[]> {
  return l.endOffsets(topic);
}

describe('createTwinClient: writes', () => {
  it('creates a device and reads its twin back', async () => {
    const created = await client.createDevice('dev1', { wait: true });
    accepted(created);
    expect(created.changes[0]?.opType).toBe('createDeviceIdentity');
    const twin = await client.getTwin('dev1');
    expect(twin.deviceId).toBe('dev1');
    expect(twin.tags).toEqual({});
    expect(sectionOf(twin, 'desired')).toEqual({});
  });

  it('an unconditional write resolves with its id and stamp once appended', async () => {
    await client.createDevice('dev1', { wait: true });
    const r = await client.mergeDesired('dev1', { fw: '1.0' });
    expect(r.id).toEqual({ writer: 'client-test', seq: 1 });
    expect(r.stamp.wall).toBe(time);
    expect(r.topic).toBe(TOPICS.backend);
    expect(r.partition).toBe(partitionFor('dev1', PARTITIONS));
    expect(r.corr).toBeUndefined();
    await expect.poll(async () => sectionOf(await client.getTwin('dev1'), 'desired')).toEqual({ fw: '1.0' });
  });

  it('reported goes to twin.device and shows in the twin', async () => {
    await client.createDevice('dev1', { wait: true });
    const r = await client.mergeReported('dev1', { temp: 21 });
    expect(r.topic).toBe(TOPICS.device);
    const d = await client.mergeReported('dev1', { humidity: 40 }, { wait: true });
    accepted(d);
    const twin = await client.getTwin('dev1');
    expect(sectionOf(twin, 'reported')).toEqual({ temp: 21, humidity: 40 });
    expect(twin.properties.reported.$version).toBe(3); // create counts too
  });

  it('update: an immer recipe becomes the RFC 7396 difference of the section', async () => {
    await client.createDevice('dev1', { wait: true });
    await client.mergeDesired('dev1', { fw: '1.0', old: true, net: { ssid: 'a', band: 2 } }, { wait: true });
    const d = await client.update(
      'dev1',
      'desired',
      (draft) => {
        draft['fw'] = '2.0';
        delete draft['old'];
        (draft['net'] as JsonObject)['band'] = 5;
      },
      { wait: true },
    );
    expect(d).toBeDefined();
    accepted(d!);
    expect(d.changes[0]?.diff).toEqual({ fw: '2.0', old: null, net: { band: 5 } });
    expect(sectionOf(await client.getTwin('dev1'), 'desired')).toEqual({ fw: '2.0', net: { ssid: 'a', band: 5 } });
  });

  it('update with a caller-given base writes the difference from that base, and nothing for no change', async () => {
    await client.createDevice('dev1', { wait: true });
    const before = await endOffsets(log, TOPICS.backend);
    expect(await client.update('dev1', 'tags', () => {}, { base: {} })).toBeUndefined();
    expect(await endOffsets(log, TOPICS.backend)).toEqual(before);
    const r = await client.update('dev1', 'tags', (t) => ({ ...t, site: 'b' }), { base: { site: 'a' } });
    expect(r?.id.seq).toBe(1);
    await expect.poll(async () => (await client.getTwin('dev1')).tags).toEqual({ site: 'b' });
  });

  it('update on reported, and ifUnchanged uses the fetched etag', async () => {
    await client.createDevice('dev1', { wait: true });
    const r = await client.update('dev1', 'reported', (d) => void (d['fw'] = '1.0'), { wait: true });
    accepted(r!);
    const d = await client.update('dev1', 'desired', (draft) => void (draft['fw'] = '1.1'), { ifUnchanged: true });
    accepted(d!);
    expect(d.etag).toBe((await client.getTwin('dev1')).etag);
  });
});

describe('createTwinClient: conditional writes', () => {
  beforeEach(async () => {
    await client.createDevice('dev1', { wait: true });
    await client.mergeDesired('dev1', { fw: '1.0' }, { wait: true });
  });

  it('ifMatch with the current etag is accepted and returns the new etag', async () => {
    const twin = await client.getTwin('dev1');
    const d = await client.mergeDesired('dev1', { fw: '1.1' }, { ifMatch: twin.etag });
    accepted(d);
    expect(d.ids).toEqual([{ writer: 'client-test', seq: 2 }]);
    expect(d.changes.map((c) => c.corr)).toEqual([d.corr]);
    const after = await client.getTwin('dev1');
    expect(d.etag).toBe(after.etag);
    expect(d.etag).not.toBe(twin.etag);
    expect(d.version).toBe(after.version);
    expect(d.desiredVersion).toBe(after.properties.desired.$version);
    expect(sectionOf(after, 'desired')).toEqual({ fw: '1.1' });
  });

  it('ifMatch with a stale etag is rejected with PRECONDITION_FAILED and the current etag', async () => {
    const stale = (await client.getTwin('dev1')).etag;
    accepted(await client.mergeTags('dev1', { site: 'a' }, { ifMatch: stale }));
    const current = await client.getTwin('dev1');
    const d = await client.mergeDesired('dev1', { fw: '9.9' }, { ifMatch: `"${stale}"` });
    expect(d).toMatchObject({ accepted: false, code: 'PRECONDITION_FAILED', etag: current.etag });
    expect(sectionOf(await client.getTwin('dev1'), 'desired')).toEqual({ fw: '1.0' });
  });

  it('ifVersion is checked against the section $version', async () => {
    const v = (await client.getTwin('dev1')).properties.desired.$version;
    accepted(await client.replaceDesired('dev1', { mode: 'eco' }, { ifVersion: v }));
    const d = await client.mergeDesired('dev1', { mode: 'max' }, { ifVersion: v });
    expect(d).toMatchObject({ accepted: false, code: 'PRECONDITION_FAILED' });
    expect(sectionOf(await client.getTwin('dev1'), 'desired')).toEqual({ mode: 'eco' });
  });

  it('a command on a missing device is rejected with DEVICE_NOT_FOUND', async () => {
    const d = await client.mergeTags('nobody', { a: 1 }, { ifMatch: '*' });
    expect(d).toMatchObject({ accepted: false, code: 'DEVICE_NOT_FOUND', etag: null });
  });

  it('tags + desired with one etag: two commands, one corr, accepted as a whole', async () => {
    const twin = await client.getTwin('dev1');
    const before = await endOffsets(log, TOPICS.backend);
    const d = await client.patchTwin('dev1', { tags: { site: 'b' }, desired: { fw: '2.0' } }, { ifMatch: twin.etag });
    accepted(d);
    expect(d.changes.map((c) => c.section)).toEqual(['tags', 'desired']);
    expect(new Set(d.changes.map((c) => c.corr))).toEqual(new Set([d.corr]));
    const after = await client.getTwin('dev1');
    expect(after.tags).toEqual({ site: 'b' });
    expect(sectionOf(after, 'desired')).toEqual({ fw: '2.0' });
    expect(d.etag).toBe(after.etag);
    const p = partitionFor('dev1', PARTITIONS);
    // both commands in one append (+ the two accepted facts the projector writes back)
    expect((await endOffsets(log, TOPICS.backend))[p]! - before[p]!).toBe(4);
  });

  it('tags + desired with a stale etag: rejected as a whole, nothing applied', async () => {
    const stale = (await client.getTwin('dev1')).etag;
    accepted(await client.mergeDesired('dev1', { fw: '1.5' }, { ifMatch: stale }));
    const d = await client.patchTwin('dev1', { tags: { site: 'c' }, desired: { fw: '3.0' } }, { ifMatch: stale });
    expect(d).toMatchObject({ accepted: false, code: 'PRECONDITION_FAILED' });
    const twin = await client.getTwin('dev1');
    expect(twin.tags).toEqual({});
    expect(sectionOf(twin, 'desired')).toEqual({ fw: '1.5' });
  });

  it('replaceTwin replaces the given sections as one request', async () => {
    const twin = await client.getTwin('dev1');
    accepted(await client.replaceTwin('dev1', { tags: { t: 1 }, desired: { x: 1 } }, { ifMatch: twin.etag }));
    const after = await client.getTwin('dev1');
    expect(after.tags).toEqual({ t: 1 });
    expect(sectionOf(after, 'desired')).toEqual({ x: 1 });
  });

  it('an unconditional pair shares one corr and resolves when appended', async () => {
    const receipts = await client.patchTwin('dev1', { tags: { a: 1 }, desired: { b: 2 } });
    expect(receipts).toHaveLength(2);
    expect(receipts[0]!.corr).toBeDefined();
    expect(receipts[1]!.corr).toBe(receipts[0]!.corr);
    expect(receipts[1]!.offset).toBe(receipts[0]!.offset + 1);
  });

  it('a condition on reported is refused before the log', async () => {
    await expect(
      client.update('dev1', 'reported', (d) => void (d['x'] = 1), { base: {}, ifMatch: '*' }),
    ).rejects.toSatisfy((e) => isTwinlogError(e, 'SECTION_FORBIDDEN'));
  });

  it('concurrent commands with one etag: exactly one wins, the others see the new etag', async () => {
    const { etag } = await client.getTwin('dev1');
    const other = createTwinClient({ log, physicalNow: now, actor: 'other-app', pollIntervalMs: 2 });
    const decisions = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? client : other).mergeDesired('dev1', { winner: i }, { ifMatch: etag }),
      ),
    );
    const winners = decisions.filter((d) => d.accepted);
    expect(winners).toHaveLength(1);
    accepted(winners[0]!);
    const losers = decisions.filter((d) => !d.accepted);
    expect(new Set(losers.map((d) => (d.accepted ? '' : `${d.code} ${d.etag}`)))).toEqual(
      new Set([`PRECONDITION_FAILED ${winners[0].etag}`]),
    );
    await other.close();
  });

  it('without a projector the decision times out with DECISION_TIMEOUT', async () => {
    const lone = createInMemoryLog({ now });
    await ensureTwinTopics(lone, PARTITIONS);
    const c = createTwinClient({ log: lone, physicalNow: now, actor: 'a', pollIntervalMs: 2 });
    const err = await c.mergeDesired('dev1', { a: 1 }, { ifMatch: '*', timeoutMs: 30 }).catch((e: unknown) => e);
    expect(isTwinlogError(err, 'DECISION_TIMEOUT')).toBe(true);
    expect((err as { iotHub: unknown }).iotHub).toEqual({ status: 504, code: 504101, name: 'GatewayTimeout' });
    expect(c.writerId).toMatch(/^client-[0-9a-f]{8}$/);
    await c.close();
    await lone.close();
  });
});

describe('createTwinClient: idempotent retries (docs/idempotency.md)', () => {
  it('a write that timed out, retried with the key its error names, is applied once', async () => {
    const lone = createInMemoryLog({ now });
    await ensureTwinTopics(lone, PARTITIONS);
    const c = createTwinClient({ log: lone, physicalNow: now, actor: 'a', pollIntervalMs: 2 });
    const later = await startProjector({ log: lone, physicalNow: now, settleIntervalMs: 10 });
    accepted(await c.createDevice('dev1', { wait: true }));
    const before = (await c.getTwin('dev1')).properties.desired.$version;
    await later.stop(); // no projector: the write times out
    const err = await c.mergeDesired('dev1', { n: 1 }, { ifMatch: '*', timeoutMs: 30 }).catch((e: unknown) => e);
    expect(isTwinlogError(err, 'DECISION_TIMEOUT')).toBe(true);
    const key = (err as { details: { idempotencyKey?: string } }).details.idempotencyKey;
    expect(key).toEqual(expect.any(String));
    expect((err as Error).message).toMatch(/retry it with idempotency key \S+, which is never applied twice/);

    const back = await startProjector({ log: lone, physicalNow: now, settleIntervalMs: 10 });
    try {
      // another client (another process) retries with the key: answered as accepted, applied once
      const other = createTwinClient({ log: lone, physicalNow: now, actor: 'a', pollIntervalMs: 2 });
      const d = await other.mergeDesired('dev1', { n: 1 }, { ifMatch: '*', idempotencyKey: key! });
      accepted(d);
      expect(d.duplicateOf).toEqual((err as { details: { ids: { writer: string; seq: number }[] } }).details.ids[0]);
      expect(d.changes).toEqual([]);
      const twin = await other.getTwin('dev1');
      expect(twin.properties.desired.$version).toBe(before + 1);
      expect(d.desiredVersion).toBe(twin.properties.desired.$version);
      expect(d.etag).toBe(twin.etag);
      await other.close();
    } finally {
      await back.stop();
      await c.close();
      await lone.close();
    }
  });

  it('retries: a command sent again after a timeout is decided once, whichever copy the projector sees first', async () => {
    const lone = createInMemoryLog({ now });
    await ensureTwinTopics(lone, PARTITIONS);
    const c = createTwinClient({ log: lone, physicalNow: now, actor: 'a', pollIntervalMs: 2 });
    const first = await startProjector({ log: lone, physicalNow: now, settleIntervalMs: 10 });
    accepted(await c.createDevice('dev1', { wait: true }));
    await first.stop();
    // the projector comes back while the client waits for its second attempt
    const pending = c.mergeDesired('dev1', { n: 1 }, { ifMatch: '*', timeoutMs: 150, retries: 5 });
    await new Promise((r) => setTimeout(r, 200));
    const back = await startProjector({ log: lone, physicalNow: now, settleIntervalMs: 10 });
    try {
      const d = await pending;
      accepted(d);
      const twin = await c.getTwin('dev1');
      expect(twin.properties.desired).toMatchObject({ n: 1, $version: 2 });
      // two copies of the command in the log, one applied
      const backend = await endOffsets(lone, TOPICS.backend);
      expect(backend.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4); // create, two copies at least, the fact
    } finally {
      await back.stop();
      await c.close();
      await lone.close();
    }
  });

  it('an idempotency key on a write that cannot be a command is refused before the log', async () => {
    await client.createDevice('dev1', { wait: true });
    const err = await client
      .update('dev1', 'reported', () => ({ a: 1 }), { base: {}, idempotencyKey: 'k' })
      .catch((e: unknown) => e);
    expect(isTwinlogError(err, 'SECTION_FORBIDDEN')).toBe(true);
    const bad = await client.mergeTags('dev1', { a: 1 }, { idempotencyKey: 'has space' }).catch((e: unknown) => e);
    expect(isTwinlogError(bad, 'EVENT_INVALID')).toBe(true);
  });
});

describe('createTwinClient: validation before the log', () => {
  it('a validation failure throws the TwinlogError and appends nothing', async () => {
    await client.createDevice('dev1', { wait: true });
    const before = await endOffsets(log, TOPICS.backend);
    const beforeDevice = await endOffsets(log, TOPICS.device);
    await expect(client.mergeDesired('dev1', { $bad: 1 })).rejects.toSatisfy((e) => isTwinlogError(e, 'KEY_INVALID'));
    await expect(client.mergeTags('bad id/', { a: 1 })).rejects.toSatisfy((e) =>
      isTwinlogError(e, 'DEVICE_ID_INVALID'),
    );
    await expect(client.mergeReported('dev1', { a: 'x'.repeat(5000) })).rejects.toSatisfy((e) => isTwinlogError(e));
    await expect(
      client.patchTwin('dev1', { tags: { ok: 1 }, desired: { 'a.b': 1 } }, { ifMatch: '*' }),
    ).rejects.toSatisfy((e) => isTwinlogError(e, 'KEY_INVALID'));
    expect(await endOffsets(log, TOPICS.backend)).toEqual(before);
    expect(await endOffsets(log, TOPICS.device)).toEqual(beforeDevice);
    // no sequence number was spent on the refused writes
    expect((await client.mergeTags('dev1', { ok: 1 })).id.seq).toBe(1);
  });

  it('getTwin of an unknown or deleted device throws DEVICE_NOT_FOUND', async () => {
    await expect(client.getTwin('ghost')).rejects.toSatisfy((e) => isTwinlogError(e, 'DEVICE_NOT_FOUND'));
    await client.createDevice('dev1', { wait: true });
    accepted(await client.deleteDevice('dev1', { wait: true }));
    await expect(client.getTwin('dev1')).rejects.toSatisfy((e) => isTwinlogError(e, 'DEVICE_NOT_FOUND'));
  });

  it('creating an existing device is rejected with DEVICE_ALREADY_EXISTS', async () => {
    await client.createDevice('dev1', { wait: true });
    expect(await client.createDevice('dev1', { wait: true })).toMatchObject({
      accepted: false,
      code: 'DEVICE_ALREADY_EXISTS',
    });
  });
});

describe('createTwinClient: feeds', () => {
  async function take<T>(feed: AsyncIterable<T>, n: number): Promise<T[]> {
    const out: T[] = [];
    if (n === 0) return out;
    for await (const item of feed) {
      out.push(item);
      if (out.length >= n) break;
    }
    return out;
  }

  it('changes sees a device’s changes in order, from latest', async () => {
    const feed = client.changes({ deviceId: 'dev2' });
    await feed.ready;
    // twin.backend and twin.device are consumed independently: wait on each write so the order
    // across the two input topics is the order written
    await client.createDevice('dev1');
    await client.createDevice('dev2', { wait: true });
    await client.mergeDesired('dev2', { a: 1 });
    await client.mergeDesired('dev2', { a: 2, b: 1 }, { wait: true });
    await client.mergeReported('dev2', { a: 2 }, { wait: true });
    await client.mergeDesired('dev2', { b: null });
    const got = await take(feed, 5);
    expect(got.map((c) => [c.section, c.diff])).toEqual([
      ['create', {}],
      ['desired', { a: 1 }],
      ['desired', { a: 2, b: 1 }],
      ['reported', { a: 2 }],
      ['desired', { b: null }],
    ]);
    expect(got.every((c) => c.deviceId === 'dev2')).toBe(true);
    const versions = got.map((c) => c.version);
    expect([...versions].sort((x, y) => x - y)).toEqual(versions);
  });

  it('from earliest replays every partition, and breaking out ends the feed', async () => {
    for (const id of ['a1', 'b2', 'c3', 'd4', 'e5']) await client.createDevice(id, { wait: true });
    const got: ChangeRecord[] = await take(client.changes({ from: 'earliest' }), 5);
    expect(new Set(got.map((c) => c.deviceId))).toEqual(new Set(['a1', 'b2', 'c3', 'd4', 'e5']));
  });

  it('snapshots skip checkpoints; rejections and dead letters are fed too', async () => {
    const snaps = client.snapshots({ from: 'earliest', deviceId: 'dev1' });
    const rejections = client.rejections();
    const dead = client.deadLetters();
    await Promise.all([rejections.ready, dead.ready]);
    await client.createDevice('dev1', { wait: true });
    const [snap] = await take(snaps, 1);
    expect(snap).toMatchObject({ kind: 'snapshot', deviceId: 'dev1', exists: true });

    await client.mergeTags('dev1', { a: 1 }, { ifMatch: 'nope' });
    const [rej] = await take(rejections, 1);
    expect(rej).toMatchObject({ kind: 'rejection', deviceId: 'dev1', code: 'PRECONDITION_FAILED' });

    await log.append(TOPICS.backend, [{ key: 'dev1', value: new Uint8Array([0xc1]) }]);
    const [dl] = await take(dead, 1);
    expect(dl).toMatchObject({ kind: 'dead-letter', key: 'dev1' });
  });

  it('deltas decodes delta records; undecodable records go to onBadRecord; the reconciler’s checkpoint is skipped', async () => {
    const bad: string[] = [];
    const feed = client.deltas({ deviceId: 'dev1', onBadRecord: (r, e) => bad.push(`${r.offset}:${e.code}`) });
    await feed.ready;
    const p = partitionFor('dev1', PARTITIONS);
    const delta = {
      deviceId: 'dev1',
      desiredVersion: 1,
      reportedVersion: 0,
      entries: [],
      counts: { pending: 0, acknowledged: 0, rejected: 0, converged: 0, stale: 0 },
      converged: true,
    };
    await log.append(TOPICS.deltas, [
      { key: 'dev1', value: new Uint8Array([1, 2, 3]) },
      // docs/formats.md, "Reconciler checkpoints"
      {
        key: CHECKPOINT_KEY,
        partition: p,
        value: Uint8Array.of(0xc0),
        headers: { 'twinlog-snapshots-position': '1', 'twinlog-group': 'twinlog-reconciler' },
      },
      {
        key: 'dev1',
        value: encodeOutputRecord({
          kind: 'delta',
          v: 1,
          deviceId: 'dev1',
          delta,
          source: { topic: TOPICS.snapshots, partition: p, offset: 0 },
        }),
      },
    ]);
    const [d] = await take(feed, 1);
    expect(d?.delta).toEqual(delta);
    expect(bad).toEqual(['0:CODEC_BAD_DATA']); // not the checkpoint at offset 1
  });
});
