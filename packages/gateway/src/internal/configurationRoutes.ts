/**
 * The REST routes of IoT Hub's automatic device configurations (docs/iot-hub.md, "Automatic
 * configurations"), as the `Registry` of `azure-iothub` calls them (api-version 2021-04-12), over a
 * {@link ConfigurationService} the gateway is given (in `twinlog serve`, the configuration manager
 * of `@twinlog/fleet`, kept in the read model's file):
 *
 * - `PUT /configurations/{id}` (`addConfiguration`, `updateConfiguration`): create, or replace with
 *   `If-Match: "<etag>"` (412 `PreconditionFailed` when stale; `*` matches any). Answers 200 with the
 *   configuration as `GET` does. The read-only members the SDK sends back on an update (`etag`,
 *   times, metric results) are ignored; `metrics.queries` is kept. As on IoT Hub the content of an
 *   existing configuration cannot change (400 `ArgumentInvalid`: delete it and create a new one),
 *   and only `deviceContent` is applied (module content is refused with 400).
 * - `GET /configurations/{id}` (`getConfiguration`): 200, or 404 `ConfigurationNotFound`.
 * - `GET /configurations[?top=n]` (`getConfigurations`): every configuration, highest priority
 *   first (no paging, as on IoT Hub); `top` bounds the count.
 * - `DELETE /configurations/{id}` (`removeConfiguration`): 204; an `If-Match` other than `*` must
 *   name the current etag (412).
 *
 * The configuration JSON is IoT Hub's: `id`, `schemaVersion`, `labels`, `content.deviceContent`,
 * `targetCondition`, `priority`, `etag`, `createdTimeUtc`, `lastUpdatedTimeUtc`, `systemMetrics`
 * (`targetedCount`, `appliedCount`: queries and results) and `metrics` (queries and results).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPlainObject, jsonEquals, TwinlogError, type JsonObject } from '@twinlog/core';
import { GatewayError, sendJson } from './iotHubError.ts';
import { readJsonBody } from './readJsonBody.ts';
import { ifMatchHeader } from './requestHeaders.ts';

/** A configuration as the gateway hands it to the {@link ConfigurationService} (the body of `PUT /configurations/{id}`, checked). */
export interface ConfigurationDefinition {
  readonly id: string;
  readonly schemaVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** `properties.desired.<path>` → value (`null` removes). */
  readonly content: { readonly deviceContent: Readonly<Record<string, unknown>> };
  readonly targetCondition: string;
  readonly priority: number;
  readonly metrics?: { readonly queries: Readonly<Record<string, string>> };
}

/** A configuration as the {@link ConfigurationService} describes it (the shape of `@twinlog/fleet`'s `ConfigurationView`). */
export interface ConfigurationDocument extends ConfigurationDefinition {
  readonly schemaVersion: string;
  readonly etag: string;
  readonly createdTimeUtc: string;
  readonly lastUpdatedTimeUtc: string;
  readonly systemMetrics: {
    readonly queries: Readonly<Record<string, string>>;
    readonly results: Readonly<Record<string, number>>;
  };
  readonly metrics: {
    readonly queries: Readonly<Record<string, string>>;
    readonly results: Readonly<Record<string, number>>;
  };
}

/**
 * What the gateway's configuration routes need (`RestGatewayOptions.configurations`).
 * `@twinlog/fleet`'s configuration manager (`createConfigurationManager`) has this shape and is what
 * `twinlog serve` passes; errors are twinlog codes (`CONFIGURATION_NOT_FOUND` 404,
 * `CONFIGURATION_PRECONDITION_FAILED` 412, `CONFIGURATION_INVALID` and `QUERY_*` 400).
 *
 * @example
 * const gateway = createRestGateway({ log, hubName, policies, physicalNow: Date.now,
 *   configurations: createConfigurationManager({ readModel, log, physicalNow: Date.now }) })
 */
export interface ConfigurationService {
  /** Create or replace; with `ifMatch` (an etag, or `*`) only if the stored one still has it. */
  put(config: ConfigurationDefinition, options?: { readonly ifMatch?: string }): unknown;
  get(id: string): Promise<ConfigurationDocument>;
  /** Highest priority first, at most `top`. */
  list(top?: number): Promise<readonly ConfigurationDocument[]>;
  delete(id: string): unknown;
}

/** What a configuration route handler gets from the gateway (a subset of its request context). */
export interface ConfigurationRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The decoded configuration id (`''` for the list). */
  readonly id: string;
}

export interface ConfigurationRoutes {
  putConfiguration(ctx: ConfigurationRequest): Promise<void>;
  getConfiguration(ctx: ConfigurationRequest): Promise<void>;
  listConfigurations(ctx: ConfigurationRequest): Promise<void>;
  deleteConfiguration(ctx: ConfigurationRequest): Promise<void>;
}

const invalid = (message: string): never => {
  throw new GatewayError('ARGUMENT_INVALID', message);
};

/** The configuration as IoT Hub answers it. */
export function configurationJson(c: ConfigurationDocument): Record<string, unknown> {
  return {
    id: c.id,
    schemaVersion: c.schemaVersion,
    labels: c.labels ?? {},
    content: { deviceContent: c.content.deviceContent, modulesContent: {}, moduleContent: {} },
    targetCondition: c.targetCondition,
    createdTimeUtc: c.createdTimeUtc,
    lastUpdatedTimeUtc: c.lastUpdatedTimeUtc,
    priority: c.priority,
    systemMetrics: c.systemMetrics,
    metrics: c.metrics,
    etag: c.etag,
  };
}

const isEmpty = (v: unknown): boolean =>
  v === undefined || v === null || (isPlainObject(v) && Object.keys(v).length === 0);

/**
 * The body of `PUT /configurations/{id}` as a {@link ConfigurationDefinition}: the id of the path
 * (a different `id` in the body is refused), priority 0 when absent, read-only members dropped.
 * The service checks the rest (id syntax, condition, content paths and values, metric queries).
 */
export function configurationDefinitionOf(id: string, body: JsonObject): ConfigurationDefinition {
  if (body['id'] !== undefined && body['id'] !== id) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the value as sent, whatever it is
    const got = String(body['id']);
    invalid(`The body's id ${got} is not the id of the path ${id}`);
  }
  const content = body['content'];
  if (!isPlainObject(content)) invalid('content.deviceContent is required');
  const c = content as JsonObject;
  if (!isEmpty(c['modulesContent']) || !isEmpty(c['moduleContent'])) {
    invalid(
      'twinlog applies deviceContent only: modulesContent and moduleContent are not supported (no modules, no IoT Edge)',
    );
  }
  const deviceContent = c['deviceContent'];
  if (!isPlainObject(deviceContent)) invalid('content.deviceContent must be an object');
  const targetCondition = body['targetCondition'];
  if (typeof targetCondition !== 'string')
    invalid('targetCondition must be a string (a condition on tags or deviceId, or *)');
  const priority = body['priority'] ?? 0;
  if (typeof priority !== 'number') invalid('priority must be a number');
  const schemaVersion = body['schemaVersion'];
  if (schemaVersion !== undefined && schemaVersion !== null && typeof schemaVersion !== 'string')
    invalid('schemaVersion must be a string');
  const labels = body['labels'];
  if (labels !== undefined && labels !== null) {
    if (!isPlainObject(labels) || Object.values(labels as object).some((v) => typeof v !== 'string'))
      invalid('labels must map names to strings');
  }
  const metrics = body['metrics'];
  let queries: unknown;
  if (metrics !== undefined && metrics !== null) {
    if (!isPlainObject(metrics)) invalid('metrics must be an object');
    queries = (metrics as JsonObject)['queries'];
    if (
      queries !== undefined &&
      queries !== null &&
      (!isPlainObject(queries) || Object.values(queries as object).some((q) => typeof q !== 'string'))
    ) {
      invalid('metrics.queries must map names to queries');
    }
  }
  return {
    id,
    ...(typeof schemaVersion === 'string' ? { schemaVersion } : {}),
    ...(isPlainObject(labels) ? { labels: labels as Record<string, string> } : {}),
    content: { deviceContent: deviceContent as Record<string, unknown> },
    targetCondition: targetCondition as string,
    priority: priority as number,
    ...(isPlainObject(queries) && Object.keys(queries).length > 0
      ? { metrics: { queries: queries as Record<string, string> } }
      : {}),
  };
}

/**
 * The configuration route handlers over a {@link ConfigurationService}; without one every route
 * answers 404 `NotFound` (the gateway serves no configurations).
 *
 * @example
 * const routes = createConfigurationRoutes({ configurations: manager, maxBodyBytes: 256 * 1024 })
 * await routes.getConfiguration({ req, res, id: 'fw-2' })
 */
export function createConfigurationRoutes({
  configurations,
  maxBodyBytes,
}: {
  readonly configurations: ConfigurationService | undefined;
  readonly maxBodyBytes: number;
}): ConfigurationRoutes {
  const service = (): ConfigurationService => {
    if (configurations === undefined) throw new GatewayError('NOT_FOUND', 'This gateway serves no configurations');
    return configurations;
  };
  /** The stored configuration, or `undefined` when there is none (other failures propagate). */
  const existing = async (s: ConfigurationService, id: string): Promise<ConfigurationDocument | undefined> => {
    try {
      return await s.get(id);
    } catch (e) {
      if ((e as { code?: unknown })?.code === 'CONFIGURATION_NOT_FOUND') return undefined;
      throw e;
    }
  };
  return {
    async putConfiguration({ req, res, id }) {
      const s = service();
      const definition = configurationDefinitionOf(id, await readJsonBody(req, { maxBytes: maxBodyBytes }));
      const ifMatch = ifMatchHeader(req);
      const before = await existing(s, id);
      if (before !== undefined && !jsonEquals(before.content.deviceContent, definition.content.deviceContent)) {
        // IoT Hub: "Configuration identifier and Content cannot be updated"
        if (ifMatch === undefined || ifMatch === '*' || ifMatch === before.etag)
          invalid(`The content of configuration ${id} cannot be updated: delete it and create a new one`);
      }
      await s.put(definition, ifMatch === undefined ? {} : { ifMatch });
      sendJson(res, 200, configurationJson(await s.get(id)));
    },
    async getConfiguration({ res, id }) {
      sendJson(res, 200, configurationJson(await service().get(id)));
    },
    async listConfigurations({ req, res }) {
      const s = service();
      const raw = new URL(req.url ?? '/', 'http://gateway').searchParams.get('top');
      let top: number | undefined;
      if (raw !== null) {
        if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) invalid('top must be a positive whole number');
        top = Number(raw);
      }
      sendJson(res, 200, (await s.list(top)).map(configurationJson));
    },
    async deleteConfiguration({ req, res, id }) {
      const s = service();
      const ifMatch = ifMatchHeader(req);
      const current = await s.get(id); // 404 ConfigurationNotFound for an unknown id
      if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== current.etag) {
        throw new TwinlogError(
          'CONFIGURATION_PRECONDITION_FAILED',
          `configuration ${id} does not have etag ${ifMatch}`,
          { details: { id } },
        );
      }
      await s.delete(id);
      res.writeHead(204).end();
    },
  };
}
