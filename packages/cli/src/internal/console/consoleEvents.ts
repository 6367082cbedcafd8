/**
 * The console's live feed (docs/console.md, "Live updates"): Server-Sent Events from `twin.changes`
 * and `twin.deltas`, read with plain `log.read` loops (no consumer group). Every event's id is the
 * position after it: the next offset of every partition of both topics, as
 * `changes:3,0,5,1|deltas:2,0,4,1`. A browser that reconnects sends it back as `Last-Event-ID`,
 * and the feed goes on from there, so nothing between the two connections is lost (as long as the
 * log still holds it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeOutputRecord } from '@twinlog/codec';
import { isoOf, isTwinlogError, partitionFor, type Log, type LogRecord } from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';

export interface FeedPosition {
  readonly changes: number[];
  readonly deltas: number[];
}

export function encodeFeedPosition(p: FeedPosition): string {
  return `changes:${p.changes.join(',')}|deltas:${p.deltas.join(',')}`;
}

/** The position an event id names, when it has `partitions` offsets per topic; else `undefined`. */
export function decodeFeedPosition(id: string | undefined, partitions: number): FeedPosition | undefined {
  const m = /^changes:([0-9,]+)\|deltas:([0-9,]+)$/.exec(id ?? '');
  if (m === null) return undefined;
  const offsets = (s: string): number[] | undefined => {
    const list = s.split(',').map(Number);
    return list.length === partitions && list.every((n) => Number.isSafeInteger(n) && n >= 0) ? list : undefined;
  };
  const changes = offsets(m[1]!);
  const deltas = offsets(m[2]!);
  return changes === undefined || deltas === undefined ? undefined : { changes, deltas };
}

/** One record as the browser gets it, or `undefined` to skip it. */
function eventOf(topic: 'changes' | 'deltas', r: LogRecord): { event: string; data: unknown } | undefined {
  if (r.value === null || r.key === CHECKPOINT_KEY) return undefined;
  try {
    if (topic === 'changes') {
      const c = decodeOutputRecord(r.value, 'change');
      return {
        event: 'change',
        data: {
          deviceId: c.deviceId,
          opType: c.opType,
          section: c.section,
          actor: c.actor,
          time: isoOf(c.wall),
          diff: c.diff,
          version: c.version,
          desiredVersion: c.desiredVersion,
          reportedVersion: c.reportedVersion,
        },
      };
    }
    const { delta } = decodeOutputRecord(r.value, 'delta');
    return { event: 'delta', data: { ...delta, at: new Date(r.timestamp).toISOString() } };
  } catch (e) {
    if (!isTwinlogError(e)) throw e;
    return undefined;
  }
}

export interface EventStreamOptions {
  readonly log: Log;
  /** Only this device's events (its partition only). */
  readonly deviceId?: string | undefined;
  readonly pollIntervalMs: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  readonly heartbeatMs?: number;
}

/**
 * Stream events to `res` until the request closes or the returned stop is called. Starts at
 * `Last-Event-ID` when it names a position of this log, else at the end of both topics.
 */
export async function streamEvents(
  req: IncomingMessage,
  res: ServerResponse,
  { log, deviceId, pollIntervalMs, heartbeatMs = 15_000 }: EventStreamOptions,
): Promise<() => void> {
  const count = await log.partitionCount(TOPICS.changes);
  const header = req.headers['last-event-id'];
  const resumed = decodeFeedPosition(Array.isArray(header) ? header[0] : header, count);
  const position: FeedPosition = resumed ?? {
    changes: await log.endOffsets(TOPICS.changes),
    deltas: await log.endOffsets(TOPICS.deltas),
  };
  const partitions = deviceId === undefined ? [...Array(count).keys()] : [partitionFor(deviceId, count)];
  let open = true;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    if (!open) return;
    open = false;
    wake?.();
    res.end();
  };
  req.once('close', stop);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(
    `retry: 1000\nid: ${encodeFeedPosition(position)}\nevent: ready\ndata: ${JSON.stringify({ resumed: resumed !== undefined })}\n\n`,
  );
  let lastWrite = Date.now();

  const poll = async (): Promise<void> => {
    for (const topic of ['changes', 'deltas'] as const) {
      const ends = await log.endOffsets(TOPICS[topic]);
      for (const p of partitions) {
        const end = ends[p] ?? 0;
        if (!open || position[topic][p]! >= end) continue;
        for await (const records of log.read(TOPICS[topic], p, { from: position[topic][p]!, to: end })) {
          for (const r of records) {
            if (!open) return;
            position[topic][p] = r.offset + 1;
            if (deviceId !== undefined && r.key !== deviceId) continue;
            const e = eventOf(topic, r);
            if (e === undefined) continue;
            res.write(`id: ${encodeFeedPosition(position)}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
            lastWrite = Date.now();
          }
        }
        position[topic][p] = Math.max(position[topic][p]!, end);
      }
    }
    if (Date.now() - lastWrite >= heartbeatMs) {
      res.write(': still here\n\n');
      lastWrite = Date.now();
    }
  };

  void (async () => {
    while (open) {
      try {
        await poll();
      } catch (e) {
        if (!open) return;
        res.write(
          `event: feed-error\ndata: ${JSON.stringify({ message: e instanceof Error ? e.message : String(e) })}\n\n`,
        );
      }
      if (!open) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollIntervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();
  return stop;
}
