/**
 * The gateway's read path: the latest snapshot of every device, read incrementally from
 * `twin.snapshots`. Each partition is read lazily, from where the last read stopped up to the
 * partition's end offset at the time of the request, so a read sees every snapshot committed
 * before it started (a device reads its own write once its PATCH was answered), and the cost of a
 * read is the snapshots committed since the previous read of that partition, not the partition's
 * history (`TwinClient.getTwin` rereads the partition from offset 0).
 *
 * Memory: the latest snapshot bytes of every device seen (decoded only when asked for).
 */
import { decodeOutputRecord } from '@twinlog/codec';
import { fromStateDoc, partitionFor, renderTwin, TwinlogError, type Log, type TwinDocument } from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';

export interface SnapshotReader {
  /**
   * The twin as of the latest snapshot committed before the call.
   * @throws {TwinlogError} `DEVICE_NOT_FOUND` when there is none or the twin is deleted.
   */
  getTwin(deviceId: string): Promise<TwinDocument>;
}

export function createSnapshotReader(log: Log): SnapshotReader {
  const latest = new Map<string, Uint8Array | null>();
  let count: Promise<number> | undefined;
  const positions: number[] = [];
  const reads = new Map<number, Promise<void>>();

  /** Read partition `p` up to at least `end` (one reader per partition at a time). */
  const readTo = (p: number, end: number): Promise<void> => {
    const prev = reads.get(p) ?? Promise.resolve();
    const next = prev.then(async () => {
      const from = positions[p] ?? 0;
      if (from >= end) return;
      let at = from;
      for await (const records of log.read(TOPICS.snapshots, p, { from, to: end })) {
        for (const r of records) {
          at = r.offset + 1;
          if (r.key !== CHECKPOINT_KEY) latest.set(r.key, r.value);
        }
      }
      positions[p] = Math.max(at, end);
    });
    const settled = next.catch(() => {});
    reads.set(p, settled);
    void settled.then(() => {
      if (reads.get(p) === settled) reads.delete(p);
    });
    return next;
  };

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
    const next = running.then(
      () => undefined,
      () => undefined,
    ).then(() => {
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
      const p = partitionFor(deviceId, await count);
      const end = (await ends())[p] ?? 0;
      await readTo(p, end);
      const bytes = latest.get(deviceId);
      const snap = bytes === undefined || bytes === null ? undefined : decodeOutputRecord(bytes, 'snapshot');
      if (snap === undefined || !snap.exists) {
        throw new TwinlogError('DEVICE_NOT_FOUND', `device ${deviceId} does not exist`, { details: { deviceId } });
      }
      return renderTwin(fromStateDoc(snap.state));
    },
  };
}
