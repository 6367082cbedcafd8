/**
 * Snapshots written by the v2 state format (every folded dot listed) restore under today's format
 * (docs/bounded-state.md, "Upgrading snapshots"): the fixtures were written by the v2 code and are
 * never regenerated.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeOutputRecord, encodeSnapshot } from '@twinlog/codec';
import {
  applyEvent,
  canonicalJson,
  collectGarbage,
  createTwinState,
  fromStateDoc,
  renderTwin,
  sectionVersion,
  toStateDoc,
  type TwinEvent,
  type TwinState,
} from '@twinlog/core';
import { describe, expect, it } from 'vitest';

interface Fixture {
  events: TwinEvent[];
  snapshotRecordBase64: string;
  twin: string;
  gcHorizonWall?: number;
}

const dir = join(import.meta.dirname, 'fixtures', 'state-v2');
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => [f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Fixture] as const);

const horizonOf = (f: Fixture) =>
  f.gcHorizonWall === undefined ? undefined : { wall: f.gcHorizonWall, counter: 0, writer: '', seq: 0, op: 0 as const };

function restore(f: Fixture): TwinState {
  const snap = decodeOutputRecord(new Uint8Array(Buffer.from(f.snapshotRecordBase64, 'base64')), 'snapshot');
  expect((snap.state as { v: number }).v).toBe(2);
  return fromStateDoc(snap.state);
}

function foldFresh(f: Fixture, more: readonly TwinEvent[] = []): TwinState {
  const s = createTwinState('fixture-dev');
  for (const e of f.events) applyEvent(s, e);
  const h = horizonOf(f);
  if (h !== undefined) collectGarbage(s, h);
  for (const e of more) applyEvent(s, e);
  return s;
}

/** Later events of every kind, stamped after everything in the fixtures. */
function later(): TwinEvent[] {
  const wall = Date.UTC(2026, 10, 21);
  const ev = (
    writer: string,
    seq: number,
    section: TwinEvent['section'],
    patch: TwinEvent['patch'],
    dt: number,
  ): TwinEvent => ({
    v: 1,
    id: { writer, seq },
    deviceId: 'fixture-dev',
    section,
    op: 'merge',
    patch,
    stamp: { wall: wall + dt, counter: 0 },
    actor: writer,
  });
  return [
    ev('gw-mqtt-9z', 1, 'reported', { battery: 7, temp: null }, 10),
    ev('gw-rest-cc', 1, 'desired', { fw: '2.0', cfg: { a: null } }, 20),
    ev('gw-rest-cc', 2, 'tags', { site: 'south' }, 30),
    ev('gw-mqtt-9z', 2, 'reported', { battery: 6 }, 40),
  ];
}

describe('v2 snapshots upcast to the compact state', () => {
  it.each(fixtures)('%s renders the same twin as the v2 code did', (_name, f) => {
    const restored = restore(f);
    expect(canonicalJson(renderTwin(restored))).toBe(f.twin);
  });

  it.each(fixtures)('%s: a restored state folds later events like a fresh fold of everything', (_name, f) => {
    const restored = restore(f);
    for (const e of later()) expect(applyEvent(restored, e)).toBe('APPLIED');
    const fresh = foldFresh(f, later());
    expect(canonicalJson(renderTwin(restored, { actors: true }))).toBe(
      canonicalJson(renderTwin(fresh, { actors: true })),
    );
    for (const section of ['tags', 'desired', 'reported'] as const)
      expect(sectionVersion(restored, section)).toBe(sectionVersion(fresh, section));
  });

  it.each(fixtures)('%s: redelivered events of the v2 history are duplicates, not applied twice', (_name, f) => {
    const restored = restore(f);
    const before = canonicalJson(renderTwin(restored));
    for (const e of f.events) expect(['DUPLICATE', 'LATE']).toContain(applyEvent(restored, e));
    expect(canonicalJson(renderTwin(restored))).toBe(before);
  });

  it.each(fixtures)('%s: the upcast state is written as v3 and reads back unchanged', (_name, f) => {
    const doc = toStateDoc(restore(f));
    expect(doc.v).toBe(3);
    const again = toStateDoc(fromStateDoc(doc));
    expect(encodeSnapshot(again)).toEqual(encodeSnapshot(doc));
  });
});
