/**
 * The gateway's read path without an index: the latest snapshot of every device, read incrementally
 * from `twin.snapshots`. Each partition is read lazily, from where the last read stopped up to the
 * partition's end offset at the time of the request, so a read sees every snapshot committed
 * before it started (a device reads its own write once its PATCH was answered), and the cost of a
 * read is the snapshots committed since the previous read of that partition, not the partition's
 * history (`TwinClient.getTwin` rereads the partition from offset 0).
 *
 * Memory: the latest snapshot bytes of the devices seen, decoded only when asked for, at most
 * `maxBytes` (keys and values); past it the least recently used devices are forgotten. A device
 * forgotten on a partition is found again by rereading that partition from offset 0 up to where
 * the reader stands (as `TwinClient.getTwin` does), so a read stays exact and only a device that
 * fell out pays for a scan.
 */
import { decodeOutputRecord } from '@twinlog/codec';
import { fromStateDoc, partitionFor, renderTwin, TwinlogError, type Log, type TwinDocument } from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';
import type { TwinReader } from './twinReader.ts';

export interface SnapshotReader extends TwinReader {
  /**
   * The twin as of the latest snapshot committed before the call (options are ignored: every
   * write acknowledged before the call is reflected).
   * @throws {TwinlogError} `DEVICE_NOT_FOUND` when there is none or the twin is deleted.
   */
  getTwin(deviceId: string, options?: unknown): Promise<TwinDocument>;
  /** Devices and bytes held now. */
  stats(): { readonly devices: number; readonly bytes: number };
}

/** Default of {@link SnapshotReaderOptions.maxBytes}: 64 MiB. */
export const DEFAULT_SNAPSHOT_READER_BYTES = 64 * 2 ** 20;

export interface SnapshotReaderOptions {
  /** Most snapshot bytes (and device ids) held (default {@link DEFAULT_SNAPSHOT_READER_BYTES}). */
  readonly maxBytes?: number;
}

/** Bytes a held entry counts for: its key and value, plus a fixed overhead. */
const sizeOf = (key: string, value: Uint8Array | null): number =>
  64 + key.length * 2 + (value === null ? 0 : value.byteLength);

export function createSnapshotReader(
  log: Log,
  { maxBytes = DEFAULT_SNAPSHOT_READER_BYTES }: SnapshotReaderOptions = {},
): SnapshotReader {
  /** Least recently used first. */
  const latest = new Map<string, Uint8Array | null>();
  let bytes = 0;
  /** Partitions that forgot a device: a miss there rereads the partition. */
  const forgot = new Set<number>();
  let count: Promise<number> | undefined;
  const positions: number[] = [];
  const reads = new Map<number, Promise<void>>();

  const hold = (key: string, value: Uint8Array | null, partition: number): void => {
    const had = latest.get(key);
    if (had !== undefined || latest.has(key)) {
      bytes -= sizeOf(key, had ?? null);
      latest.delete(key);
    }
    latest.set(key, value);
    bytes += sizeOf(key, value);
    while (bytes > maxBytes && latest.size > 1) {
      const [oldest, v] = latest.entries().next().value as [string, Uint8Array | null];
      latest.delete(oldest);
      bytes -= sizeOf(oldest, v);
      forgot.add(partitionOf(oldest) ?? partition);
    }
  };
  let partitions: number | undefined;
  const partitionOf = (key: string): number | undefined =>
    partitions === undefined ? undefined : partitionFor(key, partitions);

  /** Read partition `p` up to at least `end` (one reader per partition at a time). */
  const serially = (p: number, work: () => Promise<void>): Promise<void> => {
    const prev = reads.get(p) ?? Promise.resolve();
    const next = prev.then(work);
    const settled = next.catch(() => {});
    reads.set(p, settled);
    void settled.then(() => {
      if (reads.get(p) === settled) reads.delete(p);
    });
    return next;
  };
  const readTo = (p: number, end: number): Promise<void> =>
    serially(p, async () => {
      const from = positions[p] ?? 0;
      if (from >= end) return;
      let at = from;
      for await (const records of log.read(TOPICS.snapshots, p, { from, to: end })) {
        for (const r of records) {
          at = r.offset + 1;
          if (r.key !== CHECKPOINT_KEY) hold(r.key, r.value, p);
        }
      }
      positions[p] = Math.max(at, end);
    });
  /** A device forgotten on `p`: its latest snapshot below the reader's position, from offset 0. */
  const refind = (p: number, deviceId: string): Promise<void> =>
    serially(p, async () => {
      if (latest.has(deviceId)) return;
      const to = positions[p] ?? 0;
      let found: Uint8Array | null | undefined;
      for await (const records of log.read(TOPICS.snapshots, p, { from: 0, to })) {
        for (const r of records) if (r.key === deviceId) found = r.value;
      }
      if (found !== undefined) hold(deviceId, found, p);
    });

  // End offsets of twin.snapshots, shared by the reads waiting at the same time: a read uses a fetch
  // that started after it was asked for (so it sees every snapshot committed before it), and every
  // read asking while one fetch runs shares the next one (on Kafka, each fetch is an admin request).
  let running: Promise<number[]> | undefined;
  let queued: Promise<number[]> | undefined;
  const fetchEnds = (): Promise<number[]> => {
    const run = log.endOffsets(TOPICS.snapshots);
    running = run;
    const clear = (): void => {
      if (running === run) running = undefined;
    };
    run.then(clear, clear);
    return run;
  };
  const ends = (): Promise<number[]> => {
    if (queued !== undefined) return queued;
    if (running === undefined) return fetchEnds();
    const next = running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        queued = undefined;
        return fetchEnds();
      });
    queued = next;
    return next;
  };

  return {
    async getTwin(deviceId) {
      if (count === undefined) {
        count = log.partitionCount(TOPICS.snapshots);
        count.catch(() => (count = undefined));
      }
      partitions = await count;
      const p = partitionFor(deviceId, partitions);
      const end = (await ends())[p] ?? 0;
      await readTo(p, end);
      if (!latest.has(deviceId) && forgot.has(p)) await refind(p, deviceId);
      const held = latest.get(deviceId);
      if (held !== undefined) {
        latest.delete(deviceId); // most recently used
        latest.set(deviceId, held);
      }
      const snap = held === undefined || held === null ? undefined : decodeOutputRecord(held, 'snapshot');
      if (snap === undefined || !snap.exists) {
        throw new TwinlogError('DEVICE_NOT_FOUND', `device ${deviceId} does not exist`, { details: { deviceId } });
      }
      return renderTwin(fromStateDoc(snap.state));
    },
    stats: () => ({ devices: latest.size, bytes }),
  };
}
