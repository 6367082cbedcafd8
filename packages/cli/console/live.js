// Live updates: one EventSource on /ui/api/events (twin.changes and twin.deltas). The browser
// reconnects by itself and sends the last event id, which names the log positions it had reached,
// so the server resumes from there.
/* global EventSource, clearInterval, document, setInterval -- provided by the browser */

let source;
let listeners = new Set();
let device;

function setIndicator(state, text) {
  const el = document.getElementById('live-state');
  if (el === null) return;
  el.dataset.state = state;
  el.textContent = text;
}

function dispatch(kind, event) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  for (const l of listeners) l(kind, data);
}

/** Follow the fleet (`deviceId` undefined) or one device; replaces the previous subscription. */
export function follow(deviceId, listener) {
  listeners = new Set([listener]);
  if (source !== undefined && device === deviceId && source.readyState !== EventSource.CLOSED) return;
  source?.close();
  device = deviceId;
  const url = deviceId === undefined ? '/ui/api/events' : `/ui/api/events?device=${encodeURIComponent(deviceId)}`;
  source = new EventSource(url);
  setIndicator('connecting', 'Connecting…');
  source.addEventListener('ready', () => setIndicator('live', 'Live'));
  source.addEventListener('change', (e) => dispatch('change', e));
  source.addEventListener('delta', (e) => dispatch('delta', e));
  source.addEventListener('error', () =>
    setIndicator('reconnecting', source.readyState === EventSource.CLOSED ? 'Offline' : 'Reconnecting…'),
  );
}

export function stopFollowing() {
  listeners = new Set();
  source?.close();
  source = undefined;
  device = undefined;
  setIndicator('off', 'Not live');
}

/**
 * Call `f` `ms` after the first of a burst of calls, once for the whole burst: under a steady
 * stream of events the page still refreshes every `ms` (a debounce would wait for a lull).
 */
export function throttle(f, ms) {
  let timer;
  return (...args) => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      f(...args);
    }, ms);
  };
}

/**
 * Call `f` every `ms` for as long as `element` is in the page (what no event announces, such as a
 * device connecting or disconnecting, still shows within `ms`).
 */
export function every(ms, element, f) {
  const timer = setInterval(() => {
    if (element.isConnected) f();
    else clearInterval(timer);
  }, ms);
}
