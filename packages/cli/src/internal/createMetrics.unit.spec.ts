import { describe, expect, it } from 'vitest';
import { createMetrics } from './createMetrics.ts';

/** `name{labels}` → value, from an exposition (every sample line must parse). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3] === '+Inf' ? Infinity : m[3]));
  }
  return out;
}

describe('createMetrics', () => {
  it('renders the Prometheus text format with escaped labels, in the order the labels were given', async () => {
    const m = createMetrics({
      twinlog_x_total: { type: 'counter', help: 'Xs.', labels: ['code'] },
      twinlog_lag: { type: 'gauge', help: 'Lag.', labels: ['topic', 'partition'] },
    });
    m.inc('twinlog_x_total', { code: 'A"B' }, 2);
    m.inc('twinlog_x_total', { code: 'A"B' });
    m.set('twinlog_lag', { topic: 'twin.backend', partition: 0 }, 7);
    expect(await m.render()).toBe(
      [
        '# HELP twinlog_x_total Xs.',
        '# TYPE twinlog_x_total counter',
        'twinlog_x_total{code="A\\"B"} 3',
        '',
        '# HELP twinlog_lag Lag.',
        '# TYPE twinlog_lag gauge',
        'twinlog_lag{topic="twin.backend",partition="0"} 7',
        '',
      ].join('\n'),
    );
    expect(m.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    m.reset('twinlog_lag');
    expect(samples(await m.render()).has('twinlog_lag{topic="twin.backend",partition="0"}')).toBe(false);
  });

  it('sets a counter to a total its source keeps, and restarts the series when the source went back to zero', async () => {
    const m = createMetrics({ twinlog_restarts_total: { type: 'counter', help: 'Restarts.', labels: ['stage'] } });
    const value = async (): Promise<number | undefined> =>
      samples(await m.render()).get('twinlog_restarts_total{stage="projector"}');
    m.set('twinlog_restarts_total', { stage: 'projector' }, 2);
    expect(await value()).toBe(2);
    m.set('twinlog_restarts_total', { stage: 'projector' }, 5);
    expect(await value()).toBe(5);
    m.set('twinlog_restarts_total', { stage: 'projector' }, 1);
    expect(await value()).toBe(1);
  });

  it('observes histograms into cumulative buckets, with _sum and _count', async () => {
    const m = createMetrics({ twinlog_ack_seconds: { type: 'histogram', help: 'Acks.', buckets: [0.01, 0.1, 1] } });
    const before = samples(await m.render());
    expect(before.get('twinlog_ack_seconds_count')).toBe(0); // a histogram without labels is exported from the start
    m.observe('twinlog_ack_seconds', {}, 0.005);
    m.observe('twinlog_ack_seconds', {}, 0.05);
    m.observe('twinlog_ack_seconds', {}, 5);
    const after = samples(await m.render());
    expect(after.get('twinlog_ack_seconds_bucket{le="0.01"}')).toBe(1);
    expect(after.get('twinlog_ack_seconds_bucket{le="0.1"}')).toBe(2);
    expect(after.get('twinlog_ack_seconds_bucket{le="1"}')).toBe(2);
    expect(after.get('twinlog_ack_seconds_bucket{le="+Inf"}')).toBe(3);
    expect(after.get('twinlog_ack_seconds_count')).toBe(3);
    expect(after.get('twinlog_ack_seconds_sum')).toBeCloseTo(5.055);
  });

  it('refuses unknown families, labels not declared, and the wrong operation for a type', () => {
    const m = createMetrics({
      twinlog_c_total: { type: 'counter', help: 'C.' },
      twinlog_h_seconds: { type: 'histogram', help: 'H.', buckets: [1] },
    });
    expect(() => m.inc('twinlog_nope_total')).toThrow('unknown metric twinlog_nope_total');
    expect(() => m.inc('twinlog_c_total', { code: 'x' })).toThrow();
    expect(() => m.inc('twinlog_h_seconds')).toThrow('histogram');
    expect(() => m.observe('twinlog_c_total', {}, 1)).toThrow('not a histogram');
  });

  it('adds the process metrics (event-loop lag, heap, GC) when asked', async () => {
    const m = createMetrics({ twinlog_up: { type: 'gauge', help: 'Up.' } }, { defaultMetrics: true });
    const text = await m.render();
    for (const name of [
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'process_resident_memory_bytes',
      'nodejs_gc_duration_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(samples(text).get('nodejs_heap_size_used_bytes')).toBeGreaterThan(0); // every line of the exposition parses
    expect(await createMetrics({ twinlog_up: { type: 'gauge', help: 'Up.' } }).render()).not.toContain('nodejs_');
  });

  it('keeps each registry to itself: two in one process share no series and no names', async () => {
    const defs = { twinlog_x_total: { type: 'counter', help: 'Xs.' } } as const;
    const a = createMetrics(defs, { defaultMetrics: true });
    const b = createMetrics(defs, { defaultMetrics: true });
    a.inc('twinlog_x_total', {}, 3);
    expect(samples(await a.render()).get('twinlog_x_total')).toBe(3);
    expect(samples(await b.render()).get('twinlog_x_total')).toBe(0);
    expect(a.registry).not.toBe(b.registry);
  });
});
