import type { Log } from '@twinlog/core';

/** `log` with some of its methods replaced; every other one is the log's own, bound to it. */
export function logWith(log: Log, overrides: Partial<Log>): Log {
  return new Proxy(log, {
    get(target, prop, receiver) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof Log];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * `log` whose `endOffsets(topic)` answers `end` once, then the truth: what a restore reads while
 * the last transaction's commit marker is not yet visible. `answered()` says whether it has.
 */
export function staleEndOnce(log: Log, topic: string, end: number[]): { log: Log; answered: () => boolean } {
  let pending = true;
  return {
    log: logWith(log, {
      endOffsets: async (t: string) => {
        if (t === topic && pending) {
          pending = false;
          return end;
        }
        return log.endOffsets(t);
      },
    }),
    answered: () => !pending,
  };
}
