/**
 * One lifecycle for every long-running stage (projector, reconciler, read model, …): "consume a
 * topic, do work, commit, recover". {@link superviseStage} starts a stage's run (typically one
 * `Log.subscribe`), watches it, and when the run fails — its consumer crashed, a batch threw, or
 * starting it threw (broker unreachable) — stops it cleanly and starts a new one after an
 * exponential backoff, forever, until `stop()`. Its {@link StageHealth} says truthfully whether the
 * stage is consuming its partitions (assigned and fetching), and why not.
 *
 * Pure like the rest of core: the clock, the timers and the jitter are parameters.
 *
 * States:
 * - `starting`: the first run is being started;
 * - `consuming`: a run is up, holds partitions and its consumer is fetching;
 * - `standby`: a run is up and in good standing in its group (joined, its consumer alive) but the
 *   group gave it no partitions, because other members hold them all (more instances than
 *   partitions); healthy: it takes partitions over when a member leaves;
 * - `stalled`: a run is up but holds no partition (and is not a standby) or its consumer has
 *   stopped fetching (e.g. the broker is unreachable and the client is retrying by itself); it is
 *   not restarted for that, but it is not healthy either;
 * - `restarting`: a run failed; the next one starts after a backoff (retries that fail again keep
 *   the stage `restarting`, so a long outage is one state change, not one per retry);
 * - `stopped`: `stop()` was called.
 */
import type { Subscription } from './log.ts';

export type StageState = 'starting' | 'consuming' | 'standby' | 'stalled' | 'restarting' | 'stopped';

/** Whether a state is a healthy one: the stage consumes its partitions, or stands by in good standing. */
export function isHealthyStageState(state: StageState): boolean {
  return state === 'consuming' || state === 'standby';
}

/** What a stage says about itself. */
export interface StageHealth {
  readonly stage: string;
  readonly state: StageState;
  /** Why the stage is not consuming (the error, or what it waits for); undefined when consuming. */
  readonly reason: string | undefined;
  /** When the state was entered (the supervisor's clock). */
  readonly since: number;
  /** Partitions the current run holds. */
  readonly partitions: readonly number[];
  /** Runs started after a failure, since the supervisor started. */
  readonly restarts: number;
  /** When `restarting`: the delay before the next attempt, ms. */
  readonly retryInMs?: number;
}

/** What a run reports about its consumer. */
export interface RunStatus {
  /** Partitions assigned to the run. */
  readonly partitions: readonly number[];
  /** Whether its consumer fetches (default true: logs that cannot tell are taken at their word). */
  readonly fetching?: boolean;
  /** Why it does not fetch, when known. */
  readonly reason?: string;
  /**
   * With no partitions: the run has joined its group and the group gave it none (other members
   * hold them all), and its consumer is alive. Without it, a run holding no partition is still
   * joining (or stalled, once it has held some).
   */
  readonly standby?: boolean;
}

/** One incarnation of a stage: started by the supervisor, stopped by it. */
export interface StageRun {
  /** Settles when the run ends by itself: rejects with the error that ended it. */
  readonly ended: Promise<void>;
  status(): RunStatus;
  /** Stop the run (leave the group, wait for running work). */
  stop(): Promise<void>;
}

/** Timers, as a parameter (core reads no clock). */
export type ScheduleFn = (ms: number, fn: () => void) => () => void;

export interface BackoffOptions {
  /** First delay after a failure, ms (default 250). */
  readonly minBackoffMs?: number;
  /** Largest delay, ms (default 30 000). */
  readonly maxBackoffMs?: number;
}

export interface SuperviseStageOptions extends BackoffOptions {
  /** The stage's name in health and log lines, e.g. `projector`. */
  readonly name: string;
  /** Start one run (e.g. subscribe). A throw counts as a failed run. */
  readonly start: () => Promise<StageRun>;
  /** The clock, ms. */
  readonly now: () => number;
  /** Run `fn` after `ms`; returns a cancel function. */
  readonly schedule: ScheduleFn;
  /** Jitter source in [0, 1) (default none: 0.5, the middle). The delay is drawn in [d/2, d]. */
  readonly random?: () => number;
  /** How often a live run's status is re-read to notice a stall, ms (default 1000). */
  readonly checkIntervalMs?: number;
  /** Called once per state change (not per retry), with the new health and the previous state. */
  readonly onChange?: (health: StageHealth, previous: StageState) => void;
}

export interface SupervisedStage {
  health(): StageHealth;
  /** Stop for good: cancel a pending restart, stop the current run. Resolves when it has stopped. */
  stop(): Promise<void>;
}

/** The delay before attempt `attempt` (0-based): min·2^attempt capped at max, jittered into [d/2, d]. */
export function backoffDelay(
  attempt: number,
  { minBackoffMs = 250, maxBackoffMs = 30_000 }: BackoffOptions = {},
  random: () => number = () => 1,
): number {
  const d = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + (d / 2) * Math.min(1, Math.max(0, random())));
}

/** A message for an error of any shape. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}`;
  return String(e);
}

/** Start and supervise a stage (see the module comment). Returns at once; the first run starts in the background. */
export function superviseStage({
  name,
  start,
  now,
  schedule,
  random = () => 0.5,
  checkIntervalMs = 1000,
  minBackoffMs = 250,
  maxBackoffMs = 30_000,
  onChange,
}: SuperviseStageOptions): SupervisedStage {
  let state: StageState = 'starting';
  let reason: string | undefined;
  let since = now();
  let restarts = 0;
  let attempt = 0;
  let retryInMs: number | undefined;
  let run: StageRun | undefined;
  let stopping = false;
  /** Whether the current run has held partitions (until then it is still joining). */
  let joined = false;
  let cancelTimer: (() => void) | undefined;
  let wakeStop: () => void = () => {};
  const stopRequested = new Promise<void>((r) => (wakeStop = r));

  const snapshot = (): StageHealth => ({
    stage: name,
    state,
    reason,
    since,
    partitions: run === undefined ? [] : [...run.status().partitions],
    restarts,
    ...(retryInMs === undefined ? {} : { retryInMs }),
  });

  const enter = (next: StageState, why: string | undefined): void => {
    if (next === state) {
      reason = why; // same state, new detail: no log line
      return;
    }
    const previous = state;
    state = next;
    reason = why;
    since = now();
    try {
      onChange?.(snapshot(), previous);
    } catch {
      // a listener's failure is its own
    }
  };

  /** Re-reads the live run's status: consuming or stalled. */
  const check = (): void => {
    if (run === undefined || stopping || state === 'stopped') return;
    let status: RunStatus;
    try {
      status = run.status();
    } catch (e) {
      status = { partitions: [], fetching: false, reason: describeError(e) };
    }
    if (status.partitions.length === 0 && status.standby === true) {
      // joined and alive, given nothing: healthy, takes partitions over when a member leaves
      if (status.fetching === false) enter('stalled', status.reason ?? 'not fetching');
      else {
        attempt = 0;
        joined = true;
        enter('standby', 'the group gave this member no partitions (other members hold them all)');
      }
    } else if (status.partitions.length === 0) {
      // a new run joins the group first: it stays starting/restarting until it holds partitions
      if (joined) enter('stalled', 'no partitions assigned');
      else reason = 'joining the group';
    } else if (status.fetching === false) enter('stalled', status.reason ?? 'not fetching');
    else {
      attempt = 0; // consuming again: the next failure starts from the smallest backoff
      joined = true;
      enter('consuming', undefined);
    }
  };

  const tick = (): void => {
    cancelTimer = undefined;
    if (stopping || run === undefined) return;
    check();
    cancelTimer = schedule(checkIntervalMs, tick);
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const cancel = schedule(ms, resolve);
      void stopRequested.then(() => {
        cancel();
        resolve();
      });
    });

  const failed = async (e: unknown): Promise<void> => {
    const delay = backoffDelay(attempt++, { minBackoffMs, maxBackoffMs }, random);
    retryInMs = delay;
    if (state === 'restarting') reason = describeError(e);
    else enter('restarting', describeError(e));
    await sleep(delay);
    retryInMs = undefined;
  };

  const loop = async (): Promise<void> => {
    let first = true;
    while (!stopping) {
      if (!first) restarts++;
      first = false;
      let current: StageRun;
      try {
        current = await start();
      } catch (e) {
        if (stopping) break;
        await failed(e);
        continue;
      }
      if (stopping) {
        await current.stop().catch(() => {});
        break;
      }
      run = current;
      joined = false;
      check();
      cancelTimer = schedule(checkIntervalMs, tick);
      let error: unknown;
      let ended = false;
      await Promise.race([
        current.ended.then(
          () => {
            ended = true;
            error = new Error('the consumer ended on its own');
          },
          (e: unknown) => {
            ended = true;
            error = e;
          },
        ),
        stopRequested,
      ]);
      cancelTimer?.();
      cancelTimer = undefined;
      if (stopping && !ended) break; // stop() stops the run
      run = undefined;
      await current.stop().catch(() => {}); // clean up what is left of the failed run
      if (stopping) break;
      await failed(error);
    }
  };

  const looping = loop();

  return {
    health() {
      check();
      return snapshot();
    },
    async stop() {
      if (!stopping) {
        stopping = true;
        cancelTimer?.();
        wakeStop();
      }
      await looping;
      const last = run;
      run = undefined;
      if (last !== undefined) await last.stop();
      retryInMs = undefined;
      enter('stopped', undefined);
    },
  };
}

/**
 * What a `Log` subscription may report beyond the port (the Kafka log does): `done` settles when it
 * ends by itself (rejecting with the consumer's error), `status()` says what it holds and whether
 * its consumer fetches.
 */
export interface ObservableSubscription extends Subscription {
  readonly done?: Promise<void>;
  status?(): RunStatus;
}
