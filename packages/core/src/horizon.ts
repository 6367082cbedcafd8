/**
 * The GC horizon a projector derives from the log (docs/bounded-state.md, "The GC horizon").
 *
 * `H_gc = appendTime − maxOfflineWindow − maxSkew − gcMargin`, taken from the append time of the
 * records the projector folds (never from a clock), so a replay derives the same horizons at the
 * same records and stays byte-for-byte deterministic. Events stamped at or below the horizon are
 * `LATE`: the fold refuses them and the projector sends them to `twin.rejections`.
 */
import { MIN_STAMP, type Stamp } from './stamp.ts';
import { raiseHorizon, type TwinState } from './twinState.ts';

/** The windows behind the horizon; every field has a default (see {@link HORIZON_DEFAULTS}). */
export interface HorizonOptions {
  /** How long a producer that stamps its own records may buffer them offline. */
  readonly maxOfflineWindowMs?: number;
  /** Clock skew tolerated between producers and the log. */
  readonly maxSkewMs?: number;
  /** Produce-to-consume delay tolerated on top (producer retries, consumer lag). */
  readonly gcMarginMs?: number;
}

/** Defaults: one day offline, one minute of skew, one hour of margin. */
export const HORIZON_DEFAULTS: Required<HorizonOptions> = Object.freeze({
  maxOfflineWindowMs: 86_400_000,
  maxSkewMs: 60_000,
  gcMarginMs: 3_600_000,
});

/**
 * The horizon implied by a record appended at `appendTime` (ms). Below every real stamp while the
 * windows reach back before the epoch.
 *
 * @example
 * advanceHorizon(state, gcHorizonAt(record.timestamp))
 */
export function gcHorizonAt(appendTime: number, options: HorizonOptions = {}): Stamp {
  const { maxOfflineWindowMs, maxSkewMs, gcMarginMs } = { ...HORIZON_DEFAULTS, ...options };
  const wall = appendTime - maxOfflineWindowMs - maxSkewMs - gcMarginMs;
  return wall < 0 ? MIN_STAMP : { wall, counter: 0, writer: '', seq: 0, op: 0 };
}

/**
 * Raise the twin's GC horizon to `horizon` (never lowers it). From then on events stamped at or
 * below it are `LATE`; what they leave behind is collected by the next `collectGarbage` (which
 * `toStateDoc` runs), so calling this for every record is cheap.
 */
export function advanceHorizon(state: TwinState, horizon: Stamp): void {
  raiseHorizon(state, horizon);
}
