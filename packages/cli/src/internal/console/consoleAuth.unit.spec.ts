import type { IncomingMessage } from 'node:http';
import { signServiceSas } from '@twinlog/gateway';
import { describe, expect, it } from 'vitest';
import { createConsoleAuth } from './consoleAuth.ts';
import { decodeFeedPosition, encodeFeedPosition } from './consoleEvents.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');
const request = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage;

describe('console login', () => {
  let now = 1_800_000_000_000;
  const auth = createConsoleAuth({
    policy: () => ({ name: 'iothubowner', key: KEY }),
    hubName: 'hub',
    now: () => now,
    sessionTtlMs: 60_000,
  });

  it('opens a session for the login token, carried by an HttpOnly SameSite=Strict cookie, until it expires', () => {
    const session = auth.login(auth.loginToken);
    if ('refused' in session) throw new Error(session.refused);
    expect(session.by).toBe('login-token');
    const cookie = auth.cookie(session);
    expect(cookie).toMatch(/^twinlog_console=[\w-]+; Path=\/ui; HttpOnly; SameSite=Strict; Max-Age=60$/);
    const value = cookie.split(';')[0]!;
    expect(auth.sessionOf(request(`other=1; ${value}`))).toEqual(session);
    auth.logout(request(value));
    expect(auth.sessionOf(request(value))).toBeUndefined();
    const again = auth.login(auth.loginToken) as { id: string };
    now += 60_001;
    expect(auth.sessionOf(request(`twinlog_console=${again.id}`))).toBeUndefined();
  });

  it('holds at most maxSessions sessions: a login past the cap ends the oldest', () => {
    const small = createConsoleAuth({
      policy: () => ({ name: 'iothubowner', key: KEY }),
      hubName: 'hub',
      now: () => now,
      maxSessions: 3,
    });
    const ids = Array.from({ length: 5 }, () => (small.login(small.loginToken) as { id: string }).id);
    const live = ids.map((id) => small.sessionOf(request(`twinlog_console=${id}`)) !== undefined);
    expect(live).toEqual([false, false, true, true, true]);
  });

  it('opens one for a hub-wide service SAS of the policy, and refuses anything else with a reason', () => {
    const se = Math.floor(now / 1000) + 600;
    expect(auth.login(signServiceSas('hub', 'iothubowner', KEY, se))).toMatchObject({ by: 'iothubowner' });
    expect(auth.login('nope')).toEqual({ refused: 'not a login token or a SharedAccessSignature' });
    expect(auth.login(signServiceSas('hub', 'iothubowner', Buffer.alloc(32, 8).toString('base64'), se))).toEqual({
      refused: 'the SharedAccessSignature does not match the key',
    });
    expect(auth.login(signServiceSas('hub/devices/d1', 'iothubowner', KEY, se))).toMatchObject({
      refused: expect.stringContaining('whole hub'),
    });
    expect(auth.login(signServiceSas('hub', 'registryRead', KEY, se))).toMatchObject({
      refused: expect.stringContaining('iothubowner'),
    });
    expect(auth.login(signServiceSas('hub', 'iothubowner', KEY, Math.floor(now / 1000) - 1))).toEqual({
      refused: 'the SharedAccessSignature has expired',
    });
    expect(auth.sessionOf(request('twinlog_console=made-up'))).toBeUndefined();
  });
});

describe('live feed positions', () => {
  it('round-trip through the event id, and anything else (another partition count, junk) starts from the end', () => {
    const p = { changes: [3, 0, 5, 1], deltas: [2, 0, 4, 1] };
    expect(encodeFeedPosition(p)).toBe('changes:3,0,5,1|deltas:2,0,4,1');
    expect(decodeFeedPosition(encodeFeedPosition(p), 4)).toEqual(p);
    expect(decodeFeedPosition(encodeFeedPosition(p), 8)).toBeUndefined();
    expect(decodeFeedPosition('changes:1,-1|deltas:0,0', 2)).toBeUndefined();
    expect(decodeFeedPosition(undefined, 4)).toBeUndefined();
  });
});
