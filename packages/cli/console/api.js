// The console's JSON API (/ui/api/…), same origin, with the session cookie.
/* global URLSearchParams, fetch -- provided by the browser */

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
  }
}

async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/ui/api/${path}`, init);
  let json;
  try {
    json = await res.json();
  } catch {
    json = undefined;
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

const twinPath = (id) => `twins/${encodeURIComponent(id)}`;

export const api = {
  session: () => call('GET', 'session'),
  fleet: ({ q, pageSize, continuation }) => {
    const params = new URLSearchParams({ q, pageSize: String(pageSize) });
    if (continuation) params.set('continuation', continuation);
    return call('GET', `fleet?${params}`);
  },
  twin: (id) => call('GET', twinPath(id)),
  patchTwin: (id, body) => call('PATCH', twinPath(id), body),
  history: (id) => call('GET', `${twinPath(id)}/history`),
};
