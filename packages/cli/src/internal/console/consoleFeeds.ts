/**
 * What the console reads from the output topics: the latest delta of every device (followed from
 * the start of `twin.deltas`), one device's rejections and dead letters, and the positions the
 * live feed resumes from (docs/console.md, "Live updates").
 */
import { decodeOutputRecord, type DeadLetterRecord, type RejectionRecord } from '@twinlog/codec';
import {
  DELTA_STATUSES,
  isTwinlogError,
  partitionFor,
  type DeltaState,
  type DeltaStatus,
  type Log,
  type LogRecord,
} from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';
import { watchTopic, type TopicWatch } from '../watchTopic.ts';

/** The latest delta of each device, with the fleet's totals. */
export interface DeltaBoard {
  get(deviceId: string): (DeltaState & { readonly at: number }) | undefined;
  /** Entries per status and devices converged or not, over every device's latest delta. */
  totals(): {
    readonly entries: Record<DeltaStatus, number>;
    readonly converged: number;
    readonly notConverged: number;
  };
  /** Resolves once the board has read everything on the topic when it started (or after `timeoutMs`). */
  caughtUp(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function followDeltas(
  log: Log,
  { pollIntervalMs, onError }: { pollIntervalMs: number; onError: (e: unknown) => void },
): DeltaBoard {
  const latest = new Map<string, DeltaState & { at: number }>();
  let markCaughtUp: () => void = () => {};
  const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
  const watch: TopicWatch = watchTopic(log, TOPICS.deltas, {
    from: 'earliest',
    pollIntervalMs,
    onError,
    onIdle: () => markCaughtUp(),
    onRecord: (r) => {
      if (r.key === CHECKPOINT_KEY) return;
      if (r.value === null) {
        latest.delete(r.key);
        return;
      }
      try {
        latest.set(r.key, { ...decodeOutputRecord(r.value, 'delta').delta, at: r.timestamp });
      } catch (e) {
        if (!isTwinlogError(e)) throw e;
      }
    },
  });
  return {
    get: (deviceId) => latest.get(deviceId),
    totals() {
      const entries = Object.fromEntries(DELTA_STATUSES.map((s) => [s, 0])) as Record<DeltaStatus, number>;
      let converged = 0;
      for (const d of latest.values()) {
        for (const s of DELTA_STATUSES) entries[s] += d.counts[s] ?? 0;
        if (d.converged) converged++;
      }
      return { entries, converged, notConverged: latest.size - converged };
    },
    caughtUp: (timeoutMs) =>
      Promise.race([
        caughtUp,
        new Promise<void>((r) => {
          setTimeout(r, timeoutMs).unref();
        }),
      ]),
    stop: () => watch.stop(),
  };
}

/** Every record of one device's partition of `topic` whose key is the device (oldest first, at most `max`, the newest kept). */
async function recordsOf(log: Log, topic: string, deviceId: string, max: number): Promise<LogRecord[]> {
  const count = await log.partitionCount(topic);
  const partition = partitionFor(deviceId, count);
  const end = (await log.endOffsets(topic))[partition] ?? 0;
  const out: LogRecord[] = [];
  for await (const records of log.read(topic, partition, { from: 0, to: end })) {
    for (const r of records) {
      if (r.key !== deviceId || r.value === null) continue;
      out.push(r);
      if (out.length > max) out.shift();
    }
  }
  return out;
}

export interface TimelineProblem {
  readonly kind: 'rejection' | 'dead-letter';
  /** Append time, ISO. */
  readonly time: string;
  readonly code: string;
  readonly message: string;
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: number };
  /** The refused event's id (rejections of decoded events). */
  readonly id?: { readonly writer: string; readonly seq: number } | null;
}

/** A device's rejections (`twin.rejections`) and dead letters (`twin.dead-letter`), oldest first. */
export async function problemsOf(log: Log, deviceId: string, max = 200): Promise<TimelineProblem[]> {
  const [rejections, deadLetters] = await Promise.all([
    recordsOf(log, TOPICS.rejections, deviceId, max),
    recordsOf(log, TOPICS.deadLetter, deviceId, max),
  ]);
  const out: TimelineProblem[] = [];
  const decode = <K extends 'rejection' | 'dead-letter'>(
    r: LogRecord,
    kind: K,
  ): (K extends 'rejection' ? RejectionRecord : DeadLetterRecord) | undefined => {
    try {
      return decodeOutputRecord(r.value!, kind) as K extends 'rejection' ? RejectionRecord : DeadLetterRecord;
    } catch (e) {
      if (!isTwinlogError(e)) throw e;
      return undefined;
    }
  };
  for (const r of rejections) {
    const rec = decode(r, 'rejection');
    if (rec === undefined) continue;
    out.push({
      kind: 'rejection',
      time: new Date(r.timestamp).toISOString(),
      code: rec.code,
      message: rec.message,
      source: rec.source,
      id: rec.id,
    });
  }
  for (const r of deadLetters) {
    const rec = decode(r, 'dead-letter');
    if (rec === undefined) continue;
    out.push({
      kind: 'dead-letter',
      time: new Date(r.timestamp).toISOString(),
      code: rec.code,
      message: rec.message,
      source: rec.source,
    });
  }
  return out.sort((a, b) => a.time.localeCompare(b.time));
}
