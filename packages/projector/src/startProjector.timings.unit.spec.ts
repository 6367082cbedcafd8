import { createInMemoryLog } from '@twinlog/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { startProjector, type BatchDetail } from './startProjector.ts';
import type { BatchStats } from './partitionTask.ts';
import { createTestProducer, waitFor } from './testing/pipelineHarness.ts';
import { ensureTwinTopics } from './topics.ts';

describe('startProjector onBatch timings', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  it('reports, per committed batch, the records folded into it and the time of folding, encoding and committing', async () => {
    const log = createInMemoryLog({ now: () => Date.now() });
    stops.push(() => log.close());
    await ensureTwinTopics(log, 2);
    const batches: { stats: BatchStats; detail: BatchDetail }[] = [];
    const projector = await startProjector({
      log,
      physicalNow: () => Date.now(),
      settleIntervalMs: 50,
      onBatch: (_p, stats, detail) => batches.push({ stats, detail }),
    });
    stops.push(() => projector.stop());
    const producer = createTestProducer(log);
    const devices = ['t1', 't2', 't3', 't4'];
    await producer.send(devices.map((d) => producer.event(d, 'create')));
    await producer.send(devices.map((d, i) => producer.event(d, 'desired', { n: i })));
    await producer.send([producer.event('nobody', 'desired', { n: 1 })]); // rejected: still a record folded
    const processed = (s: BatchStats): number => s.applied + s.duplicates + s.skipped + s.rejected + s.deadLettered;
    await waitFor(() => batches.reduce((n, b) => n + processed(b.stats), 0) === 9, 30_000, 'nine records');
    expect(batches.reduce((n, b) => n + b.detail.records, 0)).toBe(9);
    for (const { detail } of batches) {
      expect(detail.foldMs).toBeGreaterThanOrEqual(0);
      expect(detail.encodeMs).toBeGreaterThanOrEqual(0);
      expect(detail.commitMs).toBeGreaterThanOrEqual(0);
      if (detail.records === 0) expect(detail.foldMs).toBe(0);
    }
    expect(batches.some((b) => b.detail.records > 0 && b.detail.commitMs > 0)).toBe(true);
  });
});
