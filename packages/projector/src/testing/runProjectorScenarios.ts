/**
 * Scenario tests of the projector, run against every `Log` adapter (in-memory here, embedded SQLite
 * and Kafka in their packages' integration tests). Call inside a vitest file with a `setup` that
 * returns a fresh log on fresh topics.
 */
import { decodeOutputRecord, encodeEvent } from '@twinlog/codec';
import { canonicalJson, computeEtag, fromStateDoc, renderTwin, twinExists, type Log } from '@twinlog/core';
import { afterEach, describe, expect, it } from 'vitest';
import { history } from '../auditTrail.ts';
import { replay } from '../replay.ts';
import { startProjector, type Projector, type ProjectorOptions } from '../startProjector.ts';
import { createTestProducer, latestSnapshots, cleanReplay, readAll, waitFor } from './pipelineHarness.ts';
import { ensureTwinTopics, TOPICS } from '../topics.ts';

export function runProjectorScenarios(
  name: string,
  setup: () => Promise<{ log: Log; cleanup?: () => Promise<void> }>,
): void {
  describe(`projector scenarios on ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });
    async function fresh(): Promise<{ log: Log; start: (options?: Partial<ProjectorOptions>) => Promise<Projector> }> {
      const { log, cleanup } = await setup();
      cleanups.push(async () => {
        await log.close();
        await cleanup?.();
      });
      await ensureTwinTopics(log, 2);
      const start = async (options: Partial<ProjectorOptions> = {}): Promise<Projector> => {
        const p = await startProjector({ log, physicalNow: () => Date.now(), settleIntervalMs: 50, ...options });
        cleanups.push(() => p.stop());
        return p;
      };
      return { log, start };
    }
    const count = async (log: Log, topic: string): Promise<number> => (await readAll(log, topic)).length;

    it('folds creates, desired and reported into snapshots equal to a clean replay, with changes per event', async () => {
      const { log, start } = await fresh();
      const producer = createTestProducer(log);
      await start();
      const devices = ['d1', 'd2', 'd3', 'd4', 'd5'];
      await producer.send(devices.map((d) => producer.event(d, 'create')));
      await producer.send(devices.map((d, i) => producer.event(d, 'desired', { fw: `1.${i}`, cfg: { rate: i } })));
      await producer.send(devices.map((d, i) => producer.event(d, 'reported', { fw: `1.${i}` })));
      await waitFor(async () => (await count(log, TOPICS.changes)) === 15, 30_000, '15 changes');
      const snapshots = await latestSnapshots(log);
      const replay = await cleanReplay(log);
      expect(snapshots.size).toBe(5);
      for (const [id, twin] of replay) expect(snapshots.get(id), id).toBe(twin);
      const change = decodeOutputRecord(
        (await readAll(log, TOPICS.changes)).find(
          (r) => r.key === 'd2' && decodeOutputRecord(r.value!, 'change').section === 'desired',
        )!.value!,
        'change',
      );
      expect(change).toMatchObject({ opType: 'updateTwin', diff: { fw: '1.1', cfg: { rate: 1 } }, desiredVersion: 2 });
      // the report may be folded before or after it (the two topics are consumed independently)
      expect(change.version).toBe(change.desiredVersion + change.reportedVersion);
    });

    it('routes poison to the dead-letter topic and bad events to rejections, keeps running, and the counts reconcile', async () => {
      const { log, start } = await fresh();
      const producer = createTestProducer(log);
      await start();
      const good = [producer.event('ok-1', 'create'), producer.event('ok-1', 'desired', { a: 1 })];
      await producer.send(good);
      const valid = encodeEvent(producer.event('ok-1', 'desired', { b: 2 }));
      await producer.sendRaw(TOPICS.backend, 'ok-1', Uint8Array.from([0xc1, 0x00, 0xff])); // never-used msgpack byte
      await producer.sendRaw(TOPICS.backend, 'ok-1', valid.subarray(0, valid.length - 3)); // truncated
      await producer.sendRaw(TOPICS.device, 'ok-1', null); // empty
      const bad = [
        producer.event('ok-1', 'desired', { 'bad.key': 1 }), // illegal key
        producer.event('ok-1', 'desired', { big: 'x'.repeat(5000) }), // string too long
        producer.event('ghost', 'desired', { a: 1 }), // unknown device (backend)
        producer.event('ghost-2', 'reported', { a: 1 }), // unknown device (device topic)
        producer.event(
          'ok-1',
          'tags',
          Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`k${i}`, 'y'.repeat(4000)])),
        ), // tags > 8 KB
      ];
      await producer.send(bad);
      const after = producer.event('ok-1', 'reported', { alive: true });
      await producer.send([after]);
      await waitFor(
        async () => (await count(log, TOPICS.deadLetter)) === 3 && (await count(log, TOPICS.rejections)) === 5,
        30_000,
        'dead letters and rejections',
      );
      await waitFor(async () => (await count(log, TOPICS.changes)) === 3, 30_000, 'the valid changes');
      const rejections = (await readAll(log, TOPICS.rejections))
        .map((r) => decodeOutputRecord(r.value!, 'rejection').code)
        .sort();
      expect(rejections).toEqual([
        'DEVICE_NOT_FOUND',
        'DEVICE_NOT_FOUND',
        'KEY_INVALID',
        'SECTION_TOO_LARGE',
        'STRING_TOO_LONG',
      ]);
      const dead = (await readAll(log, TOPICS.deadLetter))
        .map((r) => decodeOutputRecord(r.value!, 'dead-letter').code)
        .sort();
      expect(dead).toEqual(['CODEC_BAD_DATA', 'CODEC_BAD_DATA', 'CODEC_TRUNCATED']);
      const produced = (await count(log, TOPICS.backend)) + (await count(log, TOPICS.device));
      const applied = await count(log, TOPICS.changes);
      expect(applied + 5 + 3).toBe(produced);
      expect((await latestSnapshots(log)).get('ok-1')).toContain('"alive":true');
    });

    it('decides commands: a current etag is accepted (fact appended), a stale one rejected with the current etag', async () => {
      const { log, start } = await fresh();
      const producer = createTestProducer(log);
      await start();
      await producer.send([producer.event('c1', 'create'), producer.event('c1', 'desired', { a: 1 })]);
      await waitFor(async () => (await count(log, TOPICS.changes)) === 2);
      const snapshot = async () => {
        const recs = (await readAll(log, TOPICS.snapshots)).filter((r) => r.key === 'c1');
        return fromStateDoc(decodeOutputRecord(recs.at(-1)!.value!, 'snapshot').state);
      };
      const etag = computeEtag(await snapshot());
      await producer.send([producer.event('c1', 'desired', { a: 2 }, { cond: { ifMatch: `"${etag}"` }, corr: 'ok' })]);
      await producer.send([
        producer.event('c1', 'desired', { a: 3 }, { cond: { ifMatch: `"${etag}"` }, corr: 'stale' }),
      ]);
      await waitFor(async () => (await count(log, TOPICS.rejections)) === 1);
      const rejection = decodeOutputRecord((await readAll(log, TOPICS.rejections))[0]!.value!, 'rejection');
      const current = await snapshot();
      expect(rejection).toMatchObject({ code: 'PRECONDITION_FAILED', corr: 'stale', etag: computeEtag(current) });
      const accepted = (await readAll(log, TOPICS.changes))
        .map((r) => decodeOutputRecord(r.value!, 'change'))
        .find((c) => c.corr === 'ok');
      expect(accepted?.diff).toEqual({ a: 2 });
      expect((await latestSnapshots(log)).get('c1')).toContain('"a":2');
      // the fact sits on twin.backend, so a rebuild from the log alone gives the same twin
      expect((await cleanReplay(log)).get('c1')).toBe((await latestSnapshots(log)).get('c1'));
    });

    it('refuses what would make a snapshot exceed the record limit (SNAPSHOT_TOO_LARGE), keeps the twin at its last good state and goes on', async () => {
      const { log, start } = await fresh();
      const producer = createTestProducer(log);
      const rejectedByCode: Record<string, number> = {};
      const projector = await start({
        maxSnapshotBytes: 4_096,
        onBatch: (_p, _stats, detail) => {
          for (const [code, n] of Object.entries(detail.rejectedByCode))
            rejectedByCode[code] = (rejectedByCode[code] ?? 0) + n;
        },
      });
      await producer.send([producer.event('big', 'create'), producer.event('calm', 'create')]);
      await producer.send([
        producer.event('big', 'reported', { blob: 'x'.repeat(3_000) }),
        producer.event('calm', 'reported', { n: 1 }),
      ]);
      await waitFor(async () => (await count(log, TOPICS.changes)) === 4, 30_000, 'the first changes');
      const tooLarge = producer.event('big', 'reported', { blob2: 'y'.repeat(3_000) });
      await producer.send([tooLarge]);
      const etag = computeEtag(
        fromStateDoc(
          decodeOutputRecord(
            (await readAll(log, TOPICS.snapshots)).filter((r) => r.key === 'big').at(-1)!.value!,
            'snapshot',
          ).state,
        ),
      );
      const command = producer.event(
        'big',
        'desired',
        { blob3: 'z'.repeat(3_000) },
        { cond: { ifMatch: `"${etag}"` }, corr: 'big-cmd' },
      );
      await producer.send([command]);
      await producer.send([producer.event('big', 'reported', { n: 2 }), producer.event('calm', 'reported', { n: 2 })]);
      await waitFor(
        async () => (await count(log, TOPICS.changes)) === 6 && (await count(log, TOPICS.rejections)) === 2,
        30_000,
        'later events and two rejections',
      );

      const rejections = (await readAll(log, TOPICS.rejections)).map((r) => decodeOutputRecord(r.value!, 'rejection'));
      expect(rejections.map((r) => [r.code, r.id?.seq, r.corr ?? null]).sort()).toEqual(
        [
          ['SNAPSHOT_TOO_LARGE', tooLarge.id.seq, null],
          ['SNAPSHOT_TOO_LARGE', command.id.seq, 'big-cmd'],
        ].sort(),
      );
      expect(rejections[0]!.message).toMatch(/record limit of 4096 bytes/);
      expect(rejectedByCode).toEqual({ SNAPSHOT_TOO_LARGE: 2 });
      // no fact for the refused command; the twin has everything but the refused writes
      expect((await readAll(log, TOPICS.backend)).length).toBe(3);
      const twin = JSON.parse((await latestSnapshots(log)).get('big')!) as {
        properties: { reported: Record<string, unknown>; desired: Record<string, unknown> };
      };
      expect(twin.properties.reported).toMatchObject({ blob: 'x'.repeat(3_000), n: 2, $version: 3 });
      expect(twin.properties.reported).not.toHaveProperty('blob2');
      expect(twin.properties.desired).not.toHaveProperty('blob3');
      expect((await latestSnapshots(log)).get('calm')).toContain('"n":2');
      for (const r of await readAll(log, TOPICS.snapshots)) expect(r.value?.length ?? 0).toBeLessThanOrEqual(4_096);
      expect(projector.partitions().length).toBe(2); // still running
      // a rebuild with the same limit refuses the same event
      const rebuilt = await replay({ log, maxSnapshotBytes: 4_096 });
      expect(rebuilt.counts.rejected).toBe(1); // the event; the command's refusal is in the log, not decided again
      const live = await latestSnapshots(log);
      for (const id of ['big', 'calm'])
        expect(canonicalJson(renderTwin(rebuilt.states.get(id)!)), id).toBe(live.get(id));
    });

    it('restarts from its snapshots without losing or double-applying anything', async () => {
      const { log, start } = await fresh();
      const producer = createTestProducer(log);
      let projector = await start();
      const ids = Array.from({ length: 20 }, (_, i) => `r${i}`);
      await producer.send(ids.map((d) => producer.event(d, 'create')));
      for (let round = 0; round < 6; round++) {
        await producer.send(
          ids.map((d) => producer.event(d, round % 2 ? 'reported' : 'desired', { [`k${round}`]: round })),
        );
        if (round === 2 || round === 4) {
          await projector.stop();
          projector = await start();
        }
      }
      await waitFor(async () => (await count(log, TOPICS.changes)) === 20 * 7, 60_000, 'all changes');
      const snapshots = await latestSnapshots(log);
      const replay = await cleanReplay(log);
      for (const [id, twin] of replay) expect(snapshots.get(id), id).toBe(twin);
      expect(await count(log, TOPICS.changes)).toBe(20 * 7);
    });

    it('replays to the live snapshots, travels back in time, and gives each device its audit trail', async () => {
      const { log, start } = await fresh();
      const producer = createTestProducer(log);
      await start();
      await producer.send([
        producer.event('t1', 'create'),
        producer.event('t2', 'create'),
        producer.event('t1', 'desired', { fw: '1.0' }),
      ]);
      await waitFor(async () => (await count(log, TOPICS.changes)) === 3);
      await new Promise((r) => setTimeout(r, 20));
      const between = Date.now();
      await new Promise((r) => setTimeout(r, 20));
      await producer.send([
        producer.event('t1', 'desired', { fw: '2.0' }),
        producer.event('t1', 'reported', { fw: '2.0' }),
        producer.event('t2', 'tags', { site: 'A' }),
      ]);
      await waitFor(async () => (await count(log, TOPICS.changes)) === 6);

      const live = await latestSnapshots(log);
      const full = await replay({ log });
      expect(full.counts.applied).toBe(6);
      for (const [id, state] of full.states)
        expect(twinExists(state) ? canonicalJson(renderTwin(state)) : null, id).toBe(live.get(id));

      const past = await replay({ log, until: between });
      expect(renderTwin(past.states.get('t1')!).properties.desired['fw']).toBe('1.0');
      expect(renderTwin(past.states.get('t2')!).tags).toEqual({});

      // rebuild into a fresh store: its snapshots equal the live ones
      const { log: fresh2, cleanup } = await setup();
      cleanups.push(async () => {
        await fresh2.close();
        await cleanup?.();
      });
      await ensureTwinTopics(fresh2, 2);
      const rebuilt = await replay({ log, into: fresh2 });
      expect(rebuilt.partitions.map((p) => p.partition)).toEqual([0, 1]);
      expect(await latestSnapshots(fresh2)).toEqual(live);

      const trail = await history({ log, deviceId: 't1' });
      expect(trail.map((e) => [e.section, e.actor, e.versions.version])).toEqual([
        ['create', 'test-writer', 2],
        ['desired', 'test-writer', 3],
        ['desired', 'test-writer', 4],
        ['reported', 'test-writer', 5],
      ]);
      expect(trail[2]!.patch).toEqual({ fw: '2.0' });
    });
  });
}
