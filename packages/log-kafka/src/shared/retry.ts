/** Waiting and retrying, the same for every Kafka client. */
import type { OffsetCommit } from '@twinlog/core';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `step` again, backing off (5 ms doubling to 500 ms) for up to 30 s, while it fails with an error `retry` accepts. */
export async function retrying<T>(retry: (e: unknown) => boolean, step: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (let delay = 5; ; delay = Math.min(delay * 2, 500)) {
    try {
      return await step();
    } catch (e) {
      if (!retry(e) || Date.now() >= deadline) throw e;
      await sleep(delay);
    }
  }
}

/** Per group and topic, the offset each partition should read back as after `offsets` are committed (the last one given wins). */
export function expectedGroupOffsets(
  offsets: readonly OffsetCommit[],
): { group: string; topic: string; offsets: Map<number, number> }[] {
  const expected = new Map<string, { group: string; topic: string; offsets: Map<number, number> }>();
  for (const o of offsets) {
    const key = JSON.stringify([o.group, o.topic]);
    const entry = expected.get(key) ?? { group: o.group, topic: o.topic, offsets: new Map<number, number>() };
    entry.offsets.set(o.partition, o.offset);
    expected.set(key, entry);
  }
  return [...expected.values()];
}

/**
 * Runs every check at once, each again (2 ms doubling to 100 ms) until it holds or `timeoutMs`
 * passed: one round trip per poll, not one per check. Resolves either way.
 */
export async function pollUntilAll(checks: readonly (() => Promise<boolean>)[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2, pending = checks; pending.length > 0 && Date.now() < deadline; delay = Math.min(delay * 2, 100)) {
    const held = await Promise.all(pending.map((check) => check()));
    pending = pending.filter((_, i) => !held[i]);
    if (pending.length > 0) await sleep(delay);
  }
}
