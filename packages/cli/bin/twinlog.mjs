#!/usr/bin/env node
// The `twinlog` command: runs the CLI's TypeScript sources through tsx (the repository runs its
// sources directly, there is no build step).
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/index.ts');
process.exitCode = await runCli(process.argv.slice(2));
