// Small DOM helpers: build elements without innerHTML, so no text is ever parsed as markup.
/* global Node, document -- provided by the browser */

/**
 * h('a', { href: '#/', class: 'x' }, 'text', child) — attributes starting with `on` are listeners;
 * `null`, `undefined` and `false` children are skipped; arrays are flattened.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replace everything inside `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `2026-11-28 13:18:08` in local time, with the ISO time as a machine-readable <time>. */
export function time(iso) {
  if (iso === undefined || iso === null || iso.startsWith('0001-')) return h('span', { class: 'muted' }, 'never');
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', { datetime: iso, title: iso }, text);
}

/** `3 s ago`, `5 min ago`, `2 h ago`, `4 d ago`. */
export function ago(iso) {
  if (iso === undefined || iso === null || iso.startsWith('0001-')) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A JSON value on one line, shortened to `max` characters. */
export function short(value, max = 60) {
  const text = value === undefined ? '—' : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A status badge: the text is the status itself, the colour only repeats it. */
export function badge(status, label = status) {
  return h('span', { class: `badge badge-${status}` }, label);
}

/** A message box; `role=alert` for errors so that screen readers announce it. */
export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}
