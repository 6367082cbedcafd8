/**
 * Start a server listening and hand back its port and a `close` that also forgets it: the one
 * listen step of the REST and MQTT gateways, which differ only in the server they pass and how
 * they close it. It also puts the listener-level limits at the door (docs/security.md): a cap on
 * connections for every server, and for HTTP(S) servers the header, request, keep-alive and idle
 * timeouts that close slow-loris and silent connections.
 */
import { Server as HttpServer } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { DEFAULT_HTTP_LIMITS, resolveLimits, type HttpLimits } from './limits.ts';

export interface Listening<S extends Server> {
  readonly port: number;
  readonly server: S;
  close(): Promise<void>;
}

/**
 * Listen, after applying `limits` (over {@link DEFAULT_HTTP_LIMITS}) with {@link applyListenerLimits}.
 *
 * @throws RangeError when a limit is invalid (see `resolveLimits`); the error of `server.listen`
 * (e.g. `EADDRINUSE`).
 * @example
 * const listening = await listenOn(server, 0, '127.0.0.1', servers, closeServer)
 * const mqtt = await listenOn(netServer, 8883, undefined, servers, closeServer, { maxConnections: 5_000 })
 */
export async function listenOn<S extends Server>(
  server: S,
  port: number,
  host: string | undefined,
  servers: Set<S>,
  closeServer: (server: S) => Promise<void>,
  limits?: Partial<HttpLimits>,
): Promise<Listening<S>> {
  applyListenerLimits(server, limits);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  servers.add(server);
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: async () => {
      servers.delete(server);
      await closeServer(server);
    },
  };
}

/**
 * Put the listener-level limits on a server that is not listening yet, and return them resolved.
 *
 * Every server: `maxConnections` (Node closes a connection past it as soon as it is accepted and
 * emits `'drop'`). An `http.Server` or `https.Server` also gets `headersTimeout`,
 * `requestTimeout`, `keepAliveTimeout` and an idle timeout (`setTimeout`: a socket without I/O for
 * that long is destroyed), and Node's check of the first two runs every quarter of the headers
 * timeout, between 50 ms and 1 s (Node's default is every 30 s, so a 10 s headers timeout would
 * close a silent connection only after up to 40 s).
 *
 * Gotcha: the TLS handshake timeout is an option of the TLS server's constructor and cannot be
 * set here; make HTTPS servers with {@link tlsServerOptions}.
 *
 * @throws RangeError when a limit is invalid (see `resolveLimits`).
 * @example
 * const server = http.createServer(handler)
 * applyListenerLimits(server, { headersTimeoutMs: 5_000 })
 */
export function applyListenerLimits(server: Server, given?: Partial<HttpLimits>): HttpLimits {
  const limits = resolveLimits(DEFAULT_HTTP_LIMITS, given);
  server.maxConnections = limits.maxConnections;
  if (server instanceof HttpServer || server instanceof HttpsServer) {
    server.headersTimeout = limits.headersTimeoutMs;
    server.requestTimeout = limits.requestTimeoutMs;
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    server.setTimeout(limits.idleTimeoutMs);
    // read by Node when the server starts listening (the `connectionsCheckingInterval` option of createServer)
    (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.min(
      1_000,
      Math.max(50, Math.floor(limits.headersTimeoutMs / 4)),
    );
  }
  return limits;
}

/**
 * TLS server options with the handshake timeout of {@link HttpLimits.handshakeTimeoutMs} (Node's
 * default is 120 s, during which a connection that never finishes its handshake is held). A
 * `handshakeTimeout` already in `tls` wins.
 *
 * @throws RangeError when a limit is invalid (see `resolveLimits`).
 * @example
 * const server = https.createServer(tlsServerOptions({ key, cert }), handler)
 */
export function tlsServerOptions<T extends object>(
  tls: T,
  limits?: Partial<HttpLimits>,
): T & { handshakeTimeout: number } {
  return { handshakeTimeout: resolveLimits(DEFAULT_HTTP_LIMITS, limits).handshakeTimeoutMs, ...tls };
}
