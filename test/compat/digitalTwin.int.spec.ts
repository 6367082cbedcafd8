/**
 * Compatibility suite for the IoT Plug and Play digital twin API (issue #14, item 4): the unmodified
 * `DigitalTwinClient` of `azure-iothub` (with `IoTHubTokenCredentials` from a connection string)
 * against twinlog's REST gateway, and a Plug and Play device (`azure-iot-device` over MQTT, with a
 * model id) acknowledging writable properties, on the embedded backend and on Kafka
 * (docs/iot-hub.md, "IoT Plug and Play").
 */
import { promisify } from 'node:util';
import type { Client as DeviceClient, Twin } from 'azure-iot-device';
import { DigitalTwinClient, IoTHubTokenCredentials } from 'azure-iothub';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FixedPortAgent } from '../support/fixedPortAgent.ts';
import type { BackendKind } from './support/backends.ts';
import { eventually, OWNER_KEY, startHub, type Hub } from './support/compatHarness.ts';

type Desired = Record<string, unknown>;
const MODEL_ID = 'dtmi:com:example:TemperatureController;1';

/** An HTTP response as the SDK attaches it to results and errors (`_response`, `response`). */
interface SdkResponse {
  readonly status: number;
  readonly headers: { get(name: string): string | undefined };
}

/**
 * The unmodified client. Like the `Registry` (docs/iot-hub.md, "SDK behaviour twinlog accommodates"),
 * it dials `https://{HostName}:443`; the one adaptation is the test's transport: a request policy
 * that hands each request the agent dialling the gateway's port and trusting the test CA.
 */
function digitalTwinClient(hub: Hub): { client: DigitalTwinClient; agent: FixedPortAgent } {
  const client = new DigitalTwinClient(
    new IoTHubTokenCredentials(`HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=${OWNER_KEY}`),
  );
  const agent = new FixedPortAgent(hub.restPort, { ca: hub.ca.ca, keepAlive: false });
  type Policy = { sendRequest(request: { agentSettings?: object }): Promise<unknown> };
  const pl = (client as unknown as { _pl: { _requestPolicyFactories: { create(next: Policy): Policy }[] } })._pl;
  pl._requestPolicyFactories.push({
    create: (next) => ({
      sendRequest(request) {
        request.agentSettings = { http: agent, https: agent };
        return next.sendRequest(request);
      },
    }),
  });
  return { client, agent };
}

async function createDevice(hub: Hub, deviceId: string): Promise<string> {
  const { responseBody } = await hub.registry.create({ deviceId });
  const key = responseBody.authentication?.symmetricKey?.primaryKey;
  if (typeof key !== 'string') throw new Error('no key');
  return key;
}

/** Open a Plug and Play device (model id at connect), get its twin and record every desired patch. */
async function openDevice(
  hub: Hub,
  deviceId: string,
  key: string,
): Promise<{ client: DeviceClient; twin: Twin; patches: Desired[]; report(patch: object): Promise<void> }> {
  const client = await hub.device(deviceId, key, MODEL_ID);
  await client.open();
  const twin = await client.getTwin();
  const patches: Desired[] = [];
  twin.on('properties.desired', (patch: Desired) => patches.push(patch));
  const reported = twin.properties.reported as unknown as { update(patch: object, done: (e?: Error) => void): void };
  const report = promisify((patch: object, done: (e?: Error) => void) => reported.update(patch, done));
  return { client, twin, patches, report };
}

/** The rejection of a promise (the SDK's `RestError`: `statusCode`, `message` = the body). */
async function refusal(promise: Promise<unknown>): Promise<{ statusCode: number; message: string }> {
  try {
    await promise;
  } catch (e) {
    return e as { statusCode: number; message: string };
  }
  throw new Error('expected a refusal');
}

function compat(kind: BackendKind): void {
  describe(`DigitalTwinClient on the ${kind} backend`, () => {
    let hub: Hub;
    let dt: DigitalTwinClient;
    let agent: FixedPortAgent;
    beforeEach(async () => {
      hub = await startHub(kind);
      ({ client: dt, agent } = digitalTwinClient(hub));
    });
    afterEach(async () => {
      agent.destroy();
      await hub.close();
    });

    it('updateDigitalTwin (JSON Patch, one desired change), the device acknowledges, getDigitalTwin shows the acknowledgement; etags, refusals', async () => {
      const key = await createDevice(hub, 'thermo1');
      const { twin, patches, report } = await openDevice(hub, 'thermo1', key);
      // wait until the device's desired subscription is in place (a first desired change reaches it)
      await hub.registry.updateTwin('thermo1', { properties: { desired: { mode: 'auto' } } }, '*');
      await eventually(() => (twin.properties.desired['mode'] === 'auto' ? true : undefined), 'the subscription');
      const baseline = patches.length;

      // a property and a new component in one JSON Patch: one desired event, one notification
      const accepted = await dt.updateDigitalTwin('thermo1', [
        { op: 'add', path: '/targetTemperature', value: 21 },
        { op: 'add', path: '/thermostat1', value: { targetTemperature: 19, $metadata: {} } },
      ]);
      expect(accepted).toBeUndefined(); // 202 without a body, as IoT Hub answers
      await eventually(
        () => (twin.properties.desired['targetTemperature'] === 21 ? true : undefined),
        'the desired notification',
      );
      const changes = patches.slice(baseline);
      expect(changes, JSON.stringify(changes)).toHaveLength(1);
      expect(changes[0]).toMatchObject({
        targetTemperature: 21,
        thermostat1: { __t: 'c', targetTemperature: 19 },
        $version: 3,
      });

      // the device acknowledges (IoT Plug and Play convention) and reports a read-only property
      await report({
        serialNumber: 'SN-42',
        targetTemperature: { value: 21, ac: 200, av: 3, ad: 'applied' },
        thermostat1: {
          __t: 'c',
          targetTemperature: { value: 18.5, ac: 202, av: 3, ad: 'heating' },
          maxTempSinceLastReboot: 25,
        },
      });

      const got = await dt.getDigitalTwin('thermo1');
      const response = (got as unknown as { _response: SdkResponse })._response;
      const etag = response.headers.get('etag');
      expect(etag).toMatch(/^".+"$/);
      const { _response: _, ...body } = got as unknown as Record<string, unknown>;
      expect(body).toEqual({
        $dtId: 'thermo1',
        serialNumber: 'SN-42',
        targetTemperature: 21,
        thermostat1: {
          maxTempSinceLastReboot: 25,
          targetTemperature: 18.5,
          $metadata: {
            maxTempSinceLastReboot: { lastUpdateTime: expect.any(String) },
            targetTemperature: {
              desiredValue: 19,
              desiredVersion: 3,
              ackVersion: 3,
              ackCode: 202,
              ackDescription: 'heating',
              lastUpdateTime: expect.any(String),
            },
          },
        },
        $metadata: {
          $model: MODEL_ID,
          mode: { desiredValue: 'auto', desiredVersion: 2, lastUpdateTime: expect.any(String) },
          serialNumber: { lastUpdateTime: expect.any(String) },
          targetTemperature: {
            desiredValue: 21,
            desiredVersion: 3,
            ackVersion: 3,
            ackCode: 200,
            ackDescription: 'applied',
            lastUpdateTime: expect.any(String),
          },
        },
      });
      // the device twin underneath agrees: the etag is the twin's, the model id is the one announced
      const { responseBody: deviceTwin } = await hub.registry.getTwin('thermo1');
      expect(etag).toBe(`"${deviceTwin.etag}"`);
      expect(deviceTwin.modelId).toBe(MODEL_ID);

      // a conditional update (If-Match from the ETag): replace and remove, one notification with the removal as null
      const before = patches.length;
      await dt.updateDigitalTwin(
        'thermo1',
        [
          { op: 'replace', path: '/targetTemperature', value: 22.5 },
          { op: 'remove', path: '/thermostat1/targetTemperature' },
        ],
        etag,
      );
      await eventually(
        () => (twin.properties.desired['targetTemperature'] === 22.5 ? true : undefined),
        'the second notification',
      );
      expect(patches.slice(before)).toHaveLength(1);
      expect(patches[before]).toMatchObject({ targetTemperature: 22.5, $version: 4 });
      expect(twin.properties.desired['thermostat1']).toEqual({ __t: 'c' });
      const after = await dt.getDigitalTwin('thermo1');
      const afterMeta = (after as unknown as { $metadata: Record<string, Record<string, unknown>> }).$metadata;
      // desired moved on; the device's last acknowledgement stays visible, for version 3
      expect(afterMeta['targetTemperature']).toMatchObject({
        desiredValue: 22.5,
        desiredVersion: 4,
        ackVersion: 3,
        ackCode: 200,
      });
      expect(
        (after as unknown as { thermostat1: { $metadata: Record<string, unknown> } }).thermostat1.$metadata[
          'targetTemperature'
        ],
      ).toEqual({
        ackVersion: 3,
        ackCode: 202,
        ackDescription: 'heating',
        lastUpdateTime: expect.any(String),
      });

      // the old etag is stale now: 412, nothing written
      const stale = await refusal(
        dt.updateDigitalTwin('thermo1', [{ op: 'replace', path: '/targetTemperature', value: 30 }], etag),
      );
      expect(stale.statusCode).toBe(412);
      expect(stale.message).toContain('PreconditionFailed');
      // an invalid JSON Patch: 400 with IoT Hub's error body naming the operation
      const invalid = await refusal(dt.updateDigitalTwin('thermo1', [{ op: 'replace', path: '/nope', value: 1 }]));
      expect(invalid.statusCode).toBe(400);
      expect(invalid.message).toContain('ErrorCode:ArgumentInvalid');
      expect(invalid.message).toContain('operation 0 (replace /nope): the path does not exist');
      const unsupportedOp = await refusal(
        dt.updateDigitalTwin('thermo1', [{ op: 'move', from: '/targetTemperature', path: '/t2' }]),
      );
      expect(unsupportedOp.statusCode).toBe(400);
      expect(unsupportedOp.message).toContain('op move is not supported');
      expect((await hub.registry.getTwin('thermo1')).responseBody.properties.desired['$version']).toBe(4);

      // commands are direct methods: refused, with the reason
      const command = await refusal(dt.invokeCommand('thermo1', 'reboot', { delay: 1 }));
      expect(command.statusCode).toBe(405);
      expect(command.message).toContain('direct methods, which twinlog does not support');
      const componentCommand = await refusal(
        dt.invokeComponentCommand('thermo1', 'thermostat1', 'getMaxMinReport', 'since'),
      );
      expect(componentCommand.statusCode).toBe(405);

      // an unknown device
      const missing = await refusal(dt.getDigitalTwin('nobody'));
      expect(missing.statusCode).toBe(404);
      expect(missing.message).toContain('DeviceNotFound');
    });
  });
}

compat('embedded');
compat('kafka');
