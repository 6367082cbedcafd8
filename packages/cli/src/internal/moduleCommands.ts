/**
 * `twinlog module create|get|list|delete`: module identities (docs/iot-hub.md, "Module identities
 * and module twins"), sent to a running `twinlog serve` over its REST gateway, the same
 * `/devices/{id}/modules/{mid}` routes the `Registry` of `azure-iothub` calls, so the module twin is
 * created through the log and its keys land in the registry `serve`'s MQTT gateway reads. The gateway
 * and the signing policy are found as for `twinlog config` (`configCommands.ts`).
 */
import { CliError } from './CliError.ts';
import type { CliIo } from './commands.ts';
import { call, type GatewayOptions } from './gatewayCall.ts';
import type { CliConfig } from './resolveConfig.ts';

export interface ModuleOptions extends GatewayOptions {
  readonly json?: boolean;
}

const path = (deviceId: string, moduleId?: string): string =>
  `/devices/${encodeURIComponent(deviceId)}/modules${moduleId === undefined ? '' : `/${encodeURIComponent(moduleId)}`}`;

/** A module id: a device id's characters, no `/` (docs/iot-hub.md, "Module identities and module twins"). */
function checkIds(deviceId: string, moduleId?: string): void {
  for (const [what, id] of [
    ['device', deviceId],
    ['module', moduleId],
  ] as const) {
    if (id !== undefined && !/^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$/.test(id)) {
      throw new CliError(
        `not a ${what} id: ${JSON.stringify(id)} (at most 128 ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ ')`,
      );
    }
  }
}

function print(io: CliIo, value: unknown, json: boolean | undefined): void {
  io.out(json === true ? `${JSON.stringify(value)}\n` : `${JSON.stringify(value, null, 2)}\n`);
}

export async function moduleCreateCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  moduleId: string,
  opts: ModuleOptions,
): Promise<number> {
  checkIds(deviceId, moduleId);
  const { body } = await call(config, opts, 'PUT', path(deviceId, moduleId), { deviceId, moduleId });
  const m = body as { authentication?: { symmetricKey?: { primaryKey?: string } } };
  if (opts.json === true) print(io, body, true);
  else {
    io.out(`created module ${moduleId} of ${deviceId}\n`);
    io.out(
      `connection string: HostName=${config.hubName};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${m.authentication?.symmetricKey?.primaryKey ?? ''}\n`,
    );
  }
  return 0;
}

export async function moduleGetCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  moduleId: string,
  opts: ModuleOptions,
): Promise<number> {
  checkIds(deviceId, moduleId);
  print(io, (await call(config, opts, 'GET', path(deviceId, moduleId))).body, opts.json);
  return 0;
}

export async function moduleListCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  opts: ModuleOptions,
): Promise<number> {
  checkIds(deviceId);
  const list = (await call(config, opts, 'GET', path(deviceId))).body as Record<string, unknown>[];
  if (opts.json === true) {
    for (const m of list) io.out(`${JSON.stringify(m)}\n`);
    return 0;
  }
  if (list.length === 0) {
    io.out(`no modules on ${deviceId}\n`);
    return 0;
  }
  const width = Math.max(8, ...list.map((m) => String(m['moduleId']).length));
  io.out(`${'moduleId'.padEnd(width)}  connectionState\n`);
  for (const m of list) io.out(`${String(m['moduleId']).padEnd(width)}  ${String(m['connectionState'])}\n`);
  return 0;
}

export async function moduleDeleteCommand(
  config: CliConfig,
  io: CliIo,
  deviceId: string,
  moduleId: string,
  opts: ModuleOptions,
): Promise<number> {
  checkIds(deviceId, moduleId);
  await call(config, opts, 'DELETE', path(deviceId, moduleId), undefined, { 'if-match': '*' });
  io.out(`deleted module ${moduleId} of ${deviceId}\n`);
  return 0;
}
