/**
 * The REST gateway's hardening (issue 12): token scope, token lifetime, one 401 text, admission
 * limits (429), body limits (413 that closes), content type and UTF-8, query length, the bound of a
 * freshness wait. In process, over the in-memory log with a real projector, through a real HTTP
 * server on 127.0.0.1, as createRestGateway.unit.spec.ts does.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createInMemoryLog, type InMemoryLog } from '@twinlog/core/testing';
import { ensureTwinTopics, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRestGateway,
  DEFAULT_FRESHNESS_WAIT_MS,
  GATEWAY_REQUEST_CHANNEL,
  type GatewayRequestEvent,
  type ListeningGateway,
  type RestGateway,
  type RestGatewayOptions,
} from './createRestGateway.ts';
import { signServiceSas } from './internal/verifyServiceSas.ts';

const HUB = 'localhost';
const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');
const READER_KEY = Buffer.alloc(32, 9).toString('base64');
const API = 'api-version=2021-04-12';
const DAY_S = 86_400;

let time: number;
const now = (): number => time;
const nowS = (): number => Math.floor(time / 1000);
let log: InMemoryLog;
let projector: Projector;
let client: TwinClient;
const open: { gateway: RestGateway; server: ListeningGateway }[] = [];

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
});

afterEach(async () => {
  for (const { gateway, server } of open.splice(0)) {
    await server.close();
    await gateway.close();
  }
  await client.close();
  await projector.stop();
  await log.close();
});

/** A gateway over the test's log, listening on 127.0.0.1; returns its port. */
async function startGateway(options: Partial<RestGatewayOptions> = {}): Promise<number> {
  const gateway = createRestGateway({
    log,
    client,
    hubName: HUB,
    physicalNow: now,
    policies: [
      { name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] },
      { name: 'registryRead', key: READER_KEY, rights: ['registryRead'] },
    ],
    ...options,
  });
  const server = await gateway.listen({ port: 0, host: '127.0.0.1' });
  open.push({ gateway, server });
  return server.port;
}

const owner = (resource = HUB, se = nowS() + 3600): string => signServiceSas(resource, 'iothubowner', OWNER_KEY, se);

interface Call {
  readonly method?: string;
  readonly body?: unknown;
  readonly raw?: Uint8Array | string;
  readonly headers?: Record<string, string>;
  readonly token?: string;
}

async function call(
  port: number,
  path: string,
  { method = 'GET', body, raw, headers = {}, token = owner() }: Call = {},
) {
  const sep = path.includes('?') ? '&' : '?';
  const payload = raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const res = await fetch(`http://127.0.0.1:${port}${path}${sep}${API}`, {
    method,
    headers: {
      authorization: token,
      ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      ...headers,
    },
    ...(payload === undefined ? {} : { body: payload }),
    signal: AbortSignal.timeout(5000),
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

/** Collect the request events published while `f` runs. */
async function eventsOf(f: () => Promise<void>, count: number): Promise<GatewayRequestEvent[]> {
  const events: GatewayRequestEvent[] = [];
  const listen = (e: unknown): void => {
    events.push(e as GatewayRequestEvent);
  };
  subscribe(GATEWAY_REQUEST_CHANNEL, listen);
  try {
    await f();
    await expect.poll(() => events.length).toBe(count);
  } finally {
    unsubscribe(GATEWAY_REQUEST_CHANNEL, listen);
  }
  return events;
}

/**
 * Send raw bytes on a new connection and read until the server closes it (or `waitMs` passes):
 * the response text, and whether the server closed the connection.
 */
function rawExchange(
  port: number,
  write: (send: (b: string | Buffer) => void) => void,
  waitMs = 3000,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, waitMs);
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => {}); // a reset after the answer still counts as closed
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    socket.on('connect', () => write((b) => socket.write(b)));
  });
}

describe('token scope', () => {
  it('a token for <hub>/devices/dev2 reaches dev2 identity and twin, nothing else; nothing is appended on a refusal', async () => {
    const port = await startGateway();
    for (const id of ['dev1', 'dev2'])
      expect((await call(port, `/devices/${id}`, { method: 'PUT', body: { deviceId: id } })).status).toBe(200);
    const scoped = owner(`${HUB}/devices/dev2`);

    expect((await call(port, '/twins/dev2', { token: scoped })).status).toBe(200);
    expect((await call(port, '/devices/dev2', { token: scoped })).status).toBe(200);
    const patched = await call(port, '/twins/dev2', { method: 'PATCH', body: { tags: { a: 1 } }, token: scoped });
    expect(patched.status).toBe(200);
    expect(patched.json?.['tags']).toEqual({ a: 1 });

    const offsets = await allEndOffsets();
    const refused = [
      await call(port, '/devices/dev1', { token: scoped }), // dev1's keys
      await call(port, '/twins/dev1', { token: scoped }),
      await call(port, '/twins/dev1', { method: 'PATCH', body: { tags: { a: 1 } }, token: scoped }),
      await call(port, '/devices/dev3', { method: 'PUT', body: { deviceId: 'dev3' }, token: scoped }),
      await call(port, '/devices/dev1', { method: 'DELETE', token: scoped }),
      await call(port, '/devices/query', { method: 'POST', body: { query: 'SELECT * FROM devices' }, token: scoped }),
      await call(port, '/devices', { token: scoped }), // the registry-wide list
      await call(port, '/jobs/v2/job1', { method: 'PUT', body: { jobId: 'job1' }, token: scoped }),
      await call(port, '/jobs/v2/query', { token: scoped }),
      await call(port, '/configurations', { token: scoped }),
    ];
    for (const r of refused) {
      expect(r.status).toBe(401);
      expectHubError(r.json, 'IotHubUnauthorizedAccess');
    }
    expect(await allEndOffsets()).toEqual(offsets);
    expect((await call(port, '/devices/dev1')).status).toBe(200); // still there
    // the same paths with a hub-wide token get past authentication (404: not served)
    expect((await call(port, '/jobs/v2/query')).status).toBe(404);
  });

  it('a device named "query" does not make its token a query token; ids compare exactly, the host case-insensitively', async () => {
    const port = await startGateway();
    expect((await call(port, '/devices/query', { method: 'PUT', body: { deviceId: 'query' } })).status).toBe(200);
    const forQuery = owner(`${HUB}/devices/query`);
    expect((await call(port, '/devices/query', { token: forQuery })).status).toBe(200); // GET the identity of device "query"
    expect(
      (
        await call(port, '/devices/query', {
          method: 'POST',
          body: { query: 'SELECT * FROM devices' },
          token: forQuery,
        })
      ).status,
    ).toBe(401);

    expect((await call(port, '/devices/dev2', { method: 'PUT', body: { deviceId: 'dev2' } })).status).toBe(200);
    expect((await call(port, '/twins/dev2', { token: owner('LocalHost/devices/dev2') })).status).toBe(200);
    expect((await call(port, '/twins/dev2', { token: owner(`${HUB}/devices/DEV2`) })).status).toBe(401);
    expect((await call(port, '/twins/dev2', { token: owner(`${HUB}/devices/dev`) })).status).toBe(401);
    // the Azure SDK's tokens name the hub: hub-wide, everything works
    expect(
      (
        await call(port, '/devices/query', {
          method: 'POST',
          body: { query: 'SELECT * FROM devices' },
          token: owner('LOCALHOST'),
        })
      ).status,
    ).toBe(200);
  });

  it('the policy rights still apply inside the scope', async () => {
    const port = await startGateway();
    expect((await call(port, '/devices/dev2', { method: 'PUT', body: { deviceId: 'dev2' } })).status).toBe(200);
    const reader = signServiceSas(`${HUB}/devices/dev2`, 'registryRead', READER_KEY, nowS() + 3600);
    expect((await call(port, '/twins/dev2', { token: reader })).status).toBe(200);
    expect((await call(port, '/twins/dev2', { method: 'PATCH', body: { tags: { a: 1 } }, token: reader })).status).toBe(
      403,
    );
  });
});

describe('token lifetime', () => {
  it('refuses an se more than maxTokenLifetimeMs ahead (default 365 days), and a 40-digit se', async () => {
    const port = await startGateway();
    expect((await call(port, '/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
    expect((await call(port, '/twins/dev1', { token: owner(HUB, nowS() + 365 * DAY_S) })).status).toBe(200);
    expect((await call(port, '/twins/dev1', { token: owner(HUB, nowS() + 365 * DAY_S + 1) })).status).toBe(401);
    expect((await call(port, '/twins/dev1', { token: owner(HUB, time + 3_600_000) })).status).toBe(401); // se in ms
    const forty = owner(HUB, 1).replace(/se=1$/, `se=${'9'.repeat(40)}`);
    expect((await call(port, '/twins/dev1', { token: forty })).status).toBe(401);
  });

  it('takes maxTokenLifetimeMs as an option', async () => {
    const port = await startGateway({ maxTokenLifetimeMs: 3_600_000 });
    expect(
      (
        await call(port, '/devices/dev1', {
          method: 'PUT',
          body: { deviceId: 'dev1' },
          token: owner(HUB, nowS() + 3600),
        })
      ).status,
    ).toBe(200);
    expect((await call(port, '/twins/dev1', { token: owner(HUB, nowS() + 3601) })).status).toBe(401);
  });
});

describe('401 answers', () => {
  it('have one text whatever check failed; the reason goes only to the diagnostics channel, without keys or signatures', async () => {
    const port = await startGateway();
    expect((await call(port, '/devices/dev2', { method: 'PUT', body: { deviceId: 'dev2' } })).status).toBe(200);
    const se = nowS() + 3600;
    const forgedToken = signServiceSas(HUB, 'iothubowner', Buffer.alloc(32, 8).toString('base64'), se);
    const tokens = {
      missing: '',
      notSas: 'Bearer abc',
      malformed: 'SharedAccessSignature sr=localhost&sig=abc',
      forged: forgedToken,
      expired: owner(HUB, nowS() - 1),
      tooLong: owner(HUB, nowS() + 400 * DAY_S),
      unknownPolicy: signServiceSas(HUB, 'nobody', OWNER_KEY, se),
      otherHub: owner('other.azure-devices.net'),
      outOfScope: owner(`${HUB}/devices/dev1`),
    };
    const answers: Record<string, any>[] = [];
    const events = await eventsOf(async () => {
      for (const token of Object.values(tokens)) {
        const r = await call(port, '/twins/dev2', { token });
        expect(r.status).toBe(401);
        expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
        answers.push(r.json!);
      }
    }, Object.keys(tokens).length);
    for (const a of answers) {
      expect(a['Message']).toBe('ErrorCode:IotHubUnauthorizedAccess;Unauthorized');
      expectHubError(a, 'IotHubUnauthorizedAccess');
    }
    expect(new Set(answers.map((a) => a['ExceptionMessage'].replace(/^Tracking ID:[0-9A-F]+/, ''))).size).toBe(1);
    const details = events.map((e) => e.detail);
    expect(new Set(details).size).toBe(details.length); // each reason told apart, in the log only
    const forgedSig = decodeURIComponent(/sig=([^&]+)/.exec(forgedToken)![1]!);
    for (const e of events) {
      expect(e).toMatchObject({ status: 401, error: 'IotHubUnauthorizedAccess' });
      for (const secret of [OWNER_KEY, READER_KEY, forgedSig, encodeURIComponent(forgedSig)])
        expect(JSON.stringify(e)).not.toContain(secret);
    }
  });

  it('error texts never carry a key', async () => {
    const port = await startGateway();
    const primaryKey = Buffer.alloc(8, 1).toString('base64'); // too short: refused
    const r = await call(port, '/devices/dev5', {
      method: 'PUT',
      body: { deviceId: 'dev5', authentication: { symmetricKey: { primaryKey } } },
    });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.json)).not.toContain(primaryKey);
  });
});

describe('admission limit', () => {
  it('a policy over its rate gets 429 ThrottlingException while another policy is served; its bucket refills with time', async () => {
    const port = await startGateway({ rateLimit: { policyRatePerSecond: 1, policyBurst: 3 } });
    const reader = signServiceSas(HUB, 'registryRead', READER_KEY, nowS() + 3600);
    expect((await call(port, '/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
    expect((await call(port, '/twins/dev1')).status).toBe(200);
    expect((await call(port, '/twins/dev1')).status).toBe(200);
    const offsets = await allEndOffsets();
    const throttled = await call(port, '/twins/dev1', { method: 'PATCH', body: { tags: { a: 1 } } });
    expect(throttled.status).toBe(429);
    expectHubError(throttled.json, 'ThrottlingException');
    expect(await allEndOffsets()).toEqual(offsets);
    // another policy has its own bucket
    expect((await call(port, '/twins/dev1', { token: reader })).status).toBe(200);
    time += 1000; // one token back
    expect((await call(port, '/twins/dev1')).status).toBe(200);
    expect((await call(port, '/twins/dev1')).status).toBe(429);
  });

  it('a device-scoped token has a bucket of its own on top of its policy', async () => {
    const port = await startGateway({ rateLimit: { deviceRatePerSecond: 1, deviceBurst: 2 } });
    for (const id of ['dev1', 'dev2'])
      expect((await call(port, `/devices/${id}`, { method: 'PUT', body: { deviceId: id } })).status).toBe(200);
    const scoped = owner(`${HUB}/devices/dev2`);
    expect((await call(port, '/twins/dev2', { token: scoped })).status).toBe(200);
    expect((await call(port, '/twins/dev2', { token: scoped })).status).toBe(200);
    const r = await call(port, '/twins/dev2', { token: scoped });
    expect(r.status).toBe(429);
    expectHubError(r.json, 'ThrottlingException');
    expect((await call(port, '/twins/dev2')).status).toBe(200); // the policy's hub-wide token is unaffected
    expect((await call(port, '/twins/dev1', { token: owner(`${HUB}/devices/dev1`) })).status).toBe(200);
  });

  it('can be turned off', async () => {
    const port = await startGateway({ rateLimit: false });
    for (let i = 0; i < 30; i++) expect((await call(port, '/twins/nope')).status).toBe(404);
  });
});

describe('request bodies', () => {
  it('a Content-Length over the limit is refused with 413 before the body is sent, and the connection is closed', async () => {
    const port = await startGateway({ maxBodyBytes: 1024 });
    const { text, closed } = await rawExchange(port, (send) =>
      send(
        `PATCH /twins/dev1?${API} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${owner()}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n`,
      ),
    );
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(text).toContain('ErrorCode:MessageTooLarge;');
    expect(closed).toBe(true);
  });

  it('a chunked body is refused with 413 as soon as it passes the limit, the connection closed, and a new connection is served at once', async () => {
    const port = await startGateway({ maxBodyBytes: 1024 });
    const started = Date.now();
    const { text, closed } = await rawExchange(port, (send) => {
      send(
        `PATCH /twins/dev1?${API} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${owner()}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const chunk = Buffer.alloc(4096, 0x20);
      send(`${chunk.length.toString(16)}\r\n`);
      send(chunk);
      send('\r\n'); // and never the last chunk: the server must not wait for it
    });
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2500); // closed by the server, not by rawExchange's timeout
    const next = await call(port, '/twins/nope');
    expect(next.status).toBe(404);
  });

  it('a 413 through fetch, then the next request is answered at once', async () => {
    const port = await startGateway({ maxBodyBytes: 1024 });
    const big = await call(port, '/twins/dev1', { method: 'PATCH', body: { tags: { a: 'x'.repeat(5000) } } });
    expect(big.status).toBe(413);
    expectHubError(big.json, 'MessageTooLarge');
    expect((await call(port, '/twins/nope')).status).toBe(404);
  });

  it('a body refused before it is read (401) closes the connection too; a small one keeps it', async () => {
    const port = await startGateway();
    const refused = await rawExchange(port, (send) =>
      send(
        `PATCH /twins/dev1?${API} HTTP/1.1\r\nHost: localhost\r\nAuthorization: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"tags":`,
      ),
    );
    expect(refused.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(refused.text.toLowerCase()).toContain('connection: close');
    expect(refused.closed).toBe(true);
    const complete = await rawExchange(
      port,
      (send) => send(`GET /twins/nope?${API} HTTP/1.1\r\nHost: localhost\r\nAuthorization: x\r\n\r\n`),
      300,
    );
    expect(complete.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(complete.text.toLowerCase()).toContain('connection: keep-alive');
    expect(complete.closed).toBe(false);
  });

  it('refuses a body that is not application/json with 400 InvalidContentEncodingOrType, and appends nothing', async () => {
    const port = await startGateway();
    expect((await call(port, '/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
    const offsets = await allEndOffsets();
    const patch = JSON.stringify({ tags: { a: 1 } });
    for (const contentType of [
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'application/json; charset=latin1',
      'application/jsonp',
    ]) {
      const r = await call(port, '/twins/dev1', {
        method: 'PATCH',
        raw: patch,
        headers: { 'content-type': contentType },
      });
      expect(r.status, contentType).toBe(400);
      expectHubError(r.json, 'InvalidContentEncodingOrType');
    }
    // no content type at all (fetch would add text/plain to a string body: send bytes)
    const none = await call(port, '/twins/dev1', { method: 'PATCH', raw: new TextEncoder().encode(patch) });
    expect(none.status).toBe(400);
    expect(await allEndOffsets()).toEqual(offsets);
    for (const contentType of [
      'application/json',
      'Application/JSON; Charset="UTF-8"',
      'application/json;charset=utf-8',
    ]) {
      const r = await call(port, '/twins/dev1', {
        method: 'PATCH',
        raw: patch,
        headers: { 'content-type': contentType },
      });
      expect(r.status, contentType).toBe(200);
    }
  });

  it('refuses invalid UTF-8 with 400 instead of storing U+FFFD', async () => {
    const port = await startGateway();
    expect((await call(port, '/devices/dev1', { method: 'PUT', body: { deviceId: 'dev1' } })).status).toBe(200);
    const offsets = await allEndOffsets();
    const bytes = Buffer.concat([
      Buffer.from('{"tags":{"name":"'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('"}}'),
    ]);
    const r = await call(port, '/twins/dev1', {
      method: 'PATCH',
      raw: bytes,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(r.status).toBe(400);
    expectHubError(r.json, 'InvalidContentEncodingOrType');
    expect(await allEndOffsets()).toEqual(offsets);
    expect((await call(port, '/twins/dev1')).json?.['tags']).toEqual({});
    // valid multi-byte UTF-8 is kept as sent
    const ok = await call(port, '/twins/dev1', { method: 'PATCH', body: { tags: { name: 'Zürich ☃ 𝄞' } } });
    expect(ok.json?.['tags']).toEqual({ name: 'Zürich ☃ 𝄞' });
  });
});

describe('queries', () => {
  it('a query over 8,192 characters answers 412 PreconditionFailed, as IoT Hub does; 8,192 is served', async () => {
    const port = await startGateway();
    const text = (n: number): string => {
      const head = "SELECT * FROM devices WHERE tags.a = '";
      return `${head}${'x'.repeat(n - head.length - 1)}'`;
    };
    expect(text(8192)).toHaveLength(8192);
    expect((await call(port, '/devices/query', { method: 'POST', body: { query: text(8192) } })).status).toBe(200);
    const long = await call(port, '/devices/query', { method: 'POST', body: { query: text(8193) } });
    expect(long.status).toBe(412);
    expectHubError(long.json, 'PreconditionFailed');
  });

  it('x-twinlog-freshness waits at most freshnessWaitMs, then 504 GatewayTimeout (a forged position cannot hold a request longer)', async () => {
    const asked: { after?: string | undefined; timeoutMs?: number | undefined }[] = [];
    const queryView: RestGatewayOptions['queryView'] = {
      query: async (_text, { after, timeoutMs }) => {
        asked.push({ after, timeoutMs });
        // a view that would wait forever for a position beyond the log's end
        if (after !== undefined) await new Promise(() => {});
        return { rows: [], continuationToken: undefined, freshness: 'f0', itemType: 'Twin' };
      },
    };
    const port = await startGateway({ queryView, freshnessWaitMs: 200 });
    const query = { query: 'SELECT * FROM devices' };
    const fresh = await call(port, '/devices/query', { method: 'POST', body: query });
    expect(fresh.status).toBe(200);
    const started = Date.now();
    const forged = await call(port, '/devices/query', {
      method: 'POST',
      body: query,
      headers: { 'x-twinlog-freshness': 'eyJ2IjoxLCJzIjpbOTk5OTk5OTk5XX0' },
    });
    expect(forged.status).toBe(504);
    expectHubError(forged.json, 'GatewayTimeout');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(asked).toEqual([
      { after: undefined, timeoutMs: 200 },
      { after: 'eyJ2IjoxLCJzIjpbOTk5OTk5OTk5XX0', timeoutMs: 200 },
    ]);
    expect(DEFAULT_FRESHNESS_WAIT_MS).toBe(2000);
  });
});

describe('listener limits', () => {
  it('an HTTPS listener closes a connection that never finishes its TLS handshake after handshakeTimeoutMs; listen takes the limits', async () => {
    const gateway = createRestGateway({ log, client, hubName: HUB, physicalNow: now, policies: [] });
    const key = readFileSync(join(import.meta.dirname, 'fixtures', 'localhost.key.pem'));
    const cert = readFileSync(join(import.meta.dirname, 'fixtures', 'localhost.cert.pem'));
    const server = await gateway.listen({
      port: 0,
      host: '127.0.0.1',
      tls: { key, cert },
      limits: { handshakeTimeoutMs: 300, headersTimeoutMs: 4321 },
    });
    open.push({ gateway, server });
    expect(server.server.headersTimeout).toBe(4321);
    const mute = await rawExchange(server.port, () => {}, 3000); // TCP only, never a ClientHello
    expect(mute.closed).toBe(true);
  });
});
