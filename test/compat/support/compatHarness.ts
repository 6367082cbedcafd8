/**
 * One twinlog "hub" for the compatibility suite: a backend (embedded or Kafka) with a projector,
 * the REST gateway (HTTPS) and the MQTT gateway (MQTT over TLS) sharing one device key store,
 * both serving a certificate from a CA made by the test; plus the unmodified SDK clients
 * pointed at it.
 */
import { join } from 'node:path';
import { Client as DeviceClient } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { JobClient, Registry } from 'azure-iothub';
import {
  createConfigurationManager,
  createReadModel as createConfigReadModel,
  type ConfigurationManager,
} from '@twinlog/fleet';
import { createJobRunner, createReadModel, type JobRunner, type ReadModel } from '@twinlog/fleet';
import {
  createDeviceKeyStore,
  createMqttGateway,
  createRestGateway,
  type DeviceKeyStore,
  type ListeningGateway,
  type ListeningMqttGateway,
  type MqttGateway,
  type RestGateway,
} from '@twinlog/gateway';
import { startBackend, type Backend, type BackendKind } from './backends.ts';
import { createTestCa, type TestCa } from './testCa.ts';
import { FixedPortAgent } from '../../support/fixedPortAgent.ts';

export const OWNER_KEY = Buffer.alloc(32, 7).toString('base64');

export interface Hub {
  readonly backend: Backend;
  readonly ca: TestCa;
  readonly keys: DeviceKeyStore;
  readonly registry: Registry;
  /** With `startHub(kind, { configurations: true })`: the configuration manager behind `/configurations` (over its own read model, as in `serve`). */
  readonly configurations?: ConfigurationManager;
  /** The port the REST gateway listens on (HTTPS, the test CA's certificate). */
  readonly restPort: number;
  readonly sessionFile: string;
  mqtt: MqttGateway;
  mqttServer: ListeningMqttGateway;
  /** The port devices dial (kept across MQTT gateway restarts). */
  readonly mqttPort: number;
  /** A device client over MQTT for `deviceId`, trusting the test CA (not yet open). */
  /** An SDK device client (not yet open); `modelId` makes it a Plug and Play device. */
  device(deviceId: string, key: string, modelId?: string): Promise<DeviceClient>;
  /** Stop the MQTT listener (devices see the server go away); `startMqtt` brings it back. */
  stopMqtt(): Promise<void>;
  /** A new MQTT gateway (fresh process state, same session file and key store) on the same port. */
  startMqtt(): Promise<void>;
  /** PUT /twins/{id} through the Registry's own REST client (the Node Registry has no replaceTwin, docs/iot-hub.md "Writes"). */
  replaceTwin(deviceId: string, twin: object, etag: string): Promise<Record<string, unknown>>;
  /** With `startHub(kind, { jobs: true })`: the job runner behind `/jobs/v2` (over a read model, as in `twinlog serve`). */
  readonly jobs: JobRunner | undefined;
  /** An unmodified `JobClient` pointed at the REST gateway. */
  jobClient(): JobClient;
  close(): Promise<void>;
}

export async function startHub(
  kind: BackendKind,
  options: { readonly jobs?: boolean; readonly configurations?: boolean } = {},
): Promise<Hub> {
  const backend = await startBackend(kind);
  const readModel: ReadModel | undefined =
    options.jobs === true
      ? await createReadModel({ log: backend.log, path: join(backend.dir, 'read-model.db') })
      : undefined;
  const jobs =
    readModel === undefined
      ? undefined
      : createJobRunner({ readModel, log: backend.log, physicalNow: Date.now, pollIntervalMs: 50 });
  jobs?.start();
  const configReadModel =
    options.configurations === true
      ? await createConfigReadModel({ log: backend.log, path: join(backend.dir, 'config-read-model.db') })
      : undefined;
  const configurations =
    configReadModel === undefined
      ? undefined
      : createConfigurationManager({ readModel: configReadModel, log: backend.log, physicalNow: Date.now });
  configurations?.start();
  const ca = createTestCa();
  const keys = createDeviceKeyStore(join(backend.dir, 'device-keys.json'));
  const sessionFile = join(backend.dir, 'mqtt-sessions.jsonl');
  const tls = { key: ca.key, cert: ca.cert };
  const rest: RestGateway = createRestGateway({
    log: backend.log,
    hubName: 'localhost',
    physicalNow: Date.now,
    policies: [{ name: 'iothubowner', key: OWNER_KEY, rights: ['registryReadWrite', 'serviceConnect'] }],
    deviceKeys: keys,
    isConnected: (deviceId) => mqtt.isConnected(deviceId),
    ...(configurations === undefined ? {} : { configurations }),
    ...(readModel === undefined || jobs === undefined ? {} : { jobs, queryView: readModel }), // as in twinlog serve: queries see what jobs match
  });
  const restServer: ListeningGateway = await rest.listen({ port: 0, host: '127.0.0.1', tls });
  const registry = Registry.fromConnectionString(
    `HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`,
  );
  const agent = new FixedPortAgent(restServer.port, { ca: ca.ca, keepAlive: false });
  (registry as unknown as { _restApiClient: { setOptions(o: object): void } })._restApiClient.setOptions({
    http: { agent },
    ca: ca.ca,
  });

  const newMqtt = (): MqttGateway =>
    createMqttGateway({ log: backend.log, hubName: 'localhost', physicalNow: Date.now, deviceKeys: keys, sessionFile });
  let mqtt = newMqtt();
  let mqttServer = await mqtt.listen({ port: 0, host: '127.0.0.1', tls });
  const mqttPort = mqttServer.port;
  const devices: DeviceClient[] = [];

  const hub: Hub = {
    backend,
    ca,
    keys,
    registry,
    ...(configurations === undefined ? {} : { configurations }),
    restPort: restServer.port,
    sessionFile,
    mqtt,
    mqttServer,
    mqttPort,
    async device(deviceId, key, modelId) {
      const client = DeviceClient.fromConnectionString(
        `HostName=localhost:${mqttPort};DeviceId=${deviceId};SharedAccessKey=${key}`,
        Mqtt,
      );
      await client.setOptions({ ca: ca.ca, ...(modelId === undefined ? {} : { modelId }) }); // docs/iot-hub.md "SDK behaviour twinlog accommodates": awaited before open()
      devices.push(client);
      return client;
    },
    async stopMqtt() {
      await hub.mqttServer.close();
      await hub.mqtt.close();
    },
    async startMqtt() {
      mqtt = newMqtt();
      mqttServer = await mqtt.listen({ port: mqttPort, host: '127.0.0.1', tls });
      hub.mqtt = mqtt;
      hub.mqttServer = mqttServer;
    },
    replaceTwin(deviceId, twin, etag) {
      const api = (
        registry as unknown as {
          _restApiClient: {
            executeApiCall(
              m: string,
              p: string,
              h: object,
              b: object,
              done: (err: Error | null, body?: Record<string, unknown>) => void,
            ): void;
          };
        }
      )._restApiClient;
      return new Promise((resolve, reject) =>
        api.executeApiCall(
          'PUT',
          `/twins/${encodeURIComponent(deviceId)}?api-version=2021-04-12`,
          { 'Content-Type': 'application/json; charset=utf-8', 'If-Match': `"${etag}"` },
          twin,
          (err, body) => (err === null || err === undefined ? resolve(body ?? {}) : reject(err)),
        ),
      );
    },
    jobs,
    jobClient() {
      const client = JobClient.fromConnectionString(
        `HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`,
      );
      (client as unknown as { _restApiClient: { setOptions(o: object): void } })._restApiClient.setOptions({
        http: { agent },
        ca: ca.ca,
      });
      return client;
    },
    async close() {
      for (const d of devices) await d.close().catch(() => {});
      await jobs?.stop();
      await readModel?.close();
      agent.destroy();
      await hub.mqttServer.close().catch(() => {});
      await hub.mqtt.close();
      await restServer.close();
      await rest.close();
      await configurations?.stop();
      await configReadModel?.close();
      await backend.stop();
    },
  };
  return hub;
}

/** Poll `check` until it returns a value other than undefined (the suite's only wait). */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  attempts = 600,
): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}
