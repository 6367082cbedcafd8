/**
 * A replay's window gives back the records put into it, whichever way they came (a record, or a
 * value inside a packed buffer), across clears that reuse its arrays and growth past their size
 * (docs/write-path.md, "Replay folds device by device").
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecordWindow } from './recordWindow.ts';
import { TOPICS } from './topics.ts';

const recordArb = fc.record({
  topic: fc.constantFrom('backend' as const, 'device' as const),
  key: fc.string({ maxLength: 8 }),
  offset: fc.nat(),
  timestamp: fc.nat(),
  value: fc.option(fc.uint8Array({ maxLength: 1500, size: 'max' }), { freq: 5 }),
  packed: fc.boolean(),
});

describe('RecordWindow', () => {
  it('holds what was pushed, window after window', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(recordArb, { maxLength: 2500, size: 'max' }), { minLength: 1, maxLength: 4 }),
        (windows) => {
          const w = new RecordWindow(3, TOPICS);
          for (const records of windows) {
            w.clear();
            for (const r of records) {
              if (!r.packed || r.value === null)
                w.push(r.topic, { ...r, topic: TOPICS[r.topic], partition: 3, headers: {} });
              else {
                // the value inside a larger buffer, as a fed worker holds it
                const around = new Uint8Array(r.value.length + 7).fill(0xee);
                around.set(r.value, 5);
                w.pushValue(r.topic, r.key, r.offset, r.timestamp, around, 5, 5 + r.value.length);
              }
            }
            expect(w.length).toBe(records.length);
            expect(w.bytes).toBe(records.reduce((n, r) => n + (r.value?.length ?? 0), 0));
            // compared field by field (a deep equality of a megabyte of values per run is slow)
            const wrong = records.flatMap((r, i) => {
              const got = w.record(i);
              const same =
                w.key(i) === r.key &&
                w.topic(i) === r.topic &&
                w.valueLength(i) === (r.value?.length ?? 0) &&
                got.topic === TOPICS[r.topic] &&
                got.partition === 3 &&
                got.offset === r.offset &&
                got.timestamp === r.timestamp &&
                got.key === r.key &&
                (got.value === null || r.value === null
                  ? got.value === r.value
                  : Buffer.from(got.value).equals(Buffer.from(r.value)));
              return same ? [] : [{ i, got, want: r }];
            });
            expect(wrong.slice(0, 1)).toEqual([]);
          }
        },
      ),
      // past the first growth of its arrays (1,024 records) and of its bytes (1 MiB); no shrinking of such long inputs
      { numRuns: 20, endOnFailure: true },
    );
  });
});
