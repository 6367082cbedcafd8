/**
 * The IoT Hub-compatible MQTT gateway (docs/iot-hub.md, "MQTT"): MQTT 3.1.1 over TLS on an aedes
 * broker, device SAS authentication, the `$iothub/twin/…` request/response topics, desired
 * notifications fed from `twin.changes`, CleanSession=0 sessions that survive reconnects and
 * gateway restarts, and offline catch-up: a device that missed desired changes gets one merged
 * notification when it is back, without asking.
 *
 * Every twin write goes through the log (a reported PATCH is appended to `twin.device` and
 * answered once the projector decided it); reads render the latest snapshot. The gateway delivers
 * responses and notifications to one client at a time (never routed by topic across devices):
 * IoT Hub's topics are the same for every device.
 *
 * Limits at the door (`limits`, docs/security.md): every connection goes through a packet guard
 * that closes it when a packet's fixed header declares too much (a small budget before the CONNECT
 * is accepted), when the CONNECT is late or the client silent, and when a device exceeds its
 * request rate; each listener caps its connections.
 */
import { randomBytes } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client as MqttClient,
  type PublishPacket,
  type Subscription as MqttSubscription,
} from 'aedes';
import { decodeOutputRecord, type ChangeRecord, type RejectionRecord } from '@twinlog/codec';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import { CHECKPOINT_KEY, TOPICS } from '@twinlog/projector';
import {
  applyMergePatch,
  diffMergePatch,
  isHealthyStageState,
  isPlainObject,
  isTwinlogError,
  TwinlogError,
  type BackoffOptions,
  type JsonObject,
  type Log,
  type LogRecord,
  type Patch,
  type StageHealth,
  type StageState,
  type TwinlogErrorCode,
} from '@twinlog/core';
import { startChangeFeed } from './internal/changeFeed.ts';
import { createDeviceKeyStore, isDisabled, type DeviceKeys, type DeviceKeyStore } from './internal/deviceKeyStore.ts';
import {
  createDeviceSessionStore,
  type DeviceSession,
  type DeviceSessionStore,
} from './internal/deviceSessionStore.ts';
import { groupAppends } from './internal/groupAppends.ts';
import { listenOn } from './internal/listenOn.ts';
import { GatewayError, iotHubCodeOf } from './internal/iotHubError.ts';
import { DEFAULT_MQTT_LIMITS, resolveLimits, type MqttLimits } from './internal/limits.ts';
import { DEFAULT_MAX_TOKEN_LIFETIME_MS } from './internal/sasToken.ts';
import { guardMqttSocket, type MqttLimitName, type MqttPacketGuard } from './internal/mqttPacketGuard.ts';
import { createSnapshotReader } from './internal/snapshotReader.ts';
import { trackWrites } from './internal/trackWrites.ts';
import {
  createAckedWrites,
  createIndexedReader,
  createReadPath,
  type TwinIndex,
  type TwinReader,
} from './internal/twinReader.ts';
import { createTokenBuckets } from './internal/tokenBuckets.ts';
import { classifyPublish, DESIRED_FILTER, maySubscribe, topicMatches } from './internal/mqttTopics.ts';
import { DeviceAuthError, verifyDeviceSas } from './internal/verifyDeviceSas.ts';

export { DEFAULT_MQTT_LIMITS, type MqttLimits } from './internal/limits.ts';
export type { MqttLimitName } from './internal/mqttPacketGuard.ts';

/**
 * `diagnostics_channel` on which the MQTT gateway publishes a {@link MqttGatewayEvent} per
 * connection attempt, twin request and notification.
 *
 * @example
 * diagnostics_channel.subscribe(MQTT_GATEWAY_CHANNEL, (e) => console.log(e))
 */
export const MQTT_GATEWAY_CHANNEL = 'twinlog:gateway:mqtt';
const events = channel(MQTT_GATEWAY_CHANNEL);

/**
 * What {@link MQTT_GATEWAY_CHANNEL} publishes.
 *
 * @example
 * const e: MqttGatewayEvent = { kind: 'request', deviceId: 'dev1', request: 'reported', status: 204, ms: 12.5 }
 */
export type MqttGatewayEvent =
  | { readonly kind: 'connect'; readonly deviceId: string; readonly returnCode: number; readonly reason?: string }
  /**
   * A twin request answered; `ms`: from its PUBLISH arriving to the answer handed to the
   * connection (a reported PATCH's 204 waits for the projector's decision; an error: to the answer's decision).
   */
  | {
      readonly kind: 'request';
      readonly deviceId: string;
      readonly request: string;
      readonly status: number;
      readonly error?: string;
      readonly ms: number;
    }
  /**
   * A desired notification sent. `lagMs` (not on catch-up, which spans the device's time away):
   * from the change's event time (its HLC wall, the writer's clock) to the notification sent, ≥ 0.
   */
  | {
      readonly kind: 'notify';
      readonly deviceId: string;
      readonly version: number;
      readonly catchUp: boolean;
      readonly lagMs?: number;
    }
  | {
      readonly kind: 'refused';
      readonly deviceId: string;
      readonly topic: string;
      readonly op: 'publish' | 'subscribe';
    }
  /** A connected device was disabled in the registry: its connection is closed (docs/iot-hub.md, "Device status"). */
  | { readonly kind: 'disabled'; readonly deviceId: string }
  /** A connection closed, or refused at accept (`connections`), for passing a limit (`MqttLimits`); `deviceId` once the CONNECT was accepted. */
  | {
      readonly kind: 'limit';
      readonly limit: MqttLimitName;
      readonly detail: string;
      readonly deviceId?: string;
      readonly remoteAddress?: string;
    }
  | { readonly kind: 'error'; readonly message: string };

/**
 * Options of {@link createMqttGateway}.
 *
 * @example
 * const deviceKeys = createDeviceKeyStore('/var/lib/twinlog/device-keys.json')
 * const options: MqttGatewayOptions = { log, hubName: 'myhub.azure-devices.net', physicalNow: Date.now, deviceKeys,
 *   sessionFile: '/var/lib/twinlog/mqtt-sessions.jsonl' }
 */
export interface MqttGatewayOptions {
  readonly log: Log;
  /**
   * The client writes and reads go through (default: one over `log` whose concurrent appends are
   * grouped into one call per topic). Not closed by the gateway unless it made it.
   */
  readonly client?: TwinClient;
  /** The hub's host name (the connection string's `HostName`, a port in it is ignored). */
  readonly hubName: string;
  /** Physical clock, ms since the epoch: token expiry, error timestamps, the default client's HLC. */
  readonly physicalNow: () => number;
  /**
   * The device keys to authenticate against: pass the store the REST gateway uses
   * (`createRestGateway({ deviceKeys })`), so devices created through the registry can connect.
   */
  readonly deviceKeys?: DeviceKeyStore;
  /** Or the REST gateway's `registryFile` (another process): read at start and again whenever it changed. */
  readonly registryFile?: string;
  /**
   * JSON-lines file keeping CleanSession=0 subscriptions and each device's last delivered desired
   * view across gateway restarts. Default: memory only (sessions survive reconnects, not restarts).
   */
  readonly sessionFile?: string;
  /**
   * An index of twins (`@twinlog/fleet`'s read model has this shape): a device's `GET` is looked
   * up in it instead of reading `twin.snapshots`. A GET after the device's own reported PATCH
   * waits until the index reflects it (at most 2 s, then it reads `twin.snapshots`), see
   * docs/reads.md. Catch-up notifications keep reading `twin.snapshots`. Default: no index.
   */
  readonly twinIndex?: TwinIndex;
  /** How long a reported PATCH waits for the projector's decision before 504 `GatewayTimeout`, ms (default 10 000). */
  readonly decisionTimeoutMs?: number;
  /**
   * Limits at the door, each over {@link DEFAULT_MQTT_LIMITS} (docs/security.md, "Limits at the
   * door"): `maxPacketBytes` 256 KiB, `maxUnauthenticatedBytes` 16 KiB, `connectTimeoutMs`
   * 10 000 (and as much for the TLS handshake), `maxConnections` 10 000 per listener,
   * `idleTimeoutMs` 1 767 000, `deviceRequestsPerSecond` 100 with `deviceRequestBurst` 200,
   * `maxTrackedDevices` 100 000. A connection that passes one is closed, and a `limit` event is
   * published on {@link MQTT_GATEWAY_CHANNEL}.
   *
   * @example
   * createMqttGateway({ log, hubName, physicalNow: Date.now, limits: { deviceRequestsPerSecond: 10, deviceRequestBurst: 20 } })
   */
  readonly limits?: Partial<MqttLimits>;
  /**
   * How far after now a device token's `se` may lie, ms (default 365 days, the REST gateway's
   * `DEFAULT_MAX_TOKEN_LIFETIME_MS`); the REST gateway applies the same rule: give both the same value.
   */
  readonly maxTokenLifetimeMs?: number;
  /**
   * Restart the feed's consumer after a failure (its crash, the broker gone) with exponential
   * backoff (default `{}`: 250 ms doubling to 30 s), forever; `false`: the first failure stops the
   * feed (devices then get no desired notifications and reported PATCHes time out).
   */
  readonly restart?: BackoffOptions | false;
  /** Called once per state change of the feed (stage `mqtt-feed`), not per retry. */
  readonly onFeedStateChange?: (health: StageHealth, previous: StageState) => void;
  /**
   * How often a connected device's status is re-read from the registry, ms (default
   * {@link DEFAULT_STATUS_RECHECK_MS}), for writes by another process (e.g. `twinlog device update
   * --status disabled` on the same registry file): a device disabled there is disconnected within
   * this interval. Writes through the same `deviceKeys` store act at once. Each recheck costs one
   * `PRAGMA data_version` while the registry is unchanged, one query over the disabled rows otherwise.
   */
  readonly statusRecheckMs?: number;
}

/** Default of {@link MqttGatewayOptions.statusRecheckMs}. */
export const DEFAULT_STATUS_RECHECK_MS = 5_000;

/**
 * Options of {@link MqttGateway.listen}.
 *
 * @example
 * await gateway.listen({ port: 8883, tls: { key, cert } })
 */
export interface MqttListenOptions {
  readonly port: number;
  readonly host?: string;
  /** TLS key and certificate: MQTT over TLS when given (IoT Hub has no plain MQTT; plain is for tests behind a terminator). */
  readonly tls?: TlsOptions;
}

/**
 * A listening MQTT server.
 *
 * @example
 * const { port, close } = await gateway.listen({ port: 0, host: '127.0.0.1', tls })
 */
export interface ListeningMqttGateway {
  readonly port: number;
  readonly server: NetServer;
  /** Stop accepting and drop this server's connections. */
  close(): Promise<void>;
}

/**
 * The gateway (see {@link createMqttGateway}).
 *
 * @example
 * const { port } = await gateway.listen({ port: 8883, tls: { key, cert } })
 */
export interface MqttGateway {
  listen(options: MqttListenOptions): Promise<ListeningMqttGateway>;
  /** Device ids connected now. */
  connectedDevices(): string[];
  /** Whether this device is connected now (the REST gateway's `connectionState`). */
  isConnected(deviceId: string): boolean;
  /** Drop a device's connection (its session stays; like a network failure). */
  disconnect(deviceId: string): Promise<void>;
  /**
   * Whether the feed (`twin.changes` and `twin.rejections`: desired notifications, decisions of
   * reported PATCHes) consumes its partitions, and why not; stage `mqtt-feed`. `stopped` after `close()`.
   */
  health(): StageHealth;
  /** Close every server and connection, the feed, and the client the gateway made. */
  close(): Promise<void>;
}

interface LiveDevice {
  readonly client: MqttClient;
  /** Closes the connection when its token expires (IoT Hub drops a connection whose SAS expired). */
  readonly expiry: NodeJS.Timeout | undefined;
  /** Filters → QoS of this connection (clean sessions keep them only here). */
  readonly subscriptions: Map<string, 0 | 1>;
  /**
   * Whether this connection was given a desired view (GET response, catch-up, notification) since
   * the device's last `deleteDeviceIdentity` record: that view is then at least as new as any
   * `createDeviceIdentity` record the feed still brings, which must not take it back.
   */
  viewGiven: boolean;
}

/**
 * Create the MQTT gateway.
 *
 * CONNECT: clientId = device id; username `{host}/{deviceId}/?api-version=…`; password a device
 * SAS token signed with the device's primary or secondary key. A module (`ModuleClient`) connects
 * as `{deviceId}/{moduleId}` with its own keys and is served its module twin exactly as a device is
 * its twin (docs/iot-hub.md, "Module identities and module twins"). CONNACK 2 for a malformed
 * client id or a username naming another device or module, 4 for missing or malformed credentials, 5 for an unknown
 * device, a bad signature, an expired token or one for another resource, and for a disabled
 * device. A connection is closed when its token expires (the SDKs renew the token and reconnect)
 * and when its device is disabled (at once for a write through `deviceKeys`, within
 * `statusRecheckMs` for one by another process).
 *
 * Topics (docs/iot-hub.md "MQTT (devices)"): `$iothub/twin/GET/?$rid=` → `$iothub/twin/res/200/?$rid=` with
 * `{desired, reported}` (no `$metadata`, no tags); `$iothub/twin/PATCH/properties/reported/?$rid=`
 * → `$iothub/twin/res/204/?$rid=…&$version=N` once the projector applied it; failures →
 * `$iothub/twin/res/{status}/?$rid=` with `{errorCode, trackingId, message, timestampUtc}`;
 * desired notifications `$iothub/twin/PATCH/properties/desired/?$version=N`. A device may publish
 * only these requests and its own `devices/{id}/messages/events/…`; a publish elsewhere closes
 * the connection. It may subscribe only to its responses, desired notifications, methods and its
 * own `devices/{id}/messages/devicebound/…` (other filters get SUBACK 0x80). A device's
 * desired write is answered 403.
 *
 * Catch-up: the gateway remembers, per device and durably (`sessionFile`), the desired `$version`
 * and content it last gave the device (GET response or notification). When a subscribed device
 * connects (CleanSession=0 session restored) or subscribes to desired notifications, and the
 * twin's desired `$version` is newer, it sends one notification: the merge-patch difference
 * between that view and the current desired section (removed keys `null`), with the current
 * `$version`. Live notifications skip versions the device already has, and fall back to a
 * catch-up when one was missed.
 *
 * Reads (GET, catch-up) come from `twin.snapshots`, read incrementally per partition up to its end
 * at the time of the request (so a device reads its own reported write after the 204); the
 * gateway keeps the latest snapshot bytes of every device it read. With `twinIndex`, a GET is
 * looked up in the index instead, waiting until it reflects the device's own writes (docs/reads.md).
 *
 * Limits (`limits`, {@link MqttLimits}): a connection is closed when a packet's fixed header
 * declares more than `maxPacketBytes` (before the body is read), when it sends more than
 * `maxUnauthenticatedBytes` or has no accepted CONNECT within `connectTimeoutMs`, when the client
 * sends nothing for `idleTimeoutMs`, and when its device makes requests faster than its token
 * bucket allows (IoT Hub disconnects a throttled MQTT device); a listener holds at most
 * `maxConnections`.
 *
 * Self-healing: the feed of `twin.changes` and `twin.rejections` (desired notifications, the
 * decisions reported PATCHes wait for) is a supervised stage, `mqtt-feed`: a consumer that fails
 * is restarted with backoff, forever (`restart`), resuming from the positions it consumed;
 * `health()` says whether it consumes, `onFeedStateChange` hears each state change.
 *
 * Gotchas: a projector must run on the same log (reported PATCHes time out with 504 otherwise).
 *
 * @example
 * const deviceKeys = createDeviceKeyStore()
 * const rest = createRestGateway({ log, hubName: 'localhost', physicalNow: Date.now, policies, deviceKeys })
 * const mqtt = createMqttGateway({ log, hubName: 'localhost', physicalNow: Date.now, deviceKeys, sessionFile })
 * await mqtt.listen({ port: 8883, tls: { key, cert } })
 */
export function createMqttGateway({
  log,
  client: givenClient,
  hubName,
  physicalNow,
  deviceKeys,
  registryFile,
  sessionFile,
  twinIndex,
  decisionTimeoutMs: timeoutMs = 10_000,
  limits: givenLimits,
  maxTokenLifetimeMs = DEFAULT_MAX_TOKEN_LIFETIME_MS,
  restart = {},
  onFeedStateChange,
  statusRecheckMs = DEFAULT_STATUS_RECHECK_MS,
}: MqttGatewayOptions): MqttGateway {
  const limits = resolveLimits(DEFAULT_MQTT_LIMITS, givenLimits);
  const ownClient = givenClient ?? createTwinClient({ log: groupAppends(log), physicalNow, actor: 'gateway-mqtt' });
  const keys = deviceKeys ?? createDeviceKeyStore(registryFile);
  const sessions: DeviceSessionStore = createDeviceSessionStore(sessionFile);
  const snapshots = createSnapshotReader(log);
  // A device's GET (docs/reads.md): the index when given, reflecting the device's own writes
  // (their positions noted by the wrapped client); catch-up reads stay on twin.snapshots.
  const acked = createAckedWrites();
  const twins = twinIndex === undefined ? ownClient : trackWrites(ownClient, acked);
  const getReads: TwinReader =
    twinIndex === undefined
      ? snapshots
      : createReadPath(createIndexedReader(twinIndex, { fallback: snapshots }), acked);
  const live = new Map<string, LiveDevice>();
  const expiries = new WeakMap<MqttClient, number>();
  const queues = new Map<string, Promise<void>>();
  const servers = new Set<NetServer>();
  /** Each connection's guard, by the stream aedes was given (its `client.conn`). */
  const guards = new WeakMap<object, MqttPacketGuard>();
  const requestBuckets = createTokenBuckets({
    ratePerSecond: limits.deviceRequestsPerSecond,
    burst: limits.deviceRequestBurst,
    maxKeys: limits.maxTrackedDevices,
    now: physicalNow,
  });
  let closed = false;

  const publishEvent = (e: MqttGatewayEvent): void => {
    if (events.hasSubscribers) events.publish(e);
  };

  /** Run `work` after the device's earlier work (one device's deliveries never interleave). */
  const serial = (deviceId: string, work: () => Promise<void>): Promise<void> => {
    const prev = queues.get(deviceId) ?? Promise.resolve();
    const next = prev.then(work).catch((e: unknown) => {
      publishEvent({ kind: 'error', message: `${deviceId}: ${e instanceof Error ? e.message : String(e)}` });
    });
    queues.set(deviceId, next);
    void next.then(() => {
      if (queues.get(deviceId) === next) queues.delete(deviceId);
    });
    return next;
  };

  const updateSession = (deviceId: string, change: Partial<DeviceSession>): void => {
    sessions.set(deviceId, { ...sessions.get(deviceId), ...change });
  };

  /** Record the desired view this connection gave the device (GET response, catch-up, notification). */
  const giveView = (deviceId: string, version: number, desired: JsonObject): void => {
    updateSession(deviceId, { desiredVersion: version, desired });
    const device = live.get(deviceId);
    if (device !== undefined) device.viewGiven = true;
  };

  /** Send to one device if it is connected and subscribed to a filter matching `topic`. */
  const deliver = (deviceId: string, topic: string, payload: Buffer): Promise<boolean> => {
    const device = live.get(deviceId);
    if (device === undefined || device.client.closed) return Promise.resolve(false);
    let qos: 0 | 1 | undefined;
    for (const [filter, q] of device.subscriptions)
      if (topicMatches(filter, topic)) qos = Math.max(qos ?? 0, q) as 0 | 1;
    if (qos === undefined) return Promise.resolve(false);
    const packet: PublishPacket = { cmd: 'publish', topic, payload, qos, retain: false, dup: false };
    return new Promise((resolve) => device.client.publish(packet, (e) => resolve(e === undefined || e === null)));
  };

  const isSubscribedToDesired = (deviceId: string): boolean => {
    const device = live.get(deviceId);
    if (device === undefined) return false;
    for (const filter of device.subscriptions.keys())
      if (topicMatches(filter, '$iothub/twin/PATCH/properties/desired/?$version=1')) return true;
    return false;
  };

  /** Send a desired notification; `eventWall`: the change's event time (live changes, not catch-up). */
  const notify = async (
    deviceId: string,
    patch: Patch,
    version: number,
    catchUp: boolean,
    eventWall?: number,
  ): Promise<boolean> => {
    const body = Buffer.from(JSON.stringify({ ...patch, $version: version }));
    const sent = await deliver(deviceId, `$iothub/twin/PATCH/properties/desired/?$version=${version}`, body);
    if (sent)
      publishEvent({
        kind: 'notify',
        deviceId,
        version,
        catchUp,
        ...(eventWall === undefined ? {} : { lagMs: Math.max(0, physicalNow() - eventWall) }),
      });
    return sent;
  };

  /** The device's current desired section (no `$`-keys) and `$version`, or undefined when it does not exist. */
  const currentDesired = async (deviceId: string): Promise<{ desired: JsonObject; version: number } | undefined> => {
    try {
      const twin = await snapshots.getTwin(deviceId);
      return {
        desired: withoutDollarKeys(twin.properties.desired),
        version: Number(twin.properties.desired['$version'] ?? 0),
      };
    } catch (e) {
      if (isTwinlogError(e, 'DEVICE_NOT_FOUND')) return undefined;
      throw e;
    }
  };

  /**
   * One notification with everything the device missed since the view it was last given (or the
   * whole section when that view is unknown), if the twin is newer. `baselineOnly`: record the
   * current view without sending when the device never had one (a first subscription).
   */
  const catchUp = async (deviceId: string, baselineOnly: boolean): Promise<void> => {
    if (!isSubscribedToDesired(deviceId)) return;
    const current = await currentDesired(deviceId);
    if (current === undefined) return;
    const session = sessions.get(deviceId);
    if (session.desiredVersion !== null && current.version <= session.desiredVersion) return;
    if (baselineOnly && session.desiredVersion === null) {
      // a baseline, not a view given: a late create record may still reset it (and v2 then be sent)
      updateSession(deviceId, { desiredVersion: current.version, desired: current.desired });
      return;
    }
    const patch = session.desired === null ? current.desired : diffMergePatch(session.desired, current.desired);
    if (await notify(deviceId, patch, current.version, true)) giveView(deviceId, current.version, current.desired);
  };

  /**
   * A change from `twin.changes` (desired, create or delete) for a device. Each desired `$version`
   * is sent once, in increasing order (docs/iot-hub.md, "Offline catch-up"): the session's
   * `desiredVersion` is the highest the device was given, by this path, by catch-up or by a GET,
   * all serialised per device (`serial`), and nothing at or below it is sent.
   */
  const onChange = async (change: ChangeRecord): Promise<void> => {
    const deviceId = change.deviceId;
    if (change.opType === 'createDeviceIdentity' || change.opType === 'deleteDeviceIdentity') {
      // a fresh twin has an empty desired section at $version 1; a deleted one has none
      const fresh = change.opType === 'createDeviceIdentity';
      const device = live.get(deviceId);
      // The feed trails the snapshots GET and catch-up read: a connection given a view since the
      // last delete holds this incarnation's twin at or past the create, and resetting it to
      // $version 1 would send the versions after it again.
      const given = sessions.get(deviceId).desiredVersion;
      if (fresh && device?.viewGiven === true && given !== null && given >= change.desiredVersion) return;
      if (device !== undefined) device.viewGiven = false;
      updateSession(deviceId, { desiredVersion: fresh ? change.desiredVersion : null, desired: fresh ? {} : null });
      if (!fresh) await dropConnection(deviceId);
      return;
    }
    if (change.section !== 'desired') return;
    const session = sessions.get(deviceId);
    const v = change.desiredVersion;
    if (session.desiredVersion !== null && v <= session.desiredVersion) return;
    if (!isSubscribedToDesired(deviceId)) return; // caught up when it is back
    if (session.desiredVersion !== null && session.desired !== null && v === session.desiredVersion + 1) {
      if (Object.keys(change.diff).length === 0) {
        updateSession(deviceId, { desiredVersion: v });
        return;
      }
      if (await notify(deviceId, change.diff, v, false, change.wall)) {
        const next = applyMergePatch(session.desired, change.diff);
        giveView(deviceId, v, isPlainObject(next) ? next : {});
      }
      return;
    }
    await catchUp(deviceId, false);
  };

  // ---- decisions of the gateway's own writes, by event id ------------------------------------

  interface Waiter {
    readonly resolve: (d: Decision) => void;
    readonly reject: (e: unknown) => void;
    readonly timer: NodeJS.Timeout;
  }
  type Decision =
    | { readonly accepted: true; readonly change: ChangeRecord }
    | { readonly accepted: false; readonly rejection: RejectionRecord };
  const waiters = new Map<string, Waiter>();
  /** Decisions seen before their writer registered (the append had not returned yet), by arrival. */
  const early = new Map<string, { decision: Decision; at: number }>();
  const decide = (seq: number, decision: Decision): void => {
    const key = String(seq);
    const w = waiters.get(key);
    if (w === undefined) {
      early.set(key, { decision, at: physicalNow() });
      return;
    }
    waiters.delete(key);
    clearTimeout(w.timer);
    w.resolve(decision);
  };
  const sweep = setInterval(() => {
    const old = physicalNow() - 60_000;
    for (const [k, v] of early) if (v.at < old) early.delete(k);
  }, 10_000);
  sweep.unref();
  /** Wait for the projector's decision on event `seq` of this gateway's writer. */
  const decisionOf = (seq: number): Promise<Decision> => {
    const key = String(seq);
    const seen = early.get(key);
    if (seen !== undefined) {
      early.delete(key);
      return Promise.resolve(seen.decision);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(key);
        reject(new TwinlogError('DECISION_TIMEOUT', `no decision within ${timeoutMs} ms (is a projector running?)`));
      }, timeoutMs);
      waiters.set(key, { resolve, reject, timer });
    });
  };

  // ---- the feed: twin.changes and twin.rejections, supervised (internal/changeFeed.ts) ---------

  const onRecord = (topic: string, r: LogRecord): void => {
    if (r.value === null || r.key === CHECKPOINT_KEY) return;
    if (topic === TOPICS.rejections) {
      let rejection: RejectionRecord;
      try {
        rejection = decodeOutputRecord(r.value, 'rejection');
      } catch {
        return;
      }
      if (rejection.id?.writer === twins.writerId) decide(rejection.id.seq, { accepted: false, rejection });
      return;
    }
    let change: ChangeRecord;
    try {
      change = decodeOutputRecord(r.value, 'change');
    } catch {
      return; // not ours to judge: the projector wrote it
    }
    if (change.id.writer === twins.writerId) decide(change.id.seq, { accepted: true, change });
    if (
      change.section !== 'desired' &&
      change.opType !== 'createDeviceIdentity' &&
      change.opType !== 'deleteDeviceIdentity'
    )
      return;
    // devices never seen by this gateway: nothing to deliver now, catch-up reads the snapshot later
    if (!live.has(change.deviceId) && sessions.get(change.deviceId).desiredVersion === null) return;
    void serial(change.deviceId, () => onChange(change));
  };

  const feed = startChangeFeed({
    log,
    group: `twinlog-gateway-mqtt-${randomBytes(6).toString('hex')}`,
    topics: [TOPICS.changes, TOPICS.rejections],
    onRecord,
    onError: (message) => publishEvent({ kind: 'error', message }),
    restart,
    onStateChange: onFeedStateChange,
  });

  const dropConnection = (deviceId: string): Promise<void> =>
    new Promise((resolve) => {
      const device = live.get(deviceId);
      if (device === undefined) return resolve();
      device.client.close(() => resolve());
    });

  // ---- device status (docs/iot-hub.md, "Device status") ----------------------------------------
  // A disabled device's CONNECT is refused (verifyDeviceSas); a connected one is closed here: at
  // once on a write through this store, within statusRecheckMs on a write by another process.

  const dropDisabled = (deviceId: string): void => {
    if (!live.has(deviceId)) return;
    publishEvent({ kind: 'disabled', deviceId });
    void dropConnection(deviceId);
  };
  /** Close the device's connection when its keys `k` no longer let it in; whether they did not. */
  const dropIfShut = (deviceId: string, k: DeviceKeys | undefined): boolean => {
    if (isDisabled(k)) dropDisabled(deviceId);
    // Keys removed (a device or module deleted through the registry): close the connection, which
    // cannot come back without keys. The delete's change record closes it too, but the SDK may
    // reconnect in the moment between that record and the keys' removal (docs/iot-hub.md, "Module
    // identities and module twins": a device's delete removes its modules and their connections).
    else if (k === undefined) void dropConnection(deviceId);
    else return false;
    return true;
  };
  const stopWatchingKeys = keys.onChange?.((deviceId, k) => void dropIfShut(deviceId, k));
  let seenExternal: number | undefined;
  const recheckStatus = (): void => {
    if (live.size === 0) return; // nothing to close; the next connect reads the status anyway
    const version = keys.externalVersion?.();
    if (version !== undefined && version === seenExternal) return;
    seenExternal = version;
    // one query over the disabled rows, or (a store without it) one read per connected device
    const disabled = keys.disabledDevices?.() ?? [...live.keys()].filter((id) => isDisabled(keys.get(id)));
    for (const id of disabled) dropDisabled(id);
  };
  const statusTimer = setInterval(() => {
    try {
      recheckStatus();
    } catch (e) {
      publishEvent({ kind: 'error', message: `reading device status: ${e instanceof Error ? e.message : String(e)}` });
    }
  }, statusRecheckMs);
  statusTimer.unref();

  // ---- requests ------------------------------------------------------------------------------

  const respond = (
    deviceId: string,
    status: number,
    rid: string,
    body: unknown,
    version?: number,
  ): Promise<boolean> => {
    const topic = `$iothub/twin/res/${status}/?$rid=${encodeURIComponent(rid)}${version === undefined ? '' : `&$version=${version}`}`;
    return deliver(deviceId, topic, body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body)));
  };

  const respondError = (
    deviceId: string,
    request: string,
    rid: string,
    e: unknown,
    arrived: number,
  ): Promise<boolean> => {
    const hub = iotHubCodeOf(e);
    const known = e instanceof GatewayError || (isTwinlogError(e) && e.iotHub !== undefined);
    const message = known && e instanceof Error ? e.message : 'An internal error occurred';
    publishEvent({
      kind: 'request',
      deviceId,
      request,
      status: hub.status,
      error: hub.name,
      ms: performance.now() - arrived,
    });
    return respond(deviceId, hub.status, rid, {
      errorCode: hub.code,
      trackingId: randomBytes(16).toString('hex').toUpperCase(),
      message,
      timestampUtc: new Date(physicalNow()).toISOString(),
    });
  };

  const handleGet = async (deviceId: string, rid: string, arrived: number): Promise<void> => {
    const twin = await getReads.getTwin(deviceId);
    const desired = withoutMetadata(twin.properties.desired);
    const reported = withoutMetadata(twin.properties.reported);
    const version = Number(desired['$version'] ?? 0);
    await serial(deviceId, async () => {
      const sent = await respond(deviceId, 200, rid, { desired, reported });
      const session = sessions.get(deviceId);
      if (sent && (session.desiredVersion === null || version >= session.desiredVersion))
        giveView(deviceId, version, withoutDollarKeys(desired));
    });
    publishEvent({ kind: 'request', deviceId, request: 'get', status: 200, ms: performance.now() - arrived });
  };

  const handleReported = async (deviceId: string, rid: string, payload: Buffer, arrived: number): Promise<void> => {
    let patch: unknown;
    try {
      patch = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new GatewayError('ARGUMENT_INVALID', 'The reported properties patch is not valid JSON');
    }
    if (!isPlainObject(patch))
      throw new GatewayError('ARGUMENT_INVALID', 'The reported properties patch must be a JSON object');
    const receipt = await twins.mergeReported(deviceId, patch as Patch, { actor: deviceId });
    const d = await decisionOf(receipt.id.seq);
    if (!d.accepted) throw new TwinlogError(d.rejection.code as TwinlogErrorCode, d.rejection.message);
    await respond(deviceId, 204, rid, undefined, d.change.reportedVersion);
    publishEvent({ kind: 'request', deviceId, request: 'reported', status: 204, ms: performance.now() - arrived });
  };

  const handleRequest = (deviceId: string, packet: PublishPacket): void => {
    const request = classifyPublish(deviceId, packet.topic);
    if (request.kind === 'telemetry' || request.kind === 'forbidden') return;
    const { rid } = request;
    const arrived = performance.now();
    const work =
      request.kind === 'get'
        ? handleGet(deviceId, rid, arrived)
        : request.kind === 'reported'
          ? handleReported(deviceId, rid, Buffer.from(packet.payload), arrived)
          : Promise.reject(
              request.kind === 'desired-write'
                ? new GatewayError('FORBIDDEN', 'Devices cannot update desired properties')
                : new GatewayError('NOT_FOUND', `Unsupported twin topic ${packet.topic.split('?')[0] ?? ''}`),
            );
    work.catch((e: unknown) => respondError(deviceId, request.kind, rid, e, arrived)).catch(() => {});
  };

  // ---- the broker ------------------------------------------------------------------------------

  const broker = new Aedes({
    maxClientsIdLength: 257, // a module's `{deviceId}/{moduleId}`, 128 characters each (docs/iot-hub.md, "Module identities and module twins")
    connectTimeout: limits.connectTimeoutMs, // a backstop: the guard's deadline runs from accept to an accepted CONNECT
    authenticate(client, username, password, done) {
      try {
        const identity = verifyDeviceSas(client.id, username, password, hubName, (id) => keys.get(id), physicalNow(), {
          maxTokenLifetimeMs,
        });
        expiries.set(client, identity.expiresAtMs);
        guards.get(client.conn)?.accept(identity.deviceId, () => requestBuckets.take(identity.deviceId));
        // docs/iot-hub.md "MQTT (devices)": the model id announced at connect becomes the twin's `modelId`, kept with the device's identity
        const known = keys.get(identity.deviceId);
        if (known !== undefined && identity.modelId !== undefined && known.modelId !== identity.modelId) {
          keys.set(identity.deviceId, { ...known, modelId: identity.modelId });
        }
        // A will message is never a twin write (it would turn a dropped connection into a reported
        // patch): only a telemetry will is kept; one on any other topic is dropped (docs/security.md).
        const will = (client as unknown as { _will?: { topic: string } | null })._will;
        if (will != null && classifyPublish(identity.deviceId, will.topic).kind !== 'telemetry') {
          (client as unknown as { _will: null })._will = null;
          publishEvent({ kind: 'refused', deviceId: identity.deviceId, topic: will.topic, op: 'publish' });
        }
        publishEvent({ kind: 'connect', deviceId: identity.deviceId, returnCode: 0 });
        done(null, true);
      } catch (e) {
        const returnCode = e instanceof DeviceAuthError ? e.returnCode : 5;
        publishEvent({
          kind: 'connect',
          deviceId: client.id,
          returnCode,
          reason: e instanceof Error ? e.message : String(e),
        });
        const error = Object.assign(new Error(e instanceof Error ? e.message : 'Not authorized'), {
          returnCode,
        }) as AuthenticateError;
        done(error, false);
      }
    },
    authorizePublish(client, packet, done) {
      if (client === null) return done(null); // the gateway's own
      const request = classifyPublish(client.id, packet.topic);
      if ((packet.qos as number) === 2) {
        publishEvent({ kind: 'refused', deviceId: client.id, topic: packet.topic, op: 'publish' });
        return done(new Error('QoS 2 is not supported')); // docs/iot-hub.md "MQTT (devices)": a QoS 2 PUBLISH closes the connection
      }
      if (request.kind === 'forbidden') {
        publishEvent({ kind: 'refused', deviceId: client.id, topic: packet.topic, op: 'publish' });
        return done(new Error(`publish to ${packet.topic} is not allowed`)); // closes the connection, as IoT Hub does
      }
      packet.retain = false; // docs/iot-hub.md "MQTT (devices)": retain is ignored on twin topics (and never stored)
      if (request.kind !== 'telemetry') handleRequest(client.id, packet);
      done(null);
    },
    authorizeSubscribe(client, subscription: MqttSubscription, done) {
      if (!maySubscribe(client.id, subscription.topic)) {
        publishEvent({ kind: 'refused', deviceId: client.id, topic: subscription.topic, op: 'subscribe' });
        return done(null, null); // SUBACK 0x80
      }
      done(null, subscription);
    },
    // No device-to-device routing: a client only receives what the gateway addresses to it.
    authorizeForward(_client, packet: AedesPublishPacket) {
      return (packet as { clientId?: string }).clientId === undefined ? packet : null;
    },
  });
  const brokerReady = broker.listen();

  broker.on('clientReady', (client: MqttClient) => {
    const deviceId = client.id;
    const stored = sessions.get(deviceId);
    const subscriptions = new Map<string, 0 | 1>();
    if (client.clean) {
      if (Object.keys(stored.subscriptions).length > 0) updateSession(deviceId, { subscriptions: {} });
    } else {
      for (const [filter, qos] of Object.entries(stored.subscriptions)) subscriptions.set(filter, qos);
    }
    const expiresAt = expiries.get(client);
    const expiry =
      expiresAt === undefined
        ? undefined
        : setTimeout(() => client.close(), Math.min(Math.max(expiresAt - physicalNow(), 0), 2 ** 31 - 1));
    expiry?.unref();
    live.set(deviceId, { client, subscriptions, expiry, viewGiven: false });
    // deleted or disabled between its CONNECT and now (the change notification found it not yet live)
    if (dropIfShut(deviceId, keys.get(deviceId))) return;
    if (!client.clean && subscriptions.size > 0) void serial(deviceId, () => catchUp(deviceId, false));
  });

  broker.on('clientDisconnect', (client: MqttClient) => {
    const device = live.get(client.id);
    if (device?.client !== client) return;
    clearTimeout(device.expiry);
    live.delete(client.id);
  });

  broker.on('subscribe', (subs: MqttSubscription[], client: MqttClient) => {
    const device = live.get(client.id);
    if (device === undefined || device.client !== client) return;
    let desired = false;
    for (const s of subs) {
      if ((s.qos as number) === 128) continue;
      device.subscriptions.set(s.topic, s.qos > 0 ? 1 : 0);
      if (topicMatches(s.topic, '$iothub/twin/PATCH/properties/desired/?$version=1') || s.topic === DESIRED_FILTER)
        desired = true;
    }
    if (!client.clean) updateSession(client.id, { subscriptions: Object.fromEntries(device.subscriptions) });
    if (desired) void serial(client.id, () => catchUp(client.id, true));
  });

  broker.on('unsubscribe', (filters: string[], client: MqttClient) => {
    const device = live.get(client.id);
    if (device === undefined || device.client !== client) return;
    for (const f of filters) device.subscriptions.delete(f);
    if (!client.clean) updateSession(client.id, { subscriptions: Object.fromEntries(device.subscriptions) });
  });

  /** A connection (after its TLS handshake) reaches aedes through its packet guard. */
  const handleConnection = (socket: Socket): void => {
    const remoteAddress = socket.remoteAddress;
    const guard = guardMqttSocket(socket, {
      ...limits,
      onLimit: (limit, detail, deviceId) =>
        publishEvent({
          kind: 'limit',
          limit,
          detail,
          ...(deviceId === undefined ? {} : { deviceId }),
          ...(remoteAddress === undefined ? {} : { remoteAddress }),
        }),
    });
    guards.set(guard.stream, guard);
    broker.handle(guard.stream);
  };

  const sockets = new Map<NetServer, Set<Socket>>();
  const closeServer = (server: NetServer): Promise<void> =>
    new Promise((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets.get(server) ?? []) socket.destroy(); // aedes clients close with their sockets
      sockets.delete(server);
    });

  return {
    async listen({ port, host, tls }: MqttListenOptions): Promise<ListeningMqttGateway> {
      await brokerReady;
      // the feed's first start failing fails the first listen, unless the supervisor has recovered since
      await feed.firstStart.catch((e: unknown) => {
        if (!isHealthyStageState(feed.health().state)) throw e;
      });
      const server: NetServer =
        tls === undefined
          ? createNetServer(handleConnection)
          : createTlsServer({ handshakeTimeout: limits.connectTimeoutMs, ...tls }, handleConnection);
      const open = new Set<Socket>();
      sockets.set(server, open);
      server.on('connection', (socket: Socket) => {
        open.add(socket);
        socket.once('close', () => open.delete(socket));
      });
      server.on('drop', (d) =>
        publishEvent({
          kind: 'limit',
          limit: 'connections',
          detail: `connection refused: the listener holds ${limits.maxConnections}`,
          ...(d?.remoteAddress === undefined ? {} : { remoteAddress: d.remoteAddress }),
        }),
      );
      // A plain tls.Server only reports a failed or late handshake; closing the connection is ours to do.
      server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: Socket) => {
        socket.destroy();
        if (e.code !== 'ERR_TLS_HANDSHAKE_TIMEOUT') return;
        publishEvent({
          kind: 'limit',
          limit: 'connectTimeout',
          detail: `TLS handshake not done within ${limits.connectTimeoutMs} ms`,
          ...(socket.remoteAddress === undefined ? {} : { remoteAddress: socket.remoteAddress }),
        });
      });
      return listenOn(server, port, host, servers, closeServer, { maxConnections: limits.maxConnections });
    },
    connectedDevices: () => [...live.keys()],
    isConnected: (deviceId) => live.has(deviceId),
    disconnect: dropConnection,
    health: () => feed.health(),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...servers].map(closeServer));
      servers.clear();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      clearInterval(sweep);
      clearInterval(statusTimer);
      stopWatchingKeys?.();
      for (const w of waiters.values()) {
        clearTimeout(w.timer);
        w.reject(new TwinlogError('DECISION_TIMEOUT', 'the gateway was closed before the decision arrived'));
      }
      waiters.clear();
      await feed.stop();
      await Promise.all([...queues.values()]);
      if (givenClient === undefined) await twins.close();
    },
  };
}

/** A section as a device sees it: without `$metadata` (docs/iot-hub.md "The twin document"), with `$version`. */
function withoutMetadata(section: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(section)) if (k !== '$metadata') out[k] = section[k]!;
  return out;
}

/** A section's properties only (no `$version`, no `$metadata`). */
function withoutDollarKeys(section: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(section)) if (!k.startsWith('$')) out[k] = section[k]!;
  return out;
}
