/**
 * Records in a form a worker thread can take without copying each one: keys in an array, offsets
 * and timestamps in one Float64Array, every value in one ArrayBuffer (transferred, not cloned).
 * Values handed in may be views into a larger fetch buffer; packing copies exactly their bytes
 * (docs/write-path.md, "Both cores").
 */
import type { AppendRecord, LogRecord, TopicAppend } from '@twinlog/core';

/** The headers of an unpacked record (a fold reads none; one frozen object for all). */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

export interface PackedRecords {
  readonly keys: string[];
  /** Per record: offset, timestamp, partition (-1: none). */
  readonly numbers: Float64Array;
  /** End of each value in `bytes`; -1 for a null value. */
  readonly ends: Int32Array;
  readonly bytes: ArrayBuffer;
}

interface Packable {
  readonly key: string;
  readonly value: Uint8Array | null;
  readonly offset?: number;
  readonly timestamp?: number;
  readonly partition?: number;
}

export function packRecords(records: readonly Packable[]): PackedRecords {
  return packTagged(records, (r) => r.partition ?? -1);
}

/** `records` packed with `tag(record, index)` as each one's third number. */
function packTagged(records: readonly Packable[], tag: (record: Packable, index: number) => number): PackedRecords {
  let size = 0;
  for (const r of records) size += r.value?.length ?? 0;
  const bytes = new Uint8Array(size);
  const ends = new Int32Array(records.length);
  const numbers = new Float64Array(records.length * 3);
  const keys = new Array<string>(records.length);
  let at = 0;
  records.forEach((r, i) => {
    keys[i] = r.key;
    numbers[i * 3] = r.offset ?? 0;
    numbers[i * 3 + 1] = r.timestamp ?? 0;
    numbers[i * 3 + 2] = tag(r, i);
    if (r.value === null) {
      ends[i] = -1;
      return;
    }
    bytes.set(r.value, at);
    at += r.value.length;
    ends[i] = at;
  });
  return { keys, numbers, ends, bytes: bytes.buffer };
}

/** What to transfer with a message carrying `packed`. */
export function transfers(packed: readonly PackedRecords[]): ArrayBuffer[] {
  return packed.map((p) => p.bytes);
}

function valuesOf(p: PackedRecords): (Uint8Array | null)[] {
  const out = new Array<Uint8Array | null>(p.keys.length);
  let start = 0;
  for (let i = 0; i < p.keys.length; i++) {
    const end = p.ends[i]!;
    if (end < 0) {
      out[i] = null;
      continue;
    }
    out[i] = new Uint8Array(p.bytes, start, end - start);
    start = end;
  }
  return out;
}

/** Record `i` of `p` as an input record of `topic` (`values`: `valuesOf(p)`). */
function logRecordAt(
  p: PackedRecords,
  values: readonly (Uint8Array | null)[],
  i: number,
  topic: string,
  partition: number,
): LogRecord {
  return {
    topic,
    partition,
    offset: p.numbers[i * 3]!,
    key: p.keys[i]!,
    value: values[i]!,
    timestamp: p.numbers[i * 3 + 1]!,
    headers: NO_HEADERS,
  };
}

/** Input records of one topic partition, as the log handed them over. */
export function unpackLogRecords(p: PackedRecords, topic: string, partition: number): LogRecord[] {
  const values = valuesOf(p);
  return p.keys.map((_, i) => logRecordAt(p, values, i, topic, partition));
}

/**
 * Input records of one partition fed to a replay worker: runs of one topic each (as `mergedInputs`
 * yields them), packed into one message with the run's topic index as each record's third number.
 */
export function packRuns(runs: readonly (readonly [number, readonly LogRecord[]])[]): PackedRecords {
  const records: LogRecord[] = [];
  const topics: number[] = [];
  for (const [topic, list] of runs)
    for (const r of list) {
      records.push(r);
      topics.push(topic);
    }
  return packTagged(records, (_, i) => topics[i]!);
}

/** The runs `packRuns` packed, as records of `topics[index]` in `partition`. */
export function unpackRuns(p: PackedRecords, topics: readonly string[], partition: number): [number, LogRecord[]][] {
  const values = valuesOf(p);
  const runs: [number, LogRecord[]][] = [];
  let current: LogRecord[] | undefined;
  let topic = -1;
  for (let i = 0; i < p.keys.length; i++) {
    const t = p.numbers[i * 3 + 2]!;
    if (t !== topic || current === undefined) {
      topic = t;
      current = [];
      runs.push([t, current]);
    }
    current.push(logRecordAt(p, values, i, topics[t]!, partition));
  }
  return runs;
}

/** Output appends, packed per topic. */
export interface PackedAppend {
  readonly topic: string;
  readonly records: PackedRecords;
}

export function packAppends(appends: readonly TopicAppend[]): PackedAppend[] {
  return appends.map(({ topic, records }) => ({ topic, records: packRecords(records) }));
}

export function unpackAppends(packed: readonly PackedAppend[]): TopicAppend[] {
  return packed.map(({ topic, records: p }) => {
    const values = valuesOf(p);
    const records: AppendRecord[] = p.keys.map((key, i) => {
      const partition = p.numbers[i * 3 + 2]!;
      return { key, value: values[i]!, ...(partition >= 0 ? { partition } : {}) };
    });
    return { topic, records };
  });
}
