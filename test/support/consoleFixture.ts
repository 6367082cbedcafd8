/**
 * What the console's browser test and `npm run console:screenshots` share: a `twinlog serve` on a
 * fresh embedded log with the MQTT gateway, its console login URL, devices created over the REST
 * gateway, a device simulated over MQTT, and Debian's chromium driven by playwright-core.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signDeviceSas, signServiceSas } from '@twinlog/gateway';
import mqtt from 'mqtt';
import { chromium, type Browser } from 'playwright-core';
import { startServe, type Served } from './serveProcess.ts';

const HUB = 'localhost';

export interface ConsoleServe {
  readonly served: Served;
  readonly dir: string;
  /** The login URL serve logged, on 127.0.0.1. */
  readonly loginUrl: string;
  readonly adminUrl: string;
  /** IoT Hub REST calls signed with the service policy. */
  rest(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  /** A hub-wide service SAS token of the `iothubowner` policy, valid for an hour. */
  serviceSas(): string;
  /** Create a device over REST; resolves with its primary key. */
  createDevice(deviceId: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startConsoleServe(): Promise<ConsoleServe> {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-console-'));
  const served = await startServe(['--data', dir, '--mqtt-port', '0', '--hub-name', HUB]);
  const line = served.lines.find((l) => typeof l['consoleUrl'] === 'string');
  if (line === undefined) throw new Error('serve logged no console URL');
  const loginUrl = String(line['consoleUrl']).replace(/^http:\/\/[^/]+/, `http://127.0.0.1:${served.adminPort}`);
  const { key } = JSON.parse(readFileSync(join(dir, 'service-policy.json'), 'utf8')) as { key: string };
  const rest = async (method: string, path: string, body?: unknown) => {
    const sas = signServiceSas(HUB, 'iothubowner', key, Math.floor(Date.now() / 1000) + 3600);
    const res = await fetch(
      `http://127.0.0.1:${served.gatewayPort}${path}${path.includes('?') ? '&' : '?'}api-version=2021-04-12`,
      {
        method,
        headers: {
          authorization: sas,
          'content-type': 'application/json',
          ...(path.startsWith('/twins/') ? { 'if-match': '*' } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      },
    );
    const text = await res.text();
    return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  };
  return {
    served,
    dir,
    loginUrl,
    adminUrl: `http://127.0.0.1:${served.adminPort}`,
    rest,
    serviceSas: () => signServiceSas(HUB, 'iothubowner', key, Math.floor(Date.now() / 1000) + 3600),
    async createDevice(deviceId) {
      const put = await rest('PUT', `/devices/${encodeURIComponent(deviceId)}`, { deviceId });
      if (put.status !== 200) throw new Error(`creating ${deviceId}: ${put.status} ${JSON.stringify(put.json)}`);
      return (put.json as { authentication: { symmetricKey: { primaryKey: string } } }).authentication.symmetricKey
        .primaryKey;
    },
    async stop() {
      if (served.child.exitCode === null) {
        served.child.kill('SIGTERM');
        await served.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A device over MQTT (IoT Hub's twin topics): it hears desired changes and reports when told. */
export interface SimulatedDevice {
  /** The desired `$version` of the latest desired notification it received (0 before any). */
  readonly desiredVersion: () => number;
  /** Wait for a desired notification with at least this `$version`. */
  waitForDesired(version: number, timeoutMs?: number): Promise<Record<string, unknown>>;
  report(patch: Record<string, unknown>): Promise<void>;
  close(): void;
}

export async function connectDevice(mqttPort: number, deviceId: string, key: string): Promise<SimulatedDevice> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
    clientId: deviceId,
    username: `${HUB}/${deviceId}/?api-version=2021-04-12`,
    password: signDeviceSas(HUB, deviceId, key, Math.floor(Date.now() / 1000) + 3600),
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  let latest: Record<string, unknown> = {};
  let version = 0;
  const waiters = new Set<() => void>();
  const responses = new Map<string, (status: number) => void>();
  client.on('message', (topic: string, payload: Buffer) => {
    if (topic.startsWith('$iothub/twin/PATCH/properties/desired/')) {
      latest = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      version = Math.max(version, Number(latest['$version'] ?? 0));
      for (const w of waiters) w();
    } else if (topic.startsWith('$iothub/twin/res/')) {
      const m = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=([^&]+)/.exec(topic);
      if (m !== null) responses.get(m[2]!)?.(Number(m[1]));
    }
  });
  await new Promise<void>((resolve, reject) =>
    client.subscribe(['$iothub/twin/PATCH/properties/desired/#', '$iothub/twin/res/#'], { qos: 0 }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  let rid = 0;
  return {
    desiredVersion: () => version,
    waitForDesired(min, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (version < min) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(latest);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${deviceId} heard no desired $version ${min} (latest ${version})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    report(patch) {
      const id = String(++rid);
      return new Promise((resolve, reject) => {
        responses.set(id, (status) =>
          status === 204 ? resolve() : reject(new Error(`reported PATCH answered ${status}`)),
        );
        client.publish(`$iothub/twin/PATCH/properties/reported/?$rid=${id}`, JSON.stringify(patch));
      });
    },
    close: () => void client.end(true),
  };
}

/** Debian's chromium: `CHROMIUM_PATH`, else `chromium` on the PATH. Never skips: a missing one fails with how to get it. */
export function chromiumPath(): string {
  const configured = process.env['CHROMIUM_PATH'];
  if (configured !== undefined && configured !== '') {
    if (!existsSync(configured)) throw new Error(`CHROMIUM_PATH=${configured} does not exist`);
    return configured;
  }
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      const path = execFileSync('which', [name], { encoding: 'utf8' }).trim();
      if (path !== '') return path;
    } catch {
      // not this name
    }
  }
  throw new Error(
    "the console's browser tests need Debian's chromium and found none: install it (`apt-get install -y chromium`; .ci/run does) or set CHROMIUM_PATH",
  );
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
}
