/**
 * A tiny Prometheus registry (text exposition format 0.0.4): counters and gauges with labels,
 * rendered on demand. Enough for `twinlog serve`'s `/metrics`; no dependency.
 */

type Labels = Readonly<Record<string, string | number>>;

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly values: Map<string, { labels: Labels; value: number }>;
}

export interface Metrics {
  /** Add `by` (default 1) to a counter. */
  inc(name: string, labels?: Labels, by?: number): void;
  /** Set a gauge. */
  set(name: string, labels: Labels, value: number): void;
  /** Drop every series of a gauge (before setting the current ones). */
  reset(name: string): void;
  /** The value of one series (tests, health). */
  get(name: string, labels?: Labels): number | undefined;
  /** The exposition text. */
  render(): string;
}

function keyOf(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/**
 * @example
 * const m = createMetrics({ twinlog_events_total: { type: 'counter', help: 'Events.' } })
 * m.inc('twinlog_events_total', { result: 'applied' }, 3)
 */
export function createMetrics(definitions: Readonly<Record<string, { type: 'counter' | 'gauge'; help: string }>>): Metrics {
  const families = new Map<string, Family>();
  for (const [name, d] of Object.entries(definitions)) families.set(name, { name, help: d.help, type: d.type, values: new Map() });
  const family = (name: string): Family => {
    const f = families.get(name);
    if (f === undefined) throw new Error(`unknown metric ${name}`);
    return f;
  };
  return {
    inc(name, labels = {}, by = 1) {
      const f = family(name);
      const k = keyOf(labels);
      const series = f.values.get(k);
      if (series === undefined) f.values.set(k, { labels, value: by });
      else series.value += by;
    },
    set(name, labels, value) {
      family(name).values.set(keyOf(labels), { labels, value });
    },
    reset(name) {
      family(name).values.clear();
    },
    get(name, labels = {}) {
      return family(name).values.get(keyOf(labels))?.value;
    },
    render() {
      const lines: string[] = [];
      for (const f of families.values()) {
        lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
        const series = [...f.values.values()].sort((a, b) => (keyOf(a.labels) < keyOf(b.labels) ? -1 : 1));
        for (const { labels, value } of series) {
          const entries = Object.entries(labels);
          const text = entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',')}}`;
          lines.push(`${f.name}${text} ${formatNumber(value)}`);
        }
      }
      return `${lines.join('\n')}\n`;
    },
  };
}
