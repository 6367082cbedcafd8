/**
 * Tests of the CLI commands that talk to a running `twinlog serve` over REST (`config`, `job`,
 * `module`): an embedded log with a projector, a REST gateway signed with one service key, and
 * what a command needs beside them (the read model, the configuration manager, the job runner, a
 * device-key file), started and stopped as `serve` does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient, type TwinClient } from '@twinlog/client';
import {
  createConfigurationManager,
  createJobRunner,
  createReadModel,
  type ConfigurationManager,
  type JobRunner,
  type ReadModel,
} from '@twinlog/fleet';
import {
  createDeviceKeyStore,
  createRestGateway,
  type DeviceKeyStore,
  type ListeningGateway,
  type RestGateway,
} from '@twinlog/gateway';
import { createEmbeddedLog, type EmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { runCli } from './runCli.ts';

export interface GatewayHub {
  readonly dir: string;
  readonly log: EmbeddedLog;
  readonly client: TwinClient;
  readonly key: string;
  readonly port: number;
  readonly readModel: ReadModel | undefined;
  readonly configurations: ConfigurationManager | undefined;
  readonly jobs: JobRunner | undefined;
  readonly deviceKeys: DeviceKeyStore | undefined;
  /** `twinlog <command> …args --gateway <this gateway> --policy-key <key> --data <dir>`. */
  cli(command: string, ...args: string[]): Promise<{ code: number; out: string; err: string }>;
  /** `twinlog …args --data <dir>`: a command on the hub's data folder (its log is `<dir>/twinlog.db`). */
  twinlog(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  close(): Promise<void>;
}

export async function startGatewayHub({
  name,
  configurations: withConfigurations = false,
  jobs: withJobs = false,
  deviceKeys: withDeviceKeys = false,
}: {
  readonly name: string;
  readonly configurations?: boolean;
  readonly jobs?: boolean;
  readonly deviceKeys?: boolean;
}): Promise<GatewayHub> {
  const key = Buffer.alloc(32, name.length).toString('base64');
  const dir = mkdtempSync(join(tmpdir(), `twinlog-cli-${name}-`));
  const log = createEmbeddedLog({ path: join(dir, 'twinlog.db'), synchronous: 'NORMAL', pollIntervalMs: 5 }); // the log of --data dir
  await ensureTwinTopics(log, 2);
  const projector: Projector = await startProjector({ log, physicalNow: Date.now });
  const client = createTwinClient({ log, physicalNow: Date.now, actor: `cli-${name}-test`, pollIntervalMs: 5 });
  const readModel =
    withConfigurations || withJobs ? await createReadModel({ log, path: join(dir, 'read-model.db') }) : undefined;
  const configurations = withConfigurations
    ? createConfigurationManager({ readModel: readModel!, log, physicalNow: Date.now })
    : undefined;
  configurations?.start();
  const jobs = withJobs
    ? createJobRunner({ readModel: readModel!, log, physicalNow: Date.now, pollIntervalMs: 20 })
    : undefined;
  jobs?.start();
  const deviceKeys = withDeviceKeys ? createDeviceKeyStore(join(dir, 'registry.db')) : undefined;
  const gateway: RestGateway = createRestGateway({
    log,
    hubName: 'localhost',
    physicalNow: Date.now,
    policies: [{ name: 'iothubowner', key, rights: ['registryReadWrite'] }],
    ...(configurations === undefined ? {} : { configurations }),
    ...(jobs === undefined ? {} : { jobs }),
    ...(deviceKeys === undefined ? {} : { deviceKeys }),
  });
  const listening: ListeningGateway = await gateway.listen({ port: 0, host: '127.0.0.1' });
  const twinlog = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await runCli([...args, '--data', dir], {
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
      stderrIsTTY: false,
      env: {},
    });
    return { code, out, err };
  };
  return {
    dir,
    log,
    client,
    key,
    port: listening.port,
    readModel,
    configurations,
    jobs,
    deviceKeys,
    twinlog,
    cli: (command, ...args) =>
      twinlog(command, ...args, '--gateway', `http://127.0.0.1:${listening.port}`, '--policy-key', key),
    async close() {
      await listening.close();
      await gateway.close();
      await jobs?.stop();
      await configurations?.stop();
      await readModel?.close();
      await client.close();
      await projector.stop();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
