/**
 * A twin client that tells {@link AckedWrites} where each of its writes landed, so the gateway's
 * later reads of the device reflect them (see `twinReader.ts`). Every write method is wrapped;
 * reads, feeds and `close` pass through unchanged.
 *
 * What is remembered: a receipt's position (a write appended without waiting), or, for an accepted
 * decision, the input positions of its change records. A refused write changed nothing; a write
 * answered as a duplicate (`duplicateOf`, no changes) has no position to remember (the caller of
 * such a write waits by version instead).
 */
import type { TwinClient } from '@twinlog/client';
import type { AckedWrites, InputPosition } from './twinReader.ts';

const WRITES = [
  'createDevice',
  'deleteDevice',
  'mergeTags',
  'replaceTags',
  'mergeDesired',
  'replaceDesired',
  'mergeReported',
  'replaceReported',
  'patchTwin',
  'replaceTwin',
  'update',
] as const;

const isPosition = (v: unknown): v is InputPosition =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as InputPosition).topic === 'string' &&
  typeof (v as InputPosition).offset === 'number' &&
  typeof (v as InputPosition).partition === 'number';

/** The input positions a write's result names (see the module comment). */
export function positionsOfResult(result: unknown): InputPosition[] {
  if (Array.isArray(result))
    return result.filter(isPosition).map(({ topic, partition, offset }) => ({ topic, partition, offset }));
  if (typeof result !== 'object' || result === null) return [];
  const r = result as { accepted?: unknown; changes?: readonly { source?: unknown }[] };
  if (r.accepted === true && Array.isArray(r.changes))
    return (r.changes as readonly { source?: unknown }[]).map((c) => c.source).filter(isPosition);
  if (r.accepted === undefined && isPosition(result))
    return [{ topic: result.topic, partition: result.partition, offset: result.offset }];
  return [];
}

/** `client` with every write noting its positions under the device id (its first argument). */
export function trackWrites(client: TwinClient, acked: AckedWrites): TwinClient {
  const wrapped: Record<string, unknown> = { ...client };
  for (const name of WRITES) {
    const write = client[name] as unknown as ((deviceId: string, ...rest: unknown[]) => Promise<unknown>) | undefined;
    if (typeof write !== 'function') continue;
    wrapped[name] = async (deviceId: string, ...rest: unknown[]): Promise<unknown> => {
      const result = await write(deviceId, ...rest);
      acked.note(deviceId, positionsOfResult(result));
      return result;
    };
  }
  return wrapped as unknown as TwinClient;
}
