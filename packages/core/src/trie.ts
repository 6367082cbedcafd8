/**
 * The trie of one twin section (docs/fold.md, "The state"): a node per path holding that path's
 * last-writer-wins register, its clear watermark and its children, plus G1 pruning (docs/bounded-state.md "Folding an event").
 */
import type { Json, Scalar } from './json.ts';
import { compareStamps, type Stamp } from './stamp.ts';

/** Register kinds: a tombstone, "this path is an object", or a scalar/array value. */
export const DEL = 0;
export const OBJ = 1;
export const VAL = 2;
export type RegKind = typeof DEL | typeof OBJ | typeof VAL;

/**
 * A trie node: the last-writer-wins register of one path (flattened into the node: `stamp`
 * undefined means "no register", i.e. bottom), its clear watermark, and its children.
 */
export interface TrieNode {
  stamp: Stamp | undefined;
  kind: RegKind;
  value: Scalar | Json[] | undefined;
  actor: string;
  /**
   * Desired registers only (0 elsewhere): the register's rank, i.e. how many desired events of the
   * generation are stamped at or below it — its `$lastUpdatedVersion` (docs/fold.md, "Versions, metadata and the etag"). Kept
   * current by the fold (docs/bounded-state.md), so no list of every event's stamp is needed.
   */
  rank: number;
  clr: Stamp | undefined;
  kids: Kids | undefined;
}

/**
 * The children of a trie node. Up to {@link SMALL_KIDS} of them live in one array alternating key
 * and node, searched linearly: twin objects are mostly small, and a short contiguous scan beats a
 * hash map that is allocated and regrown per node. A node with more children switches to a Map.
 */
export type Kids = (string | TrieNode)[] | Map<string, TrieNode>;
const SMALL_KIDS = 16;

/** The child of `node` under `key`, if any. */
export function kidOf(node: TrieNode, key: string): TrieNode | undefined {
  const kids = node.kids;
  if (kids === undefined) return undefined;
  if (!Array.isArray(kids)) return kids.get(key);
  for (let i = 0; i < kids.length; i += 2) if (kids[i] === key) return kids[i + 1] as TrieNode;
  return undefined;
}

/** The children of `node` as `[key, node]` pairs, in insertion order (a copy: safe to delete while iterating). */
export function kidEntries(node: TrieNode): [string, TrieNode][] {
  const kids = node.kids;
  if (kids === undefined) return [];
  if (!Array.isArray(kids)) return [...kids];
  const out: [string, TrieNode][] = [];
  for (let i = 0; i < kids.length; i += 2) out.push([kids[i] as string, kids[i + 1] as TrieNode]);
  return out;
}

/** The keys of `node`'s children, sorted (canonical order). */
export function sortedKidKeys(node: TrieNode): string[] {
  const kids = node.kids;
  if (kids === undefined) return [];
  if (!Array.isArray(kids)) return [...kids.keys()].sort();
  const out: string[] = [];
  for (let i = 0; i < kids.length; i += 2) out.push(kids[i] as string);
  return out.sort();
}

/** Attach `kid` under `key` (the key must be new). */
export function addKid(node: TrieNode, key: string, kid: TrieNode): void {
  const kids = node.kids;
  if (kids === undefined) node.kids = [key, kid];
  else if (!Array.isArray(kids)) kids.set(key, kid);
  else if (kids.length < 2 * SMALL_KIDS)
    node.kids = kids.concat(key, kid); // exact size: no slack per node
  else {
    const map = new Map<string, TrieNode>();
    for (let i = 0; i < kids.length; i += 2) map.set(kids[i] as string, kids[i + 1] as TrieNode);
    map.set(key, kid);
    node.kids = map;
  }
}

export function createNode(): TrieNode {
  return { stamp: undefined, kind: DEL, value: undefined, actor: '', rank: 0, clr: undefined, kids: undefined };
}

/**
 * G1 (docs/bounded-state.md "Folding an event"): drop registers and clears under `node` that `eff` dominates; they can never become
 * visible again. Returns true when `node` has no children left.
 */
export function pruneDominated(node: TrieNode, eff: Stamp): boolean {
  return filterKids(node, (kid) => {
    if (kid.stamp !== undefined && compareStamps(kid.stamp, eff) <= 0) clearReg(kid);
    if (kid.clr !== undefined && compareStamps(kid.clr, eff) <= 0) kid.clr = undefined;
    const kidEff = kid.clr !== undefined && compareStamps(kid.clr, eff) > 0 ? kid.clr : eff;
    const empty = pruneDominated(kid, kidEff);
    return !(empty && kid.stamp === undefined && kid.clr === undefined);
  });
}

/**
 * Visit every child of `node`, keeping those for which `keep` returns true (in place, no copy).
 * Returns true when `node` is left without children.
 */
export function filterKids(node: TrieNode, keep: (kid: TrieNode) => boolean): boolean {
  const kids = node.kids;
  if (kids === undefined) return true;
  if (!Array.isArray(kids)) {
    for (const [key, kid] of kids) if (!keep(kid)) kids.delete(key);
    if (kids.size === 0) node.kids = undefined;
  } else {
    let kept = 0;
    for (let i = 0; i < kids.length; i += 2) {
      const kid = kids[i + 1] as TrieNode;
      if (!keep(kid)) continue;
      kids[kept++] = kids[i]!;
      kids[kept++] = kid;
    }
    kids.length = kept;
    if (kept === 0) node.kids = undefined;
  }
  return node.kids === undefined;
}

/** Reset a node's register to bottom (no register). */
export function clearReg(node: TrieNode): void {
  node.stamp = undefined;
  node.kind = DEL;
  node.value = undefined;
  node.actor = '';
  node.rank = 0;
}

/** Call `visit` on every node under `node` (not `node` itself), depth first. */
export function forEachNode(node: TrieNode, visit: (n: TrieNode) => void): void {
  const kids = node.kids;
  if (kids === undefined) return;
  if (Array.isArray(kids)) {
    for (let i = 1; i < kids.length; i += 2) {
      const kid = kids[i] as TrieNode;
      visit(kid);
      forEachNode(kid, visit);
    }
  } else {
    for (const kid of kids.values()) {
      visit(kid);
      forEachNode(kid, visit);
    }
  }
}
