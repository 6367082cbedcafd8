/**
 * One audit entry (docs/architecture.md: the log is the history): what an applied event did, with
 * the versions right after it, and the replay hook that makes entries. Audit lines (entries made
 * into text by a module every thread can load) are made here too, so an audit in worker threads
 * and one in this thread run the same code.
 */
import { isoOf, sectionVersion, twinVersion, type EventKind, type Patch, type TwinState } from '@twinlog/core';
import { byteSink, writeText, type ByteSink } from './jsonBytes.ts';
import type { TaskOptions } from './partitionTask.ts';

/** One entry of a twin's audit trail. */
export interface HistoryEntry {
  /** The twin's id (a device id, or `{deviceId}/{moduleId}` for a module twin). */
  readonly deviceId: string;
  /** When the event was stamped (its HLC wall, ISO-8601) and its full stamp. */
  readonly time: string;
  readonly stamp: { readonly wall: number; readonly counter: number };
  readonly id: { readonly writer: string; readonly seq: number };
  readonly actor: string;
  readonly section: EventKind;
  readonly op: 'merge' | 'replace';
  readonly patch: Patch;
  /** Versions right after the event. */
  readonly versions: {
    readonly version: number;
    readonly tags: number;
    readonly desired: number;
    readonly reported: number;
  };
  readonly source: {
    readonly topic: string;
    readonly partition: number;
    readonly offset: number;
    readonly appendTime: number;
  };
}

/** Which applied events an audit keeps (see `AuditOptions`). */
export interface AuditFilter {
  readonly since?: number | undefined;
  readonly sections?: readonly EventKind[] | undefined;
  readonly where?: ((state: TwinState) => boolean) | undefined;
}

/**
 * The replay hook behind every audit: the entry of each applied event the filter keeps, with the
 * state right after it and its place in a window folded device by device (-1 outside one).
 */
export function auditHook(
  { since, sections, where }: AuditFilter,
  onEntry: (entry: HistoryEntry, state: TwinState, position: number) => void,
): NonNullable<TaskOptions['onApplied']> {
  // consecutive events mostly share their millisecond: its ISO text is made once
  let wall = NaN;
  let time = '';
  return (e, state, source, position = -1) => {
    if (since !== undefined && e.stamp.wall < since) return;
    if (sections !== undefined && !sections.includes(e.section)) return;
    if (where !== undefined && !where(state)) return;
    if (e.stamp.wall !== wall) {
      wall = e.stamp.wall;
      time = isoOf(wall);
    }
    onEntry(
      {
        deviceId: e.deviceId,
        time,
        stamp: e.stamp,
        id: e.id,
        actor: e.actor,
        section: e.section,
        op: e.op,
        patch: e.patch,
        versions: {
          version: twinVersion(state),
          tags: sectionVersion(state, 'tags'),
          desired: sectionVersion(state, 'desired'),
          reported: sectionVersion(state, 'reported'),
        },
        source: {
          topic: source.topic,
          partition: source.partition,
          offset: source.offset,
          appendTime: source.timestamp,
        },
      },
      state,
      position,
    );
  };
}

/** A module exporting an {@link AuditLineFactory}, and the factory's options (structured-cloneable). */
export interface AuditLineSpec {
  readonly module: string;
  readonly export: string;
  readonly options: unknown;
}

/**
 * Makes the line of an audit entry (without its newline): as a string, or `undefined` to leave the
 * entry out; or, as an {@link AuditLineWriter}, straight into bytes.
 */
export type AuditLineFactory = (
  options: unknown,
) => ((entry: HistoryEntry, state: TwinState) => string | undefined) | AuditLineWriter;

/**
 * A line maker that writes each line's UTF-8 bytes (without its newline) into `out` at `out.pos`
 * (after `out.room`), and returns false to leave the entry out (having written nothing). It makes
 * no string per line (docs/write-path.md, "The audit on worker threads"); `writeJson` writes what
 * `JSON.stringify` would.
 *
 * @example
 * export const jsonLines = (): AuditLineWriter => ({ write: (entry, _state, out) => (writeJson(out, entry), true) })
 */
export interface AuditLineWriter {
  readonly write: (entry: HistoryEntry, state: TwinState, out: ByteSink) => boolean;
}

/** An audit whose entries become lines: what `auditLines` runs, and what a replay worker is told of it. */
export interface AuditLinesJob {
  readonly lines: AuditLineSpec;
  readonly since?: number | undefined;
  readonly sections?: readonly EventKind[] | undefined;
}

const CHUNK_BYTES = 64 * 1024;

/** Load the line factory a spec names, and make its line writer (a string maker's lines are encoded). */
export async function loadLineWriter(spec: AuditLineSpec): Promise<AuditLineWriter['write']> {
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const factory = mod[spec.export];
  if (typeof factory !== 'function') throw new Error(`${spec.module} has no function ${spec.export}`);
  const made = (factory as AuditLineFactory)(spec.options);
  if (typeof made !== 'function') return made.write;
  return (entry, state, out) => {
    const text = made(entry, state);
    if (text === undefined) return false;
    writeText(out, text);
    return true;
  };
}

/**
 * The replay hook of one audit job, in whichever thread folds: it makes each kept entry's line and
 * hands them to `emit` as UTF-8 in chunks of 64 KiB (and the rest at `flush`; a line may straddle two). Bytes, not
 * strings, because bytes cross threads by transfer, where a string is copied twice (measured:
 * 7.6 µs more CPU per line; docs/write-path.md, "Replay").
 *
 * Lines of a window folded device by device are held until `endWindow` writes them in log order
 * (by their place in the window; a window's lines are at most its records).
 */
export async function lineCollector(
  job: AuditLinesJob,
  emit: (chunk: Uint8Array) => void,
): Promise<{ onApplied: NonNullable<TaskOptions['onApplied']>; endWindow: () => void; flush: () => void }> {
  const writeLine = await loadLineWriter(job.lines);
  let chunk = new Uint8Array(CHUNK_BYTES);
  let used = 0;
  const flushChunk = (): void => {
    if (used === 0) return;
    emit(chunk.subarray(0, used));
    chunk = new Uint8Array(CHUNK_BYTES);
    used = 0;
  };
  const copy = (bytes: Uint8Array): void => {
    for (let from = 0; from < bytes.length;) {
      const n = Math.min(CHUNK_BYTES - used, bytes.length - from);
      chunk.set(bytes.subarray(from, from + n), used);
      used += n;
      from += n;
      if (used === CHUNK_BYTES) flushChunk();
    }
  };
  // lines are written as UTF-8 into one buffer (kept for the next window), never as strings: a
  // window's lines are held there until endWindow, tens of megabytes that as strings outliving
  // young collections cost more than the fold saved; a line outside a window is copied out at once
  const held = byteSink(1 << 20);
  const places: number[] = [];
  const starts: number[] = [];
  const onApplied = auditHook({ since: job.since, sections: job.sections }, (entry, state, position) => {
    const start = held.pos;
    if (!writeLine(entry, state, held)) {
      held.pos = start;
      return;
    }
    held.room(1);
    held.buf[held.pos++] = 0x0a;
    if (position >= 0) {
      places.push(position);
      starts.push(start);
    } else {
      copy(held.buf.subarray(start, held.pos));
      held.pos = start;
    }
  });
  // a counting sort of the held lines by place (places are below the window's record count): the
  // counts and the order are kept for the next window, at most a window's size
  let counts = new Int32Array(0);
  let order = new Int32Array(0);
  const endWindow = (): void => {
    const n = places.length;
    if (n === 0) return;
    let top = 0;
    for (let i = 0; i < n; i++) if (places[i]! > top) top = places[i]!;
    if (counts.length < top + 2) counts = new Int32Array(top + 2);
    else counts.fill(0, 0, top + 2);
    if (order.length < n) order = new Int32Array(n);
    for (let i = 0; i < n; i++) counts[places[i]! + 1]!++;
    for (let p = 1; p <= top + 1; p++) counts[p]! += counts[p - 1]!;
    // stable: lines of one place keep their order
    for (let i = 0; i < n; i++) order[counts[places[i]!]!++] = i;
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      copy(held.buf.subarray(starts[i], i + 1 < n ? starts[i + 1]! : held.pos));
    }
    places.length = 0;
    starts.length = 0;
    held.pos = 0;
  };
  return {
    onApplied,
    endWindow,
    flush: () => {
      endWindow();
      flushChunk();
    },
  };
}
