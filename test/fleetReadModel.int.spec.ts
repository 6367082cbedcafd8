/**
 * The fleet read model fed by a real projector's `twin.snapshots`, on the embedded log and on a
 * real Kafka broker: read-your-writes through freshness waits, deletes, a restart that resumes from
 * the offsets stored with the rows, a rebuild from the topic, and a second read model that reaches
 * the first one's freshness token with the same answers.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient, type TwinClient, type WriteReceipt } from '@twinlog/client';
import type { Log } from '@twinlog/core';
import { createReadModel, decodeFreshness, isFleetError, type ReadModel } from '@twinlog/fleet';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createKafkaLog } from '@twinlog/log-kafka';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

for (const kind of ['embedded', 'kafka'] as const) {
  describe(`read model on the ${kind} log`, () => {
    let dir: string;
    let log: Log;
    let projector: Projector;
    let client: TwinClient;
    const models: ReadModel[] = [];

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twinlog-fleet-rm-'));
      if (kind === 'embedded') {
        log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });
      } else {
        const brokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter(Boolean);
        log = createKafkaLog({ brokers, topicPrefix: `fleet-${randomUUID().slice(0, 8)}.` });
      }
      await ensureTwinTopics(log, 4);
      projector = await startProjector({ log, physicalNow: () => Date.now() });
      client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'fleet-test', pollIntervalMs: 5 });
    });

    afterEach(async () => {
      for (const m of models.splice(0)) await m.close().catch(() => {});
      await client.close();
      await projector.stop();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const open = async (file: string): Promise<ReadModel> => {
      const m = await createReadModel({ log, path: join(dir, file), waitTimeoutMs: 30_000 });
      models.push(m);
      return m;
    };
    const ids = (rows: readonly Record<string, unknown>[]): unknown[] => rows.map((r) => r['deviceId']);

    it('answers with freshness, waits for writes, resumes after a restart and rebuilds from the topic', async () => {
      const rm = await open('fleet.db');
      const receipts: WriteReceipt[] = [];
      for (let i = 0; i < 12; i++) {
        const id = `dev-${String(i).padStart(2, '0')}`;
        await client.createDevice(id, { wait: true });
        receipts.push(...(await client.patchTwin(id, { tags: { site: `s${i % 3}`, n: i }, desired: { fw: '1.0' } })));
      }
      await rm.waitFor(receipts);
      const s1 = await rm.query("SELECT deviceId FROM devices WHERE tags.site = 's1'");
      expect(ids(s1.rows)).toEqual(['dev-01', 'dev-04', 'dev-07', 'dev-10']);
      expect(decodeFreshness(s1.freshness).snapshots.length).toBe(4);

      // read-your-writes: a write's receipt is the wait target
      const moved = await client.mergeTags('dev-04', { site: 's2' });
      const s2 = await rm.query("SELECT deviceId FROM devices WHERE tags.site = 's2'", { after: moved });
      expect(ids(s2.rows)).toEqual(['dev-02', 'dev-04', 'dev-05', 'dev-08', 'dev-11']);

      // GROUP BY, and a bounded wait that times out with its own code
      const groups = await rm.query('SELECT tags.site AS site, COUNT() AS n FROM devices GROUP BY tags.site');
      expect(groups.rows).toEqual([
        { site: 's0', n: 4 },
        { site: 's1', n: 3 },
        { site: 's2', n: 5 },
      ]);
      const err = await rm
        .waitFor({ ...moved, offset: moved.offset + 1_000_000 }, { timeoutMs: 100 })
        .catch((e: unknown) => e);
      expect(isFleetError(err, 'READ_MODEL_TIMEOUT')).toBe(true);

      // deletes leave the view
      const gone = await client.deleteDevice('dev-00');
      await rm.waitFor(gone);
      expect(rm.getTwin('dev-00')).toBeUndefined();
      const all = await rm.queryAll('SELECT deviceId FROM devices');
      expect(all.rows).toHaveLength(11);

      // restart: positions come back with the rows
      const token = rm.freshness();
      await rm.close();
      models.splice(models.indexOf(rm), 1);
      const again = await open('fleet.db');
      expect(again.freshness()).toBe(token);
      expect((await again.queryAll('SELECT deviceId FROM devices')).rows).toEqual(all.rows);

      // another read model, built from the topic alone, reaches the same token with the same answers
      const other = await open('other.db');
      await other.waitFor(token);
      expect((await other.queryAll('SELECT * FROM devices')).rows).toEqual(
        (await again.queryAll('SELECT * FROM devices')).rows,
      );

      // rebuild in place
      await again.rebuild();
      await again.waitFor(token);
      expect((await again.queryAll('SELECT deviceId FROM devices')).rows).toEqual(all.rows);
      expect(again.getTwin('dev-04')).toMatchObject({
        tags: { site: 's2', n: 4 },
        properties: { desired: { fw: '1.0' } },
      });
    });
  });
}
