/**
 * The Grafana dashboard and the compose wiring (docker/grafana/, docker/prometheus/,
 * docker/compose.yml) against the code, since no test here runs Docker: every metric a dashboard
 * query names is one serve exports (its families, or Node's process metrics), with labels the
 * family has; every serve histogram has a panel; Prometheus scrapes the service and port compose
 * runs twinlog on, and Grafana's provisioning points at compose's Prometheus and at the mounted
 * dashboards. YAML is read with line patterns (no YAML parser in the dependencies).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMetrics } from './createMetrics.ts';
import { DEFAULT_CONFIG } from './resolveConfig.ts';
import { serveMetricDefinitions } from './serveMetrics.ts';

const DOCKER = join(import.meta.dirname, '../../../../docker');
const read = (path: string): string => readFileSync(join(DOCKER, path), 'utf8');

interface Panel {
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly uid: string };
  readonly targets?: readonly { readonly expr: string; readonly datasource?: { readonly uid: string } }[];
}
interface Dashboard {
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: {
    readonly list: readonly { readonly definition?: string; readonly datasource?: { readonly uid: string } }[];
  };
}

const dashboard = JSON.parse(read('grafana/dashboards/twinlog.json')) as Dashboard;
const expressions = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.flatMap((v) => (v.definition === undefined ? [] : [v.definition])),
];
const families = serveMetricDefinitions({ embedded: true, mqtt: true });
const processFamilies = new Map(
  createMetrics({}, { defaultMetrics: true })
    .registry.getMetricsAsArray()
    .map((m) => [m.name, (m as unknown as { type: string }).type] as const),
);

/** The family a series name belongs to (a histogram's `_bucket`, `_sum`, `_count`), or undefined. */
function familyOf(series: string): { name: string; labels: readonly string[] } | undefined {
  const candidates = [series, series.replace(/_(bucket|sum|count)$/, '')];
  for (const name of candidates) {
    const d = families[name];
    if (d !== undefined && (name === series || d.type === 'histogram')) return { name, labels: d.labels ?? [] };
    const type = processFamilies.get(name);
    if (type !== undefined && (name === series || type === 'histogram')) return { name, labels: [] };
  }
  return undefined;
}

/** Series names in a PromQL expression (twinlog's and Node's families). */
const seriesIn = (expr: string): string[] =>
  [...expr.matchAll(/\b(?:twinlog|nodejs|process)_[a-z0-9_]+\b/g)].map((m) => m[0]);

/** One `key: value` line of a YAML block (the first), trimmed of quotes and comments. */
function yamlValue(text: string, key: string): string | undefined {
  const m = new RegExp(`^\\s*-?\\s*${key}:\\s*(.+?)\\s*(#.*)?$`, 'm').exec(text);
  return m?.[1]?.replace(/^["']|["']$/g, '');
}

/** A compose service's block (its lines up to the next service). */
function service(compose: string, name: string): string {
  const m = new RegExp(`^  ${name}:\\n((?:(?:    .*|\\s*)\\n)+)`, 'm').exec(`${compose}\n`);
  if (m === null) throw new Error(`no service ${name} in docker/compose.yml`);
  return m[1]!;
}

describe('the Grafana dashboard', () => {
  it('queries only metrics serve exports', () => {
    const unknown = expressions.flatMap((e) => seriesIn(e).filter((s) => familyOf(s) === undefined));
    expect(unknown).toEqual([]);
    expect(expressions.length).toBeGreaterThan(10);
  });

  it('groups only by labels the families have (or le, instance, job)', () => {
    for (const expr of expressions) {
      const allowed = new Set(['le', 'instance', 'job', ...seriesIn(expr).flatMap((s) => familyOf(s)?.labels ?? [])]);
      for (const [, list] of expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of list!.split(',').map((l) => l.trim()))
          expect(allowed.has(label), `${label} in ${expr}`).toBe(true);
      }
      for (const [, label] of expr.matchAll(/\{\{\s*(\w+)\s*\}\}/g))
        expect(allowed.has(label!), `legend {{${label}}} in ${expr}`).toBe(true);
    }
  });

  it('has a panel for every histogram serve exports, and for event-loop lag and heap', () => {
    const used = new Set(expressions.flatMap(seriesIn).map((s) => familyOf(s)?.name));
    const histograms = Object.entries(families)
      .filter(([, d]) => d.type === 'histogram')
      .map(([name]) => name);
    expect(histograms.length).toBeGreaterThanOrEqual(7);
    for (const name of [...histograms, 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes'])
      expect(used.has(name), name).toBe(true);
    for (const h of histograms)
      expect(
        expressions.some((e) => e.includes(`histogram_quantile(0.99, sum by (le`) && e.includes(`${h}_bucket`)),
        h,
      ).toBe(true);
  });

  it("uses the provisioned data source's uid everywhere", () => {
    const uid = yamlValue(read('grafana/provisioning/datasources/prometheus.yml'), 'uid');
    expect(uid).toBeTruthy();
    const uids = [
      ...dashboard.panels.flatMap((p) => [p.datasource?.uid, ...(p.targets ?? []).map((t) => t.datasource?.uid)]),
      ...dashboard.templating.list.map((v) => v.datasource?.uid),
    ].filter((u) => u !== undefined);
    expect(new Set(uids)).toEqual(new Set([uid]));
  });
});

describe('compose, Prometheus and Grafana provisioning', () => {
  const compose = read('compose.yml');
  const prometheus = read('prometheus/prometheus.yml');

  it("scrapes the twinlog service's admin port, where serve's /metrics listens", () => {
    const target = /targets:\s*\[\s*["']([\w.-]+):(\d+)["']\s*\]/.exec(prometheus);
    expect(target).not.toBeNull();
    const [, host, port] = target!;
    expect(yamlValue(prometheus, 'metrics_path')).toBe('/metrics');
    expect(Number(port)).toBe(DEFAULT_CONFIG.adminPort);
    const twinlog = service(compose, host!);
    expect(twinlog).toContain(`:${port}:${port}"`); // the admin port is the one serve listens on in the container
    expect(twinlog).toMatch(/TWINLOG_HOST: 0\.0\.0\.0/); // reachable from the prometheus container
  });

  it('mounts prometheus.yml where Prometheus reads it, and Grafana its provisioning and dashboards', () => {
    const prom = service(compose, 'prometheus');
    const config = /--config\.file=(\S+?)"/.exec(prom)?.[1];
    expect(prom).toContain(`- ./prometheus/prometheus.yml:${config}:ro`);
    const grafana = service(compose, 'grafana');
    expect(grafana).toContain('- ./grafana/provisioning:/etc/grafana/provisioning:ro');
    const dashboards = /- \.\/grafana\/dashboards:(\S+?):ro/.exec(grafana)?.[1];
    expect(dashboards).toBe(yamlValue(read('grafana/provisioning/dashboards/twinlog.yml'), 'path'));
    expect(grafana).toContain(`${dashboards}/twinlog.json`);
    // the data source names compose's Prometheus service and port
    const url = new URL(yamlValue(read('grafana/provisioning/datasources/prometheus.yml'), 'url')!);
    expect(service(compose, url.hostname)).toContain(`127.0.0.1:${url.port}:${url.port}"`);
  });

  it('pins the images and publishes the ports on 127.0.0.1 only', () => {
    for (const name of ['prometheus', 'grafana']) {
      const block = service(compose, name);
      expect(yamlValue(block, 'image'), name).toMatch(/^[\w./-]+:v?\d+\.\d+\.\d+$/);
      const ports = [...block.matchAll(/^\s*- "([^"]+)"/gm)]
        .map((m) => m[1]!)
        .filter((p) => /^[\d.]*:?\d+:\d+$/.test(p));
      expect(ports.length, name).toBeGreaterThan(0);
      for (const p of ports) expect(p, name).toMatch(/^127\.0\.0\.1:/);
    }
  });
});
