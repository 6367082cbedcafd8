/**
 * The twinlog console (docs/console.md): a browser UI on `serve`'s admin listener under `/ui`, and
 * its JSON API under `/ui/api`, answered from the services `serve` already runs — the read model
 * for queries and twins, a twin client for conditional writes, the log for history and the live
 * feed. Static files need no session; every API call does (see consoleAuth.ts).
 *
 * | route | answer |
 * |---|---|
 * | `GET /ui/login?token=…`, `POST /ui/login` (form field `token`: login token or service SAS) | a session cookie, then `/ui/` |
 * | `POST /ui/logout` | the cookie cleared |
 * | `GET /ui/api/session` | whether the request has a session (the only call answered without one), who logged in, what serve runs |
 * | `GET /ui/api/fleet?q=&pageSize=&continuation=` | a page of an IoT Hub query, with each row's delta and connection, and the fleet's delta counts |
 * | `GET /ui/api/twins/{id}` | the twin, its delta, whether it is connected |
 * | `PATCH /ui/api/twins/{id}` `{ etag, tags?, desired? }` | a conditional merge (412 with the current etag when someone else wrote first) |
 * | `GET /ui/api/twins/{id}/history` | its events, the twin after each, its rejections and dead letters |
 * | `GET /ui/api/events[?device=id]` | Server-Sent Events from `twin.changes` and `twin.deltas` (consoleEvents.ts) |
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { isPlainObject, isTwinlogError, type Log, type Patch } from '@twinlog/core';
import type { ReadModel } from '@twinlog/fleet';
import { errorFields, type JsonLogger } from '../createJsonLogger.ts';
import { createConsoleAuth, type ConsoleAuth } from './consoleAuth.ts';
import { streamEvents } from './consoleEvents.ts';
import { followDeltas, type DeltaBoard } from './consoleFeeds.ts';
import { consoleHistory } from './consoleHistory.ts';
import { SECURITY_HEADERS, serveAsset } from './consoleStatic.ts';

/** What serve has running, read at each request (they start after the admin listener). */
export interface ConsoleServices {
  log(): Log | undefined;
  readModel(): ReadModel | undefined;
  /** Devices connected to the MQTT gateway, or `undefined` when serve runs none. */
  connectedDevices(): readonly string[] | undefined;
}

export interface ConsoleOptions {
  readonly services: ConsoleServices;
  /** The service policy whose SAS tokens open a session (read when someone logs in). */
  readonly policy: () => { readonly name: string; readonly key: string };
  readonly hubName: string;
  readonly logger: JsonLogger;
  /** How often the live feed and the delta board look for new records, ms. */
  readonly pollIntervalMs: number;
  readonly now?: () => number;
}

export interface TwinConsole {
  /** Answer the request if it is the console's (`/ui…`): `true`, else `false` (untouched). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** The login URL for an admin listener at `base` (e.g. `http://127.0.0.1:9464`). */
  loginUrl(base: string): string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: { readonly code: string; readonly message: string } & Record<string, unknown>,
  ) {
    super(body.message);
  }
}

const MAX_BODY_BYTES = 256 * 1024;
/** Live feeds open at once (each polls the log): enough for a team's browser tabs. */
const MAX_STREAMS = 64;
const PAGE_SIZES = new Set([10, 20, 50, 100]);

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res
    .writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      ...extra,
    })
    .end(text);
}

function redirect(res: ServerResponse, location: string, extra: Record<string, string> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, 'cache-control': 'no-store', ...extra }).end();
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, { code: 'TOO_LARGE', message: `the body exceeds ${MAX_BODY_BYTES} bytes` });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A state-changing API call must come from the console's own page: JSON (a CORS preflight for anyone else) and, when the browser says, the same origin. */
function checkSameOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (
    origin !== undefined &&
    origin !== `http://${req.headers.host ?? ''}` &&
    origin !== `https://${req.headers.host ?? ''}`
  ) {
    throw new HttpError(403, { code: 'FORBIDDEN', message: 'cross-origin request refused' });
  }
  if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
    throw new HttpError(415, { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send application/json' });
}

export function createConsole({
  services,
  policy,
  hubName,
  logger,
  pollIntervalMs,
  now = Date.now,
}: ConsoleOptions): TwinConsole {
  const auth: ConsoleAuth = createConsoleAuth({ policy, hubName, now });
  let deltas: DeltaBoard | undefined;
  let client: TwinClient | undefined;
  const streams = new Set<() => void>();
  let closed = false;

  const need = <T>(what: string, value: T | undefined): T => {
    if (value === undefined || closed)
      throw new HttpError(503, { code: 'STARTING', message: `the ${what} is not running yet` });
    return value;
  };
  const logOf = (): Log => need('log', services.log());
  const deltaBoard = (): DeltaBoard =>
    (deltas ??= followDeltas(logOf(), {
      pollIntervalMs,
      onError: (e) => logger.warn('console: reading twin.deltas failed, retrying', errorFields(e)),
    }));
  const twinClient = (): TwinClient =>
    (client ??= createTwinClient({
      log: logOf(),
      physicalNow: now,
      actor: 'twinlog-console',
      decisionTimeoutMs: 10_000,
    }));
  const connectedSet = (): Set<string> | undefined => {
    const list = services.connectedDevices();
    return list === undefined ? undefined : new Set(list);
  };

  const rowExtras = (deviceId: string, connected: Set<string> | undefined) => {
    const d = deltaBoard().get(deviceId);
    return {
      delta: d === undefined ? null : { counts: d.counts, converged: d.converged, entries: d.entries.length },
      connected: connected === undefined ? null : connected.has(deviceId),
    };
  };

  const fleet = async (url: URL): Promise<unknown> => {
    const readModel = need('read model', services.readModel());
    await deltaBoard().caughtUp(2_000);
    const q = url.searchParams.get('q')?.trim() || 'SELECT * FROM devices';
    const size = Number(url.searchParams.get('pageSize') ?? 20);
    const pageSize = PAGE_SIZES.has(size) ? size : 20;
    const continuation = url.searchParams.get('continuation') ?? undefined;
    let answer;
    try {
      answer = await readModel.query(q, {
        pageSize,
        ...(continuation === undefined || continuation === '' ? {} : { continuation }),
      });
    } catch (e) {
      // the query's own errors are the caller's (400); others (READ_MODEL_FAILED, a timeout) are the service's
      if (isTwinlogError(e))
        throw new HttpError(e.code.startsWith('QUERY_') ? 400 : 503, {
          code: e.code,
          message: e.message,
          ...(e.details['position'] === undefined ? {} : { position: e.details['position'] }),
        });
      throw e;
    }
    const connected = connectedSet();
    const rows = answer.rows.map((row) => {
      const id = isPlainObject(row) && typeof row['deviceId'] === 'string' ? row['deviceId'] : undefined;
      const twinId =
        id !== undefined && isPlainObject(row) && typeof row['moduleId'] === 'string' ? `${id}/${row['moduleId']}` : id;
      return twinId === undefined ? { row } : { row, twinId, ...rowExtras(twinId, connected) };
    });
    const totals = deltaBoard().totals();
    return {
      query: q,
      itemType: answer.itemType,
      rows,
      continuationToken: answer.continuationToken ?? null,
      fleet: {
        twins: readModel.stats().twins,
        deltaEntries: totals.entries,
        converged: totals.converged,
        notConverged: totals.notConverged,
        connected: connected === undefined ? null : connected.size,
      },
    };
  };

  const twinOf = async (id: string): Promise<Record<string, unknown>> => {
    const readModel = need('read model', services.readModel());
    const twin = readModel.getTwin(id);
    if (twin === undefined) throw new HttpError(404, { code: 'DEVICE_NOT_FOUND', message: `no twin ${id}` });
    await deltaBoard().caughtUp(2_000);
    const d = deltaBoard().get(id);
    const connected = connectedSet();
    return {
      twin,
      delta: d === undefined ? null : { ...d, at: new Date(d.at).toISOString() },
      connected: connected === undefined ? null : connected.has(id),
    };
  };

  const patchTwin = async (req: IncomingMessage, id: string): Promise<{ status: number; body: unknown }> => {
    checkSameOrigin(req);
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, { code: 'BAD_JSON', message: 'the body is not JSON' });
    }
    if (!isPlainObject(body) || typeof body['etag'] !== 'string' || body['etag'] === '')
      throw new HttpError(400, { code: 'BAD_REQUEST', message: 'send { etag, tags?, desired? }' });
    const patch: { tags?: Patch; desired?: Patch } = {};
    for (const section of ['tags', 'desired'] as const) {
      const p = body[section];
      if (p === undefined) continue;
      if (!isPlainObject(p))
        throw new HttpError(400, { code: 'BAD_REQUEST', message: `${section} must be a JSON object (a merge patch)` });
      if (Object.keys(p).length > 0) patch[section] = p as Patch;
    }
    if (patch.tags === undefined && patch.desired === undefined)
      throw new HttpError(400, { code: 'BAD_REQUEST', message: 'nothing to change' });
    let decision;
    try {
      decision = await twinClient().patchTwin(id, patch, { ifMatch: body['etag'] });
    } catch (e) {
      if (isTwinlogError(e))
        throw new HttpError(e.code === 'DECISION_TIMEOUT' ? 504 : 400, {
          code: e.code,
          message: e.message,
          ...(e.path === undefined ? {} : { path: e.path }),
        });
      throw e;
    }
    if (!decision.accepted) {
      const status = decision.code === 'PRECONDITION_FAILED' ? 412 : decision.code === 'DEVICE_NOT_FOUND' ? 404 : 409;
      return { status, body: { code: decision.code, message: decision.message, etag: decision.etag } };
    }
    logger.info('console: twin written', { deviceId: id, sections: Object.keys(patch), version: decision.version });
    // show the write at once: wait (briefly) for the read model to reflect it
    try {
      await need('read model', services.readModel()).catchUp({ timeoutMs: 5_000 });
    } catch (e) {
      logger.debug('console: read model not caught up after a write', errorFields(e));
    }
    return {
      status: 200,
      body: {
        accepted: true,
        etag: decision.etag ?? null,
        version: decision.version,
        desiredVersion: decision.desiredVersion,
      },
    };
  };

  const api = async (req: IncomingMessage, res: ServerResponse, url: URL, segments: string[]): Promise<void> => {
    const session = auth.sessionOf(req);
    // the page asks first whether it has a session: "no" is an answer, not an error
    if (session === undefined && segments.join('/') === 'session' && req.method === 'GET') {
      sendJson(res, 200, { loggedIn: false });
      return;
    }
    if (session === undefined)
      throw new HttpError(401, {
        code: 'UNAUTHORIZED',
        message: 'log in with the URL twinlog serve printed at start, or a service SAS token',
      });
    const method = req.method ?? 'GET';
    const [head, rawId, tail, ...rest] = segments;
    if (head === 'session' && segments.length === 1 && method === 'GET') {
      const connected = services.connectedDevices();
      sendJson(res, 200, {
        loggedIn: true,
        by: session.by,
        expires: new Date(session.expires).toISOString(),
        hubName,
        mqtt: connected !== undefined,
      });
      return;
    }
    if (head === 'fleet' && segments.length === 1 && method === 'GET') {
      sendJson(res, 200, await fleet(url));
      return;
    }
    if (head === 'events' && segments.length === 1 && method === 'GET') {
      const device = url.searchParams.get('device') ?? undefined;
      if (streams.size >= MAX_STREAMS) {
        throw new HttpError(503, { code: 'TOO_MANY_STREAMS', message: `${MAX_STREAMS} live feeds are open already` });
      }
      const stop = await streamEvents(req, res, {
        log: logOf(),
        deviceId: device === '' ? undefined : device,
        pollIntervalMs,
      });
      streams.add(stop);
      req.once('close', () => streams.delete(stop));
      return;
    }
    if (head === 'twins' && rawId !== undefined && rest.length === 0) {
      let id: string;
      try {
        id = decodeURIComponent(rawId);
      } catch {
        throw new HttpError(400, { code: 'BAD_REQUEST', message: 'bad device id' });
      }
      if (tail === undefined && method === 'GET') {
        sendJson(res, 200, await twinOf(id));
        return;
      }
      if (tail === undefined && method === 'PATCH') {
        const { status, body } = await patchTwin(req, id);
        sendJson(res, status, body);
        return;
      }
      if (tail === 'history' && method === 'GET') {
        const until = url.searchParams.get('until');
        const untilMs = until === null ? undefined : Date.parse(until);
        if (untilMs !== undefined && Number.isNaN(untilMs))
          throw new HttpError(400, { code: 'BAD_REQUEST', message: 'until must be an ISO time' });
        sendJson(res, 200, await consoleHistory(logOf(), id, untilMs === undefined ? {} : { until: untilMs }));
        return;
      }
    }
    throw new HttpError(404, { code: 'NOT_FOUND', message: `no ${method} /ui/api/${segments.join('/')}` });
  };

  const login = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    let credential: string | null;
    if (req.method === 'POST') credential = new URLSearchParams(await readBody(req)).get('token');
    else credential = url.searchParams.get('token');
    const outcome = credential === null ? { refused: 'no token' } : auth.login(credential);
    if ('refused' in outcome) {
      logger.warn('console: login refused', { reason: outcome.refused });
      redirect(res, '/ui/?login=refused');
      return;
    }
    logger.info('console: logged in', { by: outcome.by });
    // the token leaves the address bar at once (the page itself never sees it)
    redirect(res, '/ui/', { 'set-cookie': auth.cookie(outcome) });
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/ui') return redirect(res, '/ui/');
    if (path === '/ui/login' && (method === 'GET' || method === 'POST')) return login(req, res, url);
    if (path === '/ui/logout' && method === 'POST') {
      auth.logout(req);
      return redirect(res, '/ui/', { 'set-cookie': auth.cookie(undefined) });
    }
    if (path.startsWith('/ui/api/')) return api(req, res, url, path.slice('/ui/api/'.length).split('/'));
    if (method === 'GET' || method === 'HEAD') {
      const name = path === '/ui/' ? 'index.html' : path.slice('/ui/'.length);
      if (await serveAsset(name, res, method === 'HEAD')) return;
    }
    throw new HttpError(404, { code: 'NOT_FOUND', message: `no ${method} ${path}` });
  };

  return {
    handle(req, res) {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path !== '/ui' && !path.startsWith('/ui/')) return false;
      route(req, res).catch((e: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (e instanceof HttpError) sendJson(res, e.status, e.body);
        else {
          logger.warn('console: request failed', { path, ...errorFields(e) });
          sendJson(res, 500, { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) });
        }
      });
      return true;
    },
    loginUrl: (base) => `${base}/ui/login?token=${auth.loginToken}`,
    async close() {
      closed = true;
      for (const stop of streams) stop();
      streams.clear();
      await deltas?.stop();
      await client?.close();
    },
  };
}
