/**
 * The REST gateway over the in-memory log with a real projector, through a real HTTP server on
 * 127.0.0.1 and fetch, as the `azure-iothub` Registry would call it (docs/iot-hub.md, "REST").
 */
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  createRestGateway,
  GATEWAY_REQUEST_CHANNEL,
  type GatewayRequestEvent,
  type ListeningGateway,
  type RestGateway,
} from './createRestGateway.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');
const READER_KEY = Buffer.alloc(32, 9).toString('base64');
const API = 'api-version=2021-04-12';

let time: number;
const now = (): number => time;
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
let gateway: RestGateway;
let server: ListeningGateway;

beforeEach(async () => {
  time = 1_750_000_000_000;
  log = createInMemoryLog({ now });
  await ensureTwinTopics(log, 4);
  projector = await startProjector({ log, physicalNow: now, settleIntervalMs: 10 });
  client = createTwinClient({
    log,
    physicalNow: now,
    actor: 'gateway-test',
    pollIntervalMs: 2,
    decisionTimeoutMs: 3000,
  });
  gateway = createRestGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: now,
    policies: [
      { name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] },
      { name: 'registryRead', key: READER_KEY, rights: ['registryRead'] },
    ],
  });
  server = await gateway.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  await server.close();
  await gateway.close();
  await client.close();
  await projector.stop();
  await log.close();
});

const ownerToken = (): string => signServiceSas(HUB, 'iothubowner', OWNER_KEY, Math.floor(time / 1000) + 3600);

interface Call {
  readonly method?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly token?: string;
}

async function call(path: string, { method = 'GET', body, headers = {}, token = ownerToken() }: Call = {}) {
  const sep = path.includes('?') ? '&' : '?';
  const res = await fetch(`http://127.0.0.1:${server.port}${path}${sep}${API}`, {
    method,
    headers: {
      authorization: token,
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    json: text === '' ? undefined : (JSON.parse(text) as Record<string, any>),
  };
}

async function allEndOffsets(): Promise<number[][]> {
  return Promise.all(Object.values(TOPICS).map((t) => log.endOffsets(t)));
}

function expectHubError(json: Record<string, any> | undefined, name: string): void {
  expect(json?.['Message']).toMatch(new RegExp(`^ErrorCode:${name};[^;]*$`));
  expect(json?.['ExceptionMessage']).toMatch(/^Tracking ID:[0-9A-F]+-G:0-TimeStamp:\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d$/);
}

describe('createRestGateway: registry', () => {
  it('creates a device with generated keys, reads it back and deletes it', async () => {
    const created = await call('/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } });
    expect(created.status).toBe(200);
    expect(created.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const keys = created.json?.['authentication']['symmetricKey'];
    expect(Buffer.from(keys.primaryKey, 'base64')).toHaveLength(32);
    expect(keys.secondaryKey).not.toBe(keys.primaryKey);

    const got = await call('/devices/dev1');
    expect(got.status).toBe(200);
    expect(got.json?.['authentication']['symmetricKey']).toEqual(keys);

    const again = await call('/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } });
    expect(again.status).toBe(409);
    expectHubError(again.json, 'DeviceAlreadyExists');

    const deleted = await call('/devices/dev1', { method: 'DELETE', headers: { 'if-match': '"*"' } });
    expect(deleted.status).toBe(204);
    const gone = await call('/twins/dev1');
    expect(gone.status).toBe(404);
    expectHubError(gone.json, 'DeviceNotFound');
  });

  it('takes symmetric keys from the body', async () => {
    const primaryKey = Buffer.alloc(32, 1).toString('base64');
    const secondaryKey = Buffer.alloc(32, 2).toString('base64');
    const created = await call('/devices/dev2', {
      method: 'PUT',
      body: { deviceId: 'dev2', authentication: { symmetricKey: { primaryKey, secondaryKey } } },
    });
    expect(created.json?.['authentication']['symmetricKey']).toEqual({ primaryKey, secondaryKey });
  });
});

describe('createRestGateway: twins', () => {
  beforeEach(async () => {
    expect((await call('/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
  });

  it('a fresh twin has $version 1/1 and version 2', async () => {
    const { status, json } = await call('/twins/dev1');
    expect(status).toBe(200);
    expect(json).toMatchObject({
      deviceId: 'dev1',
      status: 'enabled',
      connectionState: 'Disconnected',
      version: 2,
      tags: {},
      properties: { desired: { $version: 1 }, reported: { $version: 1 } },
    });
    expect(typeof json?.['etag']).toBe('string');
  });

  it('PATCH with a quoted If-Match merges tags and desired, a stale etag gives 412', async () => {
    const before = (await call('/twins/dev1')).json!;
    const patched = await call('/twins/dev1', {
      method: 'PATCH',
      headers: { 'if-match': `"${before['etag']}"` },
      body: { tags: { site: 'b' }, properties: { desired: { fw: '1.2' } } },
    });
    expect(patched.status).toBe(200);
    expect(patched.json?.['tags']).toEqual({ site: 'b' });
    expect(patched.json?.['properties']['desired']).toMatchObject({ fw: '1.2', $version: 2 });
    expect(patched.json?.['etag']).not.toBe(before['etag']);

    const stale = await call('/twins/dev1', {
      method: 'PATCH',
      headers: { 'if-match': `"${before['etag']}"` },
      body: { tags: { site: 'c' } },
    });
    expect(stale.status).toBe(412);
    expectHubError(stale.json, 'PreconditionFailed');
    expect((await call('/twins/dev1')).json?.['tags']).toEqual({ site: 'b' });

    const star = await call('/twins/dev1', {
      method: 'PATCH',
      headers: { 'if-match': '*' },
      body: { properties: { desired: { fw: null, mode: 'eco' } } },
    });
    expect(star.status).toBe(200);
    expect(star.json?.['properties']['desired']).toMatchObject({ mode: 'eco', $version: 3 });
    expect(star.json?.['properties']['desired']['fw']).toBeUndefined();
  });

  it('a retry with the same Idempotency-Key is answered 200 with the twin and x-twinlog-duplicate-of, and applied once', async () => {
    const body = { properties: { desired: { n: 1 } } };
    const first = await call('/twins/dev1', { method: 'PATCH', headers: { 'idempotency-key': 'order-7' }, body });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-twinlog-duplicate-of')).toBeNull();
    expect(first.json?.['properties']['desired']).toMatchObject({ n: 1, $version: 2 });
    const retry = await call('/twins/dev1', { method: 'PATCH', headers: { 'idempotency-key': 'order-7' }, body });
    expect(retry.status).toBe(200);
    expect(retry.headers.get('x-twinlog-duplicate-of')).toMatch(/^\S+\/\d+$/);
    expect(retry.json?.['properties']['desired']).toMatchObject({ n: 1, $version: 2 });
    // PUT takes the header too; a bad header is 400 and appends nothing
    const put = await call('/twins/dev1', {
      method: 'PUT',
      headers: { 'idempotency-key': 'order-8' },
      body: { tags: { a: 1 } },
    });
    expect(put.status).toBe(200);
    expect(
      (
        await call('/twins/dev1', {
          method: 'PUT',
          headers: { 'idempotency-key': 'order-8' },
          body: { tags: { a: 1 } },
        })
      ).headers.get('x-twinlog-duplicate-of'),
    ).not.toBeNull();
    const before = await allEndOffsets();
    const bad = await call('/twins/dev1', { method: 'PATCH', headers: { 'idempotency-key': 'two words' }, body });
    expect(bad.status).toBe(400);
    expect(await allEndOffsets()).toEqual(before);
  });

  it('a write conditional on an etag, retried after it was applied, is answered 200 (a derived key), not 412', async () => {
    const { json: twin } = await call('/twins/dev1');
    const request = { method: 'PATCH', headers: { 'if-match': `"${twin!['etag']}"` }, body: { tags: { site: 'b' } } };
    const first = await call('/twins/dev1', request);
    expect(first.status).toBe(200);
    const retry = await call('/twins/dev1', request);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('x-twinlog-duplicate-of')).not.toBeNull();
    expect(retry.json?.['etag']).toBe(first.json?.['etag']);
    // the same etag with another body is another write: 412 as before
    const other = await call('/twins/dev1', { ...request, body: { tags: { site: 'c' } } });
    expect(other.status).toBe(412);
  });

  it('PATCH with reported in the body is 400 ArgumentInvalid and appends nothing', async () => {
    const offsets = await allEndOffsets();
    const r = await call('/twins/dev1', {
      method: 'PATCH',
      headers: { 'if-match': '*' },
      body: { properties: { reported: { temp: 1 } } },
    });
    expect(r.status).toBe(400);
    expectHubError(r.json, 'ArgumentInvalid');
    expect(await allEndOffsets()).toEqual(offsets);
  });

  it('an invalid key rejects the whole patch with 400', async () => {
    const r = await call('/twins/dev1', {
      method: 'PATCH',
      body: { tags: { ok: 1 }, properties: { desired: { $bad: 1 } } },
    });
    expect(r.status).toBe(400);
    expectHubError(r.json, 'ArgumentInvalid');
    expect((await call('/twins/dev1')).json?.['tags']).toEqual({});
  });

  it('PUT replaces tags and desired', async () => {
    await call('/twins/dev1', {
      method: 'PATCH',
      body: { tags: { a: 1, b: 2 }, properties: { desired: { x: 1, y: 2 } } },
    });
    const r = await call('/twins/dev1', {
      method: 'PUT',
      headers: { 'if-match': '"*"' },
      body: { tags: { c: 3 }, properties: { desired: { z: 1 } } },
    });
    expect(r.status).toBe(200);
    expect(r.json?.['tags']).toEqual({ c: 3 });
    const desired = r.json?.['properties']['desired'];
    expect(Object.keys(desired).filter((k) => !k.startsWith('$'))).toEqual(['z']);
  });

  it('a whole-section null empties the section', async () => {
    await call('/twins/dev1', { method: 'PATCH', body: { tags: { a: 1 }, properties: { desired: { x: 1 } } } });
    const r = await call('/twins/dev1', { method: 'PATCH', body: { properties: { desired: null } } });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json?.['properties']['desired']).filter((k) => !k.startsWith('$'))).toEqual([]);
    expect(r.json?.['tags']).toEqual({ a: 1 });
  });

  it('publishes each request on the diagnostics channel', async () => {
    const events: GatewayRequestEvent[] = [];
    const listen = (e: unknown): void => {
      events.push(e as GatewayRequestEvent);
    };
    subscribe(GATEWAY_REQUEST_CHANNEL, listen);
    try {
      await call('/twins/dev1');
      await call('/twins/nope');
      await expect.poll(() => events.length).toBe(2); // published on the server's 'finish'
    } finally {
      unsubscribe(GATEWAY_REQUEST_CHANNEL, listen);
    }
    expect(events).toEqual([
      { method: 'GET', path: '/twins/dev1', status: 200, policy: 'iothubowner', route: 'twin', ms: expect.any(Number) },
      {
        method: 'GET',
        path: '/twins/nope',
        status: 404,
        error: 'DeviceNotFound',
        policy: 'iothubowner',
        route: 'twin',
        ms: expect.any(Number),
      },
    ]);
  });

  it('PATCH on an unknown device is 404 DeviceNotFound', async () => {
    const r = await call('/twins/nope', { method: 'PATCH', body: { tags: { a: 1 } } });
    expect(r.status).toBe(404);
    expectHubError(r.json, 'DeviceNotFound');
  });
});

describe('createRestGateway: query', () => {
  it('SELECT * returns twins, paged with x-ms-continuation only while more pages exist', async () => {
    for (const id of ['q1', 'q2', 'q3']) await call(`/devices/${id}`, { method: 'PUT', body: { deviceId: id } });
    await call('/twins/q2', { method: 'PATCH', body: { tags: { region: 'EU' } } });

    const all = await call('/devices/query', { method: 'POST', body: { query: 'SELECT * FROM devices' } });
    expect(all.status).toBe(200);
    expect(all.headers.get('x-ms-item-type')).toBe('Twin');
    expect(all.headers.get('x-ms-continuation')).toBeNull();
    expect((all.json as unknown as { deviceId: string }[]).map((t) => t.deviceId)).toEqual(['q1', 'q2', 'q3']);

    const ids: string[] = [];
    let continuation: string | undefined;
    let pages = 0;
    do {
      const page = await call('/devices/query', {
        method: 'POST',
        body: { query: 'SELECT * FROM devices' },
        headers: {
          'x-ms-max-item-count': '2',
          ...(continuation === undefined ? {} : { 'x-ms-continuation': continuation }),
        },
      });
      ids.push(...(page.json as unknown as { deviceId: string }[]).map((t) => t.deviceId));
      continuation = page.headers.get('x-ms-continuation') ?? undefined;
      pages++;
    } while (continuation !== undefined && pages < 5);
    expect(ids).toEqual(['q1', 'q2', 'q3']);
    expect(pages).toBe(2);

    const where = await call('/devices/query', {
      method: 'POST',
      body: { query: "SELECT * FROM devices WHERE tags.region = 'EU'" },
    });
    expect((where.json as unknown as { deviceId: string }[]).map((t) => t.deviceId)).toEqual(['q2']);

    const bad = await call('/devices/query', { method: 'POST', body: { query: 'SELECT FROM' } });
    expect(bad.status).toBe(400);
    expectHubError(bad.json, 'ArgumentInvalid');
  });
});

describe('createRestGateway: authentication', () => {
  it('forged, expired and insufficient tokens are 401/401/403 and append nothing', async () => {
    const offsets = await allEndOffsets();
    const se = Math.floor(time / 1000) + 3600;
    const attempt = (token: string) => call('/devices/dev9', { method: 'PUT', body: { deviceId: 'dev9' }, token });

    const forged = await attempt(signServiceSas(HUB, 'iothubowner', Buffer.alloc(32, 8).toString('base64'), se));
    expect(forged.status).toBe(401);
    expectHubError(forged.json, 'IotHubUnauthorizedAccess');

    const expired = await attempt(signServiceSas(HUB, 'iothubowner', OWNER_KEY, Math.floor(time / 1000) - 1));
    expect(expired.status).toBe(401);
    expectHubError(expired.json, 'IotHubUnauthorizedAccess');

    const otherHub = await attempt(signServiceSas('other.azure-devices.net', 'iothubowner', OWNER_KEY, se));
    expect(otherHub.status).toBe(401);

    const missing = await attempt('');
    expect(missing.status).toBe(401);

    const reader = signServiceSas(HUB, 'registryRead', READER_KEY, se);
    const insufficient = await attempt(reader);
    expect(insufficient.status).toBe(403);
    expect(insufficient.json?.['Message']).toMatch(/^ErrorCode:\w+;/);
    const patch = await call('/twins/dev9', { method: 'PATCH', body: { tags: { a: 1 } }, token: reader });
    expect(patch.status).toBe(403);

    expect(await allEndOffsets()).toEqual(offsets);
    // the reader may read
    expect(
      (await call('/devices/query', { method: 'POST', body: { query: 'SELECT * FROM devices' }, token: reader }))
        .status,
    ).toBe(200);
  });

  it('an unsupported api-version is 400 InvalidProtocolVersion', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/twins/dev1?api-version=1999-01-01`, {
      headers: { authorization: ownerToken() },
    });
    expect(res.status).toBe(400);
    expectHubError((await res.json()) as Record<string, any>, 'InvalidProtocolVersion');
  });
});

describe('what the gateway refuses (packages/gateway/README.md, "What twinlog refuses")', () => {
  it('answers each IoT Hub feature it does not serve with its status and error name, appending nothing', async () => {
    const before = await allEndOffsets();
    const refused: [string, Call, number, string][] = [
      ['/twins/dev-1/methods', { method: 'POST', body: { methodName: 'reboot' } }, 405, 'MethodNotAllowed'],
      ['/twins/dev-1/modules/m-1/methods', { method: 'POST', body: { methodName: 'reboot' } }, 405, 'MethodNotAllowed'],
      ['/configurations/testQueries', { method: 'POST', body: {} }, 405, 'MethodNotAllowed'],
      ['/devices', { method: 'POST', body: [] }, 404, 'NotFound'],
      ['/jobs/create', { method: 'POST', body: {} }, 404, 'NotFound'],
      ['/statistics/devices', {}, 404, 'NotFound'],
      ['/devices', {}, 404, 'NotFound'],
      ['/devices/dev-1/applyConfigurationContent', { method: 'POST', body: {} }, 404, 'NotFound'],
    ];
    for (const [path, options, status, name] of refused) {
      const r = await call(path, options);
      expect(r.status, `${options.method ?? 'GET'} ${path}`).toBe(status);
      expectHubError(r.json, name);
    }
    expect(await allEndOffsets()).toEqual(before);
  });
});
