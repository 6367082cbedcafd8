/**
 * @twinlog/reconciler: the stage that turns twin snapshots into `twin.deltas` records — per
 * desired property, whether the device has caught up — emitted only when a device's delta changes.
 *
 * @example
 * import { startReconciler } from '@twinlog/reconciler'
 * const reconciler = await startReconciler({ log, physicalNow: () => Date.now(), staleAfterMs: 60_000 })
 */
export { startReconciler } from './startReconciler.ts';
export type { Reconciler, ReconcilerOptions, ReconcileStats } from './startReconciler.ts';
export { SOURCE_OFFSET_HEADER } from './internal/reconcilerPartition.ts';
