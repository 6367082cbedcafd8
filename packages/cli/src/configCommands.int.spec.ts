/**
 * `twinlog config put|create|get|list|delete` against a REST gateway serving the configuration
 * manager of `@twinlog/fleet` on an embedded log, as `twinlog serve` runs them (docs/iot-hub.md,
 * "Automatic configurations"): the content reaches the targeted twin, metrics show in `get` and
 * `list`, a stale `--if-match` fails with exit code 1 and IoT Hub's error name, `delete` withdraws
 * the content.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGatewayHub, type GatewayHub } from './gatewayHub.fixture.ts';
import { configurationBodyOf } from './internal/configCommands.ts';
import { runCli } from './runCli.ts';

let hub: GatewayHub;
beforeEach(async () => {
  hub = await startGatewayHub({ name: 'config', configurations: true });
});
afterEach(() => hub.close());

const cli = (...args: string[]): ReturnType<GatewayHub['cli']> => hub.cli('config', ...args);

async function eventually(check: () => void | Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(25);
    }
  }
}

const desired = (id: string): Record<string, unknown> =>
  (hub.readModel!.getTwin(id) as { properties: { desired: Record<string, unknown> } }).properties.desired;

describe('twinlog config', () => {
  it('put from flags, get, list, stale --if-match, put from a file, delete', async () => {
    await hub.client.createDevice('dev-a', { wait: true });
    await hub.readModel!.waitFor(await hub.client.mergeTags('dev-a', { env: 'prod' }));

    const put = await cli(
      'put',
      'fw',
      '--target',
      "tags.env = 'prod'",
      '--priority',
      '5',
      '--content',
      '{"properties.desired.firmware":{"version":"2.0"}}',
      '--label',
      'team=ops',
      '--metric',
      "done=SELECT deviceId FROM devices WHERE properties.reported.fw = '2.0'",
      '--json',
    );
    expect(put.err).toBe('');
    expect(put.code).toBe(0);
    const created = JSON.parse(put.out) as { etag: string; priority: number; labels: object };
    expect(created).toMatchObject({
      id: 'fw',
      priority: 5,
      labels: { team: 'ops' },
      targetCondition: "tags.env = 'prod'",
    });
    await eventually(() => expect(desired('dev-a')['firmware']).toEqual({ version: '2.0' }));

    await eventually(async () => {
      const got = await cli('get', 'fw', '--json');
      expect(got.code).toBe(0);
      expect(JSON.parse(got.out)).toMatchObject({
        systemMetrics: { results: { targetedCount: 1, appliedCount: 1 } },
        metrics: { results: { done: 0 } },
      });
    });
    const list = await cli('list');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(
      /^id\s+priority\s+targeted\s+applied\s+targetCondition\nfw\s+5\s+1\s+1\s+tags\.env = 'prod'\n$/,
    );

    const stale = await cli(
      'put',
      'fw',
      '--target',
      "tags.env = 'prod'",
      '--priority',
      '6',
      '--content',
      '{"properties.desired.firmware":{"version":"2.0"}}',
      '--if-match',
      'stale',
    );
    expect(stale.code).toBe(1);
    expect(stale.err).toMatch(/^twinlog: PreconditionFailed: .*\(412\)\n$/);

    const file = join(hub.dir, 'fw.json');
    writeFileSync(
      file,
      JSON.stringify({
        content: { deviceContent: { 'properties.desired.firmware': { version: '2.0' } } },
        targetCondition: "tags.env = 'prod'",
        priority: 7,
      }),
    );
    const fromFile = await cli('create', 'fw', '--file', file, '--if-match', created.etag, '--json');
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.out)).toMatchObject({ priority: 7 });

    const deleted = await cli('delete', 'fw');
    expect(deleted).toMatchObject({ code: 0, out: 'deleted configuration fw\n' });
    await eventually(() => expect(desired('dev-a')['firmware']).toBeUndefined());
    const missing = await cli('get', 'fw');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^twinlog: ConfigurationNotFound: .*\(404\)\n$/);
    expect((await cli('list')).out).toBe('no configurations\n');
  });

  it('refuses a put without content or target (exit code 2), and says when no serve answers', async () => {
    expect(() => configurationBodyOf('x', { target: '*' })).toThrow(/--content/);
    expect(() => configurationBodyOf('x', { content: '{"properties.desired.a":1}' })).toThrow(/--target/);
    expect(configurationBodyOf('x', { content: '{"properties.desired.a":1}', target: '*', priority: '3' })).toEqual({
      id: 'x',
      schemaVersion: '1.0',
      content: { deviceContent: { 'properties.desired.a': 1 } },
      targetCondition: '*',
      priority: 3,
    });
    expect((await cli('put', 'x', '--target', '*')).code).toBe(2);
    let err = '';
    const code = await runCli(
      ['config', 'list', '--gateway', 'http://127.0.0.1:1', '--policy-key', hub.key, '--data', hub.dir],
      { stdout: () => {}, stderr: (t) => (err += t), stderrIsTTY: false, env: {} },
    );
    expect(code).toBe(1);
    expect(err).toMatch(/cannot reach the gateway at http:\/\/127\.0\.0\.1:1/);
  });
});
