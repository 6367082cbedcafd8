/**
 * Group commit for a gateway's appends: a `Log` whose `append` calls to one topic are coalesced
 * into one `append` of the underlying log while the previous one is in flight (no timer, no added
 * latency when idle). Thousands of devices each sending one reported PATCH become a few large
 * produce requests instead of thousands of small ones (the Kafka log sends one request per call,
 * one at a time). Order is kept: records are appended in call order, within and across groups.
 * Every other method is the underlying log's.
 */
import type { AppendRecord, AppendResult, Log } from '@twinlog/core';

interface Pending {
  readonly records: readonly AppendRecord[];
  readonly resolve: (r: AppendResult[]) => void;
  readonly reject: (e: unknown) => void;
}

/** At most this many records per grouped append. */
const MAX_GROUP = 5000;

export function groupAppends(log: Log): Log {
  const queues = new Map<string, { pending: Pending[]; busy: boolean }>();

  const drain = async (topic: string): Promise<void> => {
    const q = queues.get(topic)!;
    q.busy = true;
    while (q.pending.length > 0) {
      const group: Pending[] = [];
      let n = 0;
      while (q.pending.length > 0 && (group.length === 0 || n + q.pending[0]!.records.length <= MAX_GROUP)) {
        const p = q.pending.shift()!;
        group.push(p);
        n += p.records.length;
      }
      try {
        const results = await log.append(
          topic,
          group.flatMap((p) => p.records),
        );
        let at = 0;
        for (const p of group) {
          p.resolve(results.slice(at, at + p.records.length));
          at += p.records.length;
        }
      } catch (e) {
        for (const p of group) p.reject(e);
      }
    }
    q.busy = false;
  };

  const append = (topic: string, records: readonly AppendRecord[]): Promise<AppendResult[]> =>
    new Promise((resolve, reject) => {
      let q = queues.get(topic);
      if (q === undefined) {
        q = { pending: [], busy: false };
        queues.set(topic, q);
      }
      q.pending.push({ records, resolve, reject });
      if (!q.busy) void drain(topic);
    });

  return new Proxy(log, {
    get(target, prop, receiver) {
      if (prop === 'append') return append;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
