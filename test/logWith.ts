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
