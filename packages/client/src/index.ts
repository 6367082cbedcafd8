/**
 * @twinlog/client: write twin events to a twinlog log and read what the projector and reconciler
 * produce, as a Kafka producer or consumer would — over any `Log` adapter.
 *
 * @example
 * import { createTwinClient } from '@twinlog/client'
 * const client = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'fleet-app' })
 * await client.mergeDesired('dev1', { fw: '1.2' })
 */
export { createTwinClient, randomWriterIdUnsafe, sectionOf } from './createTwinClient.ts';
export type {
  AcceptedDecision,
  DecidedWriteOptions,
  FeedOptions,
  FeedStart,
  LifecycleWrite,
  PlainWriteOptions,
  RejectedDecision,
  ReportedWrite,
  SectionWrite,
  TwinClient,
  TwinClientOptions,
  TwinFeed,
  TwinPatch,
  TwinWrite,
  UpdateOptions,
  UpdateRecipe,
  UpdateWrite,
  WaitOptions,
  WriteDecision,
  WriteOptions,
  WriteReceipt,
} from './createTwinClient.ts';
