#!/usr/bin/env node
// The `twinlog` command from the TypeScript sources, without a build (the repository's tests and
// `npm run twinlog`): tsx compiles the sources, and the packages resolve each other by their
// `source` export condition (`./src/*.ts`) instead of `dist/`. Not part of the published package.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

register('./sourceCondition.mjs', import.meta.url);
registerTsx();
await import('../src/main.ts');
