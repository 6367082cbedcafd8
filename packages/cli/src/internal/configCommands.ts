/**
 * `twinlog config put|create|get|list|delete`: automatic device configurations (docs/iot-hub.md,
 * "Automatic configurations"), sent to a running `twinlog serve` over its REST gateway, the same
 * `/configurations` routes the `Registry` of `azure-iothub` calls, so `serve` applies a change at
 * once (`gatewayCall.ts`: `--gateway <url>`, signed with `serve`'s service policy).
 */
import { readFileSync } from 'node:fs';
import { CliError } from './CliError.ts';
import type { CliIo } from './commands.ts';
import { call, type GatewayOptions } from './gatewayCall.ts';
import type { CliConfig } from './resolveConfig.ts';

export interface ConfigPutOptions extends GatewayOptions {
  readonly file?: string;
  readonly target?: string;
  readonly priority?: string;
  readonly content?: string;
  readonly label?: readonly string[];
  readonly metric?: readonly string[];
  readonly ifMatch?: string;
  readonly json?: boolean;
}

/** `name=value` pairs of a repeated flag. */
function pairsOf(flag: string, values: readonly string[] | undefined): Record<string, string> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new CliError(`${flag} takes name=value, got '${v}'`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

function jsonArg(what: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError(`${what} is not valid JSON`);
  }
}

/** The configuration a `config put` sends: the `--file` (IoT Hub's JSON), then the flags over it. */
export function configurationBodyOf(id: string, opts: ConfigPutOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (opts.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read --file ${opts.file}: ${(e as Error).message}`);
    }
    const parsed = jsonArg(`--file ${opts.file}`, text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new CliError(`--file ${opts.file} must hold a JSON object (a configuration)`);
    Object.assign(body, parsed);
  }
  body['id'] = id;
  if (opts.target !== undefined) body['targetCondition'] = opts.target;
  if (opts.priority !== undefined) {
    if (!/^[0-9]+$/.test(opts.priority))
      throw new CliError(`--priority must be a whole number of at least 0, got '${opts.priority}'`);
    body['priority'] = Number(opts.priority);
  }
  if (opts.content !== undefined) body['content'] = { deviceContent: jsonArg('--content', opts.content) };
  const labels = pairsOf('--label', opts.label);
  if (labels !== undefined) body['labels'] = { ...(body['labels'] ?? {}), ...labels };
  const metrics = pairsOf('--metric', opts.metric);
  if (metrics !== undefined)
    body['metrics'] = {
      queries: { ...((body['metrics'] as { queries?: object } | undefined)?.queries ?? {}), ...metrics },
    };
  if (body['content'] === undefined)
    throw new CliError(
      'give the content: --content \'{"properties.desired.<path>": <value>}\' or --file <configuration.json>',
    );
  if (body['targetCondition'] === undefined)
    throw new CliError('give the target: --target "tags.env = \'prod\'" (or *) or --file <configuration.json>');
  if (body['schemaVersion'] === undefined) body['schemaVersion'] = '1.0';
  return body;
}

const path = (id: string): string => `/configurations/${encodeURIComponent(id)}`;
const quoted = (etag: string): string => (etag === '*' || etag.startsWith('"') ? etag : `"${etag}"`);

function printConfiguration(io: CliIo, c: Record<string, unknown>, json: boolean | undefined): void {
  io.out(json === true ? `${JSON.stringify(c)}\n` : `${JSON.stringify(c, null, 2)}\n`);
}

export async function configPutCommand(
  config: CliConfig,
  io: CliIo,
  id: string,
  opts: ConfigPutOptions,
): Promise<number> {
  const body = configurationBodyOf(id, opts);
  const { body: answer } = await call(
    config,
    opts,
    'PUT',
    path(id),
    body,
    opts.ifMatch === undefined ? {} : { 'if-match': quoted(opts.ifMatch) },
  );
  printConfiguration(io, answer as Record<string, unknown>, opts.json);
  return 0;
}

export async function configGetCommand(
  config: CliConfig,
  io: CliIo,
  id: string,
  opts: GatewayOptions & { json?: boolean },
): Promise<number> {
  const { body } = await call(config, opts, 'GET', path(id));
  printConfiguration(io, body as Record<string, unknown>, opts.json);
  return 0;
}

export async function configListCommand(
  config: CliConfig,
  io: CliIo,
  opts: GatewayOptions & { json?: boolean; top?: string },
): Promise<number> {
  if (opts.top !== undefined && !/^[1-9][0-9]*$/.test(opts.top))
    throw new CliError(`--top must be a positive whole number, got '${opts.top}'`);
  const { body } = await call(
    config,
    opts,
    'GET',
    opts.top === undefined ? '/configurations' : `/configurations?top=${opts.top}`,
  );
  const list = body as Record<string, unknown>[];
  if (opts.json === true) {
    for (const c of list) io.out(`${JSON.stringify(c)}\n`);
    return 0;
  }
  if (list.length === 0) {
    io.out('no configurations\n');
    return 0;
  }
  const width = Math.max(2, ...list.map((c) => String(c['id']).length));
  io.out(`${'id'.padEnd(width)}  priority  targeted  applied  targetCondition\n`);
  for (const c of list) {
    const results = (c['systemMetrics'] as { results?: Record<string, number> } | undefined)?.results ?? {};
    io.out(
      `${String(c['id']).padEnd(width)}  ${String(c['priority']).padStart(8)}  ${String(results['targetedCount'] ?? 0).padStart(8)}  ${String(results['appliedCount'] ?? 0).padStart(7)}  ${String(c['targetCondition'])}\n`,
    );
  }
  return 0;
}

export async function configDeleteCommand(
  config: CliConfig,
  io: CliIo,
  id: string,
  opts: GatewayOptions & { ifMatch?: string },
): Promise<number> {
  await call(
    config,
    opts,
    'DELETE',
    path(id),
    undefined,
    opts.ifMatch === undefined ? {} : { 'if-match': quoted(opts.ifMatch) },
  );
  io.out(`deleted configuration ${id}\n`);
  return 0;
}
