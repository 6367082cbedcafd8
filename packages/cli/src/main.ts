/**
 * The `twinlog` process: runs the command line with the process's arguments and exits with its
 * code. `bin/twinlog.mjs` loads it compiled (`dist/main.js`); `bin/twinlog-dev.mjs` from the
 * sources (the repository's tests and `npm run twinlog`).
 */
import { runCli } from './runCli.ts';

const code = await runCli(process.argv.slice(2));
process.exitCode = code;
// The command is over: its output is written and its clients are closed. A library handle that is
// still open (a Kafka socket mid-reconnect) must not keep the process alive; give pending output a
// moment to drain, then exit (the timer is unref'd, so a clean process exits at once).
setTimeout(() => process.exit(code), 1_000).unref();
