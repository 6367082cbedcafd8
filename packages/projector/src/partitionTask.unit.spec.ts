/**
 * PartitionTask on hand-made records: the GC horizon wired to append times (a late event is
 * refused with EVENT_LATE, the horizon is persisted, a rebuild derives the same bytes), and the
 * record-size guard (an event or command that would make a snapshot too large is refused with
 * SNAPSHOT_TOO_LARGE; the twin stays at its last good state; the rest of the batch is untouched).
 */
import { decodeEvent, decodeOutputRecord, encodeEvent } from '@twinlog/codec';
import {
  createHybridClock,
  fromStateDoc,
  renderTwin,
  toStateDoc,
  type Condition,
  type EventKind,
  type LogRecord,
  type Patch,
  type TwinEvent,
} from '@twinlog/core';
import { describe, expect, it } from 'vitest';
import { createInMemoryLog } from '@twinlog/core/testing';
import { PartitionTask, type TaskOptions, type TaskOutput } from './partitionTask.ts';
import { CHECKPOINT_KEY, ensureTwinTopics, TOPICS, type InputTopic } from './topics.ts';

const T0 = Date.UTC(2026, 10, 1);

/** Events and records with explicit stamps and append times. */
function fixture() {
  let seq = 0;
  const offsets = { backend: 0, device: 0 };
  const event = (
    deviceId: string,
    section: EventKind,
    patch: Patch,
    wall: number,
    extra: { cond?: Condition; corr?: string } = {},
  ): TwinEvent => ({
    v: 1,
    id: { writer: 'w1', seq: ++seq },
    deviceId,
    section,
    op: 'merge',
    patch,
    stamp: { wall, counter: 0 },
    actor: 'test',
    ...extra,
  });
  const record = (e: TwinEvent, timestamp: number): LogRecord => {
    const topic: InputTopic = e.section === 'reported' ? 'device' : 'backend';
    return {
      topic: topic === 'backend' ? TOPICS.backend : TOPICS.device,
      partition: 0,
      offset: offsets[topic]++,
      key: e.deviceId,
      value: encodeEvent(e),
      timestamp,
      headers: {},
    };
  };
  return { event, record };
}

function records(out: TaskOutput, topic: string): LogRecord[] {
  const found = out.appends.find((a) => a.topic === topic);
  return (found?.records ?? []).map((r, offset) => ({
    topic,
    partition: 0,
    offset,
    key: r.key,
    value: r.value,
    timestamp: 0,
    headers: {},
  }));
}

const rejections = (out: TaskOutput) =>
  records(out, TOPICS.rejections).map((r) => decodeOutputRecord(r.value!, 'rejection'));
const changes = (out: TaskOutput) => records(out, TOPICS.changes).map((r) => decodeOutputRecord(r.value!, 'change'));
const snapshots = (out: TaskOutput) =>
  new Map(
    records(out, TOPICS.snapshots)
      .filter((r) => r.key !== CHECKPOINT_KEY)
      .map((r) => [r.key, { bytes: r.value!, snap: decodeOutputRecord(r.value!, 'snapshot') }] as const),
  );

function task(options: Partial<TaskOptions> = {}): PartitionTask {
  return new PartitionTask({ partition: 0, clock: createHybridClock({ physicalNow: () => T0 + 60_000 }), ...options });
}

describe('the GC horizon in the projector', () => {
  const windows = { maxOfflineWindowMs: 1_000, maxSkewMs: 0, gcMarginMs: 500 };

  it('raises a twin horizon to gcHorizonAt(append time) before each record and refuses an event below it with EVENT_LATE', () => {
    const { event, record } = fixture();
    const t = task(windows);
    t.process('backend', [record(event('d1', 'create', {}, T0), T0)], true);
    // a report appended 10 s later: the horizon moves to T0 + 10,000 − 1,000 − 500
    const out1 = t.process('device', [record(event('d1', 'reported', { temp: 20 }, T0 + 10_000), T0 + 10_000)], true);
    expect(snapshots(out1).get('d1')!.snap.state).toBeDefined();
    expect(fromStateDoc(snapshots(out1).get('d1')!.snap.state).gcHorizon.wall).toBe(T0 + 8_500);
    // a desired write stamped T0 + 8,200, appended at T0 + 9,000: validation lets it through (≥ 9,000 − 1,000) but it is below the horizon
    const late = event('d1', 'desired', { fw: '2.0' }, T0 + 8_200);
    const out2 = t.process('backend', [record(late, T0 + 9_000)], true);
    expect(out2.stats).toMatchObject({ applied: 0, rejected: 1 });
    expect(out2.rejectedByCode).toEqual({ EVENT_LATE: 1 });
    const [rejection] = rejections(out2);
    expect(rejection).toMatchObject({ code: 'EVENT_LATE', deviceId: 'd1', id: late.id });
    expect(rejection!.message).toMatch(/older than the twin's GC horizon/);
    expect(renderTwin(t.stateOf('d1')!).properties.desired).not.toHaveProperty('fw');
  });

  it('passes the offline window to validation: older stamps are STAMP_SKEW, as before the horizon could refuse them', () => {
    const { event, record } = fixture();
    const t = task(windows);
    t.process('backend', [record(event('d1', 'create', {}, T0), T0)], true);
    const out = t.process('backend', [record(event('d1', 'desired', { a: 1 }, T0 + 1_000), T0 + 2_500)], true);
    expect(rejections(out).map((r) => r.code)).toEqual(['STAMP_SKEW']);
  });

  it('derives the same horizon in a rebuild: the snapshot bytes of the live task equal a rebuilt state document', () => {
    const { event, record } = fixture();
    const live = task(windows);
    const rebuild = task({ ...windows, rebuild: true });
    const inputs: [InputTopic, LogRecord[]][] = [];
    inputs.push(['backend', [record(event('d1', 'create', {}, T0), T0)]]);
    for (let i = 1; i <= 200; i++) {
      const at = T0 + i * 700;
      const e =
        i % 5 === 0
          ? event('d1', 'desired', { [`k${i % 7}`]: i, gone: i % 2 === 0 ? null : 1 }, at)
          : event('d1', 'reported', { temp: i, [`x${i % 3}`]: i % 4 === 0 ? null : i }, at);
      inputs.push([e.section === 'reported' ? 'device' : 'backend', [record(e, at)]]);
    }
    let last: Uint8Array | undefined;
    for (const [topic, batch] of inputs) {
      const snap = snapshots(live.process(topic, batch, true)).get('d1');
      if (snap !== undefined) last = snap.bytes;
      rebuild.process(topic, batch, true);
    }
    const liveDoc = decodeOutputRecord(last!, 'snapshot').state;
    expect(toStateDoc(rebuild.stateOf('d1')!)).toEqual(liveDoc);
    expect(fromStateDoc(liveDoc).gcHorizon.wall).toBe(T0 + 200 * 700 - 1_500);
  });
});

describe('the record-size guard', () => {
  const LIMIT = 4_096;

  it('refuses the event that would make a snapshot too large, keeps the twin at its last good state, and leaves the rest of the batch alone', () => {
    const { event, record } = fixture();
    const t = task({ maxSnapshotBytes: LIMIT });
    t.process('backend', [record(event('d1', 'create', {}, T0), T0), record(event('d2', 'create', {}, T0), T0)], true);
    const small = event('d1', 'desired', { a: 1 }, T0 + 1);
    const big = event('d1', 'desired', { blob: 'x'.repeat(3_000) }, T0 + 2);
    const tooBig = event('d1', 'desired', { blob2: 'y'.repeat(3_000) }, T0 + 3);
    const other = event('d2', 'desired', { blob2: 'y'.repeat(3_000) }, T0 + 4);
    const after = event('d1', 'desired', { b: 2 }, T0 + 5);
    const out = t.process(
      'backend',
      [small, big, tooBig, other, after].map((e) => record(e, T0 + 10)),
      true,
    );

    expect(out.stats).toMatchObject({ applied: 4, rejected: 1 });
    expect(out.rejectedByCode).toEqual({ SNAPSHOT_TOO_LARGE: 1 });
    const [rejection] = rejections(out);
    expect(rejection).toMatchObject({
      code: 'SNAPSHOT_TOO_LARGE',
      deviceId: 'd1',
      id: tooBig.id,
      source: { topic: TOPICS.backend, offset: 4 },
    });
    expect(rejection!.message).toMatch(/over the log's record limit of 4096 bytes/);
    // the twin has every event but the refused one, with versions that never counted it
    const desired = renderTwin(t.stateOf('d1')!).properties.desired;
    expect(desired).toMatchObject({ a: 1, b: 2, blob: 'x'.repeat(3_000), $version: 4 });
    expect(desired).not.toHaveProperty('blob2');
    // one change per applied event, none for the refused one; the versions they carry are the twin's
    const d1Changes = changes(out).filter((c) => c.deviceId === 'd1');
    expect(d1Changes.map((c) => c.id.seq)).toEqual([small.id.seq, big.id.seq, after.id.seq]);
    expect(d1Changes.map((c) => c.desiredVersion)).toEqual([2, 3, 4]);
    expect(
      changes(out)
        .filter((c) => c.deviceId === 'd2')
        .map((c) => c.id.seq),
    ).toEqual([other.id.seq]);
    // both snapshots are written and fit
    const snaps = snapshots(out);
    for (const id of ['d1', 'd2']) expect(snaps.get(id)!.bytes.length).toBeLessThanOrEqual(LIMIT);
    expect(renderTwin(fromStateDoc(snaps.get('d1')!.snap.state))).toEqual(renderTwin(t.stateOf('d1')!));

    // later batches start from that state (its snapshot): still too large with another blob, fine after removing one
    const again = event('d1', 'desired', { blob3: 'z'.repeat(3_000) }, T0 + 6);
    const out2 = t.process('backend', [record(again, T0 + 20)], true);
    expect(rejections(out2).map((r) => [r.code, r.id?.seq])).toEqual([['SNAPSHOT_TOO_LARGE', again.id.seq]]);
    expect(snapshots(out2).get('d1')!.bytes.length).toBeLessThanOrEqual(LIMIT);
    const fine = event('d1', 'desired', { blob: null, blob3: 'z'.repeat(3_000) }, T0 + 7);
    const out3 = t.process('backend', [record(fine, T0 + 30)], true);
    expect(rejections(out3)).toEqual([]);
    const now = renderTwin(t.stateOf('d1')!).properties.desired;
    expect(now).toMatchObject({ a: 1, b: 2, blob3: 'z'.repeat(3_000), $version: 5 });
    expect(now).not.toHaveProperty('blob');
  });

  it('refuses a command whose fact would make the snapshot too large: no fact appended, the next command decided against the last good state', () => {
    const { event, record } = fixture();
    const t = task({ maxSnapshotBytes: LIMIT });
    t.process(
      'backend',
      [
        record(event('d1', 'create', {}, T0), T0),
        record(event('d1', 'desired', { blob: 'x'.repeat(3_000) }, T0 + 1), T0),
      ],
      true,
    );
    const cmd = event('d1', 'desired', { blob2: 'y'.repeat(3_000) }, T0 + 2, { cond: { ifMatch: '*' }, corr: 'c1' });
    const next = event('d1', 'desired', { ok: true }, T0 + 3, { cond: { ifMatch: '*' }, corr: 'c2' });
    const out = t.process('backend', [record(cmd, T0 + 10), record(next, T0 + 10)], true);
    expect(rejections(out)).toEqual([expect.objectContaining({ code: 'SNAPSHOT_TOO_LARGE', id: cmd.id, corr: 'c1' })]);
    const facts = records(out, TOPICS.backend).map((r) => decodeEvent(r.value!));
    expect(facts.map((f) => f.corr)).toEqual(['c2']);
    expect(changes(out).map((c) => c.corr)).toEqual(['c2']);
    expect(out.stats).toMatchObject({ commands: 2, applied: 1, rejected: 1 });
    const desired = renderTwin(t.stateOf('d1')!).properties.desired;
    expect(desired).toMatchObject({ ok: true, $version: 3 });
    expect(desired).not.toHaveProperty('blob2');
  });

  it('refuses the same events in a rebuild, whatever its batches', () => {
    const { event, record } = fixture();
    const inputs = [
      record(event('d1', 'create', {}, T0), T0),
      ...[1, 2, 3, 4, 5, 6].map((i) =>
        record(event('d1', 'desired', { [`blob${i % 4}`]: String(i).repeat(2_000), n: i }, T0 + i), T0 + i),
      ),
    ];
    const live = task({ maxSnapshotBytes: LIMIT });
    const out = live.process('backend', inputs, true);
    expect(out.rejectedByCode['SNAPSHOT_TOO_LARGE']).toBeGreaterThan(0);
    const rebuild = task({ maxSnapshotBytes: LIMIT, rebuild: true });
    for (const r of inputs) rebuild.process('backend', [r], true);
    expect(toStateDoc(rebuild.stateOf('d1')!)).toEqual(toStateDoc(live.stateOf('d1')!));
  });

  it('keeps a twin whose last good snapshot is already over the limit (a lowered limit): refuses its events, writes nothing for it, goes on', async () => {
    const { event, record } = fixture();
    const before = task();
    const outs = [
      before.process(
        'backend',
        [record(event('d1', 'create', {}, T0), T0), record(event('d2', 'create', {}, T0), T0)],
        true,
      ),
      before.process(
        'backend',
        [record(event('d1', 'desired', { a: 'x'.repeat(3_000), b: 'y'.repeat(3_000) }, T0 + 1), T0 + 1)],
        true,
      ),
    ];
    const log = createInMemoryLog({ now: () => T0 + 2 });
    await ensureTwinTopics(log, 1);
    for (const out of outs)
      for (const a of out.appends) if (a.topic === TOPICS.snapshots) await log.append(TOPICS.snapshots, a.records);
    const lowered = await PartitionTask.restore(log, {
      partition: 0,
      clock: createHybridClock({ physicalNow: () => T0 }),
      maxSnapshotBytes: LIMIT,
    });
    const tiny = event('d1', 'desired', { c: 1 }, T0 + 3);
    const other = event('d2', 'desired', { c: 1 }, T0 + 3);
    const out2 = lowered.process('backend', [record(tiny, T0 + 3), record(other, T0 + 3)], true);
    expect(rejections(out2).map((r) => [r.code, r.deviceId])).toEqual([['SNAPSHOT_TOO_LARGE', 'd1']]);
    expect([...snapshots(out2).keys()]).toEqual(['d2']);
    expect(renderTwin(lowered.stateOf('d1')!).properties.desired).toMatchObject({ a: 'x'.repeat(3_000), $version: 2 });
    await log.close();
  });

  it('rejects nothing and rewrites nothing while snapshots fit (default limit)', () => {
    const { event, record } = fixture();
    const t = task();
    t.process('backend', [record(event('d1', 'create', {}, T0), T0)], true);
    const out = t.process(
      'backend',
      [record(event('d1', 'desired', { blob: 'x'.repeat(3_000), blob2: 'y'.repeat(3_000) }, T0 + 1), T0 + 1)],
      true,
    );
    expect(out.stats).toMatchObject({ applied: 1, rejected: 0 });
    expect(out.rejectedByCode).toEqual({});
  });

  it('refuses an invalid limit', () => {
    expect(() => task({ maxSnapshotBytes: 0 })).toThrow(RangeError);
  });
});
