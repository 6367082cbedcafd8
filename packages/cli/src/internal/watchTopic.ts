/**
 * Follows every partition of one topic with plain `log.read` loops (no consumer group, nothing
 * committed), calling `onRecord` for each record, until stopped. Used by `serve` for the figures
 * that live in output topics (rejections and dead letters by code, deltas by status).
 */
import type { Log, LogRecord } from '@twinlog/core';

export interface TopicWatch {
  /** Stop polling; resolves once the current poll is over. */
  stop(): Promise<void>;
}

export function watchTopic(
  log: Log,
  topic: string,
  {
    from,
    pollIntervalMs,
    partitions,
    onRecord,
    onIdle,
    onError,
  }: {
    from: 'earliest' | 'latest';
    pollIntervalMs: number;
    /** Only these partitions (default: all). */
    partitions?: readonly number[];
    onRecord: (record: LogRecord) => void;
    /** Called after each poll that found nothing new (the watch has caught up). */
    onIdle?: () => void;
    onError: (e: unknown) => void;
  },
): TopicWatch {
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    const count = await log.partitionCount(topic);
    const positions = from === 'earliest' ? new Array<number>(count).fill(0) : await log.endOffsets(topic);
    const watched = partitions ?? [...Array(count).keys()];
    while (!stopped) {
      let any = false;
      try {
        const ends = await log.endOffsets(topic);
        for (const p of watched) {
          if (stopped) break;
          const end = ends[p] ?? 0;
          if ((positions[p] ?? 0) >= end) continue;
          any = true;
          for await (const records of log.read(topic, p, { from: positions[p] ?? 0, to: end })) {
            for (const r of records) {
              positions[p] = r.offset + 1;
              onRecord(r);
            }
          }
          positions[p] = Math.max(positions[p] ?? 0, end);
        }
      } catch (e) {
        if (stopped) return;
        onError(e);
      }
      if (stopped) return;
      if (!any) onIdle?.();
      if (stopped) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollIntervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })().catch((e: unknown) => {
    if (!stopped) onError(e);
  });
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
