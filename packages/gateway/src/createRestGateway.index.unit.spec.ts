/**
 * Twin reads from an index (docs/reads.md): the REST gateway given the fleet read model as
 * `twinIndex` answers `GET /twins/{id}` and the twin after PATCH/PUT byte for byte as the gateway
 * without an index (which reads `twin.snapshots`), reads its own writes, and falls back to
 * `twin.snapshots` when the index does not reflect a write in time.
 */
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { createReadModel, type ReadModel } from '@twinlog/fleet';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { parseQuery } from '@twinlog/query';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRestGateway, type ListeningGateway, type RestGateway, type TwinIndex } from './createRestGateway.ts';
import { createDeviceKeyStore } from './internal/deviceKeyStore.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const KEY = Buffer.alloc(32, 7).toString('base64');
const API = 'api-version=2021-04-12';

let time: number;
const now = (): number => time;
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let readModel: ReadModel;
const closers: (() => Promise<void>)[] = [];

beforeEach(async () => {
  time = 1_750_000_000_000;
  log = createInMemoryLog({ now });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: now, settleIntervalMs: 10 });
  client = createTwinClient({ log, physicalNow: now, actor: 'index-test', pollIntervalMs: 2, decisionTimeoutMs: 3000 });
  readModel = await createReadModel({ log, path: ':memory:' });
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await readModel.close();
  await client.close();
  await projector.stop();
  await log.close();
});

const deviceKeys = createDeviceKeyStore();

async function gatewayWith(
  twinIndex: TwinIndex | undefined,
): Promise<
  (
    path: string,
    init?: { method?: string; body?: unknown; headers?: Record<string, string> },
  ) => Promise<{ status: number; text: string; json: Record<string, any> | undefined }>
> {
  const gateway: RestGateway = createRestGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: now,
    deviceKeys,
    policies: [{ name: 'iothubowner', key: KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
    ...(twinIndex === undefined ? {} : { twinIndex }),
  });
  const server: ListeningGateway = await gateway.listen({ port: 0, host: '127.0.0.1' });
  closers.push(
    () => gateway.close(),
    () => server.close(),
  );
  return async (path, { method = 'GET', body, headers = {} } = {}) => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}?${API}`, {
      method,
      headers: {
        authorization: signServiceSas(HUB, 'iothubowner', KEY, Math.floor(time / 1000) + 3600),
        ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, text, json: text === '' ? undefined : (JSON.parse(text) as Record<string, any>) };
  };
}

/**
 * The read model behind a view refreshed only when a wait resolves: a gateway that did not wait
 * for its own write's position would read the stale view.
 */
function stickyIndex(rm: ReadModel): TwinIndex & { refresh(): void } {
  const view = new Map<string, Record<string, unknown>>();
  const refresh = (): void => {
    view.clear();
    for (const row of rm.store.run(parseQuery('SELECT * FROM devices'), { all: true }).rows)
      view.set(row['deviceId'] as string, row);
  };
  return {
    refresh,
    getTwin: (id) => view.get(id),
    waitFor: async (target, options) => {
      await rm.waitFor(target, options);
      refresh();
    },
    onUpdate: (l) =>
      rm.onUpdate((u) => {
        refresh();
        l(u);
      }),
  };
}

describe('REST twin reads from the read model', () => {
  it('GET, PATCH and PUT answer byte for byte as twin.snapshots does, over several twins and writes', async () => {
    const indexed = await gatewayWith(readModel);
    const scanning = await gatewayWith(undefined);
    const ids = ['dev-a', 'dev-b', 'dev-c', 'dev-d', 'dev-e'];
    for (const id of ids)
      expect((await indexed(`/devices/${id}`, { method: 'PUT', body: { deviceId: id } })).status).toBe(200);
    for (let round = 0; round < 3; round++) {
      for (const [i, id] of ids.entries()) {
        time += 1000;
        const before = await indexed(`/twins/${id}`);
        expect(before.status).toBe(200);
        expect(before.text).toBe((await scanning(`/twins/${id}`)).text);
        const patched = await indexed(`/twins/${id}`, {
          method: 'PATCH',
          headers: { 'if-match': `"${before.json!['etag'] as string}"` },
          body: {
            tags: { round, site: `s${i}`, nested: { n: round * 10 + i } },
            properties: { desired: { fw: `1.${round}`, drop: round === 1 ? null : { x: i } } },
          },
        });
        expect(patched.status).toBe(200);
        expect(patched.json).toMatchObject({
          tags: { round, site: `s${i}` },
          properties: { desired: { fw: `1.${round}` } },
        });
        expect(patched.json!['version']).toBe(before.json!['version'] + 2); // tags and desired: two changes
        expect(patched.text).toBe((await scanning(`/twins/${id}`)).text);
        await client.mergeReported(id, { battery: 100 - round, at: { round } }, { wait: true });
        if (i % 2 === 0) {
          const put = await indexed(`/twins/${id}`, {
            method: 'PUT',
            body: { tags: { only: round }, properties: { desired: { mode: 'put' } } },
          });
          expect(put.status).toBe(200);
          expect(put.json).toMatchObject({ tags: { only: round }, properties: { desired: { mode: 'put' } } });
          expect(put.text).toBe((await scanning(`/twins/${id}`)).text);
        }
        // the index's document is the client's rendering, field for field and in the same order
        await readModel.waitFor(await client.mergeTags(id, { touched: round }));
        const { configurations: _none, ...stored } = readModel.getTwin(id)!;
        expect(JSON.stringify(stored)).toBe(JSON.stringify(await client.getTwin(id)));
        expect((await indexed(`/twins/${id}`)).text).toBe((await scanning(`/twins/${id}`)).text);
      }
    }
    const nulled = await indexed('/twins/dev-a', { method: 'PATCH', body: { tags: null } });
    expect(nulled.json!['tags']).toEqual({});
    expect(nulled.text).toBe((await scanning('/twins/dev-a')).text);
  });

  it('reads its own writes when the index lags: after PUT /devices, PATCH, PUT, a retried PATCH and DELETE', async () => {
    const index = stickyIndex(readModel);
    const get = await gatewayWith(index);
    expect((await get('/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
    expect((await get('/twins/dev1')).status).toBe(200); // the view was refreshed by the wait for the create

    const patch = {
      headers: { 'idempotency-key': 'k-1' },
      method: 'PATCH',
      body: { properties: { desired: { fw: '2.0' } } },
    };
    const first = await get('/twins/dev1', patch);
    expect(first.json).toMatchObject({ properties: { desired: { fw: '2.0', $version: 2 } } });
    // another writer changes the twin; the view does not see it until a wait refreshes it
    await client.mergeTags('dev1', { other: true }, { wait: true });
    const retried = await get('/twins/dev1', patch); // a duplicate: answered at the twin's current version
    expect(retried.json!['tags']).toEqual({ other: true });

    const put = await get('/twins/dev1', { method: 'PUT', body: { tags: { a: 1 }, properties: { desired: {} } } });
    expect(put.json).toMatchObject({ tags: { a: 1 }, properties: { desired: { $version: 3 } } });
    expect((await get('/twins/dev1')).json!['tags']).toEqual({ a: 1 });

    expect((await get('/devices/dev1', { method: 'DELETE', headers: { 'if-match': '"*"' } })).status).toBe(204);
    expect((await get('/twins/dev1')).status).toBe(404);
  });

  it('an index that does not reflect the write in time: the twin comes from twin.snapshots', async () => {
    const stale = new Map<string, Record<string, unknown>>();
    const frozen: TwinIndex = {
      getTwin: (id) => stale.get(id),
      waitFor: () => new Promise(() => {}), // never
      onUpdate: () => () => {},
    };
    const get = await gatewayWith(frozen);
    const scanning = await gatewayWith(undefined);
    expect((await get('/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
    stale.set('dev1', {
      deviceId: 'dev1',
      etag: 'old',
      version: 1,
      status: 'enabled',
      tags: {},
      properties: { desired: {}, reported: {} },
    });
    const patched = await get('/twins/dev1', { method: 'PATCH', body: { tags: { x: 1 } } });
    expect(patched.status).toBe(200);
    expect(patched.json!['tags']).toEqual({ x: 1 });
    expect(patched.text).toBe((await scanning('/twins/dev1')).text);
  });
});
