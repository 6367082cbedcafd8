/**
 * Every existing twin, from the latest snapshot per device on `twin.snapshots`.
 *
 * Cost: reads every partition of `twin.snapshots` from offset 0 (bounded by the number of devices
 * once the topic is compacted). For callers without a read model (`@twinlog/fleet`): the CLI's
 * one-shot commands and the gateway's in-memory query path.
 */
import { decodeOutputRecord } from '@twinlog/codec';
import { fromStateDoc, renderTwin, type Log, type TwinDocument } from '@twinlog/core';
import { CHECKPOINT_KEY, TOPICS } from './topics.ts';

/**
 * @example
 * const twins = await listTwins(log) // sorted by deviceId
 */
export async function listTwins(log: Log): Promise<TwinDocument[]> {
  const ends = await log.endOffsets(TOPICS.snapshots);
  const latest = new Map<string, Uint8Array | null>();
  for (let partition = 0; partition < ends.length; partition++) {
    const to = ends[partition] ?? 0;
    if (to === 0) continue;
    for await (const records of log.read(TOPICS.snapshots, partition, { from: 0, to })) {
      for (const r of records) if (r.key !== CHECKPOINT_KEY) latest.set(r.key, r.value);
    }
  }
  const twins: TwinDocument[] = [];
  for (const value of latest.values()) {
    if (value === null) continue;
    const snap = decodeOutputRecord(value, 'snapshot');
    if (snap.exists) twins.push(renderTwin(fromStateDoc(snap.state)));
  }
  // by device id, a device's module twins by module id (docs/iot-hub.md, "Module identities and module twins")
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return twins.sort((a, b) => cmp(a.deviceId, b.deviceId) || cmp(a.moduleId ?? '', b.moduleId ?? ''));
}
