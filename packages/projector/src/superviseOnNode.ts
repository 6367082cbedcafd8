/**
 * Core's `superviseStage` with Node's clock, timers (unref'd: a supervisor never holds a process
 * open) and jitter: the one way the projector, the reconciler and the read model supervise their
 * consumers (restart with backoff after any failure; docs: README "serve").
 */
import { superviseStage, type SupervisedStage, type SuperviseStageOptions } from '@twinlog/core';

/**
 * @example
 * const supervisor = superviseOnNode({ name: 'projector', start: async () => run(await subscribe()) })
 */
export function superviseOnNode(options: Omit<SuperviseStageOptions, 'now' | 'schedule' | 'random'>): SupervisedStage {
  return superviseStage({
    ...options,
    now: () => Date.now(),
    random: Math.random,
    schedule: (ms, fn) => {
      const t = setTimeout(fn, ms);
      t.unref();
      return () => clearTimeout(t);
    },
  });
}
