/**
 * Hybrid logical clock (Kulkarni et al. 2014; docs/fold.md, "Who stamps"). The physical clock is a parameter:
 * core never reads time itself.
 */
import { TwinlogError } from './errors.ts';
import { MAX_COUNTER, type Hlc } from './stamp.ts';

export interface HybridClock {
  /** A fresh reading, strictly above every earlier reading and every stamp passed to `recv`. */
  now(): Hlc;
  /** Merge a remote stamp so that later readings dominate it. */
  recv(remote: Hlc): void;
  /** The last reading (or the merged remote stamp), without advancing. */
  peek(): Hlc;
}

export interface CreateHybridClockOptions {
  /** Physical clock in ms since the epoch (e.g. `Date.now`, supplied by the caller). */
  readonly physicalNow: () => number;
  /**
   * How far (ms) a remote stamp may be ahead of the physical clock before `recv` refuses it with
   * `STAMP_SKEW` instead of jumping forward (default: unbounded).
   */
  readonly maxOffsetMs?: number;
  /** Start from this reading (e.g. restored state). */
  readonly start?: Hlc;
}

/**
 * Create a hybrid logical clock.
 *
 * @example
 * const hlc = createHybridClock({ physicalNow: () => Date.now() })
 * const a = hlc.now(), b = hlc.now() // b > a even within one millisecond
 * @throws {TwinlogError} `STAMP_SKEW` from `recv` when a remote stamp is more than `maxOffsetMs` ahead.
 */
export function createHybridClock({
  physicalNow,
  maxOffsetMs = Infinity,
  start = { wall: 0, counter: 0 },
}: CreateHybridClockOptions): HybridClock {
  let l = start.wall;
  let c = start.counter;
  const bump = (): void => {
    if (c > MAX_COUNTER) {
      l += 1;
      c = 0;
    }
  };
  return {
    now() {
      const l0 = l;
      l = Math.max(l0, physicalNow());
      c = l === l0 ? c + 1 : 0;
      bump();
      return { wall: l, counter: c };
    },
    recv(m) {
      const pt = physicalNow();
      if (m.wall > pt + maxOffsetMs) {
        throw new TwinlogError('STAMP_SKEW', `remote stamp ${m.wall} is more than ${maxOffsetMs} ms ahead of ${pt}`, {
          details: { remoteWall: m.wall, physical: pt, maxOffsetMs },
        });
      }
      const l0 = l;
      l = Math.max(l0, m.wall, pt);
      if (l === l0 && l === m.wall) c = Math.max(c, m.counter) + 1;
      else if (l === l0) c = c + 1;
      else if (l === m.wall) c = m.counter + 1;
      else c = 0;
      bump();
    },
    peek() {
      return { wall: l, counter: c };
    },
  };
}
