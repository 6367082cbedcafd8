/**
 * Who may use the console (docs/console.md, "Logging in"). Two ways in, both exchanged for a
 * session cookie (`HttpOnly`, `SameSite=Strict`, path `/ui`) that every `/ui/api` call needs:
 *
 * - the login token `serve` makes at start and logs as a URL (`/ui/login?token=…`); it lasts as
 *   long as the process, so a restart makes the old one useless;
 * - a service SAS token signed with the `iothubowner` key, as back-end apps send it to the REST
 *   gateway (hub-wide scope, not expired).
 *
 * Sessions live in memory and end after `sessionTtlMs` or with the process; at most `maxSessions`
 * are held, a login past that ends the oldest.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { signServiceSas } from '@twinlog/gateway';

export const SESSION_COOKIE = 'twinlog_console';
const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const DEFAULT_MAX_SESSIONS = 1_000;

export interface ConsoleAuthOptions {
  /** The service policy a SAS token must be signed with (read at each SAS login). */
  readonly policy: () => { readonly name: string; readonly key: string };
  readonly hubName: string;
  readonly now: () => number;
  readonly sessionTtlMs?: number;
  /** Most sessions held at once; a login past it ends the oldest one (default 1,000). */
  readonly maxSessions?: number;
}

export interface ConsoleSession {
  readonly id: string;
  /** How the session was opened: `login-token` or the SAS policy's name. */
  readonly by: string;
  readonly expires: number;
}

export interface ConsoleAuth {
  /** The token of the login URL (random, for this process only). */
  readonly loginToken: string;
  /** A session for a login token or a service SAS token, or why not. */
  login(credential: string): ConsoleSession | { readonly refused: string };
  /** The session of a request's cookie, if it is valid. */
  sessionOf(req: IncomingMessage): ConsoleSession | undefined;
  logout(req: IncomingMessage): void;
  /** The `Set-Cookie` value for a session (an empty, expired one for `undefined`). */
  cookie(session: ConsoleSession | undefined): string;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The fields of `SharedAccessSignature sr=…&sig=…&se=…&skn=…` (URL-decoded), or `undefined`. */
function sasFields(token: string): Record<string, string> | undefined {
  const m = /^SharedAccessSignature\s+(.+)$/.exec(token.trim());
  if (m === null) return undefined;
  const fields: Record<string, string> = {};
  for (const part of m[1]!.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    try {
      fields[part.slice(0, eq)] = decodeURIComponent(part.slice(eq + 1));
    } catch {
      return undefined;
    }
  }
  return fields;
}

export function createConsoleAuth({
  policy: policyOf,
  hubName,
  now,
  sessionTtlMs = DEFAULT_SESSION_TTL_MS,
  maxSessions = DEFAULT_MAX_SESSIONS,
}: ConsoleAuthOptions): ConsoleAuth {
  const loginToken = randomBytes(24).toString('base64url');
  const sessions = new Map<string, ConsoleSession>();

  const checkSas = (token: string): string | undefined => {
    const f = sasFields(token);
    const policy = policyOf();
    if (f === undefined) return 'not a login token or a SharedAccessSignature';
    const { sr, sig, se, skn } = f;
    if (sr === undefined || sig === undefined || se === undefined || skn === undefined)
      return 'the SharedAccessSignature lacks sr, sig, se or skn';
    if (skn !== policy.name) return `the SharedAccessSignature is not signed with the ${policy.name} policy`;
    if (sr.toLowerCase() !== hubName.toLowerCase())
      return `the SharedAccessSignature must cover the whole hub (sr=${hubName})`;
    const expiry = Number(se);
    if (!Number.isSafeInteger(expiry) || expiry * 1000 <= now()) return 'the SharedAccessSignature has expired';
    const expected = sasFields(signServiceSas(sr, skn, policy.key, expiry))!['sig']!;
    return sameSecret(expected, sig) ? undefined : 'the SharedAccessSignature does not match the key';
  };

  const cookieValue = (req: IncomingMessage): string | undefined => {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name === SESSION_COOKIE) return rest.join('=');
    }
    return undefined;
  };

  return {
    loginToken,
    login(credential) {
      const trimmed = credential.trim();
      let by: string;
      if (sameSecret(trimmed, loginToken)) by = 'login-token';
      else {
        const refused = checkSas(trimmed);
        if (refused !== undefined) return { refused };
        by = policyOf().name;
      }
      for (const [id, s] of sessions) if (s.expires <= now()) sessions.delete(id);
      // bounded: past the cap the oldest session ends (a Map iterates in insertion order)
      for (const id of sessions.keys()) {
        if (sessions.size < maxSessions) break;
        sessions.delete(id);
      }
      const session = { id: randomBytes(24).toString('base64url'), by, expires: now() + sessionTtlMs };
      sessions.set(session.id, session);
      return session;
    },
    sessionOf(req) {
      const id = cookieValue(req);
      if (id === undefined) return undefined;
      const s = sessions.get(id);
      if (s === undefined) return undefined;
      if (s.expires <= now()) {
        sessions.delete(id);
        return undefined;
      }
      return s;
    },
    logout(req) {
      const id = cookieValue(req);
      if (id !== undefined) sessions.delete(id);
    },
    cookie(session) {
      const attributes = 'Path=/ui; HttpOnly; SameSite=Strict';
      if (session === undefined) return `${SESSION_COOKIE}=; ${attributes}; Max-Age=0`;
      return `${SESSION_COOKIE}=${session.id}; ${attributes}; Max-Age=${Math.max(0, Math.floor((session.expires - now()) / 1000))}`;
    },
  };
}
