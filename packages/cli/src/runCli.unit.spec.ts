/**
 * The CLI's pure parts in-process: configuration precedence, the Prometheus text, the progress
 * display, the bench summary, and commands that fail before touching a store.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { benchCommand, parseResultLine, summarizeResult } from './internal/benchCommand.ts';
import { createProgress } from './internal/createProgress.ts';
import { DEFAULT_CONFIG, resolveConfig } from './internal/resolveConfig.ts';
import { runCli } from './runCli.ts';
import { readRegistry } from '../../../test/support/registry.ts';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'twinlog-cli-unit-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), stderrIsTTY: false, env });
  return { code, out, err };
}

describe('resolveConfig', () => {
  it('takes flags over the environment over the file over the defaults', () => {
    const file = join(tempDir(), 'twinlog.json');
    writeFileSync(file, JSON.stringify({ port: 1000, adminPort: 1001, hubName: 'file', data: '/var/twinlog' }));
    const config = resolveConfig({ config: file, port: '3000' }, { TWINLOG_PORT: '2000', TWINLOG_ADMIN_PORT: '2001' });
    expect(config).toEqual({ ...DEFAULT_CONFIG, port: 3000, adminPort: 2001, hubName: 'file', data: '/var/twinlog' });
  });

  it('reads Kafka brokers from TWINLOG_KAFKA_BROKERS, else KAFKA_BROKERS, and the file from TWINLOG_CONFIG', () => {
    expect(resolveConfig({}, { KAFKA_BROKERS: 'k:9092' }).kafka).toBe('k:9092');
    expect(resolveConfig({}, { KAFKA_BROKERS: 'k:9092', TWINLOG_KAFKA_BROKERS: 't:9092' }).kafka).toBe('t:9092');
    expect(resolveConfig({ kafka: 'f:9092' }, { TWINLOG_KAFKA_BROKERS: 't:9092' }).kafka).toBe('f:9092');
    const file = join(tempDir(), 'c.json');
    writeFileSync(file, '{"kafka":"file:9092","topicPrefix":"fleet-a."}');
    expect(resolveConfig({}, { TWINLOG_CONFIG: file })).toMatchObject({ kafka: 'file:9092', topicPrefix: 'fleet-a.' });
  });

  it('names the source of a bad value', () => {
    expect(() => resolveConfig({ adminPort: '70000' }, {})).toThrow(
      '--admin-port must be a port number (0-65535), got 70000',
    );
    expect(() => resolveConfig({}, { TWINLOG_PARTITIONS: 'four' })).toThrow(
      "environment TWINLOG_PARTITIONS must be a non-negative integer, got 'four'",
    );
    const file = join(tempDir(), 'bad.json');
    writeFileSync(file, '{"prot": 1}');
    expect(() => resolveConfig({ config: file }, {})).toThrow(`the config file ${file} has an unknown key 'prot'`);
    writeFileSync(file, '{"logLevel": "loud"}');
    expect(() => resolveConfig({ config: file }, {})).toThrow(
      `${file}: logLevel must be debug, info, warn or error, got 'loud'`,
    );
  });
});

describe('runCli', () => {
  it('refuses bad arguments with one line and exit code 2 before opening a store', async () => {
    const data = join(tempDir(), 'never-created');
    expect(await cli(['replay', '--until', '2026-13-45', '--data', data])).toEqual({
      code: 2,
      out: '',
      err: "twinlog: --until must be an ISO-8601 time (2026-11-28T12:00:00Z), an offset (a non-negative integer) or partition:offset pairs (0:1200,1:980), got '2026-13-45'\n",
    });
    expect(await cli(['audit', 'dev1', '--section', 'props', '--data', data])).toMatchObject({
      code: 2,
      err: "twinlog: --section must be one of tags, desired, reported, create, delete, got 'props'\n",
    });
    expect(await cli(['twin', 'patch', 'dev1', '{"properties":{"reported":{"a":1}}}', '--data', data])).toMatchObject({
      code: 2,
      err: 'twinlog: properties.reported cannot be written by the back end (a device reports with `twinlog twin report`)\n',
    });
    expect(await cli(['twin', 'patch', 'dev1', '[1]', '--data', data])).toMatchObject({
      code: 2,
      err: 'twinlog: the twin patch must be a JSON object, got [1]\n',
    });
    expect(await cli(['tail', 'changes', '--limit', '0', '--data', data])).toMatchObject({
      code: 2,
      err: "twinlog: --limit must be a positive integer, got '0'\n",
    });
    expect(await cli(['device', 'create'])).toMatchObject({
      code: 2,
      err: "twinlog: missing required argument 'deviceId' (see twinlog --help)\n",
    });
    expect(await cli(['device', 'list', 'extra'])).toMatchObject({ code: 2 });
    expect(await cli(['device', 'create', 'gw-1/sensor', '--data', data])).toMatchObject({
      code: 2,
      err: expect.stringContaining('not a device id: "gw-1/sensor"'),
    });
    expect(await cli(['bench', 'everything'])).toMatchObject({ code: 2 });
    expect((await cli(['query', 'SELECT * FROM devices', '--kafka', 'k:1', '--partitions', '0'])).err).toBe(
      'twinlog: --partitions must be between 1 and 1000, got 0\n',
    );
    expect(await cli(['--version'])).toEqual({ code: 0, out: '0.1.0\n', err: '' });
    const { existsSync } = await import('node:fs');
    expect(existsSync(data)).toBe(false);
  });
});

describe('bench', () => {
  it('device create gives the device keys in the registry file serve reads, and prints its connection string; delete removes them', async () => {
    const data = tempDir();
    const env = { TWINLOG_DATA: data, TWINLOG_HUB_NAME: 'hub.test' };
    const created = await cli(['device', 'create', 'thermo-9', '--no-wait'], env);
    expect(created.code).toBe(0);
    const registry = readRegistry(data);
    const keys = registry['thermo-9']!;
    expect(Buffer.from(keys.primaryKey, 'base64')).toHaveLength(32);
    expect(keys.secondaryKey).not.toBe(keys.primaryKey);
    expect(created.out).toContain(
      `connection string: HostName=hub.test;DeviceId=thermo-9;SharedAccessKey=${keys.primaryKey}\n`,
    );
    // a second create keeps the keys the device may already use
    expect((await cli(['device', 'create', 'thermo-9', '--no-wait'], env)).out).toContain(keys.primaryKey);
    expect(readRegistry(data)['thermo-9']!.primaryKey).toBe(keys.primaryKey);
    expect((await cli(['device', 'delete', 'thermo-9', '--no-wait'], env)).code).toBe(0);
    expect(readRegistry(data)).toEqual({});
  });

  it('device update sets and clears the status (and its reason) in the registry file serve reads', async () => {
    const data = tempDir();
    const env = { TWINLOG_DATA: data, TWINLOG_HUB_NAME: 'hub.test' };
    expect((await cli(['device', 'create', 'thermo-9', '--no-wait'], env)).code).toBe(0);
    const keys = readRegistry(data)['thermo-9']!;

    const disabled = await cli(
      ['device', 'update', 'thermo-9', '--status', 'disabled', '--status-reason', 'stolen', '--json'],
      env,
    );
    expect(disabled.code).toBe(0);
    const row = readRegistry(data)['thermo-9']!;
    expect(row).toMatchObject({
      primaryKey: keys.primaryKey,
      secondaryKey: keys.secondaryKey,
      status: 'disabled',
      statusReason: 'stolen',
    });
    expect(JSON.parse(disabled.out)).toEqual({
      deviceId: 'thermo-9',
      status: 'disabled',
      statusReason: 'stolen',
      statusUpdatedTime: row.statusUpdatedTime,
    });
    expect(Number.isFinite(Date.parse(row.statusUpdatedTime!))).toBe(true);

    const enabled = await cli(['device', 'update', 'thermo-9', '--status', 'enabled', '--status-reason', ''], env);
    expect(enabled.code).toBe(0);
    expect(enabled.out).toMatch(/^thermo-9: enabled since \d{4}-/);
    expect(readRegistry(data)['thermo-9']).toMatchObject({ primaryKey: keys.primaryKey, status: 'enabled' });
    expect(readRegistry(data)['thermo-9']!.statusReason).toBeUndefined();

    expect(await cli(['device', 'update', 'thermo-9', '--status', 'paused'], env)).toMatchObject({ code: 2 });
    expect(await cli(['device', 'update', 'thermo-9'], env)).toMatchObject({
      code: 2,
      err: 'twinlog: nothing to update: give --status enabled|disabled and/or --status-reason <text>\n',
    });
    const unknown = await cli(['device', 'update', 'nobody', '--status', 'disabled'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('device nobody has no identity in the registry');
    expect(readRegistry(data)['nobody']).toBeUndefined();
  });

  it('says clearly when a benchmark does not exist yet, and exits 1', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'package.json'), JSON.stringify({ scripts: { 'bench:fold': 'true', test: 'vitest' } }));
    let err = '';
    const io = { out: () => {}, err: (t: string) => (err += t), stderrIsTTY: false };
    await expect(benchCommand(io, 'gateway', { root })).rejects.toThrow(
      "benchmark 'gateway' does not exist yet (no `npm run bench:gateway` script; available: fold)",
    );
    await expect(benchCommand(io, 'gateway', { root })).rejects.toMatchObject({ exitCode: 1 });
    expect(err).toBe('');
  });

  it('summarises the RESULT line into figures and ratios', () => {
    const result = parseResultLine(
      'round 1 …\nRESULT {"decode_per_s":149369,"fold_per_s":62460,"fold_vs_decode":0.418}\n',
    );
    expect(result).toEqual({ decode_per_s: 149369, fold_per_s: 62460, fold_vs_decode: 0.418 });
    expect(summarizeResult(result!)).toEqual([
      'figures: decode_per_s 149,369, fold_per_s 62,460',
      'ratios:  fold_vs_decode 0.418',
    ]);
    expect(parseResultLine('no result here')).toBeUndefined();
  });
});

describe('createProgress', () => {
  it('draws a bar with rate and ETA on a terminal', () => {
    let t = 0;
    let text = '';
    const p = createProgress({ write: (s) => (text += s), isTTY: true, label: 'replay', now: () => t, width: 10 });
    t = 2000;
    p.update(500, 1000);
    expect(text).toBe('\rreplay [#####-----]  50% 500/1,000 records, 250 records/s, ETA 2s\u001b[K');
    t = 4000;
    p.end(1000, 1000);
    expect(text.endsWith('\rreplay [##########] 100% 1,000/1,000 records, 250 records/s, ETA 0s\u001b[K\n')).toBe(true);
  });

  it('prints plain lines, at most one per interval, elsewhere', () => {
    let t = 0;
    const lines: string[] = [];
    const p = createProgress({
      write: (s) => lines.push(s),
      isTTY: false,
      label: 'replay',
      now: () => t,
      lineIntervalMs: 1000,
    });
    t = 1000;
    p.update(100, 400);
    t = 1500;
    p.update(200, 400); // within the interval: not printed
    t = 2000;
    p.end(400, 400);
    expect(lines).toEqual([
      'replay: 25% 100/400 records, 100 records/s, ETA 3s\n',
      'replay: 100% 400/400 records, 200 records/s, ETA 0s\n',
    ]);
  });
});
