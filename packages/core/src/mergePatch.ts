/**
 * RFC 7396 JSON Merge Patch, plainly: the sequential semantics the fold must equal, and the
 * difference between two section views that `twin.changes` and device notifications carry.
 * These are reference operations on plain JSON, not the fold's hot path.
 */
import { isPlainObject, jsonEquals, type Json, type JsonObject, type Patch } from './json.ts';

/**
 * Apply a merge patch to a document (RFC 7396 §2), returning a new document; `target` is not changed.
 * A patch that is not an object replaces the target.
 */
export function applyMergePatch(target: Json | undefined, patch: Json | Patch | null): Json | undefined {
  if (!isPlainObject(patch)) return patch === null ? undefined : patch;
  const out: JsonObject = isPlainObject(target) ? { ...target } : {};
  for (const key of Object.keys(patch)) {
    const value = patch[key];
    if (value === null || value === undefined) {
      delete out[key];
    } else {
      const merged = applyMergePatch(out[key], value);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    }
  }
  return out;
}

/**
 * The merge patch that turns `before` into `after`: removed keys become `null`, new or changed
 * values are copied, objects recurse, unchanged keys are omitted. Arrays compare whole.
 * `applyMergePatch(before, diffMergePatch(before, after))` equals `after`.
 * Gotcha: an object that must be emptied while kept cannot be expressed when it is replaced by a
 * non-object, so a value that changes kind is copied whole.
 */
export function diffMergePatch(before: JsonObject, after: JsonObject): Patch {
  const out: Patch = {};
  for (const key of Object.keys(before)) {
    if (!Object.prototype.hasOwnProperty.call(after, key)) out[key] = null;
  }
  for (const key of Object.keys(after)) {
    const a = after[key]!;
    const b = before[key];
    if (b !== undefined && isPlainObject(a) && isPlainObject(b)) {
      const inner = diffMergePatch(b, a);
      if (Object.keys(inner).length > 0) out[key] = inner;
    } else if (b === undefined || !jsonEquals(a, b)) {
      out[key] = a;
    }
  }
  return out;
}
