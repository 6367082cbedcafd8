#!/usr/bin/env node
// The `twinlog` command: runs the CLI's TypeScript sources through tsx (the repository runs its
// sources directly, there is no build step).
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/index.ts');
const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// The command is over: its output is written and its clients are closed. A library handle that is
// still open (a Kafka socket mid-reconnect) must not keep the process alive; give pending output a
// moment to drain, then exit (the timer is unref'd, so a clean process exits at once).
setTimeout(() => process.exit(code), 1_000).unref();
