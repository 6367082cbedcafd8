import { createTwinState, type TwinState } from '@twinlog/core';
import type { HistoryEntry } from '@twinlog/projector';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fleetAuditLine } from './auditLine.ts';

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

describe('audit lines', () => {
  it('leaves out the entries after which the twin does not match --where', () => {
    const line = fleetAuditLine({ format: 'json', where: "deviceId = 'd-1'" });
    const state = (id: string): TwinState => createTwinState(id);
    const entry = fc.sample(entryArb, { numRuns: 1, seed: 1 })[0]!;
    expect(line(entry, state('d-1'))).toBe(JSON.stringify(entry));
    expect(line(entry, state('d-2'))).toBeUndefined();
  });
});
