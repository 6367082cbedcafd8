#!/usr/bin/env node
// The `twinlog` command: the CLI compiled to dist/ by `npm run build` (what an installed package
// and the container run; no transpiler at run time).
try {
  await import('../dist/main.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('/dist/main.js')) throw e;
  process.stderr.write(
    'twinlog: the CLI is not built: run `npm run build` (in the repository, `npm run twinlog --` runs it from the sources)\n',
  );
  process.exitCode = 1;
}
