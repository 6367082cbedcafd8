/**
 * Automatic configurations on the embedded log with a real projector and read model: priority per
 * device, content written and removed, `configurations.<id>.status` in queries, system and custom
 * metrics, re-targeting when tags change (driven by the read model's updates), delete, refusals.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTwinClient, type TwinClient, type WriteReceipt } from '@twinlog/client';
import { isTwinlogError } from '@twinlog/core';
import { createEmbeddedLog, type EmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createConfigurationManager,
  MAX_CONFIGURATIONS,
  type ConfigurationManager,
} from './createConfigurationManager.ts';
import { createReadModel, type ReadModel } from './createReadModel.ts';

let dir: string;
let log: EmbeddedLog;
let projector: Projector;
let client: TwinClient;
let readModel: ReadModel;
let configs: ConfigurationManager;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'twinlog-configs-'));
  log = createEmbeddedLog({ path: join(dir, 'log.db'), synchronous: 'NORMAL', pollIntervalMs: 5 });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: () => Date.now() });
  client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'configs-test', pollIntervalMs: 5 });
  readModel = await createReadModel({ log, path: join(dir, 'fleet.db') });
  configs = createConfigurationManager({ readModel, log, physicalNow: Date.now });
});

afterEach(async () => {
  await configs.stop();
  await readModel.close();
  await client.close();
  await projector.stop();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Poll until `check` passes (bounded; the last failure is rethrown). */
async function eventually(check: () => void | Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(20);
    }
  }
}

const desired = (id: string): Record<string, unknown> =>
  (readModel.getTwin(id) as { properties: { desired: Record<string, unknown> } }).properties.desired;
const ids = async (q: string): Promise<unknown[]> => (await readModel.queryAll(q)).rows.map((r) => r['deviceId']);
const dev = (i: number): string => `dev-${String(i).padStart(2, '0')}`;

describe('automatic configurations', () => {
  it('applies the highest priority per device, follows tag changes, reports metrics, removes content', async () => {
    const receipts: WriteReceipt[] = [];
    for (let i = 0; i < 10; i++) {
      await client.createDevice(dev(i), { wait: true });
      receipts.push(await client.mergeTags(dev(i), { env: i < 6 ? 'test' : 'prod' }));
      receipts.push(await client.mergeReported(dev(i), { firmware: { version: i < 3 ? '1.1' : '1.0' } }));
    }
    await readModel.waitFor(receipts);

    configs.put({
      id: 'fw-test',
      priority: 10,
      targetCondition: "tags.env = 'test'",
      content: { deviceContent: { 'properties.desired.firmware': { version: '1.1' } } },
      metrics: {
        queries: { current: "SELECT deviceId FROM devices WHERE properties.reported.firmware.version = '1.1'" },
      },
    });
    configs.put({
      id: 'fw-all',
      priority: 5,
      targetCondition: '*',
      content: {
        deviceContent: {
          'properties.desired.firmware': { version: '1.0' },
          'properties.desired.telemetry.interval': 60,
        },
      },
    });
    configs.start();

    await eventually(() => {
      for (let i = 0; i < 10; i++) {
        expect(desired(dev(i))['firmware']).toEqual({ version: i < 6 ? '1.1' : '1.0' });
        expect(desired(dev(i))['telemetry']).toEqual(i < 6 ? undefined : { interval: 60 });
      }
    });
    expect(await ids("SELECT deviceId FROM devices WHERE configurations.[[fw-test]].status = 'Applied'")).toEqual(
      [0, 1, 2, 3, 4, 5].map(dev),
    );
    expect(await ids("SELECT deviceId FROM devices WHERE configurations.[[fw-all]].status = 'Targeted'")).toEqual(
      [0, 1, 2, 3, 4, 5].map(dev),
    );
    const fwTest = await configs.get('fw-test');
    expect(fwTest.systemMetrics.results).toEqual({ targetedCount: 6, appliedCount: 6 });
    expect(fwTest.metrics.results).toEqual({ current: 3 });
    expect((await configs.get('fw-all')).systemMetrics.results).toEqual({ targetedCount: 10, appliedCount: 4 });
    expect((await configs.list()).map((c) => c.id)).toEqual(['fw-test', 'fw-all']);

    // a tag change re-targets the device: content swapped, the old settings removed
    await client.mergeTags(dev(7), { env: 'test' });
    await client.mergeTags(dev(0), { env: 'prod' });
    await eventually(() => {
      expect(desired(dev(7))['firmware']).toEqual({ version: '1.1' });
      expect(desired(dev(7))['telemetry']).toEqual({}); // the interval of fw-all was removed (null), its parent stays
      expect(desired(dev(0))['firmware']).toEqual({ version: '1.0' });
      expect(desired(dev(0))['telemetry']).toEqual({ interval: 60 });
    });
    expect((await configs.get('fw-test')).systemMetrics.results).toEqual({ targetedCount: 6, appliedCount: 6 });

    // a higher priority arrives for one device; then the first configuration goes away
    configs.put({
      id: 'hotfix',
      priority: 20,
      targetCondition: `deviceId = '${dev(3)}'`,
      content: { deviceContent: { 'properties.desired.firmware.version': '1.2' } },
    });
    await eventually(() => expect(desired(dev(3))['firmware']).toEqual({ version: '1.2' }));
    configs.delete('fw-test');
    await eventually(async () => {
      for (const i of [1, 2, 4, 5, 7])
        expect(desired(dev(i))).toMatchObject({ firmware: { version: '1.0' }, telemetry: { interval: 60 } });
      expect(await ids("SELECT deviceId FROM devices WHERE configurations.[[fw-test]].status = 'Applied'")).toEqual([]);
    });
    expect((await configs.get('fw-all')).systemMetrics.results).toEqual({ targetedCount: 10, appliedCount: 9 });

    // the writes are not repeated once the twins agree: a full pass writes nothing
    await eventually(async () => expect((await configs.reconcile()).written).toEqual([]));

    // a change that keeps each device's winner and its content (priority, labels) rewrites no twin
    const fwAll = await configs.get('fw-all');
    configs.put(
      { id: 'fw-all', priority: 6, targetCondition: '*', content: fwAll.content, labels: { note: 'x' } },
      { ifMatch: fwAll.etag },
    );
    expect((await configs.reconcile()).written).toEqual([]);
    expect((await configs.get('fw-all')).systemMetrics.results).toEqual({ targetedCount: 10, appliedCount: 9 });
  });

  it('targets device twins only, never module twins (docs/iot-hub.md, "Module identities and module twins")', async () => {
    await client.createDevice('gw-1', { wait: true });
    await client.createDevice('gw-1/sensor', { wait: true });
    await readModel.waitFor([
      await client.mergeTags('gw-1/sensor', { env: 'prod' }),
      await client.mergeTags('gw-1', { env: 'prod' }),
    ]);
    configs.start();
    configs.put({
      id: 'all',
      priority: 1,
      targetCondition: '*',
      content: { deviceContent: { 'properties.desired.a': 1 } },
    });
    configs.put({
      id: 'prod',
      priority: 2,
      targetCondition: "tags.env = 'prod'",
      content: { deviceContent: { 'properties.desired.b': 2 } },
    });
    await eventually(() => expect(desired('gw-1')['b']).toBe(2));
    // a change of the module twin reaches the manager as a read-model update naming it
    await readModel.waitFor([await client.mergeTags('gw-1/sensor', { site: 'n' })]);
    await sleep(200);
    await eventually(async () => expect((await configs.reconcile()).written).toEqual([]));
    expect(desired('gw-1/sensor')['$version']).toBe(1);
    expect(Object.keys(desired('gw-1/sensor')).filter((k) => !k.startsWith('$'))).toEqual([]);
    expect(readModel.getTwin('gw-1/sensor')!['configurations']).toBeUndefined();
  });

  it('refuses invalid configurations and stale etags', async () => {
    const base = {
      id: 'ok',
      priority: 1,
      targetCondition: 'tags.a = 1',
      content: { deviceContent: { 'properties.desired.x': 1 } },
    };
    const codeOf = (f: () => unknown): unknown => {
      try {
        f();
        return 'no error';
      } catch (e) {
        return isTwinlogError(e) ? e.code : e;
      }
    };
    const first = configs.put(base);
    expect(codeOf(() => configs.put({ ...base, id: 'Upper' }))).toBe('CONFIGURATION_INVALID');
    expect(codeOf(() => configs.put({ ...base, targetCondition: 'properties.reported.x = 1' }))).toBe(
      'CONFIGURATION_INVALID',
    );
    expect(codeOf(() => configs.put({ ...base, priority: -1 }))).toBe('CONFIGURATION_INVALID');
    expect(codeOf(() => configs.put({ ...base, content: { deviceContent: { 'tags.x': 1 } } }))).toBe(
      'CONFIGURATION_INVALID',
    );
    expect(codeOf(() => configs.put({ ...base, targetCondition: 'tags.a = = 1' }))).toBe('QUERY_SYNTAX');
    expect(codeOf(() => configs.put({ ...base, priority: 2 }, { ifMatch: '"stale"' }))).toBe(
      'CONFIGURATION_PRECONDITION_FAILED',
    );
    expect(codeOf(() => configs.put({ ...base, priority: 2 }, { ifMatch: `"${first.etag}"` }))).toBe('no error');
    expect(codeOf(() => configs.delete('missing'))).toBe('CONFIGURATION_NOT_FOUND');
    // IoT Hub's 100 configurations per hub: the 101st is refused, changing one still works, and a delete makes room
    for (let i = 1; i < MAX_CONFIGURATIONS; i++) configs.put({ ...base, id: `c${i}` });
    expect(codeOf(() => configs.put({ ...base, id: 'one-more' }))).toBe('QUOTA_EXCEEDED');
    expect(codeOf(() => configs.put({ ...base, id: 'c1', priority: 9 }))).toBe('no error');
    configs.delete('c1');
    expect(codeOf(() => configs.put({ ...base, id: 'one-more' }))).toBe('no error');
  });
});
