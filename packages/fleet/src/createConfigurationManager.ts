/**
 * Automatic device configurations (docs/iot-hub.md, "Jobs and automatic configurations") over the read model: a configuration has a
 * target condition on tags (or `deviceId`, or `*`), a priority, desired content, and metrics. For
 * each device the targeting configuration with the highest priority wins (a tie goes to the newest
 * configuration); its content is written to the device's desired properties through the log, and
 * when a device stops being targeted, or another configuration wins, the old content's settings
 * are removed (`null`) in the same write as the new winner's content.
 *
 * Twin view: each device shows `configurations.<id>.status`, `Targeted` or `Applied` (docs/iot-hub.md "The twin document", "Automatic configurations";
 * the casing the reference's queries test), so metric queries such as
 * `SELECT deviceId FROM devices WHERE configurations.[[fw]].status = 'Applied'` work in the read
 * model. System metrics: `targetedCount` (devices the condition targets) and `appliedCount`
 * (devices whose content this configuration wrote); custom metrics count the rows of their query.
 *
 * Re-evaluation: after every `put` and `delete`, for the devices of every committed read-model
 * batch (so a tags change re-targets the device within one batch), and on a timer (default every 5
 * minutes, docs/iot-hub.md "Automatic configurations"). Writing content changes the twin, which comes back as a read-model update; the
 * winner and the applied content are then unchanged, so nothing more is written.
 *
 * State, in the read model's SQLite file: `configurations` (definitions, etag, order of creation)
 * and `configuration_applied(device_id, config_id, etag, patch)`: whose content a device has (`etag`
 * is a digest of that content, so a change of priority, labels, condition or metrics that keeps the
 * same winner writes nothing to its twins), and the patch that removes it. Statuses live in the read model's `twin_configurations`.
 */
import { createHash } from 'node:crypto';

/** A JSON value as configuration content holds it (`null` removes). */
type JsonValue = Json | Patch | null;
import { createTwinClient } from '@twinlog/client';
import { isPlainObject, validatePatch, type Json, type Log, type Patch } from '@twinlog/core';
import { compileWhere, parseQuery, referencedPaths } from '@twinlog/query';
import type { ReadModel } from './createReadModel.ts';
import { fleetError } from './fleetError.ts';

/** A configuration as `PUT /configurations/{id}` takes it (docs/iot-hub.md "Automatic configurations"). */
export interface Configuration {
  readonly id: string;
  readonly schemaVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** `deviceContent` maps `properties.desired.<path>` to a value (an object, or a leaf; `null` removes). */
  readonly content: { readonly deviceContent: Readonly<Record<string, JsonValue>> };
  /** A WHERE condition over tags and `deviceId`, or `*` (every device). */
  readonly targetCondition: string;
  readonly priority: number;
  /** Up to 5 custom metrics: name → query. */
  readonly metrics?: { readonly queries: Readonly<Record<string, string>> };
}

/** A configuration with its etag, times and metrics, as `GET /configurations/{id}` returns it. */
export interface ConfigurationView extends Configuration {
  readonly schemaVersion: string;
  readonly etag: string;
  readonly createdTimeUtc: string;
  readonly lastUpdatedTimeUtc: string;
  readonly systemMetrics: {
    readonly queries: Readonly<Record<string, string>>;
    readonly results: { readonly targetedCount: number; readonly appliedCount: number };
  };
  readonly metrics: {
    readonly queries: Readonly<Record<string, string>>;
    readonly results: Readonly<Record<string, number>>;
  };
}

/** IoT Hub's limit of configurations per hub (paid tiers). */
export const MAX_CONFIGURATIONS = 100;

export interface ConfigurationManagerOptions {
  readonly readModel: ReadModel;
  readonly log: Log;
  readonly physicalNow: () => number;
  /** The writes' `actor` (default `twinlog-configurations`). */
  readonly actor?: string;
  /** Full re-evaluation period in the background, ms (default 300 000: the 5 minutes of docs/iot-hub.md "Automatic configurations"). */
  readonly intervalMs?: number;
}

export interface ConfigurationManager {
  /**
   * Create or replace a configuration. With `ifMatch` (its etag, or `*`) an existing one is
   * replaced only if it still has that etag.
   * @throws {TwinlogError} `CONFIGURATION_INVALID`, `CONFIGURATION_PRECONDITION_FAILED`, `QUERY_*`.
   */
  put(config: Configuration, options?: { readonly ifMatch?: string }): ConfigurationView;
  /** @throws {TwinlogError} `CONFIGURATION_NOT_FOUND` */
  get(id: string): Promise<ConfigurationView>;
  /** Configurations by priority (highest first), at most `top`. */
  list(top?: number): Promise<ConfigurationView[]>;
  /** @throws {TwinlogError} `CONFIGURATION_NOT_FOUND` */
  delete(id: string): void;
  /**
   * Re-evaluate devices (default: every device a configuration targets or touched) now: statuses,
   * and content writes where the winner or its etag changed. Resolves with the devices written.
   */
  reconcile(deviceIds?: readonly string[]): Promise<{ readonly written: readonly string[] }>;
  /** Follow the read model's updates and the timer. */
  start(): void;
  /** Stop following; waits for the evaluation in progress. */
  stop(): Promise<void>;
}

interface ConfigRow {
  id: string;
  json: string;
  etag: string;
  seq: number;
  created: number;
  updated: number;
}

interface Compiled {
  readonly row: ConfigRow;
  readonly config: Configuration;
  readonly matches: (twin: object) => boolean;
  readonly patch: Patch;
  readonly removal: Patch;
  /** Digest of `patch`: what `configuration_applied.etag` records. */
  readonly contentKey: string;
}

const CONFIG_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const STATUS = { targeted: 'Targeted', applied: 'Applied' } as const;
const iso = (ms: number): string => new Date(ms).toISOString();

/** `properties.desired.a.b` → `['a', 'b']`; `undefined` for any other path. */
function desiredPath(key: string): string[] | undefined {
  const parts = key.split('.');
  if (parts.length < 3 || parts[0] !== 'properties' || parts[1] !== 'desired' || parts.slice(2).some((p) => p === ''))
    return undefined;
  return parts.slice(2);
}

/** Deep merge (b wins), for merge patches. */
function mergeInto(a: Patch, b: Patch): Patch {
  const out: Patch = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(v) ? mergeInto(prev, v) : v;
  }
  return out;
}

function patchOf(content: Configuration['content']): Patch {
  let patch: Patch = {};
  for (const [key, value] of Object.entries(content.deviceContent)) {
    const path = desiredPath(key)!;
    let node: JsonValue = value;
    for (let i = path.length - 1; i >= 0; i--) node = { [path[i]!]: node };
    patch = mergeInto(patch, node as Patch);
  }
  return patch;
}

/** The merge patch that removes what a content set: `null` at each content path (docs/iot-hub.md "Automatic configurations": settings are removed). */
function removalOf(content: Configuration['content']): Patch {
  let patch: Patch = {};
  for (const key of Object.keys(content.deviceContent)) {
    const path = desiredPath(key)!;
    let node: JsonValue = null;
    for (let i = path.length - 1; i >= 0; i--) node = { [path[i]!]: node };
    patch = mergeInto(patch, node as Patch);
  }
  return patch;
}

/**
 * Create the configuration manager over a read model's file.
 *
 * @example
 * const configs = createConfigurationManager({ readModel, log, physicalNow: Date.now })
 * configs.put({ id: 'fw-2', priority: 10, targetCondition: "tags.site = 'b'",
 *   content: { deviceContent: { 'properties.desired.firmware': { version: '2.0' } } },
 *   metrics: { queries: { current: "SELECT deviceId FROM devices WHERE properties.reported.firmware.version = '2.0'" } } })
 * await configs.reconcile()
 * (await configs.get('fw-2')).systemMetrics.results // { targetedCount: 40, appliedCount: 40 }
 * configs.start() // follow tag changes from now on
 */
export function createConfigurationManager({
  readModel,
  log,
  physicalNow,
  actor = 'twinlog-configurations',
  intervalMs = 300_000,
}: ConfigurationManagerOptions): ConfigurationManager {
  const db = readModel.db;
  db.exec(`
    CREATE TABLE IF NOT EXISTS configurations (id TEXT PRIMARY KEY, json TEXT NOT NULL, etag TEXT NOT NULL, seq INTEGER NOT NULL,
      created INTEGER NOT NULL, updated INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS configuration_applied (device_id TEXT PRIMARY KEY, config_id TEXT NOT NULL, etag TEXT NOT NULL, patch TEXT NOT NULL) WITHOUT ROWID;
  `);
  const client = createTwinClient({ log, physicalNow, actor });

  const validate = (config: Configuration): void => {
    const invalid = (message: string): never => {
      throw fleetError('CONFIGURATION_INVALID', message, { details: { id: (config as { id?: unknown })?.id } });
    };
    if (!isPlainObject(config)) invalid('a configuration must be an object');
    if (typeof config.id !== 'string' || !CONFIG_ID.test(config.id))
      invalid('id must be 1 to 128 lowercase letters, digits, . _ or -');
    if (!Number.isSafeInteger(config.priority) || config.priority < 0)
      invalid('priority must be a whole number of at least 0');
    if (typeof config.targetCondition !== 'string' || config.targetCondition.trim() === '')
      invalid('targetCondition must be a condition or *');
    if (config.targetCondition.trim() !== '*') {
      const q = parseQuery(`SELECT * FROM devices WHERE ${config.targetCondition}`);
      const bad = referencedPaths(q, 'where').find((p) => p[0] !== 'tags' && !(p.length === 1 && p[0] === 'deviceId'));
      if (bad !== undefined) invalid(`a device configuration targets tags or deviceId only, not ${bad.join('.')}`);
    }
    if (!isPlainObject(config.content) || !isPlainObject(config.content.deviceContent))
      invalid('content.deviceContent must be an object');
    const keys = Object.keys(config.content.deviceContent);
    if (keys.length === 0) invalid('content.deviceContent is empty');
    for (const k of keys)
      if (desiredPath(k) === undefined) invalid(`content key ${k} must be properties.desired.<path>`);
    const r = validatePatch('desired', patchOf(config.content));
    if (!r.ok) throw r.error;
    const queries = config.metrics?.queries ?? {};
    if (!isPlainObject(queries) || Object.keys(queries).length > 5) invalid('at most 5 custom metrics');
    for (const [name, text] of Object.entries(queries)) {
      if (typeof text !== 'string') invalid(`metric ${name} must be a query`);
      parseQuery(text);
    }
  };

  const rows = (): ConfigRow[] => db.prepare('SELECT * FROM configurations ORDER BY seq').all() as ConfigRow[];
  const compile = (row: ConfigRow): Compiled => {
    const config = JSON.parse(row.json) as Configuration;
    const matches =
      config.targetCondition.trim() === '*'
        ? () => true
        : compileWhere(parseQuery(`SELECT * FROM devices WHERE ${config.targetCondition}`));
    const patch = patchOf(config.content);
    const contentKey = createHash('sha256').update(JSON.stringify(patch)).digest('base64').slice(0, 16);
    return { row, config, matches, patch, removal: removalOf(config.content), contentKey };
  };

  const statusOf = db.prepare<[string], { config_id: string; status: string }>(
    'SELECT config_id, status FROM twin_configurations WHERE device_id = ?',
  );
  const appliedOf = db.prepare<[string], { config_id: string; etag: string; patch: string }>(
    'SELECT config_id, etag, patch FROM configuration_applied WHERE device_id = ?',
  );

  let evaluating: Promise<unknown> = Promise.resolve();
  /** Evaluations run one at a time (they write and read the same rows). */
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = evaluating.then(f, f);
    evaluating = p.catch(() => {});
    return p;
  };

  const reconcileDevice = async (deviceId: string, configs: readonly Compiled[]): Promise<boolean> => {
    const twin = readModel.getTwin(deviceId);
    const current = new Map(statusOf.all(deviceId).map((s) => [s.config_id, s.status]));
    const applied = appliedOf.get(deviceId);
    // device configurations target device twins only, never a module twin `{deviceId}/{moduleId}`
    // (docs/iot-hub.md, "Module identities and module twins"), which the read model's updates name too
    const targeting =
      twin === undefined || twin['moduleId'] !== undefined ? [] : configs.filter((c) => c.matches(twin));
    let winner: Compiled | undefined;
    for (const c of targeting) {
      if (
        winner === undefined ||
        c.config.priority > winner.config.priority ||
        (c.config.priority === winner.config.priority && c.row.seq > winner.row.seq)
      ) {
        winner = c;
      }
    }
    let wrote = false;
    if (
      twin !== undefined &&
      (winner?.row.id !== applied?.config_id || (winner !== undefined && winner.contentKey !== applied?.etag))
    ) {
      // remove what the previous content set, then the winner's content (which wins where both set a key)
      const removal = applied === undefined ? {} : (JSON.parse(applied.patch) as Patch);
      const patch = winner === undefined ? removal : mergeInto(removal, winner.patch);
      if (Object.keys(patch).length > 0) await client.mergeDesired(deviceId, patch);
      if (winner === undefined) db.prepare('DELETE FROM configuration_applied WHERE device_id = ?').run(deviceId);
      else {
        db.prepare(
          'INSERT INTO configuration_applied (device_id, config_id, etag, patch) VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET config_id = excluded.config_id, etag = excluded.etag, patch = excluded.patch',
        ).run(deviceId, winner.row.id, winner.contentKey, JSON.stringify(winner.removal));
      }
      wrote = true;
    } else if (twin === undefined && applied !== undefined) {
      db.prepare('DELETE FROM configuration_applied WHERE device_id = ?').run(deviceId);
    }
    const wanted = new Map<string, string>();
    for (const c of targeting) wanted.set(c.row.id, c === winner ? STATUS.applied : STATUS.targeted);
    for (const [id, s] of wanted) if (current.get(id) !== s) readModel.setConfigurationStatus(deviceId, id, s);
    for (const id of current.keys()) if (!wanted.has(id)) readModel.setConfigurationStatus(deviceId, id, undefined);
    return wrote;
  };

  /** Every device a configuration targets now or had touched. */
  const affected = async (configs: readonly Compiled[]): Promise<string[]> => {
    const ids = new Set<string>(
      db
        .prepare('SELECT DISTINCT device_id FROM twin_configurations UNION SELECT device_id FROM configuration_applied')
        .pluck()
        .all() as string[],
    );
    for (const c of configs) {
      const where = c.config.targetCondition.trim() === '*' ? '' : ` WHERE ${c.config.targetCondition}`;
      for (const r of (await readModel.queryAll(`SELECT deviceId FROM devices${where}`)).rows)
        ids.add(r['deviceId'] as string);
    }
    return [...ids].sort();
  };

  const reconcile = (deviceIds?: readonly string[]): Promise<{ written: string[] }> =>
    serial(async () => {
      const configs = rows().map(compile);
      const ids = deviceIds ?? (await affected(configs));
      const written: string[] = [];
      for (const id of ids) if (await reconcileDevice(id, configs)) written.push(id);
      return { written };
    });

  /** A stored configuration as IoT Hub answers it, with the metrics given. */
  const shape = (
    config: Configuration,
    row: ConfigRow,
    systemMetrics: ConfigurationView['systemMetrics'],
    results: Record<string, number>,
  ): ConfigurationView => ({
    ...config,
    schemaVersion: config.schemaVersion ?? '1.0',
    etag: row.etag,
    createdTimeUtc: iso(row.created),
    lastUpdatedTimeUtc: iso(row.updated),
    systemMetrics,
    metrics: { queries: config.metrics?.queries ?? {}, results },
  });

  const view = async (row: ConfigRow): Promise<ConfigurationView> => {
    const config = JSON.parse(row.json) as Configuration;
    const counts = db
      .prepare('SELECT status, COUNT(*) AS n FROM twin_configurations WHERE config_id = ? GROUP BY status')
      .all(row.id) as { status: string; n: number }[];
    const applied = counts.find((c) => c.status === STATUS.applied)?.n ?? 0;
    const targeted = counts.reduce((n, c) => n + c.n, 0);
    const results: Record<string, number> = {};
    for (const [name, text] of Object.entries(config.metrics?.queries ?? {}))
      results[name] = (await readModel.queryAll(text)).rows.length;
    const sys = (status: string): string =>
      `SELECT deviceId FROM devices WHERE configurations.[[${row.id}]].status = '${status}'`;
    return shape(
      config,
      row,
      {
        queries: {
          targetedCount: `${sys(STATUS.targeted)} OR configurations.[[${row.id}]].status = '${STATUS.applied}'`,
          appliedCount: sys(STATUS.applied),
        },
        results: { targetedCount: targeted, appliedCount: applied },
      },
      results,
    );
  };

  const getRow = (id: string): ConfigRow => {
    const row = db.prepare('SELECT * FROM configurations WHERE id = ?').get(id) as ConfigRow | undefined;
    if (row === undefined)
      throw fleetError('CONFIGURATION_NOT_FOUND', `no configuration ${String(id)}`, { details: { id } });
    return row;
  };

  let unsubscribe: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const pending = new Set<string>();
  let draining = false;
  const drain = (): void => {
    if (draining || pending.size === 0) return;
    draining = true;
    const ids = [...pending];
    pending.clear();
    reconcile(ids)
      .catch(() => {
        for (const id of ids) pending.add(id); // the log was unavailable: retried with the next update or tick
      })
      .finally(() => {
        draining = false;
        drain();
      });
  };
  let running = false;

  return {
    put(config, { ifMatch } = {}) {
      validate(config);
      const now = physicalNow();
      const existing = db.prepare('SELECT * FROM configurations WHERE id = ?').get(config.id) as ConfigRow | undefined;
      if (
        ifMatch !== undefined &&
        ifMatch !== '*' &&
        ifMatch !== '"*"' &&
        existing?.etag !== ifMatch.replace(/^"(.*)"$/, '$1')
      ) {
        throw fleetError(
          'CONFIGURATION_PRECONDITION_FAILED',
          `configuration ${config.id} does not have etag ${ifMatch}`,
          { details: { id: config.id } },
        );
      }
      if (
        existing === undefined &&
        (db.prepare('SELECT COUNT(*) FROM configurations').pluck().get() as number) >= MAX_CONFIGURATIONS
      ) {
        throw fleetError(
          'QUOTA_EXCEEDED',
          `a hub has at most ${MAX_CONFIGURATIONS} configurations (docs/iot-hub.md, "Limits"): delete one first`,
          { details: { id: config.id } },
        );
      }
      const json = JSON.stringify(config);
      const etag = createHash('sha256')
        .update(`${json}\u0000${now}\u0000${existing?.etag ?? ''}`)
        .digest('base64')
        .slice(0, 12);
      const seq = ((db.prepare('SELECT MAX(seq) AS m FROM configurations').get() as { m: number | null }).m ?? 0) + 1;
      db.prepare(
        'INSERT INTO configurations (id, json, etag, seq, created, updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json, etag = excluded.etag, updated = excluded.updated',
      ).run(config.id, json, etag, seq, now, now);
      if (running) void reconcile().catch(() => {});
      return shape(config, getRow(config.id), { queries: {}, results: { targetedCount: 0, appliedCount: 0 } }, {});
    },
    get: (id) => view(getRow(id)),
    async list(top = 1000) {
      const all = rows().sort(
        (a, b) =>
          (JSON.parse(b.json) as Configuration).priority - (JSON.parse(a.json) as Configuration).priority ||
          b.seq - a.seq,
      );
      return Promise.all(all.slice(0, top).map(view));
    },
    delete(id) {
      getRow(id);
      db.prepare('DELETE FROM configurations WHERE id = ?').run(id);
      if (running) void reconcile().catch(() => {});
    },
    reconcile,
    start() {
      if (running) return;
      running = true;
      unsubscribe = readModel.onUpdate((u) => {
        for (const id of u.upserted) pending.add(id);
        for (const id of u.removed) pending.add(id);
        drain();
      });
      timer = setInterval(() => void reconcile().catch(() => {}), intervalMs);
      timer.unref();
      void reconcile().catch(() => {});
    },
    async stop() {
      running = false;
      unsubscribe?.();
      clearInterval(timer);
      await evaluating;
      await client.close();
    },
  };
}
