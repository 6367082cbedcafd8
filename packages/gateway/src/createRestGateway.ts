/**
 * The IoT Hub-compatible HTTPS REST gateway (docs/iot-hub.md, "REST"): the identity registry
 * (`/devices/{id}`), device twins (`/twins/{id}`) and queries (`/devices/query`), behind service
 * SAS authentication, answering in IoT Hub's formats. Each route wraps one library call (the
 * twinlog client, `@twinlog/query`); every failure is mapped to IoT Hub's error body in one place
 * (`internal/iotHubError.ts`).
 *
 * What a request goes through, in order (each step answers before the next one reads anything):
 *
 * 1. **Authentication** (`internal/verifyServiceSas.ts`): signature, `se` by the rule shared with
 *    MQTT (expired, or more than `maxTokenLifetimeMs` ahead: refused), `sr` on this hub. Every
 *    failure is the same 401 `IotHubUnauthorizedAccess;Unauthorized`; which check failed goes only
 *    to {@link GATEWAY_REQUEST_CHANNEL} (`detail`), for a debug log.
 * 2. **Scope**: the token's `sr` must cover what the request addresses (`internal/sasToken.ts`):
 *    `<hub>` covers everything, `<hub>/devices/{id}` only that device's identity and twin; queries
 *    and every other hub-wide path need `<hub>`. Refused with the same 401.
 * 3. **Admission** (`rateLimit`): a token bucket per policy, and one per policy and device for
 *    device-scoped tokens; an empty bucket answers 429 `ThrottlingException` (docs/iot-hub.md "Throttling").
 * 4. Route, rights (403), api-version (400).
 * 5. **Body** (`internal/readJsonBody.ts`): `application/json` in UTF-8 only (400
 *    `InvalidContentEncodingOrType`), at most `maxBodyBytes` (413 `MessageTooLarge`, from
 *    `Content-Length` before reading or while reading), valid UTF-8, a JSON object.
 *
 * Any answer given before the request's body was read to the end carries `Connection: close`
 * and the connection is closed after it (Node ends and destroys the socket), so the unread bytes
 * never hold up a next request on the same connection.
 *
 * Decisions recorded here:
 *
 * - **A query over 8,192 characters answers 412 `PreconditionFailed`**, not 400: that is what a real
 *   hub answered (docs/iot-hub.md, "Limits"), and the SDKs map 412 to `InvalidEtagError` either way.
 * - **`x-twinlog-freshness` waits at most `freshnessWaitMs`** (default 2 s), then answers 504
 *   `GatewayTimeout` (retryable), so a forged token far beyond the log's end holds a request for
 *   that long at most (and each such request costs a token of the policy's bucket).
 * - **twinlog's scope check is stricter than IoT Hub's**: whole path segments, case-sensitive ids
 *   (the hub compares the audience as a case-insensitive string prefix).
 * - **Twin writes take an `Idempotency-Key` header** (`internal/idempotencyKey.ts`); a write
 *   conditional on a specific etag without one gets a key derived from the etag and the body. A
 *   retry of an applied write answers 200 with the twin and `x-twinlog-duplicate-of: <writer>/<seq>`,
 *   and is not applied again (docs/idempotency.md). IoT Hub has no such header.
 */
import { createHash } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as TlsServerOptions } from 'node:https';
import { createTwinClient, type TwinClient, type TwinPatch, type WriteDecision } from '@twinlog/client';
import {
  isPlainObject,
  moduleTwinId,
  NEVER,
  parseTwinId,
  TwinlogError,
  type JsonObject,
  type Log,
  type Patch,
  type TwinDocument,
} from '@twinlog/core';
import { listTwins } from '@twinlog/projector';
import { evaluate, paginate, parseQuery } from '@twinlog/query';
import {
  createDeviceKeyStore,
  newDeviceKeys,
  withDeviceStatus,
  type DeviceKeys,
  type DeviceKeyStore,
  type DeviceStatus,
} from './internal/deviceKeyStore.ts';
import type { HttpLimits } from './internal/limits.ts';
import { listenOn, tlsServerOptions } from './internal/listenOn.ts';
import { GatewayError, iotHubCodeOf, sendError, sendJson } from './internal/iotHubError.ts';
import { IDEMPOTENCY_KEY_HEADER, idempotencyKeyOf } from './internal/idempotencyKey.ts';
import { createTokenBuckets } from './internal/tokenBuckets.ts';
import { readJsonBody } from './internal/readJsonBody.ts';
import { header, ifMatchHeader } from './internal/requestHeaders.ts';
import { createSnapshotReader } from './internal/snapshotReader.ts';
import { createDigitalTwinRoutes } from './internal/digitalTwinRoutes.ts';
import { createJobRoutes, type JobService } from './internal/jobRoutes.ts';
import { createConfigurationRoutes, type ConfigurationService } from './internal/configurationRoutes.ts';
import { trackWrites } from './internal/trackWrites.ts';
import {
  createAckedWrites,
  createIndexedReader,
  createReadPath,
  type TwinIndex,
  type TwinReader,
  type TwinReadOptions,
} from './internal/twinReader.ts';
import { DEFAULT_MAX_TOKEN_LIFETIME_MS, type SasTarget } from './internal/sasToken.ts';
import {
  assertScope,
  requireRight,
  scopedDeviceOf,
  verifyServiceSas,
  type PolicyRight,
  type Principal,
  type SharedAccessPolicy,
} from './internal/verifyServiceSas.ts';

export type { PolicyRight, SharedAccessPolicy } from './internal/verifyServiceSas.ts';
export { DEFAULT_MAX_TOKEN_LIFETIME_MS } from './internal/sasToken.ts';
export type { InputPosition, TwinIndex } from './internal/twinReader.ts';
export type {
  ConfigurationDefinition,
  ConfigurationDocument,
  ConfigurationService,
} from './internal/configurationRoutes.ts';
export type { JobService, JobServiceRequest, JobServiceState, JobServiceStatus } from './internal/jobRoutes.ts';

/** The api-versions the gateway accepts (docs/iot-hub.md "REST (back ends)": every value seen in the wild). */
export const API_VERSIONS: readonly string[] = [
  '2016-11-14',
  '2017-06-30',
  '2018-06-30',
  '2019-03-30',
  '2019-10-01',
  '2020-03-13',
  '2020-09-30',
  '2021-04-12',
];

/**
 * `diagnostics_channel` on which every answered request is published as a {@link GatewayRequestEvent}.
 *
 * @example
 * diagnostics_channel.subscribe(GATEWAY_REQUEST_CHANNEL, (e) => console.log(e))
 */
export const GATEWAY_REQUEST_CHANNEL = 'twinlog:gateway:request';
const requests = channel(GATEWAY_REQUEST_CHANNEL);

/**
 * What {@link GATEWAY_REQUEST_CHANNEL} publishes per request.
 *
 * @example
 * const e: GatewayRequestEvent = { method: 'PATCH', path: '/twins/dev1', status: 412, error: 'PreconditionFailed', route: 'twin', ms: 3.2 }
 */
export interface GatewayRequestEvent {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** IoT Hub error name of a failed request. */
  readonly error?: string;
  /** The policy that signed the request, once authenticated. */
  readonly policy?: string;
  /**
   * Why the gateway itself refused the request (e.g. which authentication check failed): for a
   * debug log only, never sent to the client. Carries no key and no signature.
   */
  readonly detail?: string;
  /** The route it took (`twin`, `device`, `query`, `job`, …), once routed; for a latency by route without the ids of the path. */
  readonly route?: string;
  /** From the request's arrival to the end of the answer, ms. */
  readonly ms: number;
}

/**
 * The admission limit of {@link RestGatewayOptions.rateLimit}: token buckets, refilled at a rate
 * per second up to a burst.
 *
 * @example
 * const rateLimit: RestRateLimit = { policyRatePerSecond: 50, policyBurst: 100 }
 */
export interface RestRateLimit {
  /** Requests per second per shared access policy, sustained (default 200). */
  readonly policyRatePerSecond?: number;
  /** Requests per policy at once (default 1000). */
  readonly policyBurst?: number;
  /**
   * Requests per second per device-scoped token (`sr=<hub>/devices/{id}`), counted per policy and
   * device, on top of the policy's bucket (default 50): a token handed out for one device cannot
   * use up its policy's rate.
   */
  readonly deviceRatePerSecond?: number;
  /** Requests per device-scoped token at once (default 100). */
  readonly deviceBurst?: number;
  /** Buckets kept per kind (policies; policy and device pairs); the least recently used is forgotten first (default 10 000). */
  readonly maxTrackedKeys?: number;
}

/** The defaults of {@link RestRateLimit}. */
export const DEFAULT_REST_RATE_LIMIT: Required<RestRateLimit> = Object.freeze({
  policyRatePerSecond: 200,
  policyBurst: 1000,
  deviceRatePerSecond: 50,
  deviceBurst: 100,
  maxTrackedKeys: 10_000,
});

/** Default of {@link RestGatewayOptions.maxBodyBytes}: 256 KiB (a twin is at most 8 KB tags + 32 KB desired, docs/iot-hub.md "Limits"). */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;

/** Default of {@link RestGatewayOptions.freshnessWaitMs}. */
export const DEFAULT_FRESHNESS_WAIT_MS = 2_000;

/**
 * Options of {@link createRestGateway}.
 *
 * @example
 * const options: RestGatewayOptions = {
 *   log, hubName: 'myhub.azure-devices.net', physicalNow: Date.now,
 *   policies: [{ name: 'iothubowner', key: ownerKeyBase64, rights: ['registryReadWrite', 'serviceConnect'] }],
 * }
 */
export interface RestGatewayOptions {
  readonly log: Log;
  /** The client writes go through (default: one over `log`, actor `gateway`). Not closed by the gateway unless it made it. */
  readonly client?: TwinClient;
  /** The hub's host name as in the connection string's `HostName`: tokens must name it in `sr`. */
  readonly hubName: string;
  readonly policies: readonly SharedAccessPolicy[];
  /** Physical clock, ms since the epoch: token expiry, tracking ids, the default client's HLC. */
  readonly physicalNow: () => number;
  /**
   * JSON file that keeps device keys across restarts (see README: keys are the only identity state
   * not in the log). Default: memory only.
   */
  readonly registryFile?: string;
  /** A device key store to share with the MQTT gateway (`createDeviceKeyStore`); overrides `registryFile`. */
  readonly deviceKeys?: DeviceKeyStore;
  /**
   * Whether a device is connected now, e.g. the MQTT gateway's `isConnected`: twins and identities
   * then show `connectionState: 'Connected'`. Default: every device `Disconnected`.
   */
  readonly isConnected?: (deviceId: string) => boolean;
  /**
   * How far after now a token's `se` may lie, ms (default {@link DEFAULT_MAX_TOKEN_LIFETIME_MS},
   * 365 days). The MQTT gateway applies the same rule (`checkSasExpiry`); give both the same value.
   */
  readonly maxTokenLifetimeMs?: number;
  /** Largest request body, bytes (default {@link DEFAULT_MAX_BODY_BYTES}); larger ones get 413. */
  readonly maxBodyBytes?: number;
  /**
   * Admission limit per policy (and per device-scoped token): 429 `ThrottlingException` when over
   * (default {@link DEFAULT_REST_RATE_LIMIT}; `false` turns it off). Buckets refill on `physicalNow`.
   */
  readonly rateLimit?: RestRateLimit | false;
  /**
   * Longest wait for a query's `x-twinlog-freshness`, ms (default {@link DEFAULT_FRESHNESS_WAIT_MS});
   * past it the query answers 504 `GatewayTimeout`.
   */
  readonly freshnessWaitMs?: number;
  /**
   * A query view (`@twinlog/fleet`'s `createReadModel`): `POST /devices/query` answers from it,
   * pushed down to its indexes and paged by its keyset tokens, and sends the answer's freshness
   * token in `x-twinlog-freshness`; a request may send one back in that header to wait until the
   * view reflects it. Default: every twin read from `twin.snapshots` and evaluated in memory.
   * Gotcha: the view evaluates conditions on the twin as the projector renders it, without the
   * identity fields this gateway adds to its twin responses (`connectionState`, `modelId`, …).
   */
  readonly queryView?: {
    query(
      text: string,
      options: {
        readonly pageSize?: number | undefined;
        readonly continuation?: string | undefined;
        readonly after?: string | undefined;
        /** Bound of the wait for `after`, ms (the gateway also stops waiting itself past it). */
        readonly timeoutMs?: number | undefined;
      },
    ): Promise<{
      readonly rows: readonly Record<string, unknown>[];
      readonly continuationToken: string | undefined;
      readonly freshness: string;
      readonly itemType: string;
    }>;
  };
  /**
   * An index of twins (`@twinlog/fleet`'s read model has this shape; pass the same one as
   * `queryView`): `GET /twins/{id}` and the twin answered after a `PATCH`/`PUT` are looked up in it
   * instead of reading `twin.snapshots`. A read after a write made through this gateway waits
   * until the index reflects the write (at most 2 s, then it reads `twin.snapshots`), so
   * read-your-writes holds (docs/reads.md). Default: `twin.snapshots` read per partition up to its
   * end at the time of the request.
   */
  readonly twinIndex?: TwinIndex;
  /**
   * The automatic configurations behind `/configurations/…` (docs/iot-hub.md, "Automatic
   * configurations"): `@twinlog/fleet`'s configuration manager has this shape (`twinlog serve`
   * passes it). Default: none, every configuration route answers 404 `NotFound`.
   */
  readonly configurations?: ConfigurationService;
  /**
   * The jobs behind `/jobs/v2/…` (docs/iot-hub.md, "Jobs"): `@twinlog/fleet`'s job runner has this
   * shape (`twinlog serve` passes it). Default: none, every job route answers 404 `NotFound`.
   */
  readonly jobs?: JobService;
}

/**
 * Options of {@link RestGateway.listen}.
 *
 * @example
 * await gateway.listen({ port: 443, tls: { key, cert } })
 */
export interface ListenOptions {
  readonly port: number;
  /** Interface to bind (default: all). */
  readonly host?: string;
  /** TLS key and certificate: HTTPS when given, else plain HTTP (behind a TLS terminator, or in tests). */
  readonly tls?: TlsServerOptions;
  /**
   * The listener's limits at the door over `DEFAULT_HTTP_LIMITS` (connection cap, header, request,
   * keep-alive and idle timeouts, and the TLS handshake timeout of an HTTPS listener).
   */
  readonly limits?: Partial<HttpLimits>;
}

/**
 * A listening gateway server.
 *
 * @example
 * const { port, close } = await gateway.listen({ port: 0, host: '127.0.0.1' })
 */
export interface ListeningGateway {
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * The gateway (see {@link createRestGateway}).
 *
 * @example
 * http.createServer(gateway.handler).listen(8080)
 */
export interface RestGateway {
  /** The request handler for `node:http` / `node:https` servers. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Serve on a port (HTTPS with `tls`). */
  listen(options: ListenOptions): Promise<ListeningGateway>;
  /** Close the client the gateway made (not a passed-in one, not the log). */
  close(): Promise<void>;
}

type Handler = (ctx: RequestContext) => Promise<void>;

interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly id: string;
  readonly principal: Principal;
}

interface Route {
  readonly method: string;
  /** `devices`, `twins`, `devices/query`, `digitaltwins` or a digital twin command. */
  readonly kind:
    | 'device'
    | 'twin'
    | 'query'
    | 'digitaltwin'
    | 'digitaltwin-command'
    | 'job'
    | 'job-cancel'
    | 'job-query'
    | 'configuration'
    | 'configurations'
    | 'module'
    | 'modules'
    | 'method';
  readonly rights: readonly PolicyRight[];
  readonly handle: Handler;
}

/**
 * Create the REST gateway.
 *
 * Routes (all need `?api-version=` from {@link API_VERSIONS} and a service SAS token):
 * `PUT/GET/DELETE /devices/{id}` (registry; `registryRead` for GET, `registryReadWrite` to
 * change), `GET/PATCH/PUT /twins/{id}` (`serviceConnect`, or the registry rights: read for GET,
 * read-write to change), `POST /devices/query` (`serviceConnect` or `registryRead`), and with the
 * `jobs` option `PUT/GET /jobs/v2/{id}`, `POST /jobs/v2/{id}/cancel`, `GET /jobs/v2/query`
 * (`registryReadWrite` to change, `registryRead` to read; `internal/jobRoutes.ts`). A token with
 * `sr=<hub>/devices/{id}` reaches only the first two for that id; see the module comment for the
 * order of checks and the limits.
 *
 * Gotchas: writes are commands decided by the projector, so a projector must run on the same log
 * (otherwise they fail with 504 `GatewayTimeout` after the client's decision timeout). Nothing is
 * appended before authentication, authorisation, api-version and body validation pass.
 *
 * @example
 * const gateway = createRestGateway({ log, hubName: 'localhost', physicalNow: Date.now,
 *   policies: [{ name: 'iothubowner', key, rights: ['registryReadWrite', 'serviceConnect'] }] })
 * const { port } = await gateway.listen({ port: 8443, tls: { key: tlsKey, cert: tlsCert } })
 */
export function createRestGateway({
  log,
  client: givenClient,
  hubName,
  policies,
  physicalNow,
  registryFile,
  deviceKeys,
  queryView,
  twinIndex,
  configurations,
  jobs,
  isConnected = () => false,
  maxTokenLifetimeMs = DEFAULT_MAX_TOKEN_LIFETIME_MS,
  maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
  rateLimit = {},
  freshnessWaitMs = DEFAULT_FRESHNESS_WAIT_MS,
}: RestGatewayOptions): RestGateway {
  // Twin reads (docs/reads.md): the index when given, with the positions of this gateway's own
  // writes (noted by the wrapped client) added to each read of the device; else twin.snapshots.
  const snapshotReader = createSnapshotReader(log);
  const acked = createAckedWrites();
  const ownClient = givenClient ?? createTwinClient({ log, physicalNow, actor: 'gateway' });
  const client = twinIndex === undefined ? ownClient : trackWrites(ownClient, acked);
  const twins: TwinReader =
    twinIndex === undefined
      ? snapshotReader
      : createReadPath(createIndexedReader(twinIndex, { fallback: snapshotReader }), acked);
  const keys = deviceKeys ?? createDeviceKeyStore(registryFile);
  const policyMap = new Map(policies.map((p) => [p.name, p]));
  const servers = new Set<Server>();
  const principals = new WeakMap<IncomingMessage, string>();
  /** The route each request took, for {@link GatewayRequestEvent.route}. */
  const routeKinds = new WeakMap<IncomingMessage, string>();
  const admit = createAdmission(rateLimit, physicalNow);
  const configurationRoutes = createConfigurationRoutes({ configurations, maxBodyBytes });
  const digitalTwins = createDigitalTwinRoutes({ client, twins, keys, maxBodyBytes });
  const jobRoutes = createJobRoutes({ jobs, maxBodyBytes });

  const routes: Route[] = [
    { method: 'GET', kind: 'device', rights: ['registryRead'], handle: getDevice },
    { method: 'PUT', kind: 'device', rights: ['registryReadWrite'], handle: putDevice },
    { method: 'DELETE', kind: 'device', rights: ['registryReadWrite'], handle: deleteDevice },
    // module identities (docs/iot-hub.md, "Module identities and module twins"); module twins are `twin` routes
    { method: 'GET', kind: 'module', rights: ['registryRead'], handle: getModule },
    { method: 'PUT', kind: 'module', rights: ['registryReadWrite'], handle: putModule },
    { method: 'DELETE', kind: 'module', rights: ['registryReadWrite'], handle: deleteModule },
    { method: 'GET', kind: 'modules', rights: ['registryRead'], handle: listModules },
    { method: 'GET', kind: 'twin', rights: ['serviceConnect', 'registryRead'], handle: getTwin },
    { method: 'PATCH', kind: 'twin', rights: ['serviceConnect', 'registryReadWrite'], handle: patchTwin },
    { method: 'PUT', kind: 'twin', rights: ['serviceConnect', 'registryReadWrite'], handle: putTwin },
    { method: 'POST', kind: 'query', rights: ['serviceConnect', 'registryRead'], handle: query },
    // the Plug and Play digital twin API (docs/iot-hub.md, "IoT Plug and Play"): a view of the twin
    {
      method: 'GET',
      kind: 'digitaltwin',
      rights: ['serviceConnect', 'registryRead'],
      handle: digitalTwins.getDigitalTwin,
    },
    {
      method: 'PATCH',
      kind: 'digitaltwin',
      rights: ['serviceConnect', 'registryReadWrite'],
      handle: digitalTwins.patchDigitalTwin,
    },
    { method: 'POST', kind: 'digitaltwin-command', rights: ['serviceConnect'], handle: digitalTwins.invokeCommand },
    // direct methods (`Client.invokeDeviceMethod`): refused by name, not as an unknown route
    { method: 'POST', kind: 'method', rights: ['serviceConnect'], handle: refuseDirectMethod },
    // jobs (docs/iot-hub.md, "Jobs"): hub-wide, IoT Hub's registry rights
    { method: 'PUT', kind: 'job', rights: ['registryReadWrite'], handle: jobRoutes.putJob },
    { method: 'GET', kind: 'job', rights: ['registryRead'], handle: jobRoutes.getJob },
    { method: 'POST', kind: 'job-cancel', rights: ['registryReadWrite'], handle: jobRoutes.cancelJob },
    { method: 'GET', kind: 'job-query', rights: ['registryRead'], handle: jobRoutes.queryJobs },
    { method: 'POST', kind: 'job-query', rights: ['registryRead'], handle: jobRoutes.queryJobs },
    // automatic configurations (docs/iot-hub.md, "Automatic configurations"): hub-wide, IoT Hub's registry rights
    {
      method: 'PUT',
      kind: 'configuration',
      rights: ['registryReadWrite'],
      handle: configurationRoutes.putConfiguration,
    },
    { method: 'GET', kind: 'configuration', rights: ['registryRead'], handle: configurationRoutes.getConfiguration },
    {
      method: 'DELETE',
      kind: 'configuration',
      rights: ['registryReadWrite'],
      handle: configurationRoutes.deleteConfiguration,
    },
    { method: 'GET', kind: 'configurations', rights: ['registryRead'], handle: configurationRoutes.listConfigurations },
  ];

  async function getDevice({ res, id }: RequestContext): Promise<void> {
    const twin = await twins.getTwin(id);
    sendJson(res, 200, deviceJson(id, twin, keys.get(id), isConnected(id)));
  }

  const readJsonObject = (req: IncomingMessage): Promise<JsonObject> => readJsonBody(req, { maxBytes: maxBodyBytes });

  async function putDevice({ req, res, id }: RequestContext): Promise<void> {
    const body = await readJsonObject(req);
    const requested = keysFromBody(body);
    const status = statusFromBody(body);
    if (req.headers['if-match'] !== undefined) {
      // Registry.update: the device must exist; its keys and status change (each kept when not
      // given). A device set to disabled is refused at CONNECT and its MQTT session closed
      // (docs/iot-hub.md, "Device status").
      const twin = await twins.getTwin(id);
      const next: DeviceKeys = withDeviceStatus(
        { ...(keys.get(id) ?? newDeviceKeys()), ...requested },
        status,
        physicalNow(),
      );
      keys.set(id, next);
      sendJson(res, 200, deviceJson(id, twin, next, isConnected(id)));
      return;
    }
    const created = withDeviceStatus(newDeviceKeys(requested), status, physicalNow());
    const d = await client.createDevice(id, { wait: true });
    decided(d);
    keys.set(id, created);
    // read from the index (docs/reads.md): the client's getTwin reads the whole snapshots partition
    sendJson(res, 200, deviceJson(id, await twins.getTwin(id, readAfter(d)), created, isConnected(id)));
  }

  async function deleteDevice({ res, id }: RequestContext): Promise<void> {
    await twins.getTwin(id); // 404 for an unknown device, before anything is appended
    for (const m of keys.modulesOf?.(id) ?? []) await removeModule(moduleTwinId(id, m)); // IoT Hub deletes a device's modules with it
    decided(await client.deleteDevice(id, { wait: true }));
    keys.delete(id);
    res.writeHead(204).end();
  }

  // Module identities (docs/iot-hub.md, "Module identities and module twins"): a module twin is the
  // twin `{deviceId}/{moduleId}`, its keys and status the key store's row of that id.

  async function getModule({ res, id }: RequestContext): Promise<void> {
    await twins.getTwin(id); // 404 for an unknown module
    sendJson(res, 200, moduleJson(id, keys.get(id), isConnected(id)));
  }

  async function putModule({ req, res, id }: RequestContext): Promise<void> {
    const body = await readJsonObject(req);
    const requested = keysFromBody(body);
    const status = statusFromBody(body);
    if (req.headers['if-match'] !== undefined) {
      // Registry.updateModule: the module must exist; its keys and status change (each kept when not given)
      await twins.getTwin(id);
      const next: DeviceKeys = withDeviceStatus(
        { ...(keys.get(id) ?? newDeviceKeys()), ...requested },
        status,
        physicalNow(),
      );
      keys.set(id, next);
      sendJson(res, 200, moduleJson(id, next, isConnected(id)));
      return;
    }
    const { deviceId } = parseTwinId(id);
    await twins.getTwin(deviceId); // the parent device must exist: 404 DeviceNotFound
    if ((keys.modulesOf?.(deviceId) ?? []).length >= MAX_MODULES_PER_DEVICE) {
      throw new TwinlogError(
        'QUOTA_EXCEEDED',
        `A device has at most ${MAX_MODULES_PER_DEVICE} module identities (docs/iot-hub.md, "Limits")`,
      );
    }
    const created = withDeviceStatus(newDeviceKeys(requested), status, physicalNow());
    decided(await client.createDevice(id, { wait: true }));
    keys.set(id, created);
    sendJson(res, 200, moduleJson(id, created, isConnected(id)));
  }

  async function deleteModule({ res, id }: RequestContext): Promise<void> {
    await twins.getTwin(id); // 404 for an unknown module, before anything is appended
    await removeModule(id);
    res.writeHead(204).end();
  }

  /** Delete a module twin and its keys; a module already gone (deleted by another writer) is not an error. */
  async function removeModule(twinId: string): Promise<void> {
    const d = await client.deleteDevice(twinId, { wait: true });
    if (!d.accepted && d.code !== 'DEVICE_NOT_FOUND') decided(d);
    keys.delete(twinId);
  }

  async function listModules({ res, id }: RequestContext): Promise<void> {
    await twins.getTwin(id); // 404 for an unknown device
    const out: Record<string, unknown>[] = [];
    for (const m of keys.modulesOf?.(id) ?? []) {
      const twinId = moduleTwinId(id, m);
      out.push(moduleJson(twinId, keys.get(twinId), isConnected(twinId)));
    }
    sendJson(res, 200, out);
  }

  async function getTwin({ res, id }: RequestContext): Promise<void> {
    sendJson(res, 200, twinJson(await twins.getTwin(id), keys.get(id), isConnected(id)));
  }

  async function patchTwin({ req, res, id }: RequestContext): Promise<void> {
    const body = await readJsonObject(req);
    const properties = body['properties'];
    if (properties !== undefined && properties !== null && !isPlainObject(properties)) {
      throw new TwinlogError('PATCH_NOT_OBJECT', 'properties must be an object');
    }
    if (isPlainObject(properties) && properties['reported'] !== undefined) {
      throw new TwinlogError('SECTION_FORBIDDEN', 'Reported properties cannot be updated by the service');
    }
    const tags = body['tags'];
    const desired = isPlainObject(properties) ? properties['desired'] : undefined;
    const ifMatch = ifMatchHeader(req) ?? '*';
    const merge: { tags?: Patch; desired?: Patch } = {};
    const replace: { tags?: Patch; desired?: Patch } = {};
    // docs/iot-hub.md "Writes": a whole-section null empties the section (a replace with {}).
    if (tags === null) replace.tags = {};
    else if (tags !== undefined) merge.tags = asPatch('tags', tags);
    if (desired === null) replace.desired = {};
    else if (desired !== undefined) merge.desired = asPatch('properties.desired', desired);
    const merging = Object.keys(merge).length > 0;
    const replacing = Object.keys(replace).length > 0;
    if (merging && replacing) {
      throw new TwinlogError(
        'SECTION_FORBIDDEN',
        'A section set to null together with a merge of the other section is not supported, send them as two requests',
      );
    }
    let answered: Record<string, string> = {};
    let after: TwinReadOptions = {};
    if (merging || replacing) {
      const key = idempotencyKeyOf({ header: header(req, IDEMPOTENCY_KEY_HEADER), method: 'PATCH', ifMatch, body });
      const d = await (merging ? client.patchTwin : client.replaceTwin)(id, merging ? merge : replace, {
        ifMatch,
        ...(key === undefined ? {} : { idempotencyKey: key }),
      });
      answered = decided(d);
      after = readAfter(d);
    }
    sendJson(res, 200, twinJson(await twins.getTwin(id, after), keys.get(id), isConnected(id)), answered);
  }

  async function putTwin({ req, res, id }: RequestContext): Promise<void> {
    const body = await readJsonObject(req);
    const properties = body['properties'];
    if (properties !== undefined && properties !== null && !isPlainObject(properties)) {
      throw new TwinlogError('PATCH_NOT_OBJECT', 'properties must be an object');
    }
    // PUT replaces tags and desired; reported (which C# serialises with the whole twin) is ignored.
    const desired = isPlainObject(properties) ? properties['desired'] : undefined;
    const patch: TwinPatch = {
      tags: body['tags'] === undefined || body['tags'] === null ? {} : asPatch('tags', body['tags']),
      desired: desired === undefined || desired === null ? {} : asPatch('properties.desired', desired),
    };
    const ifMatch = ifMatchHeader(req) ?? '*';
    const key = idempotencyKeyOf({ header: header(req, IDEMPOTENCY_KEY_HEADER), method: 'PUT', ifMatch, body });
    const d = await client.replaceTwin(id, patch, { ifMatch, ...(key === undefined ? {} : { idempotencyKey: key }) });
    const answered = decided(d);
    sendJson(res, 200, twinJson(await twins.getTwin(id, readAfter(d)), keys.get(id), isConnected(id)), answered);
  }

  async function query({ req, res }: RequestContext): Promise<void> {
    const body = await readJsonObject(req);
    const text = body['query'];
    if (typeof text !== 'string') throw new TwinlogError('QUERY_SYNTAX', 'The request body needs a query string');
    const q = parseQuery(text);
    const sizeHeader = header(req, 'x-ms-max-item-count');
    const pageSize =
      sizeHeader === undefined ? undefined : /^[0-9]+$/.test(sizeHeader.trim()) ? Number(sizeHeader) : Number.NaN;
    const continuation = header(req, 'x-ms-continuation');
    if (queryView !== undefined) {
      const after = header(req, 'x-twinlog-freshness');
      const asked = queryView.query(text, { pageSize, continuation, after, timeoutMs: freshnessWaitMs });
      const answer = after === undefined ? await asked : await within(asked, freshnessWaitMs);
      const twinRows = answer.itemType === 'Twin';
      const twinId = (t: Record<string, unknown>): string =>
        t['moduleId'] === undefined
          ? (t['deviceId'] as string)
          : moduleTwinId(t['deviceId'] as string, t['moduleId'] as string);
      const items = twinRows
        ? answer.rows.map((t) => twinJson(t as unknown as TwinDocument, keys.get(twinId(t)), isConnected(twinId(t))))
        : answer.rows;
      const viewHeaders: Record<string, string> = {
        'x-ms-item-type': answer.itemType,
        'x-twinlog-freshness': answer.freshness,
      };
      if (answer.continuationToken !== undefined) viewHeaders['x-ms-continuation'] = answer.continuationToken;
      sendJson(res, 200, items, viewHeaders);
      return;
    }
    // FROM devices: device twins only; FROM devices.modules: module twins only (docs/iot-hub.md, "Module identities and module twins")
    const inCollection = (t: TwinDocument): boolean => (q.from === 'devices.modules') === (t.moduleId !== undefined);
    const twinIdOf = (t: TwinDocument): string =>
      t.moduleId === undefined ? t.deviceId : moduleTwinId(t.deviceId, t.moduleId);
    const twins = (await listTwins(log))
      .filter(inCollection)
      .map((t) => twinJson(t, keys.get(twinIdOf(t)), isConnected(twinIdOf(t))));
    const page = paginate(evaluate(q, twins), { pageSize, continuation });
    const headers: Record<string, string> = {
      'x-ms-item-type': q.select === '*' && q.from === 'devices' ? 'Twin' : 'Raw',
    };
    // docs/iot-hub.md "REST (back ends)", "SDK behaviour twinlog accommodates": the continuation header only when another page exists, never empty.
    if (page.continuationToken !== undefined) headers['x-ms-continuation'] = page.continuationToken;
    sendJson(res, 200, page.items, headers);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const principal = verifyServiceSas(header(req, 'authorization'), policyMap, hubName, physicalNow(), {
      maxTokenLifetimeMs,
    });
    principals.set(req, principal.policy);
    assertScope(principal, hubName, targetOf(url.pathname, req.method ?? 'GET'));
    admit(principal);
    const { kind, id } = routeOf(url.pathname, req.method ?? 'GET');
    routeKinds.set(req, kind);
    const route = routes.find((r) => r.kind === kind && r.method === req.method);
    if (route === undefined)
      throw new GatewayError('METHOD_NOT_ALLOWED', `${req.method ?? ''} is not supported on ${url.pathname}`);
    requireRight(principal, route.rights);
    const apiVersion = url.searchParams.get('api-version');
    if (apiVersion === null || !API_VERSIONS.includes(apiVersion)) {
      throw new GatewayError(
        'API_VERSION',
        `Unsupported api-version ${apiVersion ?? '(none)'}, use one of ${API_VERSIONS.join(', ')}`,
      );
    }
    await route.handle({ req, res, id, principal }).catch((e: unknown) => {
      throw id.includes('/') ? moduleErrorOf(e, id) : e;
    });
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let error: string | undefined;
    let detail: string | undefined;
    if (requests.hasSubscribers) {
      const arrived = performance.now();
      res.once('finish', () => {
        const event: GatewayRequestEvent = {
          method: req.method ?? '',
          path: new URL(req.url ?? '/', 'http://gateway').pathname,
          status: res.statusCode,
          ...(error === undefined ? {} : { error }),
          ...(principals.has(req) ? { policy: principals.get(req)! } : {}),
          ...(detail === undefined ? {} : { detail }),
          ...(routeKinds.has(req) ? { route: routeKinds.get(req)! } : {}),
          ms: performance.now() - arrived,
        };
        requests.publish(event);
      });
    }
    handle(req, res).catch((e: unknown) => {
      error = iotHubCodeOf(e).name;
      if (e instanceof GatewayError) detail = e.message;
      // a body left unread would hold up the connection's next request: answer and close it
      sendError(res, e, physicalNow(), req.complete ? {} : { connection: 'close' });
    });
  };

  return {
    handler,
    async listen({ port, host, tls, limits }: ListenOptions): Promise<ListeningGateway> {
      const server =
        tls === undefined ? createHttpServer(handler) : createHttpsServer(tlsServerOptions(tls, limits), handler);
      return listenOn(server, port, host, servers, closeServer, limits);
    },
    async close() {
      await Promise.all([...servers].map((s) => closeServer(s)));
      servers.clear();
      if (givenClient === undefined) await client.close();
    },
  };
}

/**
 * What a request addresses, for the scope check (never throws): `/devices/{id}[/…]`,
 * `/twins/{id}[/…]` and `/digitaltwins/{id}[/…]` address device `id` (`…/modules/{m}` its
 * module), except `POST /devices/query`;
 * every other path (queries, jobs, configurations, the registry-wide list, unknown paths and ids
 * that do not decode) is hub-wide.
 */
function targetOf(pathname: string, method: string): SasTarget {
  const parts = pathname.replace(/\/+$/, '').split('/').slice(1);
  const [collection, rawId, sub, rawModule] = parts;
  if ((collection !== 'devices' && collection !== 'twins' && collection !== 'digitaltwins') || rawId === undefined)
    return { kind: 'hub' };
  if (collection === 'devices' && rawId === 'query' && parts.length === 2 && method === 'POST') return { kind: 'hub' };
  try {
    const deviceId = decodeURIComponent(rawId);
    if (sub === 'modules' && rawModule !== undefined)
      return { kind: 'device', deviceId, moduleId: decodeURIComponent(rawModule) };
    return { kind: 'device', deviceId };
  } catch {
    return { kind: 'hub' };
  }
}

/**
 * `/devices/{id}`, `/twins/{id}`, `/devices/query` (POST), `/digitaltwins/{id}`,
 * `/digitaltwins/{id}/commands/{c}` and `/digitaltwins/{id}/components/{p}/commands/{c}` → route
 * kind and decoded id; `/jobs/v2/{id}`, `/jobs/v2/{id}/cancel` and `/jobs/v2/query` → the job kinds
 * and the decoded job id.
 */
function routeOf(pathname: string, method: string): { kind: Route['kind']; id: string } {
  const parts = pathname.replace(/\/+$/, '').split('/').slice(1);
  if (parts.length === 2 && parts[0] === 'devices' && parts[1] === 'query' && method === 'POST')
    return { kind: 'query', id: '' };
  // POST /twins/{id}/methods and /twins/{id}/modules/{mid}/methods: direct methods
  if (
    parts[0] === 'twins' &&
    ((parts.length === 3 && parts[2] === 'methods') ||
      (parts.length === 5 && parts[2] === 'modules' && parts[4] === 'methods'))
  )
    return { kind: 'method', id: '' };
  const moduleRoute = moduleRouteOf(parts);
  if (moduleRoute !== undefined) return moduleRoute;
  if (parts[0] === 'configurations' && parts.length <= 2) {
    if (parts.length === 1) return { kind: 'configurations', id: '' };
    try {
      return { kind: 'configuration', id: decodeURIComponent(parts[1]!) };
    } catch {
      throw new GatewayError('ARGUMENT_INVALID', 'The configuration id is not valid URI encoding');
    }
  }
  if (
    parts[0] === 'jobs' &&
    parts[1] === 'v2' &&
    (parts.length === 3 || (parts.length === 4 && parts[3] === 'cancel'))
  ) {
    if (parts.length === 3 && parts[2] === 'query') return { kind: 'job-query', id: '' };
    try {
      return { kind: parts.length === 4 ? 'job-cancel' : 'job', id: decodeURIComponent(parts[2]!) };
    } catch {
      throw new GatewayError('ARGUMENT_INVALID', 'The job id is not valid URI encoding');
    }
  }
  const command =
    parts[0] === 'digitaltwins' &&
    ((parts.length === 4 && parts[2] === 'commands') ||
      (parts.length === 6 && parts[2] === 'components' && parts[4] === 'commands'));
  if (
    (parts.length === 2 && (parts[0] === 'devices' || parts[0] === 'twins' || parts[0] === 'digitaltwins')) ||
    command
  ) {
    let id: string;
    try {
      id = decodeURIComponent(parts[1]!);
    } catch {
      throw new GatewayError('ARGUMENT_INVALID', 'The device id is not valid URI encoding');
    }
    if (parts[0] === 'digitaltwins') return { kind: command ? 'digitaltwin-command' : 'digitaltwin', id };
    return { kind: parts[0] === 'devices' ? 'device' : 'twin', id };
  }
  throw new GatewayError('NOT_FOUND', `No route for ${pathname}`);
}

/** IoT Hub's limit of module identities per device. */
export const MAX_MODULES_PER_DEVICE = 50;

/** Direct methods need a device to answer a call on a live connection; twinlog serves twins only. */
async function refuseDirectMethod(): Promise<void> {
  throw new GatewayError(
    'METHOD_NOT_ALLOWED',
    'Direct methods are not supported by twinlog (docs/iot-hub.md): use desired properties, or a job that updates twins',
  );
}

/** Names the applied write that a retry duplicated (docs/idempotency.md). */
const DUPLICATE_OF_HEADER = 'x-twinlog-duplicate-of';

/**
 * Turn a refused decision into the error it stands for (mapped by the middleware); an accepted
 * one into the response headers it adds (a retry of an applied write names the original).
 */
function decided(d: WriteDecision): Record<string, string> {
  if (!d.accepted) throw new TwinlogError(d.code, d.message, { details: { etag: d.etag } });
  return d.duplicateOf === undefined ? {} : { [DUPLICATE_OF_HEADER]: `${d.duplicateOf.writer}/${d.duplicateOf.seq}` };
}

/**
 * What the twin answered after a write must reflect beyond the write's own positions (which the
 * tracking client noted): a retry answered as a duplicate has none, so its versions stand in.
 */
function readAfter(d: WriteDecision): TwinReadOptions {
  return d.accepted && d.duplicateOf !== undefined ? { minVersion: d.version } : {};
}

function asPatch(where: string, value: unknown): Patch {
  if (!isPlainObject(value)) throw new TwinlogError('PATCH_NOT_OBJECT', `${where} must be an object`);
  return value as Patch;
}

/**
 * The admission step: a bucket per policy, and one per policy and device for device-scoped tokens;
 * a request takes a token from each of its buckets, or from none when one is empty.
 */
function createAdmission(rateLimit: RestRateLimit | false, now: () => number): (principal: Principal) => void {
  if (rateLimit === false) return () => {};
  const limit = { ...DEFAULT_REST_RATE_LIMIT, ...rateLimit };
  const policies = createTokenBuckets({
    ratePerSecond: limit.policyRatePerSecond,
    burst: limit.policyBurst,
    maxKeys: limit.maxTrackedKeys,
    now,
  });
  const devices = createTokenBuckets({
    ratePerSecond: limit.deviceRatePerSecond,
    burst: limit.deviceBurst,
    maxKeys: limit.maxTrackedKeys,
    now,
  });
  return (principal) => {
    const device = scopedDeviceOf(principal);
    const deviceKey = device === undefined ? undefined : `${principal.policy}\n${device}`;
    if (!policies.canTake(principal.policy))
      throw new GatewayError('THROTTLED', `Policy ${principal.policy} is over its request rate, retry later`);
    if (deviceKey !== undefined && !devices.take(deviceKey))
      throw new GatewayError('THROTTLED', `The token for device ${device} is over its request rate, retry later`);
    policies.take(principal.policy);
  };
}

/** `promise`, or a retryable `READ_MODEL_TIMEOUT` once `ms` have passed (the bound of a freshness wait). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TwinlogError('READ_MODEL_TIMEOUT', `The query view did not reflect x-twinlog-freshness within ${ms} ms`, {
            canRetry: true,
          }),
        ),
      ms,
    );
  });
  promise.catch(() => {}); // a rejection after the timeout is nobody's
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function isKey(v: unknown): v is string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(v)) return false;
  const n = Buffer.from(v, 'base64').length;
  return n >= 16 && n <= 64;
}

/** Keys given in a registry body (`authentication.symmetricKey`). */
function keysFromBody(body: JsonObject): Partial<Pick<DeviceKeys, 'primaryKey' | 'secondaryKey'>> {
  const auth = body['authentication'];
  const sym = isPlainObject(auth) ? auth['symmetricKey'] : undefined;
  if (!isPlainObject(sym)) return {};
  const out: { primaryKey?: string; secondaryKey?: string } = {};
  for (const k of ['primaryKey', 'secondaryKey'] as const) {
    const v = sym[k];
    if (v === undefined || v === null || v === '') continue;
    if (!isKey(v))
      throw new GatewayError('ARGUMENT_INVALID', `authentication.symmetricKey.${k} must be base64 of 16 to 64 bytes`);
    out[k] = v;
  }
  return out;
}

/** `status` (`enabled` or `disabled`, any case) and `statusReason` (a string, or null to clear it) of a registry body. */
function statusFromBody(body: JsonObject): { status?: DeviceStatus; statusReason?: string | null } {
  const status = body['status'];
  const reason = body['statusReason'];
  const out: { status?: DeviceStatus; statusReason?: string | null } = {};
  if (status !== undefined && status !== null) {
    const s = typeof status === 'string' ? status.toLowerCase() : undefined;
    if (s !== 'enabled' && s !== 'disabled')
      throw new GatewayError('ARGUMENT_INVALID', 'status must be enabled or disabled');
    out.status = s;
  }
  if (reason !== undefined) {
    if (reason !== null && typeof reason !== 'string')
      throw new GatewayError('ARGUMENT_INVALID', 'statusReason must be a string');
    if (typeof reason === 'string' && reason.length > 128)
      throw new GatewayError('ARGUMENT_INVALID', 'statusReason must be at most 128 characters');
    out.statusReason = reason === '' ? null : reason;
  }
  return out;
}

/** The identity's etag: changes when its keys or its status change. */
function deviceEtagOf(keys: DeviceKeys | undefined): string {
  const status =
    keys?.status === undefined && keys?.statusReason === undefined
      ? ''
      : `\n${keys.status ?? 'enabled'}\n${keys.statusReason ?? ''}`;
  const h = createHash('sha256').update(
    keys === undefined ? '' : `${keys.generationId}\n${keys.primaryKey}\n${keys.secondaryKey}${status}`,
  );
  return h.digest().subarray(0, 9).toString('base64');
}

/** The twin as IoT Hub sends it (docs/iot-hub.md "The twin document"): core's document plus the identity fields. */
function twinJson(twin: TwinDocument, keys: DeviceKeys | undefined, connected: boolean): Record<string, unknown> {
  return {
    deviceId: twin.deviceId,
    ...(twin.moduleId === undefined ? {} : { moduleId: twin.moduleId }), // a module twin (docs/iot-hub.md, "Module identities and module twins")
    etag: twin.etag,
    deviceEtag: deviceEtagOf(keys),
    status: keys?.status ?? twin.status,
    statusUpdateTime: keys?.statusUpdatedTime ?? NEVER,
    connectionState: connected ? 'Connected' : 'Disconnected',
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authenticationType: 'sas',
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    modelId: keys?.modelId ?? '',
    version: twin.version,
    capabilities: { iotEdge: false },
    tags: twin.tags,
    properties: { desired: twin.properties.desired, reported: twin.properties.reported },
  };
}

/** The device identity as the registry returns it. Keys are `null` for devices not created here. */
function deviceJson(
  id: string,
  twin: TwinDocument,
  keys: DeviceKeys | undefined,
  connected: boolean,
): Record<string, unknown> {
  return {
    deviceId: id,
    generationId: keys?.generationId ?? '0',
    etag: deviceEtagOf(keys),
    connectionState: connected ? 'Connected' : 'Disconnected',
    status: keys?.status ?? twin.status,
    statusReason: keys?.statusReason ?? null,
    connectionStateUpdatedTime: NEVER,
    statusUpdatedTime: keys?.statusUpdatedTime ?? NEVER,
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authentication: authenticationJson(keys),
    capabilities: { iotEdge: false },
  };
}

/** A device's or module's `authentication` as the registry returns it (SAS keys only). */
function authenticationJson(keys: DeviceKeys | undefined): Record<string, unknown> {
  return {
    symmetricKey: { primaryKey: keys?.primaryKey ?? null, secondaryKey: keys?.secondaryKey ?? null },
    x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
    type: 'sas',
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((e) => (e === undefined ? resolve() : reject(e)));
    server.closeAllConnections();
  });
}

/**
 * The routes of modules (docs/iot-hub.md, "Module identities and module twins"), and the device id
 * rule of every other device route: `/devices/{id}/modules/{mid}` → `module`,
 * `/devices/{id}/modules` → `modules`, `/twins/{id}/modules/{mid}` → the `twin` routes, each with
 * the twin id `{id}/{mid}`; a device id that decodes to one with `/` (`%2F`) is refused, so a
 * device route never reaches a module twin. Anything else: `undefined`.
 */
function moduleRouteOf(parts: readonly string[]): { kind: Route['kind']; id: string } | undefined {
  if (parts[0] !== 'devices' && parts[0] !== 'twins' && parts[0] !== 'digitaltwins') return undefined;
  if (parts.length < 2) return undefined;
  let ids: string[];
  try {
    ids = parts.slice(1).map((p) => decodeURIComponent(p));
  } catch {
    return undefined; // routeOf answers the encoding error
  }
  const [deviceId, sub, moduleId] = ids;
  if (deviceId!.includes('/') || (moduleId !== undefined && moduleId.includes('/'))) {
    throw new TwinlogError('DEVICE_ID_INVALID', 'A device or module id cannot contain /');
  }
  if (parts[0] === 'digitaltwins' || sub !== 'modules' || parts.length > 4) return undefined;
  if (moduleId === undefined) return parts[0] === 'devices' ? { kind: 'modules', id: deviceId! } : undefined;
  return { kind: parts[0] === 'devices' ? 'module' : 'twin', id: moduleTwinId(deviceId!, moduleId) };
}

/** The module identity as the registry returns it (IoT Hub's `Module`); `twinId` is `{deviceId}/{moduleId}`. */
function moduleJson(twinId: string, keys: DeviceKeys | undefined, connected: boolean): Record<string, unknown> {
  const { deviceId, moduleId } = parseTwinId(twinId);
  return {
    moduleId,
    deviceId,
    managedBy: null,
    generationId: keys?.generationId ?? '0',
    etag: deviceEtagOf(keys),
    connectionState: connected ? 'Connected' : 'Disconnected',
    connectionStateUpdatedTime: NEVER,
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authentication: authenticationJson(keys),
  };
}

/**
 * IoT Hub's names for a module route's failures (docs/iot-hub.md, "Module identities and module
 * twins"): the module twin `twinId` missing is `ModuleNotFound`, created twice
 * `ModuleAlreadyExistsOnDevice`; a missing parent device stays `DeviceNotFound`.
 */
function moduleErrorOf(e: unknown, twinId: string): unknown {
  if (!(e instanceof TwinlogError)) return e;
  if (e.code === 'DEVICE_ALREADY_EXISTS')
    return new GatewayError(
      'MODULE_ALREADY_EXISTS',
      `Module ${parseTwinId(twinId).moduleId ?? ''} already exists on the device`,
    );
  if (e.code === 'DEVICE_NOT_FOUND' && e.details['deviceId'] !== parseTwinId(twinId).deviceId) {
    return new GatewayError(
      'MODULE_NOT_FOUND',
      `Module ${parseTwinId(twinId).moduleId ?? ''} does not exist on device ${parseTwinId(twinId).deviceId}`,
    );
  }
  return e;
}
