/**
 * The `twinlog` command line (commander 14): `serve`, `replay`, `audit`, `tail`, `query`, `twin`,
 * `device`, `config`, `job`, `module` and `bench`. Every command works on the embedded log in `--data` (default `.data/`) or,
 * with `--kafka host:port` (or `TWINLOG_KAFKA_BROKERS` / `KAFKA_BROKERS`), on Kafka.
 *
 * Exit codes: 0 success; 1 an engine error (printed as `twinlog: CODE: message`) or a failed
 * benchmark; 2 bad arguments or configuration (one line, `twinlog: …`); 130 interrupted.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { BENCHMARKS } from './internal/benchCommand.ts';
import { CliError } from './internal/CliError.ts';
import type { CliIo } from './internal/commands.ts';
import { resolveConfig, type CliConfig } from './internal/resolveConfig.ts';

/** Options of {@link runCli}: where it prints and what it reads (defaults: the process's). */
export interface RunCliOptions {
  readonly stdout?: (text: string) => void;
  readonly stderr?: (text: string) => void;
  readonly stderrIsTTY?: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

/** `message: cause's message: …` (kafkajs wraps the reason in `cause`). */
function messageChain(e: Error): string {
  const parts: string[] = [];
  for (let c: unknown = e; c instanceof Error && parts.length < 5; c = c.cause)
    if (!parts.includes(c.message)) parts.push(c.message);
  return parts.join(': ');
}

/** The version in the CLI package's package.json (one folder above both src/ and dist/). */
function cliVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** The command modules load on demand, so `--help` and a bad argument answer without loading the engine. */
const commands = (): Promise<typeof import('./internal/commands.ts')> => import('./internal/commands.ts');

/** The store options every command takes. */
function storeOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'folder of the embedded log (env TWINLOG_DATA; default .data)')
    .option(
      '--kafka <brokers>',
      'use Kafka at host:port[,host:port] instead of the embedded log (env TWINLOG_KAFKA_BROKERS or KAFKA_BROKERS)',
    )
    .option('--topic-prefix <prefix>', 'prefix of the twin topics and groups on Kafka (env TWINLOG_TOPIC_PREFIX)')
    .option(
      '--kafka-client <kafkajs|platformatic>',
      'Kafka client library of the Kafka log (env TWINLOG_KAFKA_CLIENT; default platformatic)',
    )
    .option(
      '--partitions <n>',
      'partitions of the twin topics when they are created (env TWINLOG_PARTITIONS; default 4)',
    )
    .option('--config <file>', 'JSON config file (env TWINLOG_CONFIG); flags > env > file > defaults');
}

function writeOptions(cmd: Command): Command {
  return cmd
    .option('--no-wait', 'append and return without waiting for the projector’s decision')
    .option('--timeout <ms>', 'how long to wait for the projector’s decision (default 15000)');
}

/**
 * Run the CLI with `argv` (without `node` and the script) and resolve with the exit code.
 *
 * @example
 * process.exitCode = await runCli(['device', 'list', '--data', '.data'])
 */
export async function runCli(
  argv: readonly string[],
  { stdout, stderr, stderrIsTTY, env = process.env }: RunCliOptions = {},
): Promise<number> {
  const io: CliIo = {
    out: stdout ?? ((t) => process.stdout.write(t)),
    err: stderr ?? ((t) => process.stderr.write(t)),
    stderrIsTTY: stderrIsTTY ?? process.stderr.isTTY === true,
  };
  // tail and bench stop on SIGINT and exit normally; the other one-shot commands keep Node's default.
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  const stopOnSigint = (): AbortSignal => {
    process.on('SIGINT', onSigint);
    return abort.signal;
  };
  let result = 0;
  const config = (flags: Record<string, unknown>): CliConfig => resolveConfig(flags, env);
  const run =
    <A extends unknown[]>(f: (...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      result = await f(...args);
    };

  const program = new Command('twinlog')
    .description('Event-sourced device twins (IoT Hub-compatible) on Kafka or an embedded SQLite log.')
    .version(cliVersion(), '-V, --version', 'print the version of twinlog')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: () => {} })
    .showSuggestionAfterError(true)
    .helpCommand(true);

  storeOptions(
    program
      .command('serve')
      .description(
        'run the engine (projector + reconciler), the REST gateway and /health + /metrics until SIGINT/SIGTERM',
      )
      .option('--port <port>', 'REST gateway port, 0 for any (env TWINLOG_PORT; default 8080)')
      .option('--host <host>', 'interface to bind (env TWINLOG_HOST; default 127.0.0.1)')
      .option(
        '--admin-port <port>',
        'admin port for /health and /metrics, 0 for any (env TWINLOG_ADMIN_PORT; default 9464)',
      )
      .option('--hub-name <name>', 'host name service SAS tokens must name (env TWINLOG_HUB_NAME; default localhost)')
      .option(
        '--policy-key <base64>',
        'key of the iothubowner policy (env TWINLOG_POLICY_KEY; default: generated into <data>/service-policy.json)',
      )
      .option('--tls-cert <file>', 'PEM certificate: serve HTTPS (env TWINLOG_TLS_CERT)')
      .option('--tls-key <file>', 'PEM private key (env TWINLOG_TLS_KEY)')
      .option('--stale-after-ms <ms>', 'pending deltas turn stale after this long (env TWINLOG_STALE_AFTER_MS)')
      .option('--mqtt-port <port>', 'MQTT gateway port (env TWINLOG_MQTT_PORT; when the gateway package has one)')
      .option(
        '--projector-workers <n>',
        'worker threads folding for the projector (env TWINLOG_PROJECTOR_WORKERS; default 0: the main thread)',
      )
      .addOption(
        new Option('--log-level <level>', 'log level (env TWINLOG_LOG_LEVEL; default info)').choices([
          'debug',
          'info',
          'warn',
          'error',
        ]),
      ),
  ).action(
    run(async (opts: Record<string, unknown>) => {
      const cfg = config(opts);
      const { serve } = await import('./internal/serve.ts');
      return serve(cfg, { policyKeyOnCommandLine: opts['policyKey'] !== undefined });
    }),
  );

  storeOptions(
    program
      .command('replay')
      .description('rebuild twin snapshots from the log (time travel with --until), with progress and the offsets read')
      .option(
        '--until <time|offset|p:offset,…>',
        'only records appended at or before an ISO-8601 time, up to an offset in every input partition, or up to an offset per partition (0:1200,1:980; others read to the end)',
      )
      .option('--device <id>', 'only this device (prints its twin as of --until)')
      .option(
        '--into <store>',
        'write the rebuilt snapshots to twin.snapshots of another embedded store: a data folder, or a .db file',
      )
      .option('--json', 'print the result as one JSON object')
      .option(
        '--twins <file|->',
        'write the rebuilt twins as JSON lines (IoT Hub twin documents) to a file, or to standard output with -',
      )
      .option(
        '--workers <n>',
        'worker threads folding partitions at once (default: one per core; 0 or 1: this thread only)',
      ),
  ).action(run(async (opts: Record<string, unknown>) => (await commands()).replayCommand(config(opts), io, opts)));

  storeOptions(
    program
      .command('audit')
      .description('who changed what, when: the timeline of a device’s twin, or of a whole fleet (--all, --where)')
      .argument('[deviceId]', 'the twin to audit (a device id, or deviceId/moduleId)')
      .option('--all', 'audit every twin in the log')
      .option(
        '--where <condition>',
        'only events after which the twin matched a query condition (e.g. "tags.region = \'eu\'"); audits the fleet unless a device is named',
      )
      .option('--section <section>', 'only tags, desired, reported, create or delete')
      .option('--since <time>', 'only events stamped at or after this ISO-8601 time')
      .option('--until <time>', 'only records appended at or before this ISO-8601 time')
      .addOption(new Option('--format <format>', 'text, json (JSON lines) or csv').choices(['text', 'json', 'csv']))
      .option('--json', 'one JSON object per event (as --format json)')
      .option('--output <file|->', 'write the events to a file instead of standard output')
      .option(
        '--workers <n>',
        'worker threads auditing partitions at once, for a fleet (default: one per core; 0 or 1: this thread only); the lines come out in the same order',
      ),
  ).action(
    run(async (deviceId: string | undefined, opts: Record<string, unknown>) =>
      (await commands()).auditCommand(config(opts), io, deviceId, opts),
    ),
  );

  storeOptions(
    program
      .command('tail')
      .description('print an output feed as it grows: changes, deltas, rejections or dead-letter')
      .addArgument(
        program.createArgument('<feed>', 'the feed').choices(['changes', 'deltas', 'rejections', 'dead-letter']),
      )
      .option('--device <id>', 'only this device')
      .option('--from-beginning', 'start at the beginning of the topic (default: only new records)')
      .option('--limit <n>', 'stop after n records')
      .option('--no-follow', 'stop once caught up')
      .option('--until-converged', 'deltas: stop at the first converged delta with desired properties')
      .option('--json', 'one JSON object per record'),
  ).action(
    run(async (feed: string, opts: Record<string, unknown>) =>
      (await commands()).tailCommand(config(opts), io, feed, opts, stopOnSigint()),
    ),
  );

  storeOptions(
    program
      .command('query')
      .description('run an IoT Hub query over the twins, e.g. "SELECT * FROM devices WHERE tags.site = \'b\'"')
      .argument('<sql>')
      .option('--pretty', 'one indented JSON array instead of one JSON row per line'),
  ).action(
    run(async (sql: string, opts: Record<string, unknown>) =>
      (await commands()).queryCommand(config(opts), io, sql, opts),
    ),
  );

  const twin = program.command('twin').description('read and write device twins');
  storeOptions(
    twin.command('get').description('print a twin as GET /twins/{id} returns it').argument('<deviceId>'),
  ).action(
    run(async (deviceId: string, opts: Record<string, unknown>) =>
      (await commands()).twinGetCommand(config(opts), io, deviceId),
    ),
  );
  for (const mode of ['patch', 'replace'] as const) {
    storeOptions(
      writeOptions(
        twin
          .command(mode)
          .description(
            mode === 'patch'
              ? 'merge {"tags":…, "properties":{"desired":…}} into a twin (PATCH /twins/{id})'
              : 'replace tags and desired (PUT /twins/{id})',
          )
          .argument('<deviceId>')
          .argument('<json>', 'the twin patch')
          .option('--if-match <etag>', 'only if the twin’s etag is this (optimistic concurrency)')
          .option(
            '--idempotency-key <key>',
            'the write’s idempotency key: writes with the same key are applied once (default: a new key, printed if the decision times out)',
          )
          .option(
            '--retries <n>',
            'send the write again, with the same key, up to n times when its decision times out (default 0)',
          ),
      ),
    ).action(
      run(async (deviceId: string, json: string, opts: Record<string, unknown>) =>
        (await commands()).twinWriteCommand(config(opts), io, mode, deviceId, json, opts),
      ),
    );
  }
  storeOptions(
    writeOptions(
      twin
        .command('report')
        .description('write reported properties as the device would (actor = the device id)')
        .argument('<deviceId>')
        .argument('<json>', 'the reported patch')
        .option('--replace', 'replace the reported section instead of merging'),
    ),
  ).action(
    run(async (deviceId: string, json: string, opts: Record<string, unknown>) =>
      (await commands()).twinReportCommand(config(opts), io, deviceId, json, opts),
    ),
  );

  const device = program.command('device').description('create, update (status), delete and list devices');
  storeOptions(
    writeOptions(device.command('create').description('create a device (and its twin)').argument('<deviceId>')),
  ).action(
    run(async (deviceId: string, opts: Record<string, unknown>) =>
      (await commands()).deviceCreateCommand(config(opts), io, deviceId, opts),
    ),
  );
  storeOptions(writeOptions(device.command('delete').description('delete a device').argument('<deviceId>'))).action(
    run(async (deviceId: string, opts: Record<string, unknown>) =>
      (await commands()).deviceDeleteCommand(config(opts), io, deviceId, opts),
    ),
  );
  storeOptions(
    device
      .command('update')
      .description(
        "set a device's status in the registry: a disabled device cannot connect over MQTT, and serve closes its connection",
      )
      .argument('<deviceId>')
      .addOption(new Option('--status <status>', 'enabled or disabled').choices(['enabled', 'disabled']))
      .option('--status-reason <text>', 'why (IoT Hub\'s statusReason; "" clears it)')
      .option('--json', 'print the status as one JSON object'),
  ).action(
    run(async (deviceId: string, opts: Record<string, unknown>) =>
      (await commands()).deviceUpdateCommand(config(opts), io, deviceId, opts),
    ),
  );
  storeOptions(
    device
      .command('list')
      .description('list the devices with their versions')
      .option('--json', 'one JSON object per device'),
  ).action(run(async (opts: Record<string, unknown>) => (await commands()).deviceListCommand(config(opts), io, opts)));

  // automatic configurations, through a running serve's REST gateway (docs/iot-hub.md, "Automatic configurations")
  const configCommands = (): Promise<typeof import('./internal/configCommands.ts')> =>
    import('./internal/configCommands.ts');
  const gatewayOptions = (cmd: Command): Command =>
    storeOptions(cmd)
      .option(
        '--gateway <url>',
        'the REST gateway of a running serve (default: http(s)://<host>:<port> of the configuration)',
      )
      .option('--port <port>', 'REST gateway port (env TWINLOG_PORT; default 8080)')
      .option('--hub-name <name>', 'host name the service token names (env TWINLOG_HUB_NAME; default localhost)')
      .option(
        '--policy-key <base64>',
        'key of the iothubowner policy (env TWINLOG_POLICY_KEY; default: <data>/service-policy.json)',
      );
  const configuration = program
    .command('config')
    .description('automatic device configurations (IoT Hub): put, get, list, delete, through a running serve');
  for (const name of ['put', 'create'] as const) {
    gatewayOptions(
      configuration
        .command(name)
        .description(
          name === 'put' ? 'create or replace a configuration (PUT /configurations/{id})' : 'the same as put',
        )
        .argument('<id>')
        .option(
          '--file <json>',
          "a configuration as IoT Hub's JSON (content.deviceContent, targetCondition, priority, labels, metrics)",
        )
        .option('--target <condition>', 'target condition on tags or deviceId, e.g. "tags.env = \'prod\'", or *')
        .option('--priority <n>', 'priority: the highest targeting configuration wins (default 0)')
        .option('--content <json>', 'device content: {"properties.desired.<path>": value, …}')
        .option('--label <name=value...>', 'labels')
        .option('--metric <name=query...>', 'custom metrics (at most 5)')
        .option('--if-match <etag>', 'only if the configuration still has this etag (* for any)')
        .option('--json', 'print the answer on one line'),
    ).action(
      run(async (id: string, opts: Record<string, unknown>) =>
        (await configCommands()).configPutCommand(config(opts), io, id, opts),
      ),
    );
  }
  gatewayOptions(
    configuration
      .command('get')
      .description('print a configuration with its metrics')
      .argument('<id>')
      .option('--json', 'on one line'),
  ).action(
    run(async (id: string, opts: Record<string, unknown>) =>
      (await configCommands()).configGetCommand(config(opts), io, id, opts),
    ),
  );
  gatewayOptions(
    configuration
      .command('list')
      .description('the configurations, highest priority first')
      .option('--top <n>', 'at most n')
      .option('--json', 'one JSON object per configuration'),
  ).action(
    run(async (opts: Record<string, unknown>) => (await configCommands()).configListCommand(config(opts), io, opts)),
  );
  gatewayOptions(
    configuration
      .command('delete')
      .description('delete a configuration (its content is withdrawn from the twins)')
      .argument('<id>')
      .option('--if-match <etag>', 'only if it still has this etag'),
  ).action(
    run(async (id: string, opts: Record<string, unknown>) =>
      (await configCommands()).configDeleteCommand(config(opts), io, id, opts),
    ),
  );

  // twin-update jobs, through a running serve's REST gateway (docs/iot-hub.md, "Jobs")
  const jobCommands = (): Promise<typeof import('./internal/jobCommands.ts')> => import('./internal/jobCommands.ts');
  const job = program
    .command('job')
    .description('twin-update jobs (IoT Hub): create, get, list, cancel, run by a running serve');
  gatewayOptions(
    job
      .command('create')
      .description('update tags and/or desired on every twin matching a query (PUT /jobs/v2/{id})')
      .argument('<jobId>')
      .argument('<json>', 'the twin patch: {"tags":…, "properties":{"desired":…}}')
      .option('--query <condition>', 'which twins: a WHERE condition, e.g. "tags.site = \'b\'"')
      .option('--etag <etag>', 'write each twin only if its etag is this (default * : any)')
      .option('--start <time>', 'start at this ISO-8601 time (default now)')
      .option('--max-seconds <n>', 'fail the job if it runs longer (default 3600)')
      .option('--wait', 'wait until the job ends; exit 1 unless it completed')
      .option('--timeout <ms>', 'how long --wait waits (default 60000)')
      .option('--json', 'print the job on one line'),
  ).action(
    run(async (id: string, json: string, opts: Record<string, unknown>) =>
      (await jobCommands()).jobCreateCommand(config(opts), io, id, json, opts),
    ),
  );
  gatewayOptions(
    job
      .command('get')
      .description('print a job with its device counts')
      .argument('<jobId>')
      .option('--json', 'on one line'),
  ).action(
    run(async (id: string, opts: Record<string, unknown>) =>
      (await jobCommands()).jobGetCommand(config(opts), io, id, opts),
    ),
  );
  gatewayOptions(
    job
      .command('list')
      .description('the jobs, newest first')
      .addOption(
        new Option('--status <status>', 'only jobs in this status').choices([
          'queued',
          'scheduled',
          'running',
          'completed',
          'failed',
          'cancelled',
        ]),
      )
      .option('--json', 'one JSON object per job'),
  ).action(run(async (opts: Record<string, unknown>) => (await jobCommands()).jobListCommand(config(opts), io, opts)));
  gatewayOptions(
    job
      .command('cancel')
      .description('cancel a job: a running one stops before its next devices')
      .argument('<jobId>')
      .option('--json', 'on one line'),
  ).action(
    run(async (id: string, opts: Record<string, unknown>) =>
      (await jobCommands()).jobCancelCommand(config(opts), io, id, opts),
    ),
  );

  // module identities, through a running serve's REST gateway (docs/iot-hub.md, "Module identities and module twins")
  const moduleCommands = (): Promise<typeof import('./internal/moduleCommands.ts')> =>
    import('./internal/moduleCommands.ts');
  const moduleCmd = program
    .command('module')
    .description('module identities (IoT Hub): create, get, list, delete, through a running serve');
  gatewayOptions(
    moduleCmd
      .command('create')
      .description('create a module of a device, print its connection string')
      .argument('<deviceId>')
      .argument('<moduleId>')
      .option('--json', 'print the module on one line'),
  ).action(
    run(async (deviceId: string, moduleId: string, opts: Record<string, unknown>) =>
      (await moduleCommands()).moduleCreateCommand(config(opts), io, deviceId, moduleId, opts),
    ),
  );
  gatewayOptions(
    moduleCmd
      .command('get')
      .description('print a module identity (keys, connection state)')
      .argument('<deviceId>')
      .argument('<moduleId>')
      .option('--json', 'on one line'),
  ).action(
    run(async (deviceId: string, moduleId: string, opts: Record<string, unknown>) =>
      (await moduleCommands()).moduleGetCommand(config(opts), io, deviceId, moduleId, opts),
    ),
  );
  gatewayOptions(
    moduleCmd
      .command('list')
      .description("a device's modules")
      .argument('<deviceId>')
      .option('--json', 'one JSON object per module'),
  ).action(
    run(async (deviceId: string, opts: Record<string, unknown>) =>
      (await moduleCommands()).moduleListCommand(config(opts), io, deviceId, opts),
    ),
  );
  gatewayOptions(
    moduleCmd
      .command('delete')
      .description('delete a module (its twin and keys)')
      .argument('<deviceId>')
      .argument('<moduleId>'),
  ).action(
    run(async (deviceId: string, moduleId: string, opts: Record<string, unknown>) =>
      (await moduleCommands()).moduleDeleteCommand(config(opts), io, deviceId, moduleId, opts),
    ),
  );

  program
    .command('bench')
    .description('run a benchmark (npm run bench:<name>) and print its figures and ratios')
    .addArgument(
      program
        .createArgument('[name]', 'the benchmark')
        .choices([...BENCHMARKS])
        .default('fold'),
    )
    .action(
      run(async (name: string) =>
        (await import('./internal/benchCommand.ts')).benchCommand(io, name, { env, signal: stopOnSigint() }),
      ),
    );

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return result;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.exitCode === 0 ||
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      const message = e.message.replace(/^error: /, '');
      io.err(`twinlog: ${message}${message.includes('--help') ? '' : ' (see twinlog --help)'}\n`);
      return 2;
    }
    if (e instanceof CliError) {
      io.err(`twinlog: ${e.message}\n`);
      return e.exitCode;
    }
    // core loads here, not at the top: `--help` and bad arguments answer without it
    const { isTwinlogError } = await import('@twinlog/core');
    if (isTwinlogError(e)) {
      io.err(`twinlog: ${e.code}: ${e.message}\n`);
      return 1;
    }
    // Node's system errors (EADDRINUSE, ENOENT, …) in one line; anything else is a bug: its stack.
    const code = (e as { code?: unknown } | null)?.code;
    if (e instanceof Error && typeof code === 'string') io.err(`twinlog: ${code}: ${e.message}\n`);
    else if (e instanceof Error && e.name.startsWith('KafkaJS')) io.err(`twinlog: Kafka: ${messageChain(e)}\n`);
    else io.err(`twinlog: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
