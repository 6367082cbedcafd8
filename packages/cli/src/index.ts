/**
 * @twinlog/cli: the `twinlog` command line — `serve` (engine + REST gateway + /health and
 * /metrics), `replay`, `audit`, `tail`, `query`, `twin`, `device` and `bench` — on the embedded
 * log by default or on Kafka with `--kafka`.
 *
 * @example
 * import { runCli } from '@twinlog/cli'
 * process.exitCode = await runCli(['device', 'list'])
 */
export { runCli } from './runCli.ts';
export type { RunCliOptions } from './runCli.ts';
export { resolveConfig, DEFAULT_CONFIG, CONFIG_ENV } from './internal/resolveConfig.ts';
export type { CliConfig, LogLevel } from './internal/resolveConfig.ts';
