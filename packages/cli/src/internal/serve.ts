/**
 * `twinlog serve`: the engine (projector + reconciler), the IoT Hub-compatible REST gateway and an
 * admin listener (`/health`, `/metrics`) in one process, on the embedded log or on Kafka.
 *
 * Figures come from public hooks only (families and histograms in serveMetrics.ts,
 * docs/operations.md "Metrics"): the stages' `onBatch` callbacks (the projector's with its fold,
 * encode and commit times), the gateways' `diagnostics_channel`s (`GATEWAY_REQUEST_CHANNEL`,
 * `MQTT_GATEWAY_CHANNEL`, with their latencies) and the REST server's connections, the read
 * model's queries timed around the gateway's `queryView`, the log's committed and end offsets
 * (lag, computed at scrape time), the output topics themselves
 * (rejections and dead letters by code, deltas by status), and on the embedded log its storage
 * figures (file size, records per topic, compaction and retention; docs/storage.md).
 *
 * Self-healing stages: the projector, reconciler, read model and (with `--mqtt-port`) the MQTT
 * gateway's feed (`mqtt-feed`) each restart their consumer after any failure with backoff, forever
 * (core's `superviseStage`). `/health` answers 503 naming every stage that is not consuming its
 * partitions (assigned and fetching), with its state and reason, and 200 once all consume; a stage
 * its group gave no partitions because other instances hold them all (`standby`, its consumer
 * alive) is healthy. One log line per state change of a stage says what happened and what it does
 * next. On Kafka each stage has its own client, with the client id `twinlog-serve-<stage>`, so
 * broker-side and kafkajs lines name the stage.
 */
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { decodeOutputRecord } from '@twinlog/codec';
import { isHealthyStageState, isTwinlogError, type Log, type StageHealth, type StageState } from '@twinlog/core';
import {
  createDeviceKeyStore,
  createMqttGateway,
  ensurePrivateDir,
  writeSecretFile,
  createRestGateway,
  GATEWAY_REQUEST_CHANNEL,
  MQTT_GATEWAY_CHANNEL,
  type GatewayRequestEvent,
  type ListeningGateway,
  type ListeningMqttGateway,
  type MqttGateway,
  type MqttGatewayEvent,
  type RestGateway,
} from '@twinlog/gateway';
import { CHECKPOINT_KEY, startProjector, TOPICS, type Projector } from '@twinlog/projector';
import type { JobRunner, ReadModel } from '@twinlog/fleet';
import type { ConfigurationManager } from '@twinlog/fleet';
import type { EmbeddedStorageStats, MaintenanceReport } from '@twinlog/log-embedded';
import type { KafkaLogEntry } from '@twinlog/log-kafka';
import { startReconciler, type Reconciler } from '@twinlog/reconciler';
import { CliError } from './CliError.ts';
import { createJsonLogger, errorFields, type JsonLogger } from './createJsonLogger.ts';
import type { Metrics } from './createMetrics.ts';
import { openKafkaLog, openStore, readModelFileOf, registryFileOf, type Store } from './openStore.ts';
import type { CliConfig } from './resolveConfig.ts';
import { watchTopic, type TopicWatch } from './watchTopic.ts';
import { createDeltaGauges } from './deltaGauges.ts';
import { createConsole } from './console/createConsole.ts';
import {
  createServeMetrics,
  observeGatewayRequest,
  observeMqttEvent,
  observeProjectorBatch,
  timedQueryView,
} from './serveMetrics.ts';

export const PROJECTOR_GROUP = 'twinlog-projector';
export const RECONCILER_GROUP = 'twinlog-reconciler';

/** The `iothubowner` policy's key: configured, or generated once and kept in `<data>/service-policy.json`. */
export function servicePolicy(config: CliConfig): { name: string; key: string; file: string | undefined } {
  if (config.policyKey !== undefined) return { name: 'iothubowner', key: config.policyKey, file: undefined };
  const file = resolve(join(config.data, 'service-policy.json'));
  if (existsSync(file)) {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; key?: unknown };
    if (typeof saved.key === 'string') return { name: 'iothubowner', key: saved.key, file };
  }
  const key = randomBytes(32).toString('base64');
  writeSecretFile(file, `${JSON.stringify({ name: 'iothubowner', key, hubName: config.hubName }, null, 2)}\n`);
  return { name: 'iothubowner', key, file };
}

/** The embedded log's storage figures, read at scrape time. */
function collectStorage(stats: EmbeddedStorageStats, metrics: Metrics): void {
  metrics.set('twinlog_store_file_bytes', {}, stats.fileBytes);
  metrics.set('twinlog_store_wal_bytes', {}, stats.walBytes);
  metrics.set('twinlog_store_free_bytes', {}, stats.freeBytes);
  metrics.reset('twinlog_store_topic_bytes');
  metrics.reset('twinlog_store_topic_records');
  for (const t of stats.topics) {
    metrics.set('twinlog_store_topic_bytes', { topic: t.name }, t.bytes);
    metrics.set('twinlog_store_topic_records', { topic: t.name }, t.records);
  }
  const m = stats.maintenance;
  metrics.set('twinlog_store_compacted_records_total', {}, m.compactedRecords);
  metrics.set('twinlog_store_retention_deleted_total', { reason: 'time' }, m.retentionDeletedByTime);
  metrics.set('twinlog_store_retention_deleted_total', { reason: 'size' }, m.retentionDeletedBySize);
  metrics.set('twinlog_store_vacuumed_pages_total', {}, m.vacuumedPages);
  metrics.set('twinlog_store_maintenance_runs_total', {}, m.runs);
  metrics.set('twinlog_store_maintenance_seconds', {}, (m.lastRunMs ?? 0) / 1000);
  metrics.set('twinlog_store_maintenance_busy_seconds_total', {}, m.busyMs / 1000);
  metrics.set('twinlog_store_maintenance_longest_step_seconds', {}, m.longestStepMs / 1000);
}

/** Lag per partition of a group on its topics (end offset minus committed offset, 0 when nothing is committed and the topic is empty). */
async function collectLag(store: Store, metrics: Metrics): Promise<void> {
  metrics.reset('twinlog_consumer_lag');
  const pairs: [string, string][] = [
    [PROJECTOR_GROUP, TOPICS.backend],
    [PROJECTOR_GROUP, TOPICS.device],
    [RECONCILER_GROUP, TOPICS.snapshots],
  ];
  await Promise.all(
    pairs.map(async ([group, topic]) => {
      const [ends, committed] = await Promise.all([
        store.log.endOffsets(topic),
        store.log.committedOffsets(group, topic),
      ]);
      ends.forEach((end, partition) =>
        metrics.set(
          'twinlog_consumer_lag',
          { group, topic, partition },
          Math.max(0, end - (committed[partition] ?? 0)),
        ),
      );
    }),
  );
}

/** `2 s`, `250 ms`. */
function formatDelay(ms: number | undefined): string {
  if (ms === undefined) return 'soon';
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** One log line for a stage's state change: what happened and what it does next. */
function logStageChange(logger: JsonLogger, h: StageHealth, previous: StageState): void {
  const fields = {
    stage: h.stage,
    state: h.state,
    previous,
    partitions: h.partitions,
    restarts: h.restarts,
    ...(h.reason === undefined ? {} : { reason: h.reason }),
  };
  switch (h.state) {
    case 'consuming':
      logger.info(
        `${h.stage}: consuming partitions [${h.partitions.join(', ')}]${previous === 'starting' ? '' : ` again (was ${previous})`}`,
        fields,
      );
      return;
    case 'restarting':
      logger.warn(
        `${h.stage}: consumer failed (${h.reason ?? 'unknown error'}): restarting it, retrying in ${formatDelay(h.retryInMs)}, then with backoff up to 30 s until it consumes`,
        { ...fields, retryInMs: h.retryInMs },
      );
      return;
    case 'stalled':
      logger.warn(
        `${h.stage}: not consuming (${h.reason ?? 'not fetching'}): waiting for its consumer, restarting it if it fails`,
        fields,
      );
      return;
    case 'standby':
      logger.info(
        `${h.stage}: standing by: its group gave it no partitions (other instances hold them all); it takes over when one leaves`,
        fields,
      );
      return;
    default:
      logger.info(`${h.stage}: ${h.state}`, fields);
  }
}

export interface ServeOptions {
  /** Where the JSON log lines go (default: stdout, at `config.logLevel`). */
  readonly logger?: JsonLogger;
  /** The policy key came as `--policy-key` (visible in the process list): serve warns. */
  readonly policyKeyOnCommandLine?: boolean;
}

/** Runs until SIGINT/SIGTERM (resolves 0) or a stage failure (resolves 1). */
export async function serve(
  config: CliConfig,
  { logger = createJsonLogger({ level: config.logLevel }), policyKeyOnCommandLine = false }: ServeOptions = {},
): Promise<number> {
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined))
    throw new CliError('--tls-cert and --tls-key go together (TWINLOG_TLS_CERT, TWINLOG_TLS_KEY)');
  if (policyKeyOnCommandLine) {
    logger.warn(
      '--policy-key is visible to every user of this machine in the process list: pass the key in TWINLOG_POLICY_KEY instead',
    );
  }
  const startedAt = Date.now();
  const metrics = createServeMetrics({ embedded: config.kafka === undefined, mqtt: config.mqttPort !== undefined });
  let state: 'starting' | 'ok' | 'stopping' | 'failed' = 'starting';
  let store: Store | undefined;
  let projector: Projector | undefined;
  let reconciler: Reconciler | undefined;
  let gateway: RestGateway | undefined;
  let listening: ListeningGateway | undefined;
  let mqtt: MqttGateway | undefined;
  let mqttListening: ListeningMqttGateway | undefined;
  let readModel: ReadModel | undefined;
  let configurations: ConfigurationManager | undefined;
  let jobs: JobRunner | undefined;
  const watches: TopicWatch[] = [];
  /** On Kafka, each stage's own log (client id `twinlog-serve-<stage>`); closed after the stages. */
  const stageLogs: Log[] = [];
  const up: Record<'projector' | 'reconciler' | 'gateway' | 'mqtt', 0 | 1> = {
    projector: 0,
    reconciler: 0,
    gateway: 0,
    mqtt: 0,
  };
  const setUp = (part: keyof typeof up, v: 0 | 1): void => {
    up[part] = v;
    metrics.set('twinlog_up', { part }, v);
  };
  for (const part of ['projector', 'reconciler', 'gateway'] as const) setUp(part, 0);
  if (config.mqttPort !== undefined) setUp('mqtt', 0);

  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((r) => (finish = r));

  // --- admin listener first, so that /health answers 503 while the engine starts -----------------
  /** Every long-running stage this serve runs, `undefined` while it is not created yet. */
  const stageHealths = (): (StageHealth | undefined)[] => [
    projector?.health(),
    reconciler?.health(),
    readModel?.health(),
    jobs?.health(),
    ...(config.mqttPort === undefined ? [] : [mqtt?.health()]),
  ];
  const health = (): { status: number; body: Record<string, unknown> } => {
    const readModelFailed = readModel?.stats().failed;
    // Every stage consumes its partitions (assigned and fetching), or it names itself and why not.
    const stages = stageHealths();
    const unhealthy = stages.filter((h) => h !== undefined && !isHealthyStageState(h.state)) as StageHealth[];
    const stageOf = (h: StageHealth | undefined) =>
      h === undefined
        ? { running: false, state: 'starting', partitions: [] }
        : {
            running: isHealthyStageState(h.state),
            state: h.state,
            partitions: h.partitions,
            since: new Date(h.since).toISOString(),
            restarts: h.restarts,
            ...(h.reason === undefined ? {} : { reason: h.reason }),
            ...(h.retryInMs === undefined ? {} : { retryInMs: h.retryInMs }),
          };
    const healthy =
      state === 'ok' &&
      up.projector === 1 &&
      up.reconciler === 1 &&
      up.gateway === 1 &&
      (config.mqttPort === undefined || up.mqtt === 1) &&
      stages.every((h) => h !== undefined) &&
      unhealthy.length === 0;
    return {
      status: healthy ? 200 : 503,
      body: {
        status: healthy ? 'ok' : state === 'ok' ? 'degraded' : state,
        ...(unhealthy.length === 0
          ? {}
          : { unhealthy: unhealthy.map((h) => ({ stage: h.stage, state: h.state, reason: h.reason ?? null })) }),
        store: store?.description ?? null,
        projector: stageOf(projector?.health()),
        reconciler: stageOf(reconciler?.health()),
        gateway: { running: up.gateway === 1, port: listening?.port ?? null },
        readModel:
          readModel === undefined
            ? null
            : {
                ...stageOf(readModel.health()),
                twins: readModel.stats().twins,
                ...(readModelFailed === undefined ? {} : { failed: readModelFailed.message }),
              },
        ...(config.mqttPort === undefined
          ? {}
          : {
              mqtt: {
                running: up.mqtt === 1,
                port: mqttListening?.port ?? null,
                connectedDevices: mqtt?.connectedDevices().length ?? 0,
                feed: stageOf(mqtt?.health()),
              },
            }),
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      },
    };
  };
  // The browser console under /ui (docs/console.md): its own login, reading the services below as they start.
  const consoleUi = createConsole({
    services: {
      log: () => store?.log,
      readModel: () => readModel,
      connectedDevices: () => (config.mqttPort === undefined ? undefined : (mqtt?.connectedDevices() ?? [])),
    },
    policy: () => servicePolicy(config),
    hubName: config.hubName,
    logger,
    pollIntervalMs: config.kafka === undefined ? 250 : 1000,
  });
  const admin: Server = createServer((req, res) => {
    if (consoleUi.handle(req, res)) return;
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/health') {
      const { status, body } = health();
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
      return;
    }
    if (path === '/metrics') {
      metrics.set('twinlog_uptime_seconds', {}, Math.round((Date.now() - startedAt) / 1000));
      for (const h of stageHealths()) {
        if (h === undefined) continue;
        metrics.set('twinlog_stage_consuming', { stage: h.stage }, isHealthyStageState(h.state) ? 1 : 0);
        metrics.set('twinlog_stage_restarts_total', { stage: h.stage }, h.restarts);
      }
      if (mqtt !== undefined) metrics.set('twinlog_mqtt_connected_devices', {}, mqtt.connectedDevices().length);
      if (readModel !== undefined) {
        const rm = readModel.stats();
        metrics.set('twinlog_read_model_twins', {}, rm.twins);
        metrics.set('twinlog_read_model_records_total', { result: 'applied' }, rm.records);
        metrics.set('twinlog_read_model_records_total', { result: 'bad' }, rm.badRecords);
      }
      if (store?.storage !== undefined) {
        try {
          collectStorage(store.storage.stats(), metrics);
        } catch (e) {
          logger.warn('storage figures unavailable', errorFields(e));
        }
      }
      const lag = store === undefined ? Promise.resolve() : collectLag(store, metrics);
      lag
        .catch((e: unknown) => logger.warn('consumer lag unavailable', errorFields(e)))
        .then(() => metrics.render())
        .then(
          (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
          (e: unknown) => {
            logger.warn('metrics unavailable', errorFields(e));
            res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
          },
        );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found: try /health or /metrics"}\n');
  });
  await new Promise<void>((resolveListen, reject) => {
    admin.once('error', (e) =>
      reject(new CliError(`the admin listener cannot listen on ${config.host}:${config.adminPort}: ${e.message}`, 1)),
    );
    admin.listen(config.adminPort, config.host, () => resolveListen());
  });
  const adminPort = (admin.address() as AddressInfo).port;
  logger.info('admin listening', {
    url: `http://${config.host}:${adminPort}`,
    health: '/health',
    metrics: '/metrics',
    adminPort,
  });
  logger.info('console: open this URL to log in (valid until serve stops)', {
    consoleUrl: consoleUi.loginUrl(`http://${config.host}:${adminPort}`),
  });

  const onRequest = (message: unknown): void => {
    const e = message as GatewayRequestEvent;
    observeGatewayRequest(metrics, e);
    logger.debug('request', {
      method: e.method,
      path: e.path,
      status: e.status,
      ...(e.error === undefined ? {} : { error: e.error }),
    });
  };

  const onMaintenance = (message: unknown): void => {
    const e = message as { report?: MaintenanceReport; ms?: number; error?: unknown };
    if (e.error !== undefined)
      logger.warn('storage maintenance failed (retried at the next run)', errorFields(e.error));
    else if (
      e.report !== undefined &&
      e.report.compacted + e.report.retentionDeletedByTime + e.report.retentionDeletedBySize + e.report.vacuumedPages >
        0
    ) {
      logger.debug('storage maintenance', { ...e.report, ms: Math.round(e.ms ?? 0) });
    }
  };

  const onMqttEvent = (message: unknown): void => {
    const e = message as MqttGatewayEvent;
    observeMqttEvent(metrics, e);
    if (e.kind === 'error') logger.warn('mqtt gateway error', { error: e.message });
    else logger.debug('mqtt', { ...e });
  };

  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const part of Object.keys(up) as (keyof typeof up)[])
        if (part !== 'mqtt' || config.mqttPort !== undefined) setUp(part, 0);
      unsubscribe(GATEWAY_REQUEST_CHANNEL, onRequest);
      unsubscribe(MQTT_GATEWAY_CHANNEL, onMqttEvent);
      if (store?.storage !== undefined) unsubscribe(store.storage.maintenanceChannel, onMaintenance);
      const step = async (what: string, f: (() => Promise<void>) | undefined): Promise<void> => {
        if (f === undefined) return;
        try {
          await f();
        } catch (e) {
          logger.warn(`stopping the ${what} failed`, errorFields(e));
        }
      };
      await step('console', () => consoleUi.close());
      await step('mqtt listener', mqttListening === undefined ? undefined : () => mqttListening!.close());
      await step('mqtt gateway', mqtt === undefined ? undefined : () => mqtt!.close());
      await step('gateway listener', listening === undefined ? undefined : () => listening!.close());
      await step('gateway', gateway === undefined ? undefined : () => gateway!.close());
      await step('job runner', jobs === undefined ? undefined : () => jobs!.stop());
      await step('configuration manager', configurations === undefined ? undefined : () => configurations!.stop());
      await step('read model', readModel === undefined ? undefined : () => readModel!.close());
      await Promise.all(watches.map((w) => step('topic watch', () => w.stop())));
      await step('reconciler', reconciler === undefined ? undefined : () => reconciler!.stop());
      await step('projector', projector === undefined ? undefined : () => projector!.stop());
      await Promise.all(stageLogs.map((l) => step('stage log', () => l.close())));
      await step('log', store === undefined ? undefined : () => store!.log.close());
      await new Promise<void>((r) => admin.close(() => r()));
      admin.closeAllConnections();
    })());

  const fail = (what: string, e: unknown): void => {
    if (state === 'stopping' || state === 'failed') return;
    state = 'failed';
    logger.error(`${what} failed: stopping (a restart restores from the log)`, errorFields(e));
    void stopAll().then(() => {
      logger.info('stopped', { exitCode: 1 });
      finish(1);
    });
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (state === 'stopping') {
      logger.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    if (state === 'starting') {
      // Nothing to drain yet, and a log that is still connecting may retry for long: crash-only
      // stages make an immediate exit safe (a restart restores from the log).
      logger.info('interrupted while starting: exiting', { signal });
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    const wasFailed = state === 'failed';
    state = 'stopping';
    logger.info('shutting down', { signal });
    void stopAll().then(() => {
      logger.info('stopped', { exitCode: wasFailed ? 1 : 0 });
      finish(wasFailed ? 1 : 0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // The Kafka client logs every failed request and retry (a hundred lines per broker outage):
    // those go to debug; what a stage does about them is one line per state change (logStageChange).
    const kafkaLogSink = (entry: KafkaLogEntry): void =>
      logger.debug(`${config.kafkaClient} ${entry.namespace}: ${entry.message}`, {
        [config.kafkaClient]: entry.fields,
      });
    store = await openStore(config, { kafkaLogSink, clientId: 'twinlog-serve' });
    const openedStore = store;
    const stageLog = async (stage: string): Promise<Log> => {
      if (openedStore.kind !== 'kafka' || config.kafka === undefined) return openedStore.log;
      const log = await openKafkaLog(config, { clientId: `twinlog-serve-${stage}`, kafkaLogSink });
      stageLogs.push(log);
      return log;
    };
    const onStateChange = (h: StageHealth, previous: StageState): void => logStageChange(logger, h, previous);
    logger.info('log open', { store: store.description, partitions: config.partitions });
    if (store.storage !== undefined) subscribe(store.storage.maintenanceChannel, onMaintenance);
    const physicalNow = (): number => Date.now();

    projector = await startProjector({
      log: await stageLog('projector'),
      group: PROJECTOR_GROUP,
      physicalNow,
      onStateChange,
      workers: config.projectorWorkers,
      onBatch: (partition, stats, detail) => {
        metrics.inc('twinlog_projector_batches_total', { partition });
        for (const [result, n] of Object.entries(stats) as [string, number][])
          if (n > 0) metrics.inc('twinlog_projector_events_total', { result }, n);
        observeProjectorBatch(metrics, detail);
      },
    });
    setUp('projector', 1);
    projector.done.then(
      () => setUp('projector', 0),
      (e: unknown) => {
        setUp('projector', 0);
        fail('projector', e);
      },
    );
    logger.info('projector started', { group: PROJECTOR_GROUP });

    reconciler = await startReconciler({
      log: await stageLog('reconciler'),
      group: RECONCILER_GROUP,
      physicalNow,
      onStateChange,
      staleAfterMs: config.staleAfterMs,
      onBatch: (_partition, stats) => {
        if (stats.emitted > 0) metrics.inc('twinlog_deltas_emitted_total', {}, stats.emitted);
      },
    });
    setUp('reconciler', 1);
    reconciler.done.then(
      () => setUp('reconciler', 0),
      (e: unknown) => {
        setUp('reconciler', 0);
        fail('reconciler', e);
      },
    );
    logger.info('reconciler started', { group: RECONCILER_GROUP, staleAfterMs: config.staleAfterMs ?? null });

    // The query view: a SQLite read model of twin.snapshots in the data folder (one file per log).
    ensurePrivateDir(config.data);
    const { createJobRunner, createReadModel } = await import('@twinlog/fleet');
    const readModelFile = readModelFileOf(config, store);
    readModel = await createReadModel({ log: await stageLog('read-model'), path: readModelFile, onStateChange });
    logger.info('read model started', { file: readModelFile });
    // Automatic configurations (docs/iot-hub.md, "Automatic configurations"): kept in the read
    // model's file, re-evaluated for the devices of every read-model batch (a tags change re-targets
    // within one batch), after each change over REST, and every 5 minutes.
    const { createConfigurationManager } = await import('@twinlog/fleet');
    configurations = createConfigurationManager({ readModel, log: await stageLog('configurations'), physicalNow });
    configurations.start();
    // Jobs (docs/iot-hub.md, "Jobs"): kept in the read model's file, resumed after a crash without
    // applying a twin twice; `twinlog job` adds and cancels them in the same file.
    jobs = createJobRunner({ readModel, log: await stageLog('jobs'), physicalNow, onStateChange });
    jobs.start();

    const policy = servicePolicy(config);
    const deviceKeys = createDeviceKeyStore(registryFileOf(config));
    gateway = createRestGateway({
      log: store.log,
      hubName: config.hubName,
      physicalNow,
      policies: [
        { name: policy.name, key: policy.key, rights: ['registryRead', 'registryReadWrite', 'serviceConnect'] },
      ],
      deviceKeys,
      queryView: timedQueryView(readModel, metrics),
      twinIndex: readModel, // GET /twins/{id} and the twin after PATCH/PUT: looked up, not scanned (docs/reads.md)
      configurations,
      jobs,
      isConnected: (deviceId) => mqtt?.isConnected(deviceId) ?? false,
    });
    subscribe(GATEWAY_REQUEST_CHANNEL, onRequest);
    const tls =
      config.tlsCert !== undefined && config.tlsKey !== undefined
        ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
        : undefined;
    listening = await gateway.listen({ port: config.port, host: config.host, ...(tls === undefined ? {} : { tls }) });
    listening.server.on('connection', (socket) => {
      metrics.inc('twinlog_gateway_connections_total');
      metrics.inc('twinlog_gateway_connections', {}, 1);
      socket.once('close', () => metrics.inc('twinlog_gateway_connections', {}, -1));
    });
    metrics.set('twinlog_gateway_connections', {}, 0);
    metrics.inc('twinlog_gateway_connections_total', {}, 0);
    setUp('gateway', 1);
    const scheme = tls === undefined ? 'http' : 'https';
    logger.info('gateway listening', {
      url: `${scheme}://${config.host}:${listening.port}`,
      port: listening.port,
      hubName: config.hubName,
      policy: policy.name,
      ...(policy.file === undefined ? {} : { policyFile: policy.file }),
      connectionString: `HostName=${config.hubName};SharedAccessKeyName=${policy.name};SharedAccessKey=<key${policy.file === undefined ? ' from TWINLOG_POLICY_KEY' : ` in ${policy.file}`}>`,
    });
    if (tls === undefined) {
      logger.warn(
        'the gateway speaks plain HTTP (and MQTT) without --tls-cert and --tls-key: tokens cross the network in clear; give it a certificate or put a TLS terminator in front',
        {
          host: config.host,
        },
      );
    }
    if (config.mqttPort !== undefined) {
      subscribe(MQTT_GATEWAY_CHANNEL, onMqttEvent);
      mqtt = createMqttGateway({
        log: await stageLog('mqtt-feed'),
        hubName: config.hubName,
        physicalNow,
        deviceKeys,
        sessionFile: resolve(join(config.data, 'mqtt-sessions.jsonl')),
        twinIndex: readModel, // a device's GET: looked up in the read model (docs/reads.md)
        onFeedStateChange: onStateChange,
      });
      mqttListening = await mqtt.listen({
        port: config.mqttPort,
        host: config.host,
        ...(tls === undefined ? {} : { tls }),
      });
      setUp('mqtt', 1);
      logger.info('mqtt gateway listening', {
        url: `${tls === undefined ? 'mqtt' : 'mqtts'}://${config.host}:${mqttListening.port}`,
        mqttPort: mqttListening.port,
        tls: tls !== undefined,
      });
    }

    // Output-topic figures.
    const log = store.log;
    const watchError = (topic: string) => (e: unknown) =>
      logger.warn(`reading ${topic} for metrics failed, retrying`, errorFields(e));
    const countByCode =
      (metric: string, kind: 'rejection' | 'dead-letter') => (r: { key: string; value: Uint8Array | null }) => {
        if (r.value === null || r.key === CHECKPOINT_KEY) return;
        try {
          metrics.inc(metric, { code: decodeOutputRecord(r.value, kind).code });
        } catch (e) {
          if (!isTwinlogError(e)) throw e;
          metrics.inc(metric, { code: 'UNDECODABLE' });
        }
      };
    const deltaGauges = createDeltaGauges(metrics);
    const pollIntervalMs = store.kind === 'kafka' ? 2000 : 500;
    watches.push(
      watchTopic(log, TOPICS.rejections, {
        from: 'latest',
        pollIntervalMs,
        onRecord: countByCode('twinlog_rejections_total', 'rejection'),
        onError: watchError(TOPICS.rejections),
      }),
      watchTopic(log, TOPICS.deadLetter, {
        from: 'latest',
        pollIntervalMs,
        onRecord: countByCode('twinlog_dead_letters_total', 'dead-letter'),
        onError: watchError(TOPICS.deadLetter),
      }),
      watchTopic(log, TOPICS.deltas, {
        from: 'earliest',
        pollIntervalMs,
        onError: watchError(TOPICS.deltas),
        onRecord: (r) => deltaGauges.record(r),
      }),
    );
    if (state === 'starting') {
      state = 'ok';
      logger.info('serving', {
        store: store.description,
        gatewayPort: listening.port,
        adminPort,
        ...(mqttListening === undefined ? {} : { mqttPort: mqttListening.port }),
      });
    }
  } catch (e) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    state = 'failed';
    logger.error('start failed', errorFields(e));
    await stopAll();
    throw e;
  }

  const code = await finished;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}
