/**
 * The CLI's configuration: one {@link CliConfig} resolved from command-line flags, `TWINLOG_*`
 * environment variables and a JSON file, in that order of precedence, over the defaults.
 */
import { readFileSync } from 'node:fs';
import { CliError } from './CliError.ts';

/** Everything `twinlog` can be configured with (the JSON file uses these names). */
export interface CliConfig {
  /** Folder of the embedded log (`twinlog.db`), the service key and the device-key registry. */
  readonly data: string;
  /** Kafka bootstrap brokers (`host:port[,host:port]`): Kafka instead of the embedded log. */
  readonly kafka: string | undefined;
  /** Prefix of every topic and consumer group on Kafka. */
  readonly topicPrefix: string;
  /** Which Kafka client library the Kafka log uses (both adapters pass the same `Log` suite). */
  readonly kafkaClient: KafkaClient;
  /** Partition count of the twin topics when twinlog creates them. */
  readonly partitions: number;
  /** REST gateway port (0: any free port). */
  readonly port: number;
  /** Interface the gateway and the admin listener bind. */
  readonly host: string;
  /** Admin listener port (`/health`, `/metrics`; 0: any free port). */
  readonly adminPort: number;
  /** The hub's host name that service SAS tokens must name (`HostName` of the connection string). */
  readonly hubName: string;
  /** Key (base64) of the `iothubowner` policy; default: generated once and kept in `<data>/service-policy.json`. */
  readonly policyKey: string | undefined;
  /** PEM files: HTTPS when both are set, plain HTTP otherwise. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** Reconciler: pending/acknowledged entries turn `stale` after this many ms (default: never). */
  readonly staleAfterMs: number | undefined;
  /** MQTT gateway port (only when the gateway package provides one). */
  readonly mqttPort: number | undefined;
  /** Worker threads of `serve`'s projector (0: it folds on the main thread; docs/write-path.md). */
  readonly projectorWorkers: number;
  /** `debug` | `info` | `warn` | `error`. */
  readonly logLevel: LogLevel;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `kafkajs` (`@twinlog/log-kafka`) or `platformatic` (`@twinlog/log-kafka-platformatic`). */
export type KafkaClient = 'kafkajs' | 'platformatic';
export const KAFKA_CLIENTS: readonly KafkaClient[] = ['kafkajs', 'platformatic'];

export const DEFAULT_CONFIG: CliConfig = {
  data: '.data',
  kafka: undefined,
  topicPrefix: '',
  kafkaClient: 'platformatic',
  partitions: 4,
  port: 8080,
  host: '127.0.0.1',
  adminPort: 9464,
  hubName: 'localhost',
  policyKey: undefined,
  tlsCert: undefined,
  tlsKey: undefined,
  staleAfterMs: undefined,
  mqttPort: undefined,
  projectorWorkers: 0,
  logLevel: 'info',
};

type Kind = 'string' | 'port' | 'count' | 'threads' | 'ms' | 'level' | 'kafka-client';

const FIELDS: Record<keyof CliConfig, { kind: Kind; env: readonly string[] }> = {
  data: { kind: 'string', env: ['TWINLOG_DATA'] },
  kafka: { kind: 'string', env: ['TWINLOG_KAFKA_BROKERS', 'KAFKA_BROKERS'] },
  topicPrefix: { kind: 'string', env: ['TWINLOG_TOPIC_PREFIX'] },
  kafkaClient: { kind: 'kafka-client', env: ['TWINLOG_KAFKA_CLIENT'] },
  partitions: { kind: 'count', env: ['TWINLOG_PARTITIONS'] },
  projectorWorkers: { kind: 'threads', env: ['TWINLOG_PROJECTOR_WORKERS'] },
  port: { kind: 'port', env: ['TWINLOG_PORT'] },
  host: { kind: 'string', env: ['TWINLOG_HOST'] },
  adminPort: { kind: 'port', env: ['TWINLOG_ADMIN_PORT'] },
  hubName: { kind: 'string', env: ['TWINLOG_HUB_NAME'] },
  policyKey: { kind: 'string', env: ['TWINLOG_POLICY_KEY'] },
  tlsCert: { kind: 'string', env: ['TWINLOG_TLS_CERT'] },
  tlsKey: { kind: 'string', env: ['TWINLOG_TLS_KEY'] },
  staleAfterMs: { kind: 'ms', env: ['TWINLOG_STALE_AFTER_MS'] },
  mqttPort: { kind: 'port', env: ['TWINLOG_MQTT_PORT'] },
  logLevel: { kind: 'level', env: ['TWINLOG_LOG_LEVEL'] },
};

/** The environment variables `twinlog` reads, for help texts and the README. */
export const CONFIG_ENV: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(FIELDS).flatMap(([name, f]) => f.env.map((e) => [e, name])),
);

function parseValue(name: string, kind: Kind, raw: unknown, where: string): unknown {
  // `--port must be…`, `environment TWINLOG_PORT must be…`, `twinlog.json: port must be…`
  const label = where.startsWith('--') || where.startsWith('environment ') ? where : `${where}: ${name}`;
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string') throw new CliError(`${label} must be a ${kind === 'string' ? 'string' : 'number'}`);
  switch (kind) {
    case 'string':
      return text;
    case 'level':
      if (!['debug', 'info', 'warn', 'error'].includes(text))
        throw new CliError(`${label} must be debug, info, warn or error, got '${text}'`);
      return text;
    case 'kafka-client':
      if (!(KAFKA_CLIENTS as readonly string[]).includes(text))
        throw new CliError(`${label} must be ${KAFKA_CLIENTS.join(' or ')}, got '${text}'`);
      return text;
    case 'port':
    case 'count':
    case 'threads':
    case 'ms': {
      if (!/^[0-9]+$/.test(text.trim())) throw new CliError(`${label} must be a non-negative integer, got '${text}'`);
      const n = Number(text);
      if (kind === 'port' && n > 65535) throw new CliError(`${label} must be a port number (0-65535), got ${n}`);
      if (kind === 'count' && (n < 1 || n > 1000)) throw new CliError(`${label} must be between 1 and 1000, got ${n}`);
      if (kind === 'threads' && n > 64) throw new CliError(`${label} must be between 0 and 64, got ${n}`);
      return n;
    }
  }
}

/** Reads and checks the JSON config file. @throws CliError when it cannot be read or has unknown keys. */
export function readConfigFile(path: string): Partial<CliConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read the config file ${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CliError(`the config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new CliError(`the config file ${path} must hold a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(value)) {
    const field = FIELDS[key as keyof CliConfig] as (typeof FIELDS)[keyof CliConfig] | undefined;
    if (field === undefined || !Object.hasOwn(FIELDS, key)) {
      throw new CliError(
        `the config file ${path} has an unknown key '${key}' (known: ${Object.keys(FIELDS).join(', ')})`,
      );
    }
    if (raw === null) continue;
    out[key] = parseValue(key, field.kind, raw, path);
  }
  return out;
}

/**
 * Resolve the configuration: `flags` (commander's parsed options, strings or numbers) over the
 * environment over the file (`flags.config`, else `TWINLOG_CONFIG`) over {@link DEFAULT_CONFIG}.
 *
 * @example
 * resolveConfig({ kafka: '127.0.0.1:19092' }, process.env).kafka // '127.0.0.1:19092'
 * @throws CliError for a malformed value or an unreadable or unknown-keyed file.
 */
export function resolveConfig(flags: Readonly<Record<string, unknown>>, env: NodeJS.ProcessEnv): CliConfig {
  const configPath = (flags['config'] as string | undefined) ?? env['TWINLOG_CONFIG'];
  const file = configPath === undefined || configPath === '' ? {} : readConfigFile(configPath);
  const out: Record<string, unknown> = { ...DEFAULT_CONFIG, ...file };
  for (const [name, field] of Object.entries(FIELDS)) {
    const fromEnv = field.env.map((e) => env[e]).find((v) => v !== undefined && v !== '');
    if (fromEnv !== undefined)
      out[name] = parseValue(name, field.kind, fromEnv, `environment ${field.env.find((e) => env[e] === fromEnv)!}`);
    const flag = flags[name];
    if (flag !== undefined)
      out[name] = parseValue(name, field.kind, flag, `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  return out as unknown as CliConfig;
}
