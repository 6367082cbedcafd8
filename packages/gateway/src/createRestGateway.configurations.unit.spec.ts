/**
 * The configuration routes (docs/iot-hub.md, "Automatic configurations") over an in-memory
 * `ConfigurationService`: rights, the request checks of `internal/configurationRoutes.ts` (body
 * id, module content, immutable content, read-only members dropped, `top`), If-Match on PUT and
 * DELETE, IoT Hub's error names, and 404 `NotFound` for a gateway given no service.
 */
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { TwinlogError } from '@twinlog/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRestGateway,
  type ConfigurationDefinition,
  type ConfigurationDocument,
  type ConfigurationService,
  type ListeningGateway,
  type RestGateway,
} from './createRestGateway.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');
const READER_KEY = Buffer.alloc(32, 9).toString('base64');

/** A configuration store in memory with the fleet manager's etag and error rules. */
function memoryService(): ConfigurationService & { readonly puts: ConfigurationDefinition[] } {
  const stored = new Map<string, ConfigurationDocument>();
  const puts: ConfigurationDefinition[] = [];
  let n = 0;
  const get = (id: string): ConfigurationDocument => {
    const c = stored.get(id);
    if (c === undefined) throw new TwinlogError('CONFIGURATION_NOT_FOUND', `no configuration ${id}`);
    return c;
  };
  return {
    puts,
    put(config, { ifMatch } = {}) {
      const before = stored.get(config.id);
      if (ifMatch !== undefined && ifMatch !== '*' && before?.etag !== ifMatch)
        throw new TwinlogError('CONFIGURATION_PRECONDITION_FAILED', `stale etag ${ifMatch}`);
      if (config.priority < 0) throw new TwinlogError('CONFIGURATION_INVALID', 'priority must be at least 0');
      puts.push(config);
      const time = new Date(1_750_000_000_000 + n * 1000).toISOString();
      stored.set(config.id, {
        ...config,
        schemaVersion: config.schemaVersion ?? '1.0',
        etag: `e${++n}`,
        createdTimeUtc: before?.createdTimeUtc ?? time,
        lastUpdatedTimeUtc: time,
        systemMetrics: { queries: {}, results: { targetedCount: 0, appliedCount: 0 } },
        metrics: { queries: config.metrics?.queries ?? {}, results: {} },
      });
      return stored.get(config.id);
    },
    get: async (id) => get(id),
    list: async (top = 1000) => [...stored.values()].sort((a, b) => b.priority - a.priority).slice(0, top),
    delete(id) {
      get(id);
      stored.delete(id);
    },
  };
}

let log: InMemoryLog;
let service: ReturnType<typeof memoryService>;
let gateway: RestGateway;
let bare: RestGateway;
let server: ListeningGateway;
let bareServer: ListeningGateway;

beforeEach(async () => {
  log = createInMemoryLog({ now: Date.now });
  service = memoryService();
  const policies = [
    { name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite' as const] },
    { name: 'reader', key: READER_KEY, rights: ['registryRead' as const] },
  ];
  gateway = createRestGateway({ log, hubName: HUB, physicalNow: Date.now, policies, configurations: service });
  bare = createRestGateway({ log, hubName: HUB, physicalNow: Date.now, policies });
  server = await gateway.listen({ port: 0, host: '127.0.0.1' });
  bareServer = await bare.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  await server.close();
  await bareServer.close();
  await gateway.close();
  await bare.close();
  await log.close();
});

const token = (policy = 'iothubowner', key = OWNER_KEY): string =>
  signServiceSas(HUB, policy, key, Math.floor(Date.now() / 1000) + 3600);

async function call(
  path: string,
  {
    method = 'GET',
    body,
    headers = {},
    auth = token(),
    port = server.port,
  }: { method?: string; body?: unknown; headers?: Record<string, string>; auth?: string; port?: number } = {},
) {
  const res = await fetch(`http://127.0.0.1:${port}${path}${path.includes('?') ? '&' : '?'}api-version=2021-04-12`, {
    method,
    headers: {
      authorization: auth,
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown> & { Message?: string }),
  };
}

const config = {
  id: 'fw',
  schemaVersion: '1.0',
  content: { deviceContent: { 'properties.desired.fw': '2.0' } },
  targetCondition: "tags.env = 'prod'",
  priority: 5,
};

describe('REST /configurations', () => {
  it('creates, gets, lists, replaces with If-Match and deletes, in IoT Hub JSON', async () => {
    const created = await call('/configurations/fw', { method: 'PUT', body: config });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      id: 'fw',
      schemaVersion: '1.0',
      labels: {},
      content: { deviceContent: { 'properties.desired.fw': '2.0' }, modulesContent: {}, moduleContent: {} },
      targetCondition: "tags.env = 'prod'",
      createdTimeUtc: expect.any(String) as unknown,
      lastUpdatedTimeUtc: expect.any(String) as unknown,
      priority: 5,
      systemMetrics: { queries: {}, results: { targetedCount: 0, appliedCount: 0 } },
      metrics: { queries: {}, results: {} },
      etag: 'e1',
    });
    expect((await call('/configurations/fw')).body).toEqual(created.body);

    // what updateConfiguration sends back: the read-only members are dropped before the service sees them
    const updated = await call('/configurations/fw', {
      method: 'PUT',
      body: {
        ...created.body,
        priority: 9,
        metrics: { queries: { m: 'SELECT deviceId FROM devices' }, results: { m: 3 } },
      },
      headers: { 'if-match': '"e1"' },
    });
    expect(updated).toMatchObject({
      status: 200,
      body: { priority: 9, etag: 'e2', metrics: { queries: { m: 'SELECT deviceId FROM devices' } } },
    });
    expect(Object.keys(service.puts[1]!).sort()).toEqual([
      'content',
      'id',
      'labels',
      'metrics',
      'priority',
      'schemaVersion',
      'targetCondition',
    ]);
    expect(
      (
        await call('/configurations/fw', {
          method: 'PUT',
          body: { ...config, priority: 1 },
          headers: { 'if-match': '"e1"' },
        })
      ).body?.Message,
    ).toMatch(/^ErrorCode:PreconditionFailed;/);

    await call('/configurations/low', { method: 'PUT', body: { ...config, id: 'low', priority: 1 } });
    const list = await call('/configurations');
    expect((list.body as unknown as { id: string }[]).map((c) => c.id)).toEqual(['fw', 'low']);
    expect(((await call('/configurations?top=1')).body as unknown as { id: string }[]).map((c) => c.id)).toEqual([
      'fw',
    ]);
    expect((await call('/configurations?top=0')).status).toBe(400);

    expect((await call('/configurations/fw', { method: 'DELETE', headers: { 'if-match': '"e1"' } })).status).toBe(412);
    expect((await call('/configurations/fw', { method: 'DELETE', headers: { 'if-match': '"e2"' } })).status).toBe(204);
    const missing = await call('/configurations/fw');
    expect(missing.status).toBe(404);
    expect(missing.body?.Message).toMatch(/^ErrorCode:ConfigurationNotFound;/);
    expect((await call('/configurations/fw', { method: 'DELETE' })).status).toBe(404);
  });

  it('refuses a changed content, module content, a body id other than the path, and invalid members', async () => {
    await call('/configurations/fw', { method: 'PUT', body: config });
    const changed = await call('/configurations/fw', {
      method: 'PUT',
      body: { ...config, content: { deviceContent: { 'properties.desired.fw': '3.0' } } },
      headers: { 'if-match': '*' },
    });
    expect(changed.status).toBe(400);
    expect(changed.body?.Message).toMatch(
      /^ErrorCode:ArgumentInvalid;The content of configuration fw cannot be updated/,
    );
    // the same content with keys in another order is the same content
    expect((await call('/configurations/fw', { method: 'PUT', body: { ...config, priority: 2 } })).status).toBe(200);
    for (const body of [
      { ...config, content: { modulesContent: { $edgeAgent: {} } } },
      {
        ...config,
        content: { deviceContent: config.content.deviceContent, moduleContent: { 'properties.desired.x': 1 } },
      },
      { ...config, id: 'other' },
      { ...config, targetCondition: 3 },
      { ...config, priority: '5' },
      { ...config, labels: { a: 1 } },
      { ...config, metrics: { queries: { m: 1 } } },
      { ...config, content: undefined },
    ]) {
      const r = await call('/configurations/new', { method: 'PUT', body });
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    expect(
      (await call('/configurations/new', { method: 'PUT', body: { ...config, id: undefined, priority: -1 } })).body
        ?.Message,
    ).toMatch(/^ErrorCode:ArgumentInvalid;priority/);
  });

  it('needs registryRead to read and registryReadWrite to change; a gateway without a service answers 404 NotFound', async () => {
    await call('/configurations/fw', { method: 'PUT', body: config });
    const reader = token('reader', READER_KEY);
    expect((await call('/configurations/fw', { auth: reader })).status).toBe(200);
    expect((await call('/configurations', { auth: reader })).status).toBe(200);
    expect((await call('/configurations/fw', { method: 'PUT', body: config, auth: reader })).status).toBe(403);
    expect((await call('/configurations/fw', { method: 'DELETE', auth: reader })).status).toBe(403);
    expect((await call('/configurations/fw', { method: 'POST', body: config })).status).toBe(405);
    expect((await call('/configurations/fw/extra')).status).toBe(404);
    const none = await call('/configurations/fw', { port: bareServer.port });
    expect(none.status).toBe(404);
    expect(none.body?.Message).toMatch(/^ErrorCode:NotFound;/);
  });
});
