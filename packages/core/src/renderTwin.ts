/**
 * Materialise a twin state as IoT Hub's twin JSON (docs/fold.md, "Versions, metadata and the etag";
 * docs/iot-hub.md, "The twin document").
 *
 * Contract: the output is a function of the state's event set only, so every replica and rebuild
 * renders the same document; `canonicalJson(renderTwin(s))` gives the canonical bytes (sorted keys).
 * Metadata is rendered lazily here; only stamps are stored.
 */
import type { Section } from './event.ts';
import { parseTwinId } from './validateEvent.ts';
import { canonicalJson, type Json, type JsonObject } from './json.ts';
import { base64url, sha256, utf8Encode } from './sha256.ts';
import { compareStamps, isoOf, MIN_STAMP, type Stamp } from './stamp.ts';
import {
  DEL,
  kidOf,
  sortedKidKeys,
  sectionVersion,
  twinVersion,
  VAL,
  type SectionState,
  type TrieNode,
  type TwinState,
} from './twinState.ts';

/** `$lastUpdated` of a section that no event has written yet. */
export const NEVER = '0001-01-01T00:00:00Z';

export interface TwinSectionDocument extends JsonObject {
  $version: number;
}

/** The twin document as `GET /twins/{id}` returns it. */
export interface TwinDocument {
  deviceId: string;
  /**
   * Set on a module twin only (docs/iot-hub.md, "Module identities and module twins"): its state's
   * id is `{deviceId}/{moduleId}` and the document names the two apart, as IoT Hub's does.
   */
  moduleId?: string;
  etag: string;
  version: number;
  status: 'enabled' | 'disabled';
  tags: JsonObject;
  properties: { desired: TwinSectionDocument; reported: TwinSectionDocument };
}

export interface RenderOptions {
  /**
   * Add `$lastUpdatedBy` (the envelope's actor) to every metadata node, for twinlog's own audit
   * views. Off by default: IoT Hub twins have no such field and Azure-compatible output must not
   * carry it.
   */
  readonly actors?: boolean;
}

function build(node: TrieNode, eff: Stamp, only?: readonly string[]): JsonObject {
  const out: JsonObject = {};
  if (node.kids === undefined) return out;
  const keys = only === undefined ? sortedKidKeys(node) : only.filter((k) => kidOf(node, k) !== undefined).sort();
  for (const key of keys) {
    const kid = kidOf(node, key)!;
    if (kid.stamp === undefined || kid.kind === DEL || compareStamps(kid.stamp, eff) <= 0) continue;
    if (kid.kind === VAL) out[key] = kid.value as Json;
    else out[key] = build(kid, kid.clr !== undefined && compareStamps(kid.clr, eff) > 0 ? kid.clr : eff);
  }
  return out;
}

function buildMetadata(node: TrieNode, eff: Stamp, st: SectionState, ranks: boolean, actors: boolean): JsonObject {
  const out: JsonObject = {};
  for (const key of sortedKidKeys(node)) {
    const kid = kidOf(node, key)!;
    const stamp = kid.stamp;
    if (stamp === undefined || kid.kind === DEL || compareStamps(stamp, eff) <= 0) continue;
    const meta: JsonObject =
      kid.kind === VAL
        ? {}
        : buildMetadata(
            kid,
            kid.clr !== undefined && compareStamps(kid.clr, eff) > 0 ? kid.clr : eff,
            st,
            ranks,
            actors,
          );
    meta['$lastUpdated'] = isoOf(stamp.wall);
    if (ranks) meta['$lastUpdatedVersion'] = kid.rank; // kept current by the fold (docs/bounded-state.md)
    if (actors) meta['$lastUpdatedBy'] = kid.actor;
    out[key] = meta;
  }
  return out;
}

/**
 * The section's JSON view without metadata (docs/fold.md, "Applying an event": reading the section back). With
 * `topLevelKeys`, only those members of the root are built: the diff scope of one event (docs/formats.md "Change records (`twin.changes`)").
 */
export function sectionView(state: TwinState, section: Section, topLevelKeys?: readonly string[]): JsonObject {
  const root = state.sections[section].root;
  return build(root, root.clr ?? MIN_STAMP, topLevelKeys);
}

/**
 * {@link sectionView} for a diff (docs/formats.md, "Change records"): the same members and values, in no
 * particular key order — a writer that needs canonical bytes sorts keys when it encodes (the
 * output records do). Cheaper: no sorting, no lookups by key below the root.
 */
export function sectionScope(state: TwinState, section: Section, topLevelKeys?: readonly string[]): JsonObject {
  const root = state.sections[section].root;
  const eff = root.clr ?? MIN_STAMP;
  if (topLevelKeys === undefined) return buildUnordered(root, eff);
  const out: JsonObject = {};
  for (const key of topLevelKeys) {
    const kid = kidOf(root, key);
    if (kid !== undefined) put(out, key, kid, eff);
  }
  return out;
}

function buildUnordered(node: TrieNode, eff: Stamp): JsonObject {
  const out: JsonObject = {};
  const kids = node.kids;
  if (kids === undefined) return out;
  if (Array.isArray(kids))
    for (let i = 0; i < kids.length; i += 2) put(out, kids[i] as string, kids[i + 1] as TrieNode, eff);
  else for (const [key, kid] of kids) put(out, key, kid, eff);
  return out;
}

function put(out: JsonObject, key: string, kid: TrieNode, eff: Stamp): void {
  if (kid.stamp === undefined || kid.kind === DEL || compareStamps(kid.stamp, eff) <= 0) return;
  out[key] =
    kid.kind === VAL
      ? (kid.value as Json)
      : buildUnordered(kid, kid.clr !== undefined && compareStamps(kid.clr, eff) > 0 ? kid.clr : eff);
}

/** The section's `$metadata` tree. */
export function sectionMetadata(state: TwinState, section: Section, options: RenderOptions = {}): JsonObject {
  const st = state.sections[section];
  const ranks = section === 'desired';
  const meta = buildMetadata(st.root, st.root.clr ?? MIN_STAMP, st, ranks, options.actors ?? false);
  meta['$lastUpdated'] = st.top === undefined ? NEVER : isoOf(st.top.wall);
  if (ranks) meta['$lastUpdatedVersion'] = sectionVersion(state, section);
  return meta;
}

/**
 * The twin's etag (docs/fold.md, "Versions, metadata and the etag"): base64url of SHA-256 over the canonical JSON of tags,
 * desired and their versions, cut to 22 characters. Reported is excluded, so a device report
 * never invalidates a back end's `If-Match`; versions are included, so every applied back-end
 * write changes it (no ABA).
 */
export function computeEtag(state: TwinState): string {
  const text = canonicalJson({
    tags: sectionView(state, 'tags'),
    tagsVersion: sectionVersion(state, 'tags'),
    desired: sectionView(state, 'desired'),
    desiredVersion: sectionVersion(state, 'desired'),
  });
  return base64url(sha256(utf8Encode(text))).slice(0, 22);
}

/**
 * Render the full twin document. Pure and deterministic: use `canonicalJson` on the result for
 * canonical bytes.
 *
 * @example
 * const twin = renderTwin(state)
 * twin.properties.desired.$version // count of desired events, create included
 */
export function renderTwin(state: TwinState, options: RenderOptions = {}): TwinDocument {
  const section = (name: 'desired' | 'reported'): TwinSectionDocument => {
    const doc = sectionView(state, name) as TwinSectionDocument;
    doc['$metadata'] = sectionMetadata(state, name, options);
    doc.$version = sectionVersion(state, name);
    return doc;
  };
  const { deviceId, moduleId } = parseTwinId(state.deviceId);
  return {
    deviceId,
    ...(moduleId === undefined ? {} : { moduleId }),
    etag: computeEtag(state),
    version: twinVersion(state),
    status: 'enabled',
    tags: sectionView(state, 'tags'),
    properties: { desired: section('desired'), reported: section('reported') },
  };
}
