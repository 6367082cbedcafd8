/**
 * How the gateways read a twin (docs/reads.md).
 *
 * Two sources implement {@link TwinReader}:
 *
 * - an **index** ({@link TwinIndex}, structurally the fleet read model): a keyed lookup, no log read
 *   on the request path; a read that must reflect a write waits until the index has consumed the
 *   snapshots that reflect the write's input position (`waitFor`), or, for a write answered as a
 *   duplicate (no position known), until the twin's version reaches the decision's;
 * - the **snapshot reader** (`snapshotReader.ts`): `twin.snapshots` read per partition up to its
 *   end at the time of the request. The fallback when no index is given, and when the index does
 *   not reflect a wanted write within `waitMs` (or has stopped).
 *
 * Read-your-writes: {@link createAckedWrites} remembers, per device, the input positions of the
 * writes this gateway made (bounded: least recently written devices are folded into a per-topic,
 * per-partition floor, so forgetting a device only makes later reads wait for a little more).
 * {@link createReadPath} adds them to every read of that device, so a GET after an acknowledged
 * write — the twin answered after a PATCH/PUT, a GET after `PUT /devices`, a device's MQTT GET
 * after its reported PATCH — reflects it.
 */
import { TwinlogError, type TwinDocument } from '@twinlog/core';

/** Where a write landed: an input topic (`twin.backend`, `twin.device`), partition and offset. */
export interface InputPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/** What a read must reflect. */
export interface TwinReadOptions {
  /** Input positions (of this caller's writes) the answer must reflect. */
  readonly after?: readonly InputPosition[] | undefined;
  /** The twin's version must be at least this (a write answered as a duplicate). */
  readonly minVersion?: number | undefined;
}

/** A source of twins for the gateways. */
export interface TwinReader {
  /**
   * The twin, reflecting at least `options`.
   * @throws {TwinlogError} `DEVICE_NOT_FOUND` when the device has no twin (or it is deleted).
   */
  getTwin(deviceId: string, options?: TwinReadOptions): Promise<TwinDocument>;
}

/**
 * An index of rendered twins kept up to date from `twin.snapshots`: the fleet read model
 * (`createReadModel` of `@twinlog/fleet`) has this shape.
 */
export interface TwinIndex {
  /** The rendered twin as the index holds it now, or `undefined`. */
  getTwin(deviceId: string): Record<string, unknown> | undefined;
  /** Resolve once the index reflects every position (input positions: what its snapshots reflect). */
  waitFor(target: readonly InputPosition[], options?: { readonly timeoutMs?: number }): Promise<unknown>;
  /** Hear each applied batch (the devices it changed). Returns the unsubscribe. */
  onUpdate(
    listener: (update: { readonly upserted: readonly string[]; readonly removed: readonly string[] }) => void,
  ): () => void;
}

const notFound = (deviceId: string): TwinlogError =>
  new TwinlogError('DEVICE_NOT_FOUND', `device ${deviceId} does not exist`, { details: { deviceId } });

/** Default of {@link IndexedReaderOptions.waitMs}. */
export const DEFAULT_INDEX_WAIT_MS = 2_000;

export interface IndexedReaderOptions {
  /** Read through this when the index does not reflect a wanted write in time. */
  readonly fallback: TwinReader;
  /** Longest wait for the index to reflect a wanted write, ms (default {@link DEFAULT_INDEX_WAIT_MS}). */
  readonly waitMs?: number;
}

/**
 * A {@link TwinReader} over an index. A read with nothing to wait for is one lookup; a read that
 * waits longer than `waitMs` (a lagging or stopped index) is answered by `fallback`.
 */
export function createIndexedReader(
  index: TwinIndex,
  { fallback, waitMs = DEFAULT_INDEX_WAIT_MS }: IndexedReaderOptions,
): TwinReader {
  const lookup = (deviceId: string): TwinDocument | undefined =>
    index.getTwin(deviceId) as unknown as TwinDocument | undefined;

  /** Resolve true once the index's twin has `minVersion` (or is gone for good), false after `ms`. */
  const versionReached = (deviceId: string, minVersion: number, ms: number): Promise<boolean> => {
    const reached = (): boolean => (lookup(deviceId)?.version ?? -1) >= minVersion;
    if (reached()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const stop = index.onUpdate((u) => {
        if (!u.upserted.includes(deviceId) || !reached()) return;
        finish(true);
      });
      const timer = setTimeout(() => finish(false), ms);
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        stop();
        resolve(ok);
      };
    });
  };

  return {
    async getTwin(deviceId, options = {}) {
      const { after, minVersion } = options;
      if (after !== undefined && after.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), waitMs)));
        const waited = index.waitFor(after, { timeoutMs: waitMs }).then(
          () => true,
          () => false, // timed out or stopped: the fallback answers
        );
        const ok = await Promise.race([waited, late]);
        clearTimeout(timer);
        if (!ok) return fallback.getTwin(deviceId, options);
      }
      if (minVersion !== undefined && !(await versionReached(deviceId, minVersion, waitMs)))
        return fallback.getTwin(deviceId, options);
      const twin = lookup(deviceId);
      if (twin === undefined) throw notFound(deviceId);
      return twin;
    },
  };
}

/** Default of {@link AckedWritesOptions.maxDevices}. */
export const DEFAULT_MAX_ACKED_DEVICES = 100_000;

export interface AckedWritesOptions {
  /** Devices whose write positions are kept one by one (default {@link DEFAULT_MAX_ACKED_DEVICES}). */
  readonly maxDevices?: number;
}

/** The input positions of the writes a gateway made, per device (see the module comment). */
export interface AckedWrites {
  /** Remember that `deviceId`'s write landed at `positions`. */
  note(deviceId: string, positions: readonly InputPosition[]): void;
  /** What a read of `deviceId` must reflect: its own writes, and the floor of forgotten ones. */
  positionsOf(deviceId: string): InputPosition[];
  /** Devices kept one by one (for tests and metrics). */
  size(): number;
}

const slot = (p: InputPosition): string => `${p.topic}\u0000${p.partition}`;

/** Keep the larger offset per topic and partition. */
function mergeInto(into: Map<string, InputPosition>, positions: readonly InputPosition[]): void {
  for (const p of positions) {
    const k = slot(p);
    const have = into.get(k);
    if (have === undefined || have.offset < p.offset)
      into.set(k, { topic: p.topic, partition: p.partition, offset: p.offset });
  }
}

/**
 * Per-device write positions in insertion (least recently written first) order, at most
 * `maxDevices`; an evicted device's positions raise a per-partition floor, which every read of a
 * device on that partition then reflects, so eviction never loses read-your-writes.
 */
export function createAckedWrites({ maxDevices = DEFAULT_MAX_ACKED_DEVICES }: AckedWritesOptions = {}): AckedWrites {
  if (!Number.isSafeInteger(maxDevices) || maxDevices < 1)
    throw new TypeError(`maxDevices must be a positive integer, not ${maxDevices}`);
  const devices = new Map<string, Map<string, InputPosition>>();
  const floor = new Map<string, InputPosition>();
  return {
    note(deviceId, positions) {
      if (positions.length === 0) return;
      const mine = devices.get(deviceId) ?? new Map<string, InputPosition>();
      devices.delete(deviceId); // re-inserted last: the most recently written
      mergeInto(mine, positions);
      devices.set(deviceId, mine);
      while (devices.size > maxDevices) {
        const [oldest, kept] = devices.entries().next().value as [string, Map<string, InputPosition>];
        devices.delete(oldest);
        mergeInto(floor, [...kept.values()]);
      }
    },
    positionsOf(deviceId) {
      const mine = devices.get(deviceId);
      if (mine === undefined && floor.size === 0) return [];
      const out = new Map(floor);
      if (mine !== undefined) mergeInto(out, [...mine.values()]);
      return [...out.values()];
    },
    size: () => devices.size,
  };
}

/**
 * A reader that adds each device's remembered write positions to its reads. With the snapshot
 * reader they are not needed (it reads up to the log's end at the time of the request).
 */
export function createReadPath(reader: TwinReader, acked: AckedWrites): TwinReader {
  return {
    getTwin(deviceId, options = {}) {
      const own = acked.positionsOf(deviceId);
      if (own.length === 0) return reader.getTwin(deviceId, options);
      return reader.getTwin(deviceId, { ...options, after: [...(options.after ?? []), ...own] });
    },
  };
}
