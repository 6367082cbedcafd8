import { describe, expect, it } from 'vitest';
import {
  backoffDelay,
  isHealthyStageState,
  superviseStage,
  type RunStatus,
  type StageHealth,
  type StageRun,
  type StageState,
} from './stage.ts';

/** A manual clock and timer queue. */
function fakeTime() {
  let t = 0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  return {
    now: () => t,
    schedule: (ms: number, fn: () => void) => {
      const timer = { at: t + ms, fn, live: true };
      timers.push(timer);
      return () => {
        timer.live = false;
      };
    },
    async advance(ms: number) {
      const end = t + ms;
      for (;;) {
        await flush();
        const due = timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
        if (due === undefined) break;
        t = due.at;
        due.live = false;
        due.fn();
      }
      t = end;
      await flush();
    },
  };
}
const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** A run the test controls. */
function fakeRun(status: RunStatus = { partitions: [0, 1] }) {
  let fail: (e: unknown) => void = () => {};
  let end: () => void = () => {};
  const ended = new Promise<void>((resolve, reject) => {
    end = resolve;
    fail = reject;
  });
  ended.catch(() => {});
  const run = {
    current: status,
    stopped: 0,
    ended,
    status: () => run.current,
    stop: async () => {
      run.stopped++;
      end();
    },
    crash: (e: unknown) => fail(e),
  };
  return run satisfies StageRun;
}

describe('superviseStage', () => {
  it('restarts a crashed run with doubling backoff, logs once per state change, and is consuming again after', async () => {
    const time = fakeTime();
    const runs: ReturnType<typeof fakeRun>[] = [];
    let refuse = 0;
    const changes: [StageState, StageState, string | undefined, number | undefined][] = [];
    const stage = superviseStage({
      name: 'projector',
      now: time.now,
      schedule: time.schedule,
      start: async () => {
        if (refuse > 0) {
          refuse--;
          throw new Error('Connection refused');
        }
        const r = fakeRun();
        runs.push(r);
        return r;
      },
      onChange: (h: StageHealth, previous) => changes.push([previous, h.state, h.reason, h.retryInMs]),
    });
    await time.advance(0);
    expect(stage.health()).toMatchObject({ stage: 'projector', state: 'consuming', partitions: [0, 1], restarts: 0 });

    refuse = 4; // the broker is down for four attempts
    runs[0]!.crash(new Error('Failed to find group coordinator'));
    await time.advance(0);
    expect(runs[0]!.stopped).toBe(1); // the failed run is stopped cleanly
    expect(stage.health()).toMatchObject({
      state: 'restarting',
      reason: 'Failed to find group coordinator',
      retryInMs: 188,
    });
    // retries after 188, 375, 750, 1500 (jitter 0.5 of 250·2^n), four refused, then 3000 and one that succeeds
    await time.advance(187);
    expect(runs).toHaveLength(1);
    await time.advance(1 + 375 + 750 + 1500 + 3000);
    expect(runs).toHaveLength(2);
    expect(stage.health()).toMatchObject({ state: 'consuming', restarts: 5 });
    expect(changes.map(([a, b]) => `${a}->${b}`)).toEqual([
      'starting->consuming',
      'consuming->restarting',
      'restarting->consuming',
    ]);
    expect(changes[1]![3]).toBe(188); // "retrying in …"

    // consuming again: the backoff starts over
    runs[1]!.crash(new Error('boom'));
    await time.advance(0);
    expect(stage.health().retryInMs).toBe(188);
    await time.advance(188);
    expect(runs).toHaveLength(3);

    await stage.stop();
    expect(runs[2]!.stopped).toBe(1);
    expect(stage.health().state).toBe('stopped');
  });

  it('reports a live run that stops fetching as stalled, and consuming once it fetches again', async () => {
    const time = fakeTime();
    const run = fakeRun({ partitions: [] });
    const stage = superviseStage({
      name: 'reconciler',
      now: time.now,
      schedule: time.schedule,
      start: async () => run,
    });
    await time.advance(0);
    expect(stage.health()).toMatchObject({ state: 'starting', reason: 'joining the group' });
    run.current = { partitions: [0] };
    await time.advance(1000);
    expect(stage.health().state).toBe('consuming');
    run.current = { partitions: [0], fetching: false, reason: 'no fetch for 3 s' };
    await time.advance(1000);
    expect(stage.health()).toMatchObject({ state: 'stalled', reason: 'no fetch for 3 s', since: 2000 });
    run.current = { partitions: [0], fetching: true };
    expect(stage.health().state).toBe('consuming');
    run.current = { partitions: [] }; // e.g. another member took them all
    expect(stage.health()).toMatchObject({ state: 'stalled', reason: 'no partitions assigned' });
    await stage.stop();
    expect(run.stopped).toBe(1);
  });

  it('reports a member the group gave no partitions as standby (healthy, one state change), and consuming once it takes some over', async () => {
    const time = fakeTime();
    const run = fakeRun({ partitions: [] });
    const changes: [StageState, StageState][] = [];
    const stage = superviseStage({
      name: 'projector',
      now: time.now,
      schedule: time.schedule,
      start: async () => run,
      onChange: (h, previous) => changes.push([previous, h.state]),
    });
    await time.advance(0);
    expect(stage.health().state).toBe('starting'); // joining: no word from the group yet
    run.current = { partitions: [], fetching: true, standby: true };
    await time.advance(5000);
    expect(stage.health()).toMatchObject({ state: 'standby', partitions: [], since: 1000 });
    expect(isHealthyStageState(stage.health().state)).toBe(true);
    run.current = { partitions: [], fetching: false, standby: true, reason: 'no fetch answered for 3.0 s' };
    expect(stage.health()).toMatchObject({ state: 'stalled', reason: 'no fetch answered for 3.0 s' });
    expect(isHealthyStageState(stage.health().state)).toBe(false);
    run.current = { partitions: [], standby: true };
    expect(stage.health().state).toBe('standby');
    run.current = { partitions: [0] }; // the member holding it left
    await time.advance(1000);
    expect(stage.health()).toMatchObject({ state: 'consuming', partitions: [0], reason: undefined });
    run.current = { partitions: [], standby: true }; // a new member took it over again
    expect(stage.health().state).toBe('standby');
    expect(changes).toEqual([
      ['starting', 'standby'],
      ['standby', 'stalled'],
      ['stalled', 'standby'],
      ['standby', 'consuming'],
      ['consuming', 'standby'],
    ]);
    await stage.stop();
    expect(stage.health().state).toBe('stopped');
  });

  it('a standby run that fails is restarted like any other', async () => {
    const time = fakeTime();
    const runs: ReturnType<typeof fakeRun>[] = [];
    const stage = superviseStage({
      name: 'reconciler',
      now: time.now,
      schedule: time.schedule,
      start: async () => {
        const r = fakeRun({ partitions: [], standby: true });
        runs.push(r);
        return r;
      },
    });
    await time.advance(0);
    expect(stage.health().state).toBe('standby');
    runs[0]!.crash(new Error('KafkaJSNonRetriableError: Connection error'));
    await time.advance(0);
    expect(stage.health()).toMatchObject({ state: 'restarting', restarts: 0 });
    await time.advance(250);
    expect(stage.health()).toMatchObject({ state: 'standby', restarts: 1 });
    expect(runs).toHaveLength(2);
    await stage.stop();
  });

  it('stop() during a backoff cancels the retry', async () => {
    const time = fakeTime();
    let starts = 0;
    const stage = superviseStage({
      name: 'read-model',
      now: time.now,
      schedule: time.schedule,
      start: async () => {
        starts++;
        throw new Error('down');
      },
    });
    await time.advance(0);
    expect(stage.health().state).toBe('restarting');
    await stage.stop();
    await time.advance(60_000);
    expect(starts).toBe(1);
    expect(stage.health().state).toBe('stopped');
  });

  it('backoff doubles from the minimum to the cap, jittered into [d/2, d]', () => {
    expect([0, 1, 2, 3, 7, 8, 20].map((n) => backoffDelay(n))).toEqual([250, 500, 1000, 2000, 30_000, 30_000, 30_000]);
    expect(backoffDelay(0, {}, () => 0)).toBe(125);
    expect(backoffDelay(3, { minBackoffMs: 100, maxBackoffMs: 500 })).toBe(500);
  });
});
