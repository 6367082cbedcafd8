// The history page: the twin's events from the log (actor, section, patch as a diff, versions
// after), its rejections and dead letters, the twin as of any event (a slider), and the
// difference between any two events.
import { api, ApiError } from './api.js';
import { badge, h, notice, replace, short, time } from './dom.js';
import { diff, twinForDiff, withoutDollarKeys } from './jsonDiff.js';
import { sectionView } from './jsonView.js';
import { follow, throttle } from './live.js';
import { twinTabs } from './twin.js';

const sectionOf = (twin, section) => {
  if (twin === null || twin === undefined) return {};
  return withoutDollarKeys(section === 'tags' ? (twin.tags ?? {}) : (twin.properties?.[section] ?? {}));
};

function diffList(changes, label) {
  if (changes.length === 0) return h('p', { class: 'muted small' }, 'No change.');
  return h(
    'ul',
    { class: 'diff', 'aria-label': label },
    changes.map((c) =>
      h(
        'li',
        { class: `diff-${c.kind}` },
        h(
          'span',
          { class: 'diff-mark', 'aria-hidden': 'true' },
          c.kind === 'added' ? '+' : c.kind === 'removed' ? '−' : '~',
        ),
        h('span', { class: 'visually-hidden' }, `${c.kind}: `),
        h('code', { class: 'diff-path' }, c.path),
        ' ',
        c.kind === 'added' ? h('code', {}, short(c.after)) : null,
        c.kind === 'removed' ? h('code', { class: 'old' }, short(c.before)) : null,
        c.kind === 'changed'
          ? [h('code', { class: 'old' }, short(c.before)), ' → ', h('code', {}, short(c.after))]
          : null,
      ),
    ),
  );
}

function versionsText(v) {
  return `→ version ${v.version} (tags ${v.tags}, desired ${v.desired}, reported ${v.reported})`;
}

function entryItem(entry, index, previous, select) {
  const what =
    entry.section === 'create'
      ? h('p', {}, 'Twin created.')
      : entry.section === 'delete'
        ? h('p', {}, 'Twin deleted.')
        : diffList(
            diff(sectionOf(previous?.twin, entry.section), sectionOf(entry.twin, entry.section)),
            `What event ${index + 1} changed`,
          );
  return h(
    'li',
    { class: 'event', dataset: { index: String(index), section: entry.section } },
    h(
      'div',
      { class: 'event-head' },
      time(entry.time),
      ' ',
      h('span', { class: 'actor', title: 'actor' }, entry.actor),
      ' ',
      badge(
        `section-${entry.section}`,
        entry.section === 'create' || entry.section === 'delete' ? entry.section : `${entry.section} ${entry.op}`,
      ),
      ' ',
      h('span', { class: 'muted small' }, versionsText(entry.versions)),
    ),
    what,
    entry.section === 'create' || entry.section === 'delete'
      ? null
      : h(
          'details',
          { class: 'patch' },
          h('summary', {}, `The ${entry.op} patch as written`),
          h('pre', {}, JSON.stringify(entry.patch, null, 2)),
        ),
    h(
      'button',
      { type: 'button', class: 'small-button', onclick: () => select(index) },
      `Show the twin as of event ${index + 1}`,
    ),
  );
}

function problemItem(p) {
  return h(
    'li',
    { class: `event problem problem-${p.kind}` },
    h(
      'div',
      { class: 'event-head' },
      time(p.time),
      ' ',
      badge(p.kind === 'rejection' ? 'rejected' : 'dead-letter', p.kind),
      ' ',
      h('strong', {}, p.code),
    ),
    h('p', {}, p.message),
    h(
      'p',
      { class: 'muted small' },
      `${p.source.topic} partition ${p.source.partition} offset ${p.source.offset}${p.id ? ` · event ${p.id.writer}#${p.id.seq}` : ''}`,
    ),
  );
}

export function historyPage(main, id) {
  let data;
  let selected;
  const intro = h('p', { class: 'muted', 'aria-live': 'polite' });
  const slider = h('input', { type: 'range', id: 'as-of', min: '0', max: '0', value: '0', step: '1' });
  const sliderText = h('output', { for: 'as-of', id: 'as-of-text' });
  const asOf = h('div', { class: 'columns', id: 'as-of-twin' });
  const timeInput = h('input', { type: 'datetime-local', id: 'as-of-time', step: '1' });
  const timeNote = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const fromSel = h('select', { id: 'diff-from' });
  const toSel = h('select', { id: 'diff-to' });
  const compared = h('div', { id: 'diff-result' });
  const timeline = h('ol', { class: 'timeline', reversed: true, 'aria-label': 'Events, newest first' });

  const showAsOf = (index) => {
    selected = index;
    slider.value = String(index);
    const e = data.entries[index];
    sliderText.value = `Event ${index + 1} of ${data.entries.length}: ${e.time}, ${e.actor}, ${e.section} — version ${e.versions.version}`;
    const col = (title, section) => h('section', { class: 'column' }, h('h3', {}, title), sectionView(section));
    if (e.twin === null) replace(asOf, notice('info', 'The twin did not exist after this event.'));
    else
      replace(
        asOf,
        col('Tags', e.twin.tags),
        col('Desired', e.twin.properties.desired),
        col('Reported', e.twin.properties.reported),
      );
  };
  const select = (index) => {
    showAsOf(index);
    slider.focus();
  };
  const compare = () => {
    const a = data.entries[Number(fromSel.value)];
    const b = data.entries[Number(toSel.value)];
    if (a === undefined || b === undefined) return replace(compared);
    replace(compared, diffList(diff(twinForDiff(a.twin), twinForDiff(b.twin)), 'Differences between the two events'));
  };
  slider.addEventListener('input', () => showAsOf(Number(slider.value)));
  /** The twin as of a time: the last event stamped at or before it (the picker is in local time). */
  const goToTime = (event) => {
    event.preventDefault();
    const at = Date.parse(timeInput.value);
    if (Number.isNaN(at) || data === undefined) return;
    let index = -1;
    data.entries.forEach((e, i) => {
      if (Date.parse(e.time) <= at) index = i;
    });
    if (index < 0) {
      timeNote.textContent = 'The twin had no event yet at that time.';
      return;
    }
    timeNote.textContent = '';
    showAsOf(index);
  };
  fromSel.addEventListener('change', compare);
  toSel.addEventListener('change', compare);

  const render = (atLatest) => {
    const n = data.entries.length;
    intro.textContent =
      n === data.total
        ? `${n} event${n === 1 ? '' : 's'} from the log.`
        : `The newest ${n} of ${data.total} events from the log.`;
    if (data.problems.length > 0)
      intro.textContent += ` ${data.problems.length} rejection${data.problems.length === 1 ? '' : 's'} or dead letter${data.problems.length === 1 ? '' : 's'}.`;
    slider.max = String(Math.max(0, n - 1));
    const option = (e, i) => h('option', { value: String(i) }, `#${i + 1} ${e.time} ${e.actor} ${e.section}`);
    const from = fromSel.value === '' ? Math.max(0, n - 2) : Math.min(Number(fromSel.value), n - 1);
    const to = toSel.value === '' || atLatest ? n - 1 : Math.min(Number(toSel.value), n - 1);
    replace(fromSel, data.entries.map(option));
    replace(toSel, data.entries.map(option));
    fromSel.value = String(from);
    toSel.value = String(to);
    if (n > 0) {
      showAsOf(atLatest || selected === undefined ? n - 1 : Math.min(selected, n - 1));
      compare();
    }
    // events and problems, newest first
    const items = [
      ...data.entries.map((e, i) => ({ time: e.time, el: () => entryItem(e, i, data.entries[i - 1], select) })),
      ...data.problems.map((p) => ({ time: p.time, el: () => problemItem(p) })),
    ].sort((x, y) => (x.time < y.time ? 1 : x.time > y.time ? -1 : 0));
    replace(
      timeline,
      items.map((x) => x.el()),
    );
  };

  const load = async () => {
    const atLatest = data === undefined || selected === data.entries.length - 1;
    data = await api.history(id);
    render(atLatest);
  };
  const showFailure = (e) =>
    replace(intro, notice('error', e instanceof ApiError && e.status === 404 ? `No twin ${id}.` : e.message));

  replace(
    main,
    h('h1', { tabindex: '-1' }, `${id}: history`),
    twinTabs(id, 'history'),
    intro,
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'as-of-title' },
      h('h2', { id: 'as-of-title' }, 'The twin as of an event'),
      h('label', { for: 'as-of' }, 'Event (oldest on the left; arrow keys move one event)'),
      slider,
      h('p', {}, sliderText),
      h(
        'form',
        { class: 'row as-of-time', onsubmit: goToTime },
        h('label', { for: 'as-of-time' }, 'Or as of a time'),
        timeInput,
        h('button', { type: 'submit' }, 'Show'),
        timeNote,
      ),
      asOf,
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'compare-title' },
      h('h2', { id: 'compare-title' }, 'Compare two points'),
      h(
        'div',
        { class: 'row' },
        h('label', { for: 'diff-from' }, 'From'),
        fromSel,
        h('label', { for: 'diff-to' }, 'to'),
        toSel,
      ),
      compared,
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'timeline-title' },
      h('h2', { id: 'timeline-title' }, 'Timeline'),
      timeline,
    ),
  );
  follow(
    id,
    throttle(() => void load().catch(showFailure), 1000),
  );
  return load().catch(showFailure);
}
