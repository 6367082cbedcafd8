// A twin section as a tree of properties. Each property shows its $metadata (last updated, the
// section version that wrote it, and who) on hover and on keyboard focus.
import { h } from './dom.js';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function metaText(meta) {
  if (!isObject(meta)) return undefined;
  const parts = [];
  if (meta.$lastUpdated) parts.push(`updated ${meta.$lastUpdated}`);
  if (meta.$lastUpdatedVersion !== undefined) parts.push(`in version ${meta.$lastUpdatedVersion}`);
  if (meta.$lastUpdatedBy) parts.push(`by ${meta.$lastUpdatedBy}`);
  return parts.length === 0 ? undefined : parts.join(', ');
}

function tree(value, meta) {
  const keys = Object.keys(value).filter((k) => !k.startsWith('$'));
  if (keys.length === 0) return h('p', { class: 'muted empty' }, '(empty)');
  return h(
    'ul',
    { class: 'tree' },
    keys.sort().map((key) => {
      const v = value[key];
      const m = isObject(meta) ? meta[key] : undefined;
      const tip = metaText(m);
      const label = h('span', { class: 'key', tabindex: tip === undefined ? undefined : '0' }, key);
      const tipEl = tip === undefined ? null : h('span', { class: 'tip', role: 'tooltip' }, tip);
      if (isObject(v)) return h('li', { class: 'prop', dataset: { key } }, label, tipEl, tree(v, m));
      return h(
        'li',
        { class: 'prop', dataset: { key } },
        label,
        ': ',
        h('code', { class: `value value-${v === null ? 'null' : typeof v}` }, JSON.stringify(v)),
        tipEl,
      );
    }),
  );
}

/** A section (`tags` or a property section with `$metadata`). */
export function sectionView(section) {
  return tree(section ?? {}, section?.$metadata);
}
