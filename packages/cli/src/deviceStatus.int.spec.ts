/**
 * Device status in `twinlog serve` (docs/iot-hub.md, "Device status"): a device disabled through
 * the REST registry loses its MQTT connection at once (both gateways share one key store); one
 * disabled by `twinlog device update` in another process loses it within the 5 s recheck; a
 * disabled device's CONNECT gets CONNACK 5; re-enabled, it connects again. Embedded log, plain MQTT.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signDeviceSas, signServiceSas } from '@twinlog/gateway';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanEnv, ROOT, startServe, type Served } from '../../../test/support/serveProcess.ts';

const HUB = 'status-hub';

function twinlog(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: cleanEnv({ TWINLOG_HUB_NAME: HUB }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('device status in twinlog serve', () => {
  let dir: string;
  let served: Served;
  const clients: mqtt.MqttClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twinlog-status-'));
    served = await startServe(['--data', dir, '--mqtt-port', '0'], cleanEnv({ TWINLOG_HUB_NAME: HUB }));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    if (served !== undefined && served.child.exitCode === null) {
      served.child.kill('SIGTERM');
      await served.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** Resolves with the connected client, or rejects with the CONNACK error (`code`). */
  const connect = (deviceId: string, key: string): Promise<mqtt.MqttClient> => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${served.mqttPort!}`, {
      clientId: deviceId,
      username: `${HUB}/${deviceId}/?api-version=2021-04-12`,
      password: signDeviceSas(HUB, deviceId, key, Math.floor(Date.now() / 1000) + 600),
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(client);
    client.on('error', () => {});
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  };
  /** Ms until the server closes `client`. */
  const closedAfter = (client: mqtt.MqttClient, since: number): Promise<number> =>
    new Promise((resolve) => client.once('close', () => resolve(Date.now() - since)));

  it(
    'closes a device disabled through the registry at once, one disabled by the CLI within the recheck, and lets both back in',
    { timeout: 90_000 },
    async () => {
      const { key: policyKey } = JSON.parse(readFileSync(join(dir, 'service-policy.json'), 'utf8')) as { key: string };
      const registry = async (deviceId: string, body: object, ifMatch?: string): Promise<Record<string, unknown>> => {
        const res = await fetch(`http://127.0.0.1:${served.gatewayPort}/devices/${deviceId}?api-version=2021-04-12`, {
          method: 'PUT',
          headers: {
            authorization: signServiceSas(HUB, 'iothubowner', policyKey, Math.floor(Date.now() / 1000) + 600),
            'content-type': 'application/json',
            ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }),
          },
          body: JSON.stringify({ deviceId, ...body }),
        });
        expect(res.status).toBe(200);
        return (await res.json()) as Record<string, unknown>;
      };
      const restKey = ((await registry('rest-1', {})) as { authentication: { symmetricKey: { primaryKey: string } } })
        .authentication.symmetricKey.primaryKey;
      const created = await twinlog(['device', 'create', 'cli-1', '--data', dir]);
      expect(created.code).toBe(0);
      const cliKey = /SharedAccessKey=(\S+)/.exec(created.stdout)![1]!;

      const rest = await connect('rest-1', restKey);
      const cli = await connect('cli-1', cliKey);

      // through the REST registry: the shared store tells the MQTT gateway at once
      let t = Date.now();
      const restClosed = closedAfter(rest, t);
      expect(await registry('rest-1', { status: 'disabled', statusReason: 'stolen' }, '*')).toMatchObject({
        status: 'disabled',
        statusReason: 'stolen',
      });
      expect(await restClosed).toBeLessThan(2_000); // "at once": a generous bound, not a measured time
      await expect(connect('rest-1', restKey)).rejects.toMatchObject({ code: 5 });
      expect(cli.connected).toBe(true);

      // through the CLI, another process on the same registry file: the recheck (5 s) finds it
      t = Date.now();
      const cliClosed = closedAfter(cli, t);
      const disabled = await twinlog(['device', 'update', 'cli-1', '--status', 'disabled', '--data', dir]);
      expect(disabled).toMatchObject({ code: 0 });
      expect(disabled.stdout).toMatch(/^cli-1: disabled since /);
      expect(await cliClosed).toBeLessThan(5_000 + 5_000); // the recheck interval, plus the CLI's start
      await expect(connect('cli-1', cliKey)).rejects.toMatchObject({ code: 5 });

      // re-enabled, both connect again
      await registry('rest-1', { status: 'enabled' }, '*');
      expect((await twinlog(['device', 'update', 'cli-1', '--status', 'enabled', '--data', dir])).code).toBe(0);
      expect((await connect('rest-1', restKey)).connected).toBe(true);
      expect((await connect('cli-1', cliKey)).connected).toBe(true);

      const metrics = await (await fetch(`http://127.0.0.1:${served.adminPort}/metrics`)).text();
      expect(metrics).toMatch(/^twinlog_mqtt_events_total\{kind="disabled",status=""\} 2$/m);
      expect(metrics).toMatch(/^twinlog_mqtt_events_total\{kind="connect",status="5"\} 2$/m);
    },
  );
});
