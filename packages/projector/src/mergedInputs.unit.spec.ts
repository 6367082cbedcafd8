/**
 * `replay` reads both inputs of a partition merged by append time, back-end records first on ties
 * (docs/fold.md). It hands them over in runs of one topic; the runs, flattened, are exactly the
 * record-by-record merge.
 */
import { createInMemoryLog } from '@twinlog/core/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergedInputs } from './replay.ts';
import { TOPICS, type InputTopic } from './topics.ts';

describe('mergedInputs', () => {
  it('yields runs whose concatenation is the record-by-record merge by append time, back end first on ties', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ topic: fc.constantFrom<InputTopic>('backend', 'device'), dt: fc.integer({ min: 0, max: 2 }) }),
          { maxLength: 80 },
        ),
        fc.integer({ min: 1, max: 7 }),
        async (appends, maxBatchSize) => {
          let time = 0;
          const log = createInMemoryLog({ now: () => time, maxBatchSize });
          await log.ensureTopics([
            { name: TOPICS.backend, partitions: 1 },
            { name: TOPICS.device, partitions: 1 },
          ]);
          for (const [i, a] of appends.entries()) {
            time += a.dt;
            await log.append(TOPICS[a.topic], [{ key: `k${i}`, value: new Uint8Array([i]), partition: 0 }]);
          }
          const ends = {
            backend: (await log.endOffsets(TOPICS.backend))[0]!,
            device: (await log.endOffsets(TOPICS.device))[0]!,
          };
          const got: string[] = [];
          for await (const [topic, records] of mergedInputs(log, 0, ends)) {
            expect(records.length).toBeGreaterThan(0);
            for (const r of records) got.push(`${topic}:${r.offset}:${r.timestamp}`);
          }
          // the reference: one record at a time, the back end's head first unless the device's is older
          const lists = {
            backend: [] as { offset: number; timestamp: number }[],
            device: [] as { offset: number; timestamp: number }[],
          };
          for (const t of ['backend', 'device'] as const)
            for await (const rs of log.read(TOPICS[t], 0, { from: 0, to: ends[t] })) lists[t].push(...rs);
          const want: string[] = [];
          let bi = 0;
          let di = 0;
          while (bi < lists.backend.length || di < lists.device.length) {
            const b = lists.backend[bi];
            const d = lists.device[di];
            if (d === undefined || (b !== undefined && b.timestamp <= d.timestamp)) {
              want.push(`backend:${b!.offset}:${b!.timestamp}`);
              bi++;
            } else {
              want.push(`device:${d.offset}:${d.timestamp}`);
              di++;
            }
          }
          expect(got).toEqual(want);
          await log.close();
        },
      ),
      { numRuns: 300 },
    );
  });
});
