/**
 * The sequential oracle (docs/fold.md, "The promise"): dedupe events by id, keep those stamped above the
 * latest delete, sort by stamp, apply RFC 7396 merge patches in that order. It also tracks, per
 * node, the stamp of the last event that touched its subtree and the section `$version` right after
 * it, so metadata can be checked too. Deliberately naive: it is the specification, not the fold.
 */
import type { Section, TwinEvent } from '../event.ts';
import { isPlainObject, type Json, type JsonObject, type Patch } from '../json.ts';
import { compareStamps, dotKey, isoOf, MIN_STAMP, stampOf, type Stamp } from '../stamp.ts';

interface MetaNode {
  stamp: Stamp;
  version: number;
  kids: Map<string, MetaNode>;
}

export interface OracleSection {
  view: JsonObject;
  version: number;
  /** `$metadata` as the twin renders it, without the root entries. */
  metadata: JsonObject;
}

export interface OracleResult {
  exists: boolean;
  sections: Record<Section, OracleSection>;
}

function applyTracked(doc: JsonObject, meta: Map<string, MetaNode>, patch: Patch, s: Stamp, version: number): void {
  for (const key of Object.keys(patch)) {
    const v = patch[key];
    if (v === null || v === undefined) {
      delete doc[key];
      meta.delete(key);
    } else if (isPlainObject(v)) {
      let node = meta.get(key);
      if (!isPlainObject(doc[key]) || node === undefined) {
        doc[key] = {};
        node = { stamp: s, version, kids: new Map() };
        meta.set(key, node);
      }
      node.stamp = s;
      node.version = version;
      applyTracked(doc[key], node.kids, v, s, version);
    } else {
      doc[key] = structuredCloneJson(v);
      meta.set(key, { stamp: s, version, kids: new Map() });
    }
  }
}

function structuredCloneJson(v: Json): Json {
  return JSON.parse(JSON.stringify(v)) as Json;
}

function renderMeta(meta: Map<string, MetaNode>, ranks: boolean): JsonObject {
  const out: JsonObject = {};
  for (const key of [...meta.keys()].sort()) {
    const node = meta.get(key)!;
    const m = renderMeta(node.kids, ranks);
    m['$lastUpdated'] = isoOf(node.stamp.wall);
    if (ranks) m['$lastUpdatedVersion'] = node.version;
    out[key] = m;
  }
  return out;
}

/** Evaluate the sequential semantics over a delivery (duplicates and order are irrelevant to it). */
export function sequentialOracle(delivery: readonly TwinEvent[]): OracleResult {
  const byId = new Map<string, TwinEvent>();
  for (const e of delivery) if (e.cond === undefined) byId.set(dotKey(e.id), e);
  const events = [...byId.values()].sort((a, b) => compareStamps(stampOf(a.stamp, a.id), stampOf(b.stamp, b.id)));
  let generation = MIN_STAMP;
  for (const e of events) {
    if (e.section === 'delete') generation = stampOf(e.stamp, e.id);
  }
  const sections = {} as Record<Section, OracleSection>;
  let exists = false;
  const live = events.filter((e) => compareStamps(stampOf(e.stamp, e.id), generation) > 0);
  for (const e of live) if (e.section === 'create') exists = true;
  for (const section of ['tags', 'desired', 'reported'] as const) {
    let doc: JsonObject = {};
    let meta = new Map<string, MetaNode>();
    let version = 0;
    for (const e of live) {
      if (e.section === 'create' && section !== 'tags') version++;
      if (e.section !== section) continue;
      version++;
      if (e.op === 'replace') {
        doc = {};
        meta = new Map();
      }
      applyTracked(doc, meta, e.patch, stampOf(e.stamp, e.id), version);
    }
    sections[section] = { view: doc, version, metadata: renderMeta(meta, section === 'desired') };
  }
  return { exists, sections };
}
