/**
 * The acceptance suite of the `Log` port (CONTRIBUTING.md, "Ports and acceptance suites"): the tests every adapter — in-memory,
 * embedded SQLite, Kafka — must pass, written once against the port so the adapters cannot drift.
 *
 * The suite is built to run against a shared real broker too: every test uses fresh, randomly
 * named topics and groups, closes what it opened in `afterEach`, never sleeps for long, and waits
 * for asynchronous delivery with polling helpers bounded at 30 s (rebalances on a real Kafka take
 * seconds). Core reads no clock and no randomness of its own: waiting uses vitest's `vi.waitFor`
 * and the run's name nonce comes from fast-check's generator, both test-framework services.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isTwinlogError, type TwinlogErrorCode } from '../errors.ts';
import {
  partitionFor,
  type AppendRecord,
  type Batch,
  type Log,
  type LogRecord,
  type SubscribeOptions,
  type Subscription,
} from '../log.ts';
import { utf8Encode } from '../sha256.ts';

/** What an adapter's `setup` gives the suite: one log client, and how to clean it up. */
export interface LogAcceptanceSetup {
  /**
   * A fresh client of the log under test. Every `setup()` call within one test must reach the same
   * data (same broker, same database file): tests that need two writers or two group members call
   * `setup()` twice, as two processes would connect.
   */
  readonly log: Log;
  /** Called after the log is closed, at the end of each test (e.g. to delete a temp file). */
  readonly cleanup?: () => Promise<void>;
  /**
   * The clock the log stamps append times with. When given, record timestamps are checked to lie
   * within `clockToleranceMs` of it around the append; otherwise only their order is checked.
   */
  readonly now?: () => number;
  /** Allowed distance between `now()` and a record's timestamp (default 10 000 ms, for broker skew). */
  readonly clockToleranceMs?: number;
}

/** The longest any single wait of the suite lasts. */
const WAIT_MS = 30_000;
/** Per-test timeout, above the waits (several may follow each other on a real broker). */
const TEST_MS = 90_000;

/** A per-run nonce so names never collide across runs on a shared broker. */
const RUN = fc.sample(fc.stringMatching(/^[a-z0-9]{10}$/), 1)[0] ?? 'run';
let counter = 0;

/** A topic or group name legal on Kafka (`[a-zA-Z0-9._-]`, short), unique in this run. */
function uniqueName(label: string): string {
  counter += 1;
  return `tl-acc-${RUN}-${counter}-${label}`;
}

const bytes = (s: string): Uint8Array => utf8Encode(s);
/** The suite's values are ASCII, so a byte-per-char decode shows them (core has no TextDecoder). */
const text = (b: Uint8Array | null): string | null => (b === null ? null : String.fromCharCode(...b));

/** Waits (polling) until `check` stops throwing; core has no timers, vitest owns the clock here. */
function eventually<T>(check: () => T | Promise<T>, timeout = WAIT_MS): Promise<T> {
  return vi.waitFor(check, { timeout, interval: 20 });
}

/** Lets roughly `ms` pass (vitest's timer), giving a wrong implementation the chance to misbehave. */
async function settle(ms: number): Promise<void> {
  let first = true;
  await vi.waitFor(
    () => {
      if (first) {
        first = false;
        throw new Error('settling');
      }
    },
    { timeout: ms * 20 + 1_000, interval: ms },
  );
}

async function readAll(log: Log, topic: string, partition: number, from = 0, to?: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const batch of log.read(topic, partition, to === undefined ? { from } : { from, to })) out.push(...batch);
  return out;
}

async function expectCode(promise: Promise<unknown>, code: TwinlogErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected a rejection with ${code}`).toBeDefined();
  expect(isTwinlogError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
}

function keyed(prefix: string, count: number): AppendRecord[] {
  return Array.from({ length: count }, (_, i) => ({ key: `${prefix}-${i}`, value: bytes(`${prefix}-v${i}`) }));
}

/** What one group member saw: its assignment over time and every record it was handed. */
interface MemberTrace {
  readonly assigned: Set<number>;
  readonly assignedBeforeFirstBatch: Set<number>;
  /** `topic/partition` → offsets in arrival order. */
  readonly received: Map<string, number[]>;
  /** Batches of partitions the member did not hold, or out-of-order batches. */
  readonly violations: string[];
  batches: number;
}

function trace(): MemberTrace {
  return { assigned: new Set(), assignedBeforeFirstBatch: new Set(), received: new Map(), violations: [], batches: 0 };
}

/** Subscribe options that record into `t`; `also` runs inside `eachBatch` after recording. */
function tracing(
  t: MemberTrace,
  group: string,
  topics: readonly string[],
  also?: (batch: Batch) => Promise<void>,
): SubscribeOptions {
  return {
    group,
    topics,
    onAssign: async (partitions) => {
      for (const p of partitions) {
        t.assigned.add(p);
        if (t.batches === 0) t.assignedBeforeFirstBatch.add(p);
      }
    },
    onRevoke: async (partitions) => {
      for (const p of partitions) t.assigned.delete(p);
    },
    eachBatch: async (batch) => {
      t.batches += 1;
      if (!t.assigned.has(batch.partition)) t.violations.push(`batch of unassigned ${batch.topic}/${batch.partition}`);
      const key = `${batch.topic}/${batch.partition}`;
      const seen = t.received.get(key) ?? [];
      let last = -1;
      for (const r of batch.records) {
        if (r.topic !== batch.topic || r.partition !== batch.partition)
          t.violations.push(`record ${r.topic}/${r.partition} in batch ${key}`);
        if (r.offset <= last) t.violations.push(`offsets not increasing in batch ${key}`);
        last = r.offset;
        seen.push(r.offset);
      }
      t.received.set(key, seen);
      if (also !== undefined) await also(batch);
    },
  };
}

/**
 * Defines the `Log` acceptance suite as a vitest `describe` block. Call it from an adapter's spec
 * file with a `setup` that opens a fresh client on a shared store.
 *
 * What it pins beyond the port's types: topics are created idempotently; keyed records go to
 * `partitionFor(key, n)` and offsets grow within a partition; tombstones, empty values and headers
 * round-trip; `read` ends at the end offset taken when it starts; `commitBatch` is all-or-nothing
 * (a missing topic rejects with `LOG_TOPIC_NOT_FOUND` and writes nothing); a newer client using a
 * fence id makes the older one's `commitBatch` reject with `LOG_FENCED`; a group member starts at
 * the committed offsets (or 0), gets `onAssign` before any batch, receives each partition in order,
 * and gets no batch once `stop()` has resolved; partition *i* of all subscribed topics belongs to
 * one member; topics of unequal partition counts reject with `LOG_CO_PARTITIONING`.
 *
 * Offsets are only assumed to increase (Kafka's transaction markers take offsets), so the suite
 * compares offsets with those `append` returned, never with counters.
 *
 * @example
 * // packages/log-embedded/src/createEmbeddedLog.int.spec.ts
 * runLogAcceptanceSuite('embedded', async () => ({ log: createEmbeddedLog({ path }), now: () => Date.now() }));
 */
export function runLogAcceptanceSuite(name: string, setup: () => Promise<LogAcceptanceSetup>): void {
  describe(`Log acceptance: ${name}`, () => {
    let opened: LogAcceptanceSetup[] = [];
    let subscriptions: Subscription[] = [];
    let first: LogAcceptanceSetup;
    let log: Log;

    /** Another client on the same store, closed after the test. */
    async function open(): Promise<LogAcceptanceSetup> {
      const s = await setup();
      opened.push(s);
      return s;
    }

    async function subscribe(on: Log, options: SubscribeOptions): Promise<Subscription> {
      const s = await on.subscribe(options);
      subscriptions.push(s);
      return s;
    }

    async function topic(label: string, partitions: number, compacted = false): Promise<string> {
      const t = uniqueName(label);
      await log.ensureTopics([compacted ? { name: t, partitions, compacted } : { name: t, partitions }]);
      return t;
    }

    beforeEach(async () => {
      first = await open();
      log = first.log;
    });

    afterEach(async () => {
      await Promise.allSettled(subscriptions.map((s) => s.stop()));
      await Promise.allSettled(opened.map((s) => s.log.close()));
      for (const s of opened) await s.cleanup?.();
      opened = [];
      subscriptions = [];
    });

    describe('topics', () => {
      it(
        'ensureTopics creates topics with their partition counts and is idempotent',
        { timeout: TEST_MS },
        async () => {
          const a = uniqueName('a');
          const b = uniqueName('b');
          await log.ensureTopics([
            { name: a, partitions: 3 },
            { name: b, partitions: 1, compacted: true },
          ]);
          expect(await log.partitionCount(a)).toBe(3);
          expect(await log.partitionCount(b)).toBe(1);
          await log.ensureTopics([{ name: a, partitions: 3 }]);
          await log.ensureTopics([{ name: a, partitions: 5 }]); // existing topics are left as they are
          expect(await log.partitionCount(a)).toBe(3);
          expect(await log.endOffsets(a)).toEqual([0, 0, 0]);
        },
      );

      it('partitionCount of a missing topic rejects with LOG_TOPIC_NOT_FOUND', { timeout: TEST_MS }, async () => {
        await expectCode(log.partitionCount(uniqueName('missing')), 'LOG_TOPIC_NOT_FOUND');
      });
    });

    describe('append', () => {
      it(
        'places keyed records at partitionFor(key, n) with increasing offsets, in order',
        { timeout: TEST_MS },
        async () => {
          const t = await topic('keyed', 3);
          const batch1 = keyed('dev', 12);
          const batch2 = keyed('dev', 12);
          const r1 = await log.append(t, batch1);
          const r2 = await log.append(t, batch2);
          const all = [...batch1, ...batch2];
          const results = [...r1, ...r2];
          expect(results).toHaveLength(all.length);
          const last = new Map<number, number>();
          results.forEach((r, i) => {
            expect(r.partition).toBe(partitionFor(all[i]!.key, 3));
            expect(Number.isSafeInteger(r.offset) && r.offset >= 0).toBe(true);
            const previous = last.get(r.partition);
            if (previous !== undefined) expect(r.offset).toBeGreaterThan(previous);
            last.set(r.partition, r.offset);
          });
          for (let p = 0; p < 3; p++) {
            const records = await readAll(log, t, p);
            const expected = results.flatMap((r, i) =>
              r.partition === p ? [{ offset: r.offset, key: all[i]!.key, value: text(all[i]!.value) }] : [],
            );
            expect(records.map((r) => ({ offset: r.offset, key: r.key, value: text(r.value) }))).toEqual(expected);
          }
        },
      );

      it('honours an explicit partition and rejects one out of range', { timeout: TEST_MS }, async () => {
        const t = await topic('explicit', 3);
        const key = 'pinned';
        const other = (partitionFor(key, 3) + 1) % 3;
        const [r] = await log.append(t, [{ key, value: bytes('x'), partition: other }]);
        expect(r?.partition).toBe(other);
        const [record] = await readAll(log, t, other);
        expect(record?.key).toBe(key);
        await expect(log.append(t, [{ key, value: bytes('y'), partition: 7 }])).rejects.toThrow();
      });

      it('round-trips tombstones, empty values and headers', { timeout: TEST_MS }, async () => {
        const t = await topic('shapes', 1, true);
        const headers = { 'content-type': 'application/msgpack', note: 'grüße, ✓', empty: '' };
        const results = await log.append(t, [
          { key: 'a', value: bytes('hello'), headers },
          { key: 'a', value: null },
          { key: 'b', value: new Uint8Array(0) },
          { key: 'c', value: new Uint8Array([0, 255, 1]) },
        ]);
        const records = await readAll(log, t, 0);
        expect(records.map((r) => r.offset)).toEqual(results.map((r) => r.offset));
        expect(records.map((r) => [r.topic, r.partition, r.key])).toEqual([
          [t, 0, 'a'],
          [t, 0, 'a'],
          [t, 0, 'b'],
          [t, 0, 'c'],
        ]);
        expect(text(records[0]!.value)).toBe('hello');
        expect({ ...records[0]!.headers }).toEqual(headers);
        expect(records[1]!.value).toBeNull();
        expect({ ...records[1]!.headers }).toEqual({});
        expect(records[2]!.value).not.toBeNull();
        expect(records[2]!.value!.length).toBe(0);
        expect(Array.from(records[3]!.value!)).toEqual([0, 255, 1]);
      });

      it('stamps records with the append time, non-decreasing within a partition', { timeout: TEST_MS }, async () => {
        const t = await topic('time', 2);
        const before = first.now?.();
        await log.append(t, keyed('a', 5));
        await log.append(t, keyed('b', 5));
        const after = first.now?.();
        const tolerance = first.clockToleranceMs ?? 10_000;
        for (let p = 0; p < 2; p++) {
          let previous = -Infinity;
          for (const r of await readAll(log, t, p)) {
            expect(Number.isSafeInteger(r.timestamp)).toBe(true);
            expect(r.timestamp).toBeGreaterThanOrEqual(previous);
            previous = r.timestamp;
            if (before !== undefined && after !== undefined) {
              expect(r.timestamp).toBeGreaterThanOrEqual(before - tolerance);
              expect(r.timestamp).toBeLessThanOrEqual(after + tolerance);
            }
          }
        }
      });

      it('rejects appends to a missing topic with LOG_TOPIC_NOT_FOUND', { timeout: TEST_MS }, async () => {
        await expectCode(log.append(uniqueName('missing'), [{ key: 'k', value: null }]), 'LOG_TOPIC_NOT_FOUND');
      });

      it('endOffsets gives the next offset to write, per partition', { timeout: TEST_MS }, async () => {
        const t = await topic('ends', 3);
        expect(await log.endOffsets(t)).toEqual([0, 0, 0]);
        const key = 'only-one-partition';
        const p = partitionFor(key, 3);
        const results = await log.append(t, [
          { key, value: bytes('1') },
          { key, value: bytes('2') },
        ]);
        const ends = await log.endOffsets(t);
        expect(ends).toHaveLength(3);
        for (let q = 0; q < 3; q++) {
          if (q === p) expect(ends[q]).toBeGreaterThan(results[1]!.offset);
          else expect(ends[q]).toBe(0);
        }
      });
    });

    describe('read', () => {
      it('reads from an offset to the end, to `to`, and ends on empty ranges', { timeout: TEST_MS }, async () => {
        const t = await topic('read', 1);
        const results = await log.append(t, keyed('r', 8));
        const offsets = results.map((r) => r.offset);
        expect((await readAll(log, t, 0)).map((r) => r.offset)).toEqual(offsets);
        expect((await readAll(log, t, 0, offsets[3])).map((r) => r.offset)).toEqual(offsets.slice(3));
        expect((await readAll(log, t, 0, offsets[2], offsets[5])).map((r) => r.offset)).toEqual(offsets.slice(2, 5));
        expect((await readAll(log, t, 0, 0, offsets[1])).map((r) => r.key)).toEqual(['r-0']);
        const [end] = await log.endOffsets(t);
        expect(await readAll(log, t, 0, end)).toEqual([]);
        expect(await readAll(log, t, 0, offsets[4], offsets[4])).toEqual([]);
      });

      it('reading an empty partition ends at once', { timeout: TEST_MS }, async () => {
        const t = await topic('empty', 2);
        expect(await readAll(log, t, 1)).toEqual([]);
      });

      it('stops at the end offset taken when the read starts', { timeout: TEST_MS }, async () => {
        const t = await topic('snapshot-end', 1);
        await log.append(t, keyed('before', 3));
        const seen: string[] = [];
        for await (const batch of log.read(t, 0, { from: 0 })) {
          seen.push(...batch.map((r) => r.key));
          if (seen.length === batch.length) await log.append(t, keyed('after', 2));
        }
        expect(seen).toEqual(['before-0', 'before-1', 'before-2']);
      });
    });

    describe('commitBatch and offsets', () => {
      it('committedOffsets is undefined before a commit, then the committed value', { timeout: TEST_MS }, async () => {
        const t = await topic('offsets', 3);
        const group = uniqueName('g');
        await log.append(t, keyed('o', 9));
        expect(await log.committedOffsets(group, t)).toEqual([undefined, undefined, undefined]);
        await log.commitOffsets([{ group, topic: t, partition: 1, offset: 2 }]);
        expect(await log.committedOffsets(group, t)).toEqual([undefined, 2, undefined]);
        await log.commitOffsets([
          { group, topic: t, partition: 1, offset: 3 },
          { group, topic: t, partition: 2, offset: 1 },
        ]);
        expect(await log.committedOffsets(group, t)).toEqual([undefined, 3, 1]);
        expect(await log.committedOffsets(uniqueName('other'), t)).toEqual([undefined, undefined, undefined]);
      });

      it('appends to several topics and commits offsets together', { timeout: TEST_MS }, async () => {
        const input = await topic('in', 2);
        const outA = await topic('out-a', 2);
        const outB = await topic('out-b', 1);
        const group = uniqueName('g');
        await log.append(input, keyed('i', 4));
        await log.commitBatch({
          fence: uniqueName('fence'),
          appends: [
            { topic: outA, records: keyed('a', 4) },
            { topic: outB, records: [{ key: 'b', value: bytes('b'), headers: { h: '1' } }] },
          ],
          offsets: [
            { group, topic: input, partition: 0, offset: 1 },
            { group, topic: input, partition: 1, offset: 2 },
          ],
        });
        const keysA = [...(await readAll(log, outA, 0)), ...(await readAll(log, outA, 1))].map((r) => r.key).sort();
        expect(keysA).toEqual(['a-0', 'a-1', 'a-2', 'a-3']);
        for (const r of [...(await readAll(log, outA, 0)), ...(await readAll(log, outA, 1))])
          expect(r.partition).toBe(partitionFor(r.key, 2));
        const [b] = await readAll(log, outB, 0);
        expect([b?.key, text(b?.value ?? null), b?.headers['h']]).toEqual(['b', 'b', '1']);
        expect(await log.committedOffsets(group, input)).toEqual([1, 2]);
        // A second client sees the same, committed state.
        const other = (await open()).log;
        expect(await other.committedOffsets(group, input)).toEqual([1, 2]);
        expect((await readAll(other, outB, 0)).map((r) => r.key)).toEqual(['b']);
      });

      it('a commitBatch naming a missing topic rejects and commits nothing', { timeout: TEST_MS }, async () => {
        const out = await topic('out', 1);
        const input = await topic('in', 1);
        const group = uniqueName('g');
        await expectCode(
          log.commitBatch({
            fence: uniqueName('fence'),
            appends: [
              { topic: out, records: keyed('x', 3) },
              { topic: uniqueName('missing'), records: keyed('y', 1) },
            ],
            offsets: [{ group, topic: input, partition: 0, offset: 5 }],
          }),
          'LOG_TOPIC_NOT_FOUND',
        );
        expect(await readAll(log, out, 0)).toEqual([]);
        expect(await log.committedOffsets(group, input)).toEqual([undefined]);
      });

      it(
        'commits sequentially under one fence, and a newer client fences the older one',
        { timeout: TEST_MS },
        async () => {
          const out = await topic('fenced', 1);
          const fence = uniqueName('fence');
          await log.commitBatch({ fence, appends: [{ topic: out, records: [{ key: 'k', value: bytes('old-1') }] }] });
          await log.commitBatch({ fence, appends: [{ topic: out, records: [{ key: 'k', value: bytes('old-2') }] }] });
          const newer = (await open()).log;
          await newer.commitBatch({ fence, appends: [{ topic: out, records: [{ key: 'k', value: bytes('new-1') }] }] });
          await expectCode(
            log.commitBatch({ fence, appends: [{ topic: out, records: [{ key: 'k', value: bytes('zombie') }] }] }),
            'LOG_FENCED',
          );
          await newer.commitBatch({ fence, appends: [{ topic: out, records: [{ key: 'k', value: bytes('new-2') }] }] });
          // Other fences are unaffected.
          await log.commitBatch({
            fence: uniqueName('fence'),
            appends: [{ topic: out, records: [{ key: 'k', value: bytes('other') }] }],
          });
          const values = (await readAll(newer, out, 0)).map((r) => text(r.value));
          expect(values).toEqual(['old-1', 'old-2', 'new-1', 'new-2', 'other']);
        },
      );
    });

    describe('subscribe', () => {
      it(
        'one member gets every partition of every topic in order, from the committed offsets',
        { timeout: TEST_MS },
        async () => {
          const a = await topic('sub-a', 3);
          const b = await topic('sub-b', 3);
          const group = uniqueName('g');
          const ra = await log.append(a, keyed('a', 15));
          const rb = await log.append(b, keyed('b', 15));
          // Skip the first two records of a/0 and everything already in b/1.
          const a0 = ra.filter((r) => r.partition === 0).map((r) => r.offset);
          const b1 = rb.filter((r) => r.partition === 1).map((r) => r.offset);
          const commitA0 = a0.length >= 2 ? (a0[2] ?? a0[1]! + 1) : 0;
          const commitB1 = b1.length > 0 ? b1[b1.length - 1]! + 1 : 0;
          await log.commitOffsets([
            { group, topic: a, partition: 0, offset: commitA0 },
            { group, topic: b, partition: 1, offset: commitB1 },
          ]);
          const expected = new Map<string, number[]>();
          const addExpected = (
            t: string,
            rs: readonly { partition: number; offset: number }[],
            from: (p: number) => number,
          ): void => {
            for (const r of rs) {
              if (r.offset < from(r.partition)) continue;
              const key = `${t}/${r.partition}`;
              expected.set(key, [...(expected.get(key) ?? []), r.offset]);
            }
          };
          addExpected(a, ra, (p) => (p === 0 ? commitA0 : 0));
          addExpected(b, rb, (p) => (p === 1 ? commitB1 : 0));

          const t = trace();
          await subscribe(log, tracing(t, group, [a, b]));
          const total = (m: Map<string, number[]>): number => [...m.values()].reduce((n, v) => n + v.length, 0);
          await eventually(() => expect(total(t.received)).toBeGreaterThanOrEqual(total(expected)));
          expect(sorted(t.assignedBeforeFirstBatch)).toEqual([0, 1, 2]);
          expect(t.violations).toEqual([]);
          expect(byKey(t.received)).toEqual(byKey(expected));

          // Records appended while subscribed arrive too, after the earlier ones.
          const la = await log.append(a, keyed('late-a', 6));
          const lb = await log.append(b, keyed('late-b', 6));
          addExpected(a, la, () => 0);
          addExpected(b, lb, () => 0);
          await eventually(() => expect(total(t.received)).toBeGreaterThanOrEqual(total(expected)));
          expect(t.violations).toEqual([]);
          expect(byKey(t.received)).toEqual(byKey(expected));
        },
      );

      it('a resubscribed group does not get again what it committed', { timeout: TEST_MS }, async () => {
        const t = await topic('resume', 2);
        const group = uniqueName('g');
        const before = await log.append(t, keyed('before', 10));
        const commit = async (batch: Batch): Promise<void> => {
          const last = batch.records[batch.records.length - 1]!;
          await log.commitOffsets([{ group, topic: batch.topic, partition: batch.partition, offset: last.offset + 1 }]);
        };
        const t1 = trace();
        const s1 = await subscribe(log, tracing(t1, group, [t], commit));
        await eventually(() => expect(count(t1.received)).toBeGreaterThanOrEqual(before.length));
        await s1.stop();
        const after = await log.append(t, keyed('after', 6));
        const t2 = trace();
        await subscribe(log, tracing(t2, group, [t], commit));
        await eventually(() => expect(count(t2.received)).toBeGreaterThanOrEqual(after.length));
        const got = [...t2.received.entries()].flatMap(([k, offsets]) => offsets.map((o) => `${k}@${o}`)).sort();
        const want = after.map((r) => `${t}/${r.partition}@${r.offset}`).sort();
        expect(got).toEqual(want);
      });

      it('stop() waits for the running batch, and no batch runs after it', { timeout: TEST_MS }, async () => {
        const t = await topic('stop', 1);
        const group = uniqueName('g');
        await log.append(t, [{ key: 'k', value: bytes('1') }]);
        let release!: () => void;
        const gate = new Promise<void>((r) => {
          release = r;
        });
        let running = false;
        let calls = 0;
        let stopped = false;
        let afterStop = 0;
        const sub = await subscribe(log, {
          group,
          topics: [t],
          eachBatch: async () => {
            if (stopped) afterStop += 1;
            calls += 1;
            running = true;
            if (calls === 1) await gate;
            running = false;
          },
        });
        await eventually(() => expect(calls).toBe(1));
        let runningWhenStopped: boolean | undefined;
        const stopping = sub.stop().then(() => {
          runningWhenStopped = running;
          stopped = true;
        });
        await settle(50);
        release();
        await stopping;
        expect(runningWhenStopped).toBe(false);
        await sub.stop(); // idempotent

        // New records go to a new member of the group, never to the stopped one.
        await log.append(t, keyed('after', 3));
        const t2 = trace();
        await subscribe(log, tracing(t2, group, [t]));
        await eventually(() => expect(count(t2.received)).toBeGreaterThanOrEqual(4));
        expect(afterStop).toBe(0);
        expect(calls).toBe(1);
      });

      it(
        'two members of a group split the partitions co-partitioned and together get everything',
        { timeout: TEST_MS },
        async () => {
          const a = await topic('co-a', 4);
          const b = await topic('co-b', 4);
          const group = uniqueName('g');
          const expected = new Set<string>();
          const note = (t: string, rs: readonly { partition: number; offset: number }[]): void => {
            for (const r of rs) expected.add(`${t}/${r.partition}@${r.offset}`);
          };
          note(a, await log.append(a, keyed('a', 24)));
          note(b, await log.append(b, keyed('b', 24)));
          const second = (await open()).log;
          const m1 = trace();
          const m2 = trace();
          await subscribe(log, tracing(m1, group, [a, b]));
          await subscribe(second, tracing(m2, group, [a, b]));
          const union = (): Set<string> =>
            new Set(
              [m1, m2].flatMap((m) =>
                [...m.received.entries()].flatMap(([k, offsets]) => offsets.map((o) => `${k}@${o}`)),
              ),
            );
          const settled = (): void => {
            expect(m1.assigned.size).toBeGreaterThan(0);
            expect(m2.assigned.size).toBeGreaterThan(0);
            expect(sorted(new Set([...m1.assigned, ...m2.assigned]))).toEqual([0, 1, 2, 3]);
            expect([...m1.assigned].filter((p) => m2.assigned.has(p))).toEqual([]);
            const got = union();
            expect([...expected].filter((e) => !got.has(e))).toEqual([]);
          };
          await eventually(settled);
          note(a, await log.append(a, keyed('late-a', 12)));
          note(b, await log.append(b, keyed('late-b', 12)));
          await eventually(settled);
          expect(m1.violations).toEqual([]);
          expect(m2.violations).toEqual([]);
        },
      );

      it('rejects topics of unequal partition counts, and missing topics', { timeout: TEST_MS }, async () => {
        const a = await topic('uneq-a', 2);
        const b = await topic('uneq-b', 3);
        const options = { group: uniqueName('g'), eachBatch: async (): Promise<void> => undefined };
        await expectCode(subscribe(log, { ...options, topics: [a, b] }), 'LOG_CO_PARTITIONING');
        await expectCode(subscribe(log, { ...options, topics: [a, uniqueName('missing')] }), 'LOG_TOPIC_NOT_FOUND');
      });

      it('rejects a concurrency that is not a positive integer', { timeout: TEST_MS }, async () => {
        const a = await topic('conc', 2);
        const options = { group: uniqueName('g'), topics: [a], eachBatch: async (): Promise<void> => undefined };
        for (const concurrency of [0, -1, 1.5, Number.NaN])
          await expectCode(subscribe(log, { ...options, concurrency }), 'LOG_ARGUMENT_INVALID');
      });
    });
  });
}

function sorted(set: ReadonlySet<number>): number[] {
  return [...set].sort((x, y) => x - y);
}

function count(m: ReadonlyMap<string, readonly number[]>): number {
  return [...m.values()].reduce((n, v) => n + v.length, 0);
}

/** Entries sorted by key, for order-insensitive comparison of per-partition sequences. */
function byKey(m: ReadonlyMap<string, readonly number[]>): [string, readonly number[]][] {
  return [...m.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
}
