/**
 * `twinlog serve`'s metrics: a prom-client `Registry` of its own per call (never prom-client's
 * global registry, so that several serves in one process do not collide), with counters, gauges
 * and histograms declared up front by name, and optionally Node's process metrics (event-loop
 * lag, heap, GC, CPU, file descriptors). Rendered in the Prometheus text format on `/metrics`;
 * every family is listed in docs/operations.md ("Metrics").
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Labels = Readonly<Record<string, string | number>>;

/** One family: its type, its `HELP` text, its label names, and a histogram's bucket bounds. */
export type MetricDefinition =
  | { readonly type: 'counter' | 'gauge'; readonly help: string; readonly labels?: readonly string[] }
  | {
      readonly type: 'histogram';
      readonly help: string;
      readonly labels?: readonly string[];
      readonly buckets: readonly number[];
    };

export interface Metrics {
  /** The registry (tests, and anything that wants prom-client's own API). */
  readonly registry: Registry;
  /** The content type of {@link render}'s text. */
  readonly contentType: string;
  /** Add `by` (default 1) to a counter, or to a gauge (negative allowed). */
  inc(name: string, labels?: Labels, by?: number): void;
  /**
   * Set a gauge; on a counter, set the total a source keeps itself (a counter of the source's:
   * restarts, records applied), which only goes up unless the source restarted from zero.
   */
  set(name: string, labels: Labels, value: number): void;
  /** Drop every series of a family (before setting the current ones). */
  reset(name: string): void;
  /** One observation of a histogram (seconds for `_seconds` families). */
  observe(name: string, labels: Labels, value: number): void;
  /** The exposition text. */
  render(): Promise<string>;
}

export interface CreateMetricsOptions {
  /** Also collect Node's process metrics (`process_*`, `nodejs_*`: event-loop lag, heap, GC…). */
  readonly defaultMetrics?: boolean;
}

type Family = Counter | Gauge | Histogram;

function seriesKey(name: string, labels: Labels): string {
  return `${name}\u0000${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
}

/**
 * @example
 * const m = createMetrics({ twinlog_events_total: { type: 'counter', help: 'Events.', labels: ['result'] } })
 * m.inc('twinlog_events_total', { result: 'applied' }, 3)
 * await m.render()
 */
export function createMetrics(
  definitions: Readonly<Record<string, MetricDefinition>>,
  { defaultMetrics = false }: CreateMetricsOptions = {},
): Metrics {
  const registry = new Registry();
  const families = new Map<string, Family>();
  for (const [name, d] of Object.entries(definitions)) {
    const common = { name, help: d.help, labelNames: [...(d.labels ?? [])], registers: [registry] };
    families.set(
      name,
      d.type === 'histogram'
        ? new Histogram({ ...common, buckets: [...d.buckets] })
        : d.type === 'counter'
          ? new Counter(common)
          : new Gauge(common),
    );
  }
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  /** The totals `set` gave counters, per series: the next `set` adds the difference. */
  const counterTotals = new Map<string, number>();

  const family = (name: string): Family => {
    const f = families.get(name);
    if (f === undefined) throw new Error(`unknown metric ${name}`);
    return f;
  };
  return {
    registry,
    contentType: registry.contentType,
    inc(name, labels = {}, by = 1) {
      const f = family(name);
      if (f instanceof Histogram) throw new Error(`${name} is a histogram: observe it`);
      f.inc(labels, by);
    },
    set(name, labels, value) {
      const f = family(name);
      if (f instanceof Gauge) f.set(labels, value);
      else if (f instanceof Counter) {
        const key = seriesKey(name, labels);
        const before = counterTotals.get(key);
        counterTotals.set(key, value);
        if (before !== undefined && value >= before) f.inc(labels, value - before);
        else {
          // first seen, or the source started again from zero: the series restarts (a counter reset)
          if (before !== undefined) f.remove(labels);
          f.inc(labels, value);
        }
      } else throw new Error(`${name} is a histogram: observe it`);
    },
    reset(name) {
      family(name).reset();
      for (const key of counterTotals.keys()) if (key.startsWith(`${name}\u0000`)) counterTotals.delete(key);
    },
    observe(name, labels, value) {
      const f = family(name);
      if (!(f instanceof Histogram)) throw new Error(`${name} is not a histogram`);
      f.observe(labels, value);
    },
    render() {
      return registry.metrics();
    },
  };
}
