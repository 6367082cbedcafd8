/**
 * Freshness tokens: what a read-model answer reflects, as positions on the log.
 *
 * Layout (version 1): base64url of the JSON `{"v":1,"s":[…],"b":[…],"d":[…]}`, one entry per
 * partition: `s` the next offset of `twin.snapshots` the read model will consume (so every snapshot
 * before it is reflected), `b` and `d` the next offsets of `twin.backend` and `twin.device` that
 * the consumed snapshots and checkpoints reflect (the projector's committed input positions). A
 * token is monotonic per partition and comparable across read models of one log.
 */
import { fleetError } from './fleetError.ts';

/** Per-partition positions a read model reflects. */
export interface Positions {
  readonly snapshots: readonly number[];
  readonly backend: readonly number[];
  readonly device: readonly number[];
}

/**
 * A position a caller wants reflected: where a write landed (the client's `WriteReceipt` has this
 * shape: `twin.backend` or `twin.device`), or a `twin.snapshots` record.
 */
export interface LogPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export function encodeFreshness(p: Positions): string {
  return Buffer.from(JSON.stringify({ v: 1, s: p.snapshots, b: p.backend, d: p.device }), 'utf8').toString('base64url');
}

const isOffsets = (a: unknown): a is number[] =>
  Array.isArray(a) && a.length <= 100_000 && a.every((n) => Number.isSafeInteger(n) && n >= 0);

/**
 * Read a freshness token.
 *
 * @example
 * decodeFreshness(encodeFreshness({ snapshots: [3, 0], backend: [2, 0], device: [1, 0] })).snapshots //=> [3, 0]
 * @throws {TwinlogError} `FRESHNESS_TOKEN_INVALID` for anything {@link encodeFreshness} did not write.
 */
export function decodeFreshness(token: string): Positions {
  const invalid = () =>
    fleetError('FRESHNESS_TOKEN_INVALID', 'not a freshness token of this read model', {
      details: { length: token.length },
    });
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]+$/.test(token) || token.length > 1_000_000) throw invalid();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof v !== 'object' || v === null) throw invalid();
  const o = v as Record<string, unknown>;
  if (o['v'] !== 1 || !isOffsets(o['s']) || !isOffsets(o['b']) || !isOffsets(o['d']) || Object.keys(o).length !== 4)
    throw invalid();
  return { snapshots: o['s'], backend: o['b'], device: o['d'] };
}

/** Whether `current` reflects everything `wanted` does (each partition at or past it). */
export function reflects(current: Positions, wanted: Positions): boolean {
  const covers = (have: readonly number[], want: readonly number[]): boolean =>
    want.every((w, i) => w <= (have[i] ?? 0));
  return (
    covers(current.snapshots, wanted.snapshots) &&
    covers(current.backend, wanted.backend) &&
    covers(current.device, wanted.device)
  );
}
