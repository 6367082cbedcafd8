// JSON differences: the merge patch (RFC 7396) that turns one section into another, and a flat
// list of the leaves that differ between two documents, for display.

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const equal = (a, b) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys(v[k])]),
  );
}

/** The merge patch from `before` to `after` (removed keys are `null`); `{}` when equal. */
export function mergePatch(before, after) {
  const out = {};
  for (const k of Object.keys(before)) if (!(k in after)) out[k] = null;
  for (const [k, v] of Object.entries(after)) {
    const old = before[k];
    if (isObject(old) && isObject(v)) {
      const inner = mergePatch(old, v);
      if (Object.keys(inner).length > 0) out[k] = inner;
    } else if (!(k in before) || !equal(old, v)) out[k] = v;
  }
  return out;
}

/** A copy without `$`-keys ($metadata, $version), at every depth. */
export function withoutDollarKeys(v) {
  if (!isObject(v)) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([k]) => !k.startsWith('$'))
      .map(([k, x]) => [k, withoutDollarKeys(x)]),
  );
}

/** Leaves as `[path, value]` (objects descended, arrays whole). */
function leaves(v, path = [], out = []) {
  if (isObject(v) && Object.keys(v).length > 0) for (const [k, x] of Object.entries(v)) leaves(x, [...path, k], out);
  else if (path.length > 0) out.push([path, v]);
  return out;
}

/**
 * What differs from `a` to `b`: `{ path, kind: 'added' | 'removed' | 'changed', before?, after? }`,
 * sorted by path.
 */
export function diff(a, b) {
  const left = new Map(leaves(a ?? {}).map(([p, v]) => [p.join('.'), v]));
  const right = new Map(leaves(b ?? {}).map(([p, v]) => [p.join('.'), v]));
  const out = [];
  for (const [path, before] of left) {
    if (!right.has(path)) out.push({ path, kind: 'removed', before });
    else if (!equal(before, right.get(path))) out.push({ path, kind: 'changed', before, after: right.get(path) });
  }
  for (const [path, after] of right) if (!left.has(path)) out.push({ path, kind: 'added', after });
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** The comparable part of a twin document: tags, desired and reported without `$`-keys, and the versions. */
export function twinForDiff(twin) {
  if (twin === null || twin === undefined) return {};
  return {
    tags: withoutDollarKeys(twin.tags ?? {}),
    desired: withoutDollarKeys(twin.properties?.desired ?? {}),
    reported: withoutDollarKeys(twin.properties?.reported ?? {}),
    version: twin.version,
    status: twin.status,
  };
}
