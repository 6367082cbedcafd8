/**
 * @twinlog/gateway: the IoT Hub-compatible edge. {@link createRestGateway} serves back ends over
 * HTTPS (identity registry, device twins and queries behind service SAS auth);
 * {@link createMqttGateway} serves devices over MQTT 3.1.1 with TLS (device SAS auth, the
 * `$iothub/twin/…` topics, durable sessions and offline catch-up). Both answer in IoT Hub's formats,
 * so the Azure IoT SDKs work unmodified, and share one device key store.
 *
 * @example
 * import { createDeviceKeyStore, createMqttGateway, createRestGateway } from '@twinlog/gateway'
 * const deviceKeys = createDeviceKeyStore('/var/lib/twinlog/device-keys.json')
 * const rest = createRestGateway({ log, hubName: 'localhost', physicalNow: Date.now, deviceKeys,
 *   policies: [{ name: 'iothubowner', key, rights: ['registryReadWrite', 'serviceConnect'] }] })
 * const mqtt = createMqttGateway({ log, hubName: 'localhost', physicalNow: Date.now, deviceKeys, sessionFile })
 * await rest.listen({ port: 443, tls: { key: tlsKey, cert: tlsCert } })
 * await mqtt.listen({ port: 8883, tls: { key: tlsKey, cert: tlsCert } })
 */
export { createRestGateway, API_VERSIONS, GATEWAY_REQUEST_CHANNEL } from './createRestGateway.ts';
export type {
  GatewayRequestEvent,
  ListenOptions,
  ListeningGateway,
  PolicyRight,
  RestGateway,
  RestGatewayOptions,
  SharedAccessPolicy,
} from './createRestGateway.ts';
export type { JobService, JobServiceRequest, JobServiceState, JobServiceStatus } from './createRestGateway.ts';
export type { ConfigurationDefinition, ConfigurationDocument, ConfigurationService } from './createRestGateway.ts';
export { signServiceSas } from './internal/verifyServiceSas.ts';
export { GATEWAY_CODES, iotHubErrorBody } from './internal/iotHubError.ts';
export type { GatewayCode } from './internal/iotHubError.ts';
export {
  createMqttGateway,
  DEFAULT_MQTT_LIMITS,
  DEFAULT_STATUS_RECHECK_MS,
  MQTT_GATEWAY_CHANNEL,
} from './createMqttGateway.ts';
export type {
  ListeningMqttGateway,
  MqttGateway,
  MqttGatewayEvent,
  MqttGatewayOptions,
  MqttLimitName,
  MqttLimits,
  MqttListenOptions,
} from './createMqttGateway.ts';
export { DEFAULT_HTTP_LIMITS } from './internal/limits.ts';
export type { HttpLimits } from './internal/limits.ts';
export { applyListenerLimits, tlsServerOptions } from './internal/listenOn.ts';
export { createDeviceKeyStore, isDisabled, newDeviceKeys, withDeviceStatus } from './internal/deviceKeyStore.ts';
export type { DeviceKeys, DeviceKeysListener, DeviceKeyStore, DeviceStatus } from './internal/deviceKeyStore.ts';
export { signDeviceSas } from './internal/verifyDeviceSas.ts';
export { ensurePrivateDir, writeSecretFile } from './internal/secretFile.ts';
