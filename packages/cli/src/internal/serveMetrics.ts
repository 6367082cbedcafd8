/**
 * The metric families of `twinlog serve` (docs/operations.md, "Metrics"): their names, types,
 * label names and histogram buckets, in one place that serve, its tests and the Grafana
 * dashboard's test (docker/grafana/) read.
 */
import type { GatewayRequestEvent, MqttGatewayEvent } from '@twinlog/gateway';
import { createMetrics, type MetricDefinition, type Metrics } from './createMetrics.ts';

/** Latencies a client waits for (an ack, a notification, a request, a query), seconds: 1 ms to 60 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** The projector's work on one batch and its commits, seconds: 0.25 ms to 10 s. */
export const BATCH_BUCKETS: readonly number[] = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Fold time per input record, seconds: 1 µs to 10 ms. */
export const PER_EVENT_BUCKETS: readonly number[] = [
  0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
];

export interface ServeMetricsOptions {
  /** On the embedded log: its storage families (`twinlog_store_*`), absent on Kafka. */
  readonly embedded: boolean;
  /** With `--mqtt-port`: the MQTT gateway's families. */
  readonly mqtt: boolean;
  /** Node's process metrics (default true; off in tests that compare whole expositions). */
  readonly defaultMetrics?: boolean;
}

const CORE: Readonly<Record<string, MetricDefinition>> = {
  twinlog_up: { type: 'gauge', help: 'Whether each part of serve runs (1) or not (0).', labels: ['part'] },
  twinlog_projector_events_total: {
    type: 'counter',
    help: 'Input records the projector processed, by result (applied = events folded into twins).',
    labels: ['result'],
  },
  twinlog_projector_batches_total: { type: 'counter', help: 'Batches the projector committed.', labels: ['partition'] },
  twinlog_projector_batch_seconds: {
    type: 'histogram',
    help: "The projector's work for one committed batch: folding its input records, encoding its output and committing it (waits between batches excluded).",
    buckets: BATCH_BUCKETS,
  },
  twinlog_projector_commit_seconds: {
    type: 'histogram',
    help: "Time of the projector's atomic commits (the output records and the input offsets in one transaction).",
    buckets: BATCH_BUCKETS,
  },
  twinlog_projector_fold_event_seconds: {
    type: 'histogram',
    help: 'Fold time per input record, averaged over each committed batch (one observation per batch).',
    buckets: PER_EVENT_BUCKETS,
  },
  twinlog_consumer_lag: {
    type: 'gauge',
    help: 'Records not yet consumed (end offset minus committed offset), per group, topic and partition.',
    labels: ['group', 'topic', 'partition'],
  },
  twinlog_rejections_total: {
    type: 'counter',
    help: 'Records on twin.rejections since serve started, by reason code.',
    labels: ['code'],
  },
  twinlog_dead_letters_total: {
    type: 'counter',
    help: 'Records on twin.dead-letter since serve started, by reason code.',
    labels: ['code'],
  },
  twinlog_deltas_emitted_total: { type: 'counter', help: 'Delta records the reconciler emitted on twin.deltas.' },
  twinlog_delta_entries: {
    type: 'gauge',
    help: 'Desired properties by delta status, over the latest delta of every device on twin.deltas.',
    labels: ['status'],
  },
  twinlog_delta_devices: {
    type: 'gauge',
    help: 'Devices whose latest delta is converged or not.',
    labels: ['converged'],
  },
  twinlog_gateway_requests_total: {
    type: 'counter',
    help: 'REST gateway requests answered, by method and status.',
    labels: ['method', 'status'],
  },
  twinlog_gateway_request_seconds: {
    type: 'histogram',
    help: 'REST gateway requests, from their arrival to the end of the answer, by method and route (twin, device, query, job, …; none when refused before routing).',
    labels: ['method', 'route'],
    buckets: LATENCY_BUCKETS,
  },
  twinlog_gateway_connections: { type: 'gauge', help: 'Open connections to the REST gateway.' },
  twinlog_gateway_connections_total: { type: 'counter', help: 'Connections accepted by the REST gateway.' },
  twinlog_query_seconds: {
    type: 'histogram',
    help: 'Queries the read model executed for the REST gateway (POST /devices/query), by result (ok, error); waits for freshness included.',
    labels: ['result'],
    buckets: LATENCY_BUCKETS,
  },
  twinlog_read_model_twins: { type: 'gauge', help: 'Twins in the query read model (fed by twin.snapshots).' },
  twinlog_read_model_records_total: {
    type: 'counter',
    help: 'twin.snapshots records the query read model applied (since its file was created), and those that did not decode.',
    labels: ['result'],
  },
  twinlog_uptime_seconds: { type: 'gauge', help: 'Seconds since serve started.' },
  twinlog_stage_consuming: {
    type: 'gauge',
    help: 'Whether each stage consumes its partitions (assigned and fetching) or stands by in good standing (its group gave it none): 1, or 0 while it starts, stalls or restarts.',
    labels: ['stage'],
  },
  twinlog_stage_restarts_total: {
    type: 'counter',
    help: 'Runs of each stage started after a failure (its consumer crashed, the broker went away, a batch failed).',
    labels: ['stage'],
  },
};

const MQTT: Readonly<Record<string, MetricDefinition>> = {
  twinlog_mqtt_connected_devices: { type: 'gauge', help: 'Devices connected to the MQTT gateway (with --mqtt-port).' },
  twinlog_mqtt_events_total: {
    type: 'counter',
    help: 'MQTT gateway events (connect, request, notify, refused, error) by kind and status.',
    labels: ['kind', 'status'],
  },
  twinlog_mqtt_reported_ack_seconds: {
    type: 'histogram',
    help: "A device's reported-properties PATCH over MQTT, from its PUBLISH arriving to its res/204 sent (the append and the projector's decision included).",
    buckets: LATENCY_BUCKETS,
  },
  twinlog_mqtt_desired_notify_seconds: {
    type: 'histogram',
    help: "A desired-properties change, from its event time (the writer's clock) to its notification published to the connected device (catch-up after a reconnect excluded).",
    buckets: LATENCY_BUCKETS,
  },
};

// The embedded log's storage (docs/storage.md); absent on Kafka.
const STORE: Readonly<Record<string, MetricDefinition>> = {
  twinlog_store_file_bytes: {
    type: 'gauge',
    help: 'Bytes on disk of the embedded log: its database file plus its write-ahead log.',
  },
  twinlog_store_wal_bytes: {
    type: 'gauge',
    help: "Bytes of the embedded log's write-ahead log (part of twinlog_store_file_bytes).",
  },
  twinlog_store_free_bytes: {
    type: 'gauge',
    help: "Free bytes inside the embedded log's file, reused by the next writes.",
  },
  twinlog_store_topic_bytes: {
    type: 'gauge',
    help: 'Bytes (key + value + headers) of the records the embedded log holds, per topic.',
    labels: ['topic'],
  },
  twinlog_store_topic_records: { type: 'gauge', help: 'Records the embedded log holds, per topic.', labels: ['topic'] },
  twinlog_store_compacted_records_total: {
    type: 'counter',
    help: 'Records compaction deleted (superseded by a later record of the same key) since serve started.',
  },
  twinlog_store_retention_deleted_total: {
    type: 'counter',
    help: 'Records retention deleted since serve started, by reason (time: retentionMs, size: retentionBytes).',
    labels: ['reason'],
  },
  twinlog_store_vacuumed_pages_total: {
    type: 'counter',
    help: 'Free pages handed back to the file system since serve started.',
  },
  twinlog_store_maintenance_runs_total: {
    type: 'counter',
    help: 'Storage maintenance runs (retention, compaction, vacuum) since serve started.',
  },
  twinlog_store_maintenance_seconds: {
    type: 'gauge',
    help: 'Wall time of the last maintenance run (other work runs between its steps).',
  },
  twinlog_store_maintenance_busy_seconds_total: {
    type: 'counter',
    help: 'Time spent inside maintenance steps: what maintenance cost the process.',
  },
  twinlog_store_maintenance_longest_step_seconds: {
    type: 'gauge',
    help: 'Longest single maintenance step: the longest maintenance held the event loop or the write lock at once.',
  },
};

/** Every family serve may export (the dashboard's test checks its queries against these). */
export function serveMetricDefinitions({
  embedded,
  mqtt,
}: Pick<ServeMetricsOptions, 'embedded' | 'mqtt'>): Record<string, MetricDefinition> {
  return { ...CORE, ...(mqtt ? MQTT : {}), ...(embedded ? STORE : {}) };
}

/**
 * @example
 * const metrics = createServeMetrics({ embedded: true, mqtt: false })
 * metrics.observe('twinlog_projector_commit_seconds', {}, 0.004)
 */
export function createServeMetrics(options: ServeMetricsOptions): Metrics {
  return createMetrics(serveMetricDefinitions(options), { defaultMetrics: options.defaultMetrics ?? true });
}

/** What the projector's `onBatch` reports about one committed batch (its `BatchDetail` timings), into the histograms. */
export function observeProjectorBatch(
  metrics: Pick<Metrics, 'observe'>,
  t: { readonly records: number; readonly foldMs: number; readonly encodeMs: number; readonly commitMs: number },
): void {
  metrics.observe('twinlog_projector_batch_seconds', {}, (t.foldMs + t.encodeMs + t.commitMs) / 1000);
  metrics.observe('twinlog_projector_commit_seconds', {}, t.commitMs / 1000);
  if (t.records > 0) metrics.observe('twinlog_projector_fold_event_seconds', {}, t.foldMs / t.records / 1000);
}

/** The read model as the REST gateway's query view, each query's time in `twinlog_query_seconds`. */
export function timedQueryView<V extends { query(text: string, options: Q): Promise<A> }, Q, A>(
  view: V,
  metrics: Pick<Metrics, 'observe'>,
): { query(text: string, options: Q): Promise<A> } {
  return {
    query(text, options) {
      const started = performance.now();
      const seconds = (): number => (performance.now() - started) / 1000;
      return view.query(text, options).then(
        (answer) => {
          metrics.observe('twinlog_query_seconds', { result: 'ok' }, seconds());
          return answer;
        },
        (e: unknown) => {
          metrics.observe('twinlog_query_seconds', { result: 'error' }, seconds());
          throw e;
        },
      );
    },
  };
}

/** Methods the request histogram names; any other is `other` (a client picks the method). */
const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE']);

/** One REST gateway request (`GATEWAY_REQUEST_CHANNEL`): its count by status, its time by route. */
export function observeGatewayRequest(metrics: Pick<Metrics, 'inc' | 'observe'>, e: GatewayRequestEvent): void {
  metrics.inc('twinlog_gateway_requests_total', { method: e.method, status: e.status });
  metrics.observe(
    'twinlog_gateway_request_seconds',
    { method: KNOWN_METHODS.has(e.method) ? e.method : 'other', route: e.route ?? 'none' },
    e.ms / 1000,
  );
}

/** One MQTT gateway event (`MQTT_GATEWAY_CHANNEL`): its count, and a reported ack's or a live notification's latency. */
export function observeMqttEvent(metrics: Pick<Metrics, 'inc' | 'observe'>, e: MqttGatewayEvent): void {
  const status =
    e.kind === 'request'
      ? String(e.status)
      : e.kind === 'connect'
        ? String(e.returnCode)
        : e.kind === 'limit'
          ? e.limit
          : '';
  metrics.inc('twinlog_mqtt_events_total', { kind: e.kind, status });
  if (e.kind === 'request' && e.request === 'reported' && e.status === 204)
    metrics.observe('twinlog_mqtt_reported_ack_seconds', {}, e.ms / 1000);
  else if (e.kind === 'notify' && e.lagMs !== undefined)
    metrics.observe('twinlog_mqtt_desired_notify_seconds', {}, e.lagMs / 1000);
}
