/**
 * Test support shared by the projector's tests on every log (in-memory, embedded, Kafka): a
 * producer of envelopes, readers of the output topics, and the clean-replay oracle.
 */
import { decodeEvent, decodeOutputRecord, encodeEvent } from '@twinlog/codec';
import {
  applyEvent,
  canonicalJson,
  createHybridClock,
  createTwinState,
  fromStateDoc,
  renderTwin,
  twinExists,
  validateEvent,
  type Condition,
  type EventKind,
  type Log,
  type LogRecord,
  type Patch,
  type TwinEvent,
  type TwinState,
} from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from '../topics.ts';

export interface TestProducer {
  event(
    deviceId: string,
    section: EventKind,
    patch?: Patch,
    extra?: { op?: 'merge' | 'replace'; cond?: Condition; corr?: string },
  ): TwinEvent;
  /** Append events to their topic (reported → twin.device, everything else → twin.backend). */
  send(events: readonly TwinEvent[]): Promise<void>;
  /** Append raw bytes (poison) under a key. */
  sendRaw(topic: string, key: string, value: Uint8Array | null): Promise<void>;
}

export function createTestProducer(
  log: Log,
  writer = 'test-writer',
  physicalNow: () => number = () => Date.now(),
): TestProducer {
  const clock = createHybridClock({ physicalNow });
  let seq = 0;
  return {
    event(deviceId, section, patch = {}, extra = {}) {
      return {
        v: 1,
        id: { writer, seq: ++seq },
        deviceId,
        section,
        op: extra.op ?? 'merge',
        patch,
        stamp: clock.now(),
        actor: writer,
        ...(extra.cond === undefined ? {} : { cond: extra.cond }),
        ...(extra.corr === undefined ? {} : { corr: extra.corr }),
      };
    },
    async send(events) {
      const backend = events.filter((e) => e.section !== 'reported');
      const device = events.filter((e) => e.section === 'reported');
      if (backend.length > 0)
        await log.append(
          TOPICS.backend,
          backend.map((e) => ({ key: e.deviceId, value: encodeEvent(e) })),
        );
      if (device.length > 0)
        await log.append(
          TOPICS.device,
          device.map((e) => ({ key: e.deviceId, value: encodeEvent(e) })),
        );
    },
    async sendRaw(topic, key, value) {
      await log.append(topic, [{ key, value }]);
    },
  };
}

/** Every record of a topic, all partitions, up to the current end. */
export async function readAll(log: Log, topic: string): Promise<LogRecord[]> {
  const ends = await log.endOffsets(topic);
  const out: LogRecord[] = [];
  for (let p = 0; p < ends.length; p++) {
    for await (const batch of log.read(topic, p, { from: 0, to: ends[p]! })) out.push(...batch);
  }
  return out;
}

/** The latest snapshot per device, rendered canonically (`null` for a twin that does not exist). */
export async function latestSnapshots(log: Log): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (const r of await readAll(log, TOPICS.snapshots)) {
    if (r.key === CHECKPOINT_KEY || r.value === null) continue;
    const snap = decodeOutputRecord(r.value, 'snapshot');
    const state = fromStateDoc(snap.state);
    out.set(snap.deviceId, twinExists(state) ? canonicalJson(renderTwin(state)) : null);
  }
  return out;
}

/**
 * The clean-replay oracle: fold every valid input event (commands excluded: their accepted facts
 * are in the log) into fresh states, device by device, in any order.
 */
export async function cleanReplay(log: Log): Promise<Map<string, string | null>> {
  const states = new Map<string, TwinState>();
  for (const topic of [TOPICS.backend, TOPICS.device]) {
    for (const r of await readAll(log, topic)) {
      if (r.value === null) continue;
      let e: TwinEvent;
      try {
        e = decodeEvent(r.value);
      } catch {
        continue;
      }
      if (e.cond !== undefined || e.deviceId !== r.key || !validateEvent(e, { appendTime: r.timestamp }).ok) continue;
      let s = states.get(e.deviceId);
      if (s === undefined) states.set(e.deviceId, (s = createTwinState(e.deviceId)));
      applyEvent(s, e);
    }
  }
  const out = new Map<string, string | null>();
  for (const [id, s] of states) out.set(id, twinExists(s) ? canonicalJson(renderTwin(s)) : null);
  return out;
}

/** Poll `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
