/**
 * Folding several batches before one flush (the projector's commit cadence under a backlog,
 * docs/write-path.md) writes the same outputs as the straightforward path, which flushes after
 * every batch: the same change, rejection, dead-letter and fact records byte for byte, in the same
 * order; the same final state document per device; the same checkpoint. Only the intermediate
 * snapshots are left out (and a device's last snapshot may carry later input offsets).
 */
import { decodeOutputRecord, encodeEvent } from '@twinlog/codec';
import { createHybridClock, toStateDoc, type LogRecord, type TwinEvent } from '@twinlog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PartitionTask, type TaskOutput } from './partitionTask.ts';
import { CHECKPOINT_KEY, TOPICS, type InputTopic } from './topics.ts';

const T0 = Date.UTC(2026, 10, 1);
const DEVICES = ['d0', 'd1', 'd2', 'd3'];

const stepArb = fc.record({
  device: fc.integer({ min: 0, max: DEVICES.length - 1 }),
  kind: fc.constantFrom('create', 'desired', 'reported', 'tags', 'command', 'delete', 'duplicate', 'garbage'),
  key: fc.constantFrom('a', 'b', 'c'),
  value: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(null)),
  dt: fc.integer({ min: 0, max: 3 }),
});

/** Records of both input topics, in append order, from a list of steps. */
interface Step {
  readonly device: number;
  readonly kind: string;
  readonly key: string;
  readonly value: number | null;
  readonly dt: number;
}

function recordsOf(steps: readonly Step[]): LogRecord[] {
  const offsets = { backend: 0, device: 0 };
  const out: LogRecord[] = [];
  let wall = T0;
  let seq = 0;
  let last: LogRecord | undefined;
  for (const s of steps) {
    wall += s.dt;
    const deviceId = DEVICES[s.device]!;
    if (s.kind === 'duplicate') {
      if (last === undefined) continue;
      const topic: InputTopic = last.topic === TOPICS.backend ? 'backend' : 'device';
      out.push({ ...last, offset: offsets[topic]++ });
      continue;
    }
    if (s.kind === 'garbage') {
      out.push({
        topic: TOPICS.device,
        partition: 0,
        offset: offsets.device++,
        key: deviceId,
        value: new Uint8Array([0xc1, 1, 2]),
        timestamp: wall,
        headers: {},
      });
      continue;
    }
    const section = s.kind === 'command' ? 'desired' : s.kind;
    const e: TwinEvent = {
      v: 1,
      id: { writer: `w${s.device % 2}`, seq: ++seq },
      deviceId,
      section: section as TwinEvent['section'],
      op: 'merge',
      patch: section === 'create' || section === 'delete' ? {} : { [s.key]: s.value },
      stamp: { wall, counter: 0 },
      actor: 'prop',
      ...(s.kind === 'command' ? { cond: { ifMatch: '*', key: `k${s.key}${s.device}` }, corr: `c${seq}` } : {}),
    };
    const topic: InputTopic = section === 'reported' ? 'device' : 'backend';
    last = {
      topic: TOPICS[topic],
      partition: 0,
      offset: offsets[topic]++,
      key: deviceId,
      value: encodeEvent(e),
      timestamp: wall,
      headers: {},
    };
    out.push(last);
  }
  return out;
}

/** Split into batches of one topic each, at the given cut points. */
function batchesOf(
  records: readonly LogRecord[],
  cuts: readonly number[],
): { topic: InputTopic; records: LogRecord[] }[] {
  const batches: { topic: InputTopic; records: LogRecord[] }[] = [];
  let current: { topic: InputTopic; records: LogRecord[] } | undefined;
  records.forEach((r, i) => {
    const topic: InputTopic = r.topic === TOPICS.backend ? 'backend' : 'device';
    if (current === undefined || current.topic !== topic || cuts.includes(i)) {
      current = { topic, records: [] };
      batches.push(current);
    }
    current.records.push(r);
  });
  return batches;
}

const task = (): PartitionTask =>
  new PartitionTask({ partition: 0, clock: createHybridClock({ physicalNow: () => T0 + 10_000 }) });

interface Collected {
  readonly byTopic: Map<string, string[]>;
  readonly lastSnapshot: Map<string, string>;
  checkpoint: string | undefined;
}

function collect(into: Collected, out: TaskOutput): void {
  for (const { topic, records } of out.appends) {
    for (const r of records) {
      const hex = Buffer.from(r.value ?? new Uint8Array()).toString('hex');
      if (topic === TOPICS.snapshots) {
        if (r.key === CHECKPOINT_KEY) into.checkpoint = hex;
        // the state document, without the input offsets the record carries
        else into.lastSnapshot.set(r.key, JSON.stringify(decodeOutputRecord(r.value!, 'snapshot').state));
        continue;
      }
      into.byTopic.set(topic, [...(into.byTopic.get(topic) ?? []), `${r.key}:${hex}`]);
    }
  }
}

const empty = (): Collected => ({ byTopic: new Map(), lastSnapshot: new Map(), checkpoint: undefined });

describe('folding batches before one flush', () => {
  it('writes the same records, final states and checkpoint as flushing after every batch', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 60 })),
        fc.array(fc.boolean(), { maxLength: 30 }),
        (steps, cuts, flushes) => {
          const batches = batchesOf(
            recordsOf([{ device: 0, kind: 'create', key: 'a', value: 0, dt: 0 }, ...steps]),
            cuts,
          );
          const straight = task();
          const a = empty();
          for (const b of batches) collect(a, straight.process(b.topic, b.records, false));
          const folded = task();
          const f = empty();
          batches.forEach((b, i) => {
            folded.fold(b.topic, b.records, false);
            if (flushes[i] === true) collect(f, folded.flush());
          });
          collect(f, folded.flush());
          expect(a.byTopic.get(TOPICS.changes)?.length ?? 0).toBeGreaterThan(0); // at least the create
          expect(f.byTopic).toEqual(a.byTopic);
          expect(f.lastSnapshot).toEqual(a.lastSnapshot);
          expect(f.checkpoint).toEqual(a.checkpoint);
          expect(folded.pending).toBe(0);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('a rebuild (replay) folding the same records', () => {
  it('reaches the same states as the live projector, and writes no change records', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 60 })),
        (steps, cuts) => {
          // commands are decided live only: a rebuild finds their facts in the log instead
          const records = recordsOf([
            { device: 0, kind: 'create', key: 'a', value: 0, dt: 0 },
            ...steps.filter((s) => s.kind !== 'command'),
          ]);
          const batches = batchesOf(records, cuts);
          const live = task();
          for (const b of batches) live.process(b.topic, b.records, false);
          const rebuild = new PartitionTask({
            partition: 0,
            rebuild: true,
            clock: createHybridClock({ physicalNow: () => T0 + 10_000 }),
          });
          const r = empty();
          for (const b of batches) collect(r, rebuild.process(b.topic, b.records, false));
          const r2 = rebuild.settle(true);
          if (r2 !== undefined) collect(r, r2);
          live.settle(true);
          expect(r.byTopic.get(TOPICS.changes)).toBeUndefined();
          const docs = (t: PartitionTask): Map<string, string> =>
            new Map([...t.states()].map(([id, s]) => [id, JSON.stringify(toStateDoc(s))]));
          expect(docs(rebuild)).toEqual(docs(live));
        },
      ),
      { numRuns: 400 },
    );
  });
});
