/**
 * The listener-level limits of listenOn (docs/security.md, "Limits at the door") on real HTTP(S)
 * servers on 127.0.0.1: each test passes one limit with a raw socket and shows that `/health`
 * still answers during the abuse. Times are never asserted, except as generous bounds on "closed
 * at all".
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInMemoryLog } from '@twinlog/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createRestGateway } from '../createRestGateway.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.ts';
import { listenOn, tlsServerOptions, type Listening } from './listenOn.ts';

const TLS = {
  key: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'localhost.key.pem')),
  cert: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'localhost.cert.pem')),
};
const CLOSED_WITHIN_MS = 10_000;

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A server answering `/health` (and never answering `/hang`), listening with `limits`. */
async function healthServer(limits: Partial<HttpLimits>, tls = false): Promise<Listening<Server>> {
  const handler = (req: { url?: string | undefined }, res: { end(body: string): void }): void => {
    if (req.url !== '/hang') res.end('ok');
  };
  const server: Server = tls ? createHttpsServer(tlsServerOptions(TLS, limits), handler) : createServer(handler);
  const servers = new Set<Server>();
  const listening = await listenOn(
    server,
    0,
    '127.0.0.1',
    servers,
    (s) => {
      s.closeAllConnections();
      return new Promise<void>((r) => s.close(() => r()));
    },
    limits,
  );
  cleanup.push(() => listening.close());
  return listening;
}

/** GET /health → its status, on a fresh connection unless an agent is given. */
function health(port: number, { tls = false, agent }: { tls?: boolean; agent?: Agent } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1',
      port,
      path: '/health',
      ...(agent === undefined ? { agent: false as const } : { agent }),
      ...(tls ? { ca: TLS.cert, servername: 'localhost' } : {}),
    };
    const req = (tls ? httpsRequest : request)(options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function dial(port: number): Promise<{ socket: Socket; closed: Promise<void>; received: () => string }> {
  const socket = connect(port, '127.0.0.1');
  cleanup.push(() => void socket.destroy());
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (b: Buffer) => (text += b.toString('latin1')));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await once(socket, 'connect');
  return { socket, closed, received: () => text };
}

async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error(`${what}: not within ${CLOSED_WITHIN_MS} ms`)), CLOSED_WITHIN_MS)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('listenOn: HTTP limits at the door', { timeout: 30_000 }, () => {
  it('closes a slow-loris whose headers never end, and a silent connection, after headersTimeoutMs; /health answers meanwhile', async () => {
    const { port } = await healthServer({ headersTimeoutMs: 500, requestTimeoutMs: 5_000 });
    const loris = await dial(port);
    loris.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => loris.socket.write('X-Slow: yes\r\n'), 100); // always a little more, never the end
    const silent = await dial(port);
    try {
      expect(await health(port)).toBe(200);
      await within(Promise.all([loris.closed, silent.closed]), 'the slow connections');
    } finally {
      clearInterval(drip);
    }
    expect(loris.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(await health(port)).toBe(200);
  });

  it('closes a request whose body never ends after requestTimeoutMs; /health answers meanwhile', async () => {
    const { port } = await healthServer({ headersTimeoutMs: 500, requestTimeoutMs: 1_000 });
    const slow = await dial(port);
    slow.socket.write('POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    const drip = setInterval(() => slow.socket.write('x'), 100);
    try {
      expect(await health(port)).toBe(200);
      await within(slow.closed, 'the slow body');
    } finally {
      clearInterval(drip);
    }
    expect(await health(port)).toBe(200);
  });

  it('closes a connection without I/O after idleTimeoutMs, even with a request pending; /health answers meanwhile', async () => {
    const { port } = await healthServer({ idleTimeoutMs: 500 });
    const hung = await dial(port);
    hung.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n'); // the handler never answers
    expect(await health(port)).toBe(200);
    await within(hung.closed, 'the idle connection');
    expect(await health(port)).toBe(200);
  });

  it('closes an idle keep-alive connection after keepAliveTimeoutMs', async () => {
    const { port } = await healthServer({ keepAliveTimeoutMs: 300 });
    const c = await dial(port);
    c.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(c.closed, 'the kept-alive connection');
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('refuses the connection past maxConnections while the ones it holds keep working', async () => {
    const { port, server } = await healthServer({ maxConnections: 3 });
    let dropped = 0;
    server.on('drop', () => (dropped += 1));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    expect(await health(port, { agent })).toBe(200); // connection 1, kept alive
    await dial(port);
    await dial(port); // connections 2 and 3, idle
    const refused = await dial(port);
    await within(refused.closed, 'the connection past the cap');
    expect(refused.received()).toBe('');
    expect(dropped).toBe(1);
    expect(await health(port, { agent })).toBe(200); // on the kept-alive connection, during the siege
  });

  it('closes a TLS connection that never finishes its handshake after handshakeTimeoutMs; /health over TLS answers meanwhile', async () => {
    const { port } = await healthServer({ handshakeTimeoutMs: 500 }, true);
    const mute = await dial(port); // TCP only: never says hello
    expect(await health(port, { tls: true })).toBe(200);
    await within(mute.closed, 'the connection without a handshake');
    expect(await health(port, { tls: true })).toBe(200);
  });

  it('puts the defaults on the REST gateway’s listener without any option', async () => {
    const log = createInMemoryLog();
    const rest = createRestGateway({ log, hubName: 'localhost', physicalNow: Date.now, policies: [] });
    const { server, close } = await rest.listen({ port: 0, host: '127.0.0.1' });
    cleanup.push(async () => {
      await close();
      await rest.close();
      await log.close();
    });
    expect({
      maxConnections: server.maxConnections,
      headersTimeoutMs: server.headersTimeout,
      requestTimeoutMs: server.requestTimeout,
      keepAliveTimeoutMs: server.keepAliveTimeout,
      idleTimeoutMs: server.timeout,
    }).toEqual({
      maxConnections: DEFAULT_HTTP_LIMITS.maxConnections,
      headersTimeoutMs: DEFAULT_HTTP_LIMITS.headersTimeoutMs,
      requestTimeoutMs: DEFAULT_HTTP_LIMITS.requestTimeoutMs,
      keepAliveTimeoutMs: DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs,
      idleTimeoutMs: DEFAULT_HTTP_LIMITS.idleTimeoutMs,
    });
  });

  it('gives TLS options the handshake timeout, unless they carry one', () => {
    expect(tlsServerOptions({ key: 'k' })).toEqual({
      key: 'k',
      handshakeTimeout: DEFAULT_HTTP_LIMITS.handshakeTimeoutMs,
    });
    expect(tlsServerOptions({ key: 'k' }, { handshakeTimeoutMs: 3_000 }).handshakeTimeout).toBe(3_000);
    expect(tlsServerOptions({ key: 'k', handshakeTimeout: 7 }).handshakeTimeout).toBe(7);
  });
});
