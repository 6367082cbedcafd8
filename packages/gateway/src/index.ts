/**
 * @twinlog/gateway: the IoT Hub-compatible edge. This session: the HTTPS REST half
 * ({@link createRestGateway}): identity registry, device twins and queries behind service SAS
 * auth, answering in IoT Hub's formats so that the `azure-iothub` `Registry` works unmodified.
 *
 * @example
 * import { createRestGateway } from '@twinlog/gateway'
 * const gateway = createRestGateway({ log, hubName: 'localhost', physicalNow: Date.now,
 *   policies: [{ name: 'iothubowner', key, rights: ['registryReadWrite', 'serviceConnect'] }] })
 * await gateway.listen({ port: 443, tls: { key: tlsKey, cert: tlsCert } })
 */
export { createRestGateway, API_VERSIONS, GATEWAY_REQUEST_CHANNEL } from './createRestGateway.ts';
export type { GatewayRequestEvent, ListenOptions, ListeningGateway, PolicyRight, RestGateway, RestGatewayOptions, SharedAccessPolicy } from './createRestGateway.ts';
export { signServiceSas } from './internal/verifyServiceSas.ts';
export { GATEWAY_CODES, iotHubErrorBody } from './internal/iotHubError.ts';
export type { GatewayCode } from './internal/iotHubError.ts';
export { createMqttGateway, MQTT_GATEWAY_CHANNEL } from './createMqttGateway.ts';
export type { ListeningMqttGateway, MqttGateway, MqttGatewayEvent, MqttGatewayOptions, MqttListenOptions } from './createMqttGateway.ts';
export { createDeviceKeyStore } from './internal/deviceKeyStore.ts';
export type { DeviceKeys, DeviceKeyStore } from './internal/deviceKeyStore.ts';
export { signDeviceSas } from './internal/verifyDeviceSas.ts';
