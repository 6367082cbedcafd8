/**
 * Opens the log every command works on: the embedded SQLite log in `<data>/twinlog.db` by default,
 * Kafka when `kafka` (brokers) is configured, through the client library `kafkaClient` names
 * (`kafkajs` or `platformatic`). The twin topics are created when missing.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Log } from '@twinlog/core';
import type { EmbeddedStorageStats } from '@twinlog/log-embedded';
import type { KafkaLogEntry } from '@twinlog/log-kafka';
import { ensureTwinTopics, type WorkerLogSpec } from '@twinlog/projector';
import type { CliConfig } from './resolveConfig.ts';

export interface Store {
  readonly log: Log;
  readonly kind: 'embedded' | 'kafka';
  /** `embedded:/abs/path/twinlog.db` or `kafka:host:port (prefix 'p')`. */
  readonly description: string;
  /**
   * The embedded log's storage (undefined on Kafka, whose brokers report their own): its figures,
   * and the `diagnostics_channel` its maintenance runs publish on (docs/storage.md).
   */
  readonly storage?: { readonly stats: () => EmbeddedStorageStats; readonly maintenanceChannel: string };
  /**
   * How a replay worker thread opens this log itself: the embedded log only. On Kafka (or where
   * modules cannot be resolved to a URL) the calling thread reads and feeds the workers, which
   * measured faster than a Kafka client per worker (docs/write-path.md, "Replay on Kafka").
   */
  readonly workerLog?: WorkerLogSpec;
}

/** `{ module, export, options }` for a worker thread, with the module resolved from here (sources or dist alike). */
function workerLogOf(specifier: string, factory: string, options: unknown): WorkerLogSpec | undefined {
  try {
    return { module: import.meta.resolve(specifier), export: factory, options };
  } catch {
    return undefined; // a host without import.meta.resolve: replay stays in one thread
  }
}

/** The embedded log's file under a data folder. */
export function embeddedPath(data: string): string {
  return resolve(join(data, 'twinlog.db'));
}

/** The device keys file of a data folder, shared by `serve`'s gateways and `twinlog device`. */
export function registryFileOf(config: { readonly data: string }): string {
  return resolve(join(config.data, 'registry.db'));
}

/**
 * The query read model's file of a data folder and store (one file per log), shared by `serve` and
 * `twinlog job`: jobs keep their tables in it (docs/iot-hub.md, "Jobs").
 */
export function readModelFileOf(config: { readonly data: string }, store: Pick<Store, 'kind' | 'description'>): string {
  return resolve(
    join(
      config.data,
      store.kind === 'embedded'
        ? 'read-model.db'
        : `read-model-${createHash('sha256').update(store.description).digest('hex').slice(0, 12)}.db`,
    ),
  );
}

/**
 * The Kafka log of `config` (brokers `config.kafka`) on the client library `config.kafkaClient`;
 * the library is loaded only when asked for. Client log entries go to `kafkaLogSink` (both
 * adapters' entries carry a level, a namespace, a message and fields).
 */
export async function openKafkaLog(
  config: Pick<CliConfig, 'kafka' | 'topicPrefix' | 'kafkaClient'>,
  { kafkaLogSink, clientId }: { kafkaLogSink?: (entry: KafkaLogEntry) => void; clientId: string },
): Promise<Log> {
  const brokers = config.kafka ?? '';
  if (config.kafkaClient === 'platformatic') {
    const { createPlatformaticKafkaLog } = await import('@twinlog/log-kafka-platformatic');
    return createPlatformaticKafkaLog({
      brokers,
      topicPrefix: config.topicPrefix,
      clientId,
      ...(kafkaLogSink === undefined ? {} : { logSink: kafkaLogSink }),
    });
  }
  const { createKafkaLog } = await import('@twinlog/log-kafka');
  return createKafkaLog({
    brokers,
    topicPrefix: config.topicPrefix,
    clientId,
    ...(kafkaLogSink === undefined ? {} : { logSink: kafkaLogSink }),
  });
}

/**
 * @throws TwinlogError from the adapter (e.g. `LOG_ARGUMENT_INVALID` for bad brokers) or when the
 * topics cannot be created.
 */
export async function openStore(
  config: CliConfig,
  { kafkaLogSink, clientId = 'twinlog-cli' }: { kafkaLogSink?: (entry: KafkaLogEntry) => void; clientId?: string } = {},
): Promise<Store> {
  let store: Store;
  if (config.kafka !== undefined) {
    const log = await openKafkaLog(config, { clientId, ...(kafkaLogSink === undefined ? {} : { kafkaLogSink }) });
    store = {
      log,
      kind: 'kafka',
      description: `kafka:${config.kafka}${config.topicPrefix === '' ? '' : ` (topic prefix '${config.topicPrefix}')`}, client ${config.kafkaClient}`,
    };
  } else {
    // the data folder holds device keys and the service policy: owner only (docs/security.md)
    mkdirSync(config.data, { recursive: true, mode: 0o700 });
    chmodSync(config.data, 0o700);
    const { createEmbeddedLog, EMBEDDED_LOG_MAINTENANCE_CHANNEL } = await import('@twinlog/log-embedded');
    const path = embeddedPath(config.data);
    const log = createEmbeddedLog({ path }); // maintenance (retention, compaction) in the background
    const workerLog = workerLogOf('@twinlog/log-embedded', 'createEmbeddedLog', { path });
    store = {
      log,
      kind: 'embedded',
      description: `embedded:${path}`,
      ...(workerLog === undefined ? {} : { workerLog }),
      storage: { stats: () => log.storageStats(), maintenanceChannel: EMBEDDED_LOG_MAINTENANCE_CHANNEL },
    };
  }
  try {
    await ensureTwinTopics(store.log, config.partitions);
  } catch (e) {
    await store.log.close().catch(() => {});
    throw e;
  }
  return store;
}
