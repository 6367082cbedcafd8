/**
 * Limits at the door (docs/security.md, "Limits at the door"): what one connection may cost the
 * gateways before and after it authenticates. Each limit has a safe default and can be changed;
 * the defaults and the IoT Hub behaviour each one mirrors are listed in docs/security.md.
 */

/**
 * Limits of the MQTT gateway, per listener and per connection (`createMqttGateway({ limits })`).
 * A connection that passes one is closed (MQTT 3.1.1 has no way for a server to say why; IoT Hub
 * closes the connection too), and a `{ kind: 'limit' }` event is published on
 * `MQTT_GATEWAY_CHANNEL`.
 *
 * @example
 * const limits: MqttLimits = { ...DEFAULT_MQTT_LIMITS, deviceRequestsPerSecond: 20 }
 */
export interface MqttLimits {
  /**
   * Largest "remaining length" a packet may declare once the CONNECT is accepted, bytes. A larger
   * declaration closes the connection as soon as its fixed header arrives, before any of the body
   * is read or buffered. Default 256 KiB: IoT Hub's largest device-to-cloud message.
   */
  readonly maxPacketBytes: number;
  /**
   * Bytes a connection may send in total (declared lengths counted when the header arrives)
   * before its CONNECT is accepted. Default 16 KiB: a CONNECT with a SAS token is under 2 KB.
   * Gotcha: a client that sends a large packet right behind its CONNECT, without waiting for the
   * CONNACK, is closed; IoT Hub SDKs wait.
   */
  readonly maxUnauthenticatedBytes: number;
  /**
   * Time a connection has to get its CONNECT accepted, from the moment it reaches the broker
   * (after the TLS handshake), ms; the TLS handshake has the same time of its own (the TLS
   * server's `handshakeTimeout`, unless `tls` sets one). Default 10 000.
   */
  readonly connectTimeoutMs: number;
  /**
   * Connections one listener holds at once (`net.Server#maxConnections`): the next one is closed
   * as soon as it is accepted, before any TLS work. Default 10 000. Keep it below the process's
   * file-descriptor limit (`ulimit -n`) minus what the rest of the process needs (the HTTP
   * listeners, the admin listener, the log), or a flood of idle connections can starve them.
   */
  readonly maxConnections: number;
  /**
   * Time without a byte from the client after which the connection is closed, ms, whatever
   * keep-alive it announced (a keep-alive of 0 would otherwise hold a connection forever).
   * Default 1 767 000: IoT Hub's longest keep-alive, 1767 s.
   */
  readonly idleTimeoutMs: number;
  /**
   * Requests a device may make per second, on average: every PUBLISH, SUBSCRIBE, UNSUBSCRIBE and
   * PINGREQ takes a token from the device's bucket (acknowledgements of what the gateway sent do
   * not). A device that finds its bucket empty is disconnected, as IoT Hub disconnects a throttled
   * MQTT device. The bucket is the device's, not the connection's, so reconnecting does not refill
   * it. Default 100.
   */
  readonly deviceRequestsPerSecond: number;
  /** Requests a device may make at once (the bucket's size). Default 200. */
  readonly deviceRequestBurst: number;
  /**
   * Devices whose buckets are kept at once. A bucket that has refilled is forgotten (it holds no
   * information), and past this bound the least recently active device's bucket is forgotten
   * first (that device starts again with a full bucket). Default 100 000 (a few MB).
   */
  readonly maxTrackedDevices: number;
}

/**
 * The defaults of {@link MqttLimits}.
 *
 * @example
 * createMqttGateway({ log, hubName, physicalNow: Date.now, limits: { connectTimeoutMs: DEFAULT_MQTT_LIMITS.connectTimeoutMs / 2 } })
 */
export const DEFAULT_MQTT_LIMITS: MqttLimits = Object.freeze({
  maxPacketBytes: 256 * 1024,
  maxUnauthenticatedBytes: 16 * 1024,
  connectTimeoutMs: 10_000,
  maxConnections: 10_000,
  idleTimeoutMs: 1_767_000,
  deviceRequestsPerSecond: 100,
  deviceRequestBurst: 200,
  maxTrackedDevices: 100_000,
});

/**
 * Limits of an HTTP(S) listener (the REST gateway's): slow clients and idle connections. Applied
 * by the shared listen step, so every HTTP listener of the gateways gets them.
 *
 * @example
 * const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, requestTimeoutMs: 60_000 }
 */
export interface HttpLimits {
  /** Connections the listener holds at once (`net.Server#maxConnections`). Default 10 000; see {@link MqttLimits.maxConnections}. */
  readonly maxConnections: number;
  /**
   * Time a client has to send a request's complete headers, from the moment its connection is
   * ready or its previous response was sent, ms (`http.Server#headersTimeout`): a slow-loris or
   * silent connection gets 408 and is closed. Default 10 000.
   */
  readonly headersTimeoutMs: number;
  /** Time a client has to send a whole request, body included, ms (`http.Server#requestTimeout`). At least `headersTimeoutMs`. Default 30 000. */
  readonly requestTimeoutMs: number;
  /** Time an idle keep-alive connection is kept after a response, ms (`http.Server#keepAliveTimeout`). Default 5 000. */
  readonly keepAliveTimeoutMs: number;
  /** Time without any I/O on a connection after which it is closed, ms (`http.Server#setTimeout`). Default 60 000. */
  readonly idleTimeoutMs: number;
  /**
   * Time a TLS handshake may take, ms. A TLS server takes it when it is made, so it is not applied
   * by the listen step: make the server with `tlsServerOptions(tls, limits)`. Default 10 000
   * (Node's own default is 120 000).
   */
  readonly handshakeTimeoutMs: number;
}

/**
 * The defaults of {@link HttpLimits}.
 *
 * @example
 * https.createServer({ ...tls, handshakeTimeout: DEFAULT_HTTP_LIMITS.handshakeTimeoutMs }, handler)
 */
export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxConnections: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  handshakeTimeoutMs: 10_000,
});

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `given` over `defaults`, each value checked.
 *
 * @throws RangeError for an unknown name, a value that is not a positive integer (a positive
 * number for `deviceRequestsPerSecond`), a time above 2^31 - 1 ms (a Node timer's range), or a
 * `headersTimeoutMs` above `requestTimeoutMs`.
 * @example
 * resolveLimits(DEFAULT_MQTT_LIMITS, { maxPacketBytes: 1024 }).maxPacketBytes // 1024
 */
export function resolveLimits<L extends object>(defaults: L, given: Partial<L> | undefined): L {
  const out = { ...defaults } as Record<string, number>;
  for (const [name, value] of Object.entries(given ?? {})) {
    if (value === undefined) continue;
    if (!(name in defaults)) throw new RangeError(`unknown limit ${name}`);
    const ok =
      typeof value === 'number' &&
      value > 0 &&
      (name === 'deviceRequestsPerSecond' ? Number.isFinite(value) : Number.isSafeInteger(value));
    if (!ok) {
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the value as configured, whatever it is
      const got = String(value);
      throw new RangeError(
        `limit ${name} must be a positive ${name === 'deviceRequestsPerSecond' ? 'number' : 'integer'}, got ${got}`,
      );
    }
    if (name.endsWith('Ms') && value > MAX_TIMER_MS)
      throw new RangeError(`limit ${name} must be at most ${MAX_TIMER_MS} ms (a Node timer's range), got ${value}`);
    out[name] = value;
  }
  const headers = out['headersTimeoutMs'];
  const request = out['requestTimeoutMs'];
  if (headers !== undefined && request !== undefined && headers > request) {
    throw new RangeError(`limit headersTimeoutMs (${headers}) must not exceed requestTimeoutMs (${request})`);
  }
  return Object.freeze(out) as L;
}
