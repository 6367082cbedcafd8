// The twin page: tags, desired and reported side by side, the delta per desired property, and
// editing tags or desired as a conditional write on the etag shown.
/* global document -- provided by the browser */
import { api, ApiError } from './api.js';
import { ago, badge, h, notice, replace, short, time } from './dom.js';
import { mergePatch, withoutDollarKeys } from './jsonDiff.js';
import { sectionView } from './jsonView.js';
import { every, follow, throttle } from './live.js';

export function twinTabs(id, current) {
  const tab = (label, href, name) =>
    h('a', { href, class: 'tab', 'aria-current': current === name ? 'page' : undefined }, label);
  return h(
    'nav',
    { class: 'tabs', 'aria-label': 'Twin views' },
    tab('Twin', `#/twin/${encodeURIComponent(id)}`, 'twin'),
    tab('History', `#/twin/${encodeURIComponent(id)}/history`, 'history'),
  );
}

function deltaTable(delta) {
  if (delta === null) return h('p', { class: 'muted' }, 'No delta yet (the reconciler has not seen this twin).');
  if (delta.entries.length === 0) return h('p', {}, badge('converged', 'nothing desired'));
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', 'aria-label': 'Delta' },
    h(
      'table',
      { class: 'delta' },
      h('caption', {}, `Desired v${delta.desiredVersion} against reported v${delta.reportedVersion}`),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Property', 'Status', 'Since', 'Desired', 'Reported', 'Ack'].map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h(
        'tbody',
        {},
        delta.entries.map((e) =>
          h(
            'tr',
            { dataset: { path: e.path.join('.'), status: e.status } },
            h('th', { scope: 'row', class: 'mono' }, e.path.join('.')),
            h('td', {}, badge(e.status)),
            h('td', {}, time(e.since), ' ', h('span', { class: 'muted small' }, ago(e.since))),
            h('td', { class: 'mono' }, short(e.desired)),
            h('td', { class: 'mono' }, short(e.reported)),
            h(
              'td',
              { class: 'mono' },
              e.ack === undefined ? '—' : `${e.ack.ac} for v${e.ack.av}${e.ack.ad ? ` (${e.ack.ad})` : ''}`,
            ),
          ),
        ),
      ),
    ),
  );
}

export function twinPage(main, id) {
  let shown; // { twin, delta, connected } as displayed
  let editing; // 'tags' | 'desired' while an editor is open
  const header = h('div', { class: 'twin-header' });
  const message = h('div', { id: 'twin-message', 'aria-live': 'polite' });
  const columns = h('div', { class: 'columns' });
  const deltaBox = h('section', { 'aria-labelledby': 'delta-title' });

  const column = (name, title, section, version) => {
    const editable = name !== 'reported';
    const body = editing === name ? editor(name, section) : sectionView(section);
    return h(
      'section',
      { class: 'column', id: `section-${name}`, 'aria-labelledby': `title-${name}` },
      h(
        'div',
        { class: 'column-head' },
        h(
          'h2',
          { id: `title-${name}` },
          title,
          version === undefined
            ? null
            : [' ', h('span', { class: 'version', title: `$version ${version}` }, `$version ${version}`)],
        ),
        editable && editing !== name
          ? h(
              'button',
              {
                type: 'button',
                class: 'small-button',
                onclick: () => openEditor(name),
                'aria-label': `Edit ${title.toLowerCase()}`,
              },
              'Edit',
            )
          : null,
      ),
      body,
    );
  };

  const editor = (name, section) => {
    const base = withoutDollarKeys(section ?? {});
    const area = h(
      'textarea',
      { id: `edit-${name}`, class: 'editor', rows: '10', spellcheck: 'false' },
      JSON.stringify(base, null, 2),
    );
    const error = h('div', {});
    const save = async (event) => {
      event.preventDefault();
      let edited;
      try {
        edited = JSON.parse(area.value);
      } catch (e) {
        replace(error, notice('error', `Not JSON: ${e.message}`));
        return;
      }
      if (edited === null || typeof edited !== 'object' || Array.isArray(edited)) {
        replace(error, notice('error', 'The section must be a JSON object.'));
        return;
      }
      const patch = mergePatch(base, edited);
      if (Object.keys(patch).length === 0) {
        replace(error, notice('info', 'Nothing changed.'));
        return;
      }
      const etag = shown.twin.etag;
      saveButton.disabled = true;
      try {
        await api.patchTwin(id, { etag, [name]: patch });
        editing = undefined;
        replace(message, notice('ok', `Saved ${name} (conditional on etag ${etag}).`));
        await load();
      } catch (e) {
        saveButton.disabled = false;
        if (e instanceof ApiError && e.status === 412) {
          replace(
            error,
            notice(
              'error',
              h('strong', {}, '412 Precondition failed: '),
              `someone else changed this twin first. Your edit was written against etag ${etag}; the twin's etag is now ${e.body.etag ?? 'unknown'}. Nothing was saved. `,
              h(
                'button',
                { type: 'button', onclick: () => reloadKeepingEdit(name, area.value) },
                'Load the latest twin and keep my text',
              ),
            ),
          );
        } else replace(error, notice('error', `${e.body?.code ?? 'Error'}: ${e.message}`));
      }
    };
    const saveButton = h('button', { type: 'submit', class: 'primary' }, 'Save');
    return h(
      'form',
      { class: 'edit', onsubmit: (e) => void save(e) },
      h(
        'label',
        { for: `edit-${name}` },
        `${name === 'tags' ? 'Tags' : 'Desired properties'} as JSON (saved as a merge patch, only if the etag is still ${shown.twin.etag})`,
      ),
      area,
      error,
      h('div', { class: 'row' }, saveButton, h('button', { type: 'button', onclick: () => closeEditor() }, 'Cancel')),
    );
  };

  let keptText;
  const reloadKeepingEdit = (name, text) => {
    keptText = { name, text };
    void load().catch(showFailure);
  };
  const openEditor = (name) => {
    editing = name;
    render();
    document.getElementById(`edit-${name}`)?.focus();
  };
  const closeEditor = () => {
    editing = undefined;
    render();
  };

  const render = () => {
    const { twin, delta, connected } = shown;
    replace(
      header,
      h('h1', { tabindex: '-1' }, twin.moduleId ? `${twin.deviceId} / ${twin.moduleId}` : twin.deviceId),
      h(
        'dl',
        { class: 'facts' },
        h(
          'div',
          {},
          h('dt', {}, 'Connection'),
          h(
            'dd',
            {},
            connected === null
              ? 'n/a (no MQTT gateway)'
              : connected
                ? badge('connected', 'connected')
                : badge('disconnected', 'disconnected'),
          ),
        ),
        h('div', {}, h('dt', {}, 'Status'), h('dd', {}, twin.status ?? 'enabled')),
        h('div', {}, h('dt', {}, 'Version'), h('dd', { id: 'twin-version' }, String(twin.version))),
        h('div', {}, h('dt', {}, 'Etag'), h('dd', { class: 'mono', id: 'twin-etag' }, twin.etag)),
        h(
          'div',
          {},
          h('dt', {}, 'Delta'),
          h('dd', {}, delta === null ? '—' : delta.converged ? badge('converged') : badge('pending', 'not converged')),
        ),
      ),
    );
    replace(
      columns,
      column('tags', 'Tags', twin.tags, undefined),
      column('desired', 'Desired', twin.properties.desired, twin.properties.desired.$version),
      column('reported', 'Reported', twin.properties.reported, twin.properties.reported.$version),
    );
    replace(
      deltaBox,
      h('h2', { id: 'delta-title' }, 'Delta'),
      h(
        'p',
        { class: 'muted small' },
        delta === null ? '' : ['Computed ', time(delta.at), ' from desired and reported.'],
      ),
      deltaTable(delta),
    );
    if (keptText !== undefined && editing === keptText.name) {
      const area = document.getElementById(`edit-${keptText.name}`);
      if (area !== null) area.value = keptText.text;
      keptText = undefined;
    }
  };

  const load = async () => {
    const fresh = await api.twin(id);
    const changed = shown !== undefined && fresh.twin.etag !== shown.twin.etag;
    if (editing !== undefined && keptText === undefined) {
      // keep the editor (and the etag it was opened with); say that the twin moved on
      if (changed)
        replace(
          message,
          notice(
            'info',
            'This twin changed since you opened the editor: saving will be refused (412) unless you reload.',
          ),
        );
      shown = { ...fresh, twin: shown.twin };
      return;
    }
    shown = fresh;
    render();
  };
  const showFailure = (e) => replace(message, notice('error', e.status === 404 ? `No twin ${id}.` : e.message));

  replace(main, h('div', {}, header, twinTabs(id, 'twin'), message, columns, deltaBox));
  follow(
    id,
    throttle(() => void load().catch(showFailure), 200),
  );
  every(10_000, columns, () => void load().catch(showFailure));
  return load().catch((e) => {
    showFailure(e);
    if (!(e instanceof ApiError)) throw e;
  });
}
