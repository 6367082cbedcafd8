import { createTwinState, type TwinState } from '@twinlog/core';
import { byteSink, type AuditLineWriter, type HistoryEntry } from '@twinlog/projector';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { auditLineText, fleetAuditLine } from './auditLine.ts';

const int = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const text = fc.string({ unit: 'binary', maxLength: 12 });
const entryArb: fc.Arbitrary<HistoryEntry> = fc.record({
  deviceId: text,
  time: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  stamp: fc.record({ wall: int, counter: fc.integer({ min: 0, max: 65535 }) }),
  id: fc.record({ writer: text, seq: int }),
  actor: text,
  section: fc.constantFrom('tags', 'desired', 'reported', 'create', 'delete'),
  op: fc.constantFrom('merge', 'replace'),
  patch: fc.dictionary(text, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }),
  versions: fc.record({ version: int, tags: int, desired: int, reported: int }),
  source: fc.record({ topic: text, partition: fc.nat(64), offset: int, appendTime: int }),
}) as fc.Arbitrary<HistoryEntry>;

const state = (id: string): TwinState => createTwinState(id);

/** The bytes a fleet audit's JSON writer makes of one entry, as text (undefined: left out). */
function written(where: string | undefined, entry: HistoryEntry, twin: TwinState): string | undefined {
  const writer = fleetAuditLine({ format: 'json', where }) as AuditLineWriter;
  const out = byteSink(16);
  if (!writer.write(entry, twin, out)) return undefined;
  return new TextDecoder().decode(out.buf.subarray(0, out.pos));
}

describe('audit lines', () => {
  it('leaves out the entries after which the twin does not match --where', () => {
    const line = auditLineText({ format: 'json', where: "deviceId = 'd-1'" });
    const entry = fc.sample(entryArb, { numRuns: 1, seed: 1 })[0]!;
    expect(line(entry, state('d-1'))).toBe(JSON.stringify(entry));
    expect(line(entry, state('d-2'))).toBeUndefined();
    expect(written("deviceId = 'd-1'", entry, state('d-1'))).toBe(JSON.stringify(entry));
    expect(written("deviceId = 'd-1'", entry, state('d-2'))).toBeUndefined();
  });

  it('a fleet audit writes JSON lines as bytes equal to the text line', () => {
    fc.assert(
      fc.property(entryArb, (entry) => {
        expect(written(undefined, entry, state('d'))).toBe(JSON.stringify(entry));
      }),
    );
  });

  it('CSV and text lines are the text lines', () => {
    const entry = fc.sample(entryArb, { numRuns: 1, seed: 2 })[0]!;
    for (const format of ['csv', 'text'] as const) {
      const line = fleetAuditLine({ format }) as (e: HistoryEntry, s: TwinState) => string | undefined;
      expect(line(entry, state('d'))).toBe(auditLineText({ format })(entry, state('d')));
    }
  });
});
