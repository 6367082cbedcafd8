// The fleet page: an IoT Hub query over the twins, paged, with each twin's delta and connection,
// the fleet's delta counts, and live refreshes.
/* global URLSearchParams, history -- provided by the browser */
import { api, ApiError } from './api.js';
import { badge, h, notice, replace, short } from './dom.js';
import { every, follow, throttle } from './live.js';

const STATUSES = ['pending', 'acknowledged', 'rejected', 'converged', 'stale'];
const DEFAULT_QUERY = 'SELECT * FROM devices';

/** The query error with a caret under the character it points at. */
function queryError(query, err) {
  const pos = err.body?.position;
  const parts = [h('p', {}, h('strong', {}, err.body?.code ?? 'Error'), ': ', err.message)];
  if (pos !== undefined) {
    const line = query.split(/\r\n|\r|\n/)[pos.line - 1] ?? '';
    parts.push(
      h(
        'pre',
        { class: 'caret', 'aria-label': `error at line ${pos.line}, column ${pos.column}` },
        `${line}\n${' '.repeat(Math.max(0, pos.column - 1))}^`,
      ),
    );
  }
  return notice('error', ...parts);
}

function deltaCell(delta) {
  if (delta === null || delta === undefined) return h('span', { class: 'muted' }, '—');
  if (delta.converged) return badge('converged', delta.entries === 0 ? 'nothing desired' : 'converged');
  return h(
    'span',
    { class: 'badges' },
    STATUSES.filter((s) => s !== 'converged' && delta.counts[s] > 0).map((s) => badge(s, `${delta.counts[s]} ${s}`)),
  );
}

function connectionCell(connected) {
  if (connected === null || connected === undefined) return h('span', { class: 'muted' }, 'n/a');
  return connected ? badge('connected', 'connected') : badge('disconnected', 'disconnected');
}

function twinLink(id) {
  return h('a', { href: `#/twin/${encodeURIComponent(id)}` }, id);
}

function twinTable(rows) {
  return h(
    'table',
    { class: 'fleet twins' },
    h('caption', { class: 'visually-hidden' }, 'Twins matching the query'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Device', 'Delta', 'Connection', 'Status', 'Version', 'Desired', 'Reported', 'Tags'].map((c) =>
          h('th', { scope: 'col' }, c),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map(({ row, twinId, delta, connected }) =>
        h(
          'tr',
          { dataset: { twin: twinId } },
          h('th', { scope: 'row' }, twinLink(twinId)),
          h('td', {}, deltaCell(delta)),
          h('td', {}, connectionCell(connected)),
          h('td', {}, row.status ?? ''),
          h('td', { class: 'num' }, row.version ?? ''),
          h('td', { class: 'num' }, row.properties?.desired?.$version ?? ''),
          h('td', { class: 'num' }, row.properties?.reported?.$version ?? ''),
          h('td', { class: 'mono' }, short(row.tags ?? {}, 48)),
        ),
      ),
    ),
  );
}

function rawTable(rows) {
  const columns = [
    ...new Set(rows.flatMap(({ row }) => (row !== null && typeof row === 'object' ? Object.keys(row) : ['value']))),
  ];
  return h(
    'table',
    { class: 'fleet' },
    h('caption', { class: 'visually-hidden' }, 'Query result'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', { scope: 'col' }, c)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map(({ row, twinId }) =>
        h(
          'tr',
          {},
          columns.map((c) => {
            const v = row !== null && typeof row === 'object' ? row[c] : row;
            return h(
              'td',
              { class: 'mono' },
              c === 'deviceId' && twinId !== undefined ? twinLink(twinId) : short(v, 80),
            );
          }),
        ),
      ),
    ),
  );
}

function summary(fleet) {
  const card = (label, value, extra) =>
    h(
      'div',
      { class: 'card' },
      h('span', { class: 'card-label' }, label),
      h('span', { class: 'card-value' }, String(value)),
      extra,
    );
  return h(
    'section',
    { class: 'summary', 'aria-label': 'Fleet summary' },
    card('Twins', fleet.twins),
    card(
      'Connected',
      fleet.connected === null ? 'n/a' : fleet.connected,
      fleet.connected === null ? h('span', { class: 'card-note' }, 'no MQTT gateway') : null,
    ),
    card('Converged twins', `${fleet.converged} / ${fleet.converged + fleet.notConverged}`),
    h(
      'div',
      { class: 'card card-wide' },
      h('span', { class: 'card-label', id: 'delta-counts-label' }, 'Desired properties by delta status'),
      h(
        'ul',
        { class: 'counts', 'aria-labelledby': 'delta-counts-label' },
        STATUSES.map((s) =>
          h(
            'li',
            { dataset: { status: s } },
            badge(s),
            ' ',
            h('span', { class: 'count' }, String(fleet.deltaEntries[s])),
          ),
        ),
      ),
    ),
  );
}

export function fleetPage(main, params) {
  const state = {
    q: params.get('q') ?? DEFAULT_QUERY,
    pageSize: Number(params.get('pageSize') ?? 20),
    pages: [undefined],
    page: 0,
  };
  const input = h(
    'textarea',
    { id: 'query', name: 'q', rows: '2', spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'query-help' },
    state.q,
  );
  const size = h(
    'select',
    { id: 'page-size', name: 'pageSize' },
    [10, 20, 50, 100].map((n) => h('option', { value: n, selected: n === state.pageSize }, String(n))),
  );
  const errorBox = h('div', { id: 'query-error' });
  const summaryBox = h('div', { id: 'summary' });
  const results = h('div', { id: 'results', class: 'table-wrap', tabindex: '0', 'aria-label': 'Query results' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const updated = h('p', { class: 'muted small', 'aria-live': 'polite' });

  const load = async ({ quiet = false } = {}) => {
    try {
      const answer = await api.fleet({ q: state.q, pageSize: state.pageSize, continuation: state.pages[state.page] });
      replace(errorBox);
      replace(summaryBox, summary(answer.fleet));
      if (answer.rows.length === 0) replace(results, h('p', { class: 'muted' }, 'No twin matches.'));
      else replace(results, answer.itemType === 'Twin' ? twinTable(answer.rows) : rawTable(answer.rows));
      state.pages[state.page + 1] = answer.continuationToken ?? undefined;
      renderPager(answer.rows.length, answer.continuationToken !== null);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (quiet) return;
      if (e instanceof ApiError && e.status === 400) {
        replace(errorBox, queryError(state.q, e));
        replace(results);
        replace(pager);
      } else throw e;
    }
  };

  const renderPager = (count, more) => {
    const prev = h(
      'button',
      { type: 'button', disabled: state.page === 0, onclick: () => go(state.page - 1) },
      '← Previous',
    );
    const next = h('button', { type: 'button', disabled: !more, onclick: () => go(state.page + 1) }, 'Next →');
    replace(
      pager,
      prev,
      h('span', { class: 'page-no' }, `Page ${state.page + 1} · ${count} row${count === 1 ? '' : 's'}`),
      next,
    );
  };
  const go = (page) => {
    state.page = page;
    void load().catch(showFailure);
  };
  const showFailure = (e) => replace(errorBox, notice('error', e.message));

  const run = (event) => {
    event?.preventDefault();
    state.q = input.value.trim() || DEFAULT_QUERY;
    state.pageSize = Number(size.value);
    state.pages = [undefined];
    state.page = 0;
    const params = new URLSearchParams({ q: state.q, pageSize: String(state.pageSize) });
    history.replaceState(null, '', `#/fleet?${params}`);
    void load().catch(showFailure);
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) run(e);
  });

  replace(
    main,
    h('h1', { tabindex: '-1' }, 'Fleet'),
    h(
      'form',
      { class: 'query', onsubmit: run, 'aria-label': 'Query' },
      h('label', { for: 'query' }, 'IoT Hub query'),
      input,
      h(
        'p',
        { id: 'query-help', class: 'muted small' },
        'For example ',
        h('code', {}, "SELECT * FROM devices WHERE tags.site = 'b'"),
        '. Enter runs it, Shift+Enter adds a line.',
      ),
      h(
        'div',
        { class: 'row' },
        h('label', { for: 'page-size' }, 'Rows per page'),
        size,
        h('button', { type: 'submit', class: 'primary' }, 'Run query'),
      ),
    ),
    errorBox,
    summaryBox,
    results,
    pager,
    updated,
  );
  follow(
    undefined,
    throttle(() => void load({ quiet: true }), 500),
  );
  every(10_000, results, () => void load({ quiet: true }));
  return load();
}
