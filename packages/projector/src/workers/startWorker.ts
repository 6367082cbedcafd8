/**
 * Starting one of this folder's worker threads (docs/write-path.md, "Both cores"). Compiled (dist/),
 * the worker is `<name>.js`. From the TypeScript sources (tests, benchmarks, `npm run twinlog`),
 * `<name>.mjs` runs `<name>.ts` through tsx, and the worker resolves the other packages by their
 * `source` export condition as this thread does.
 */
import { Worker } from 'node:worker_threads';

const FROM_SOURCES = import.meta.url.endsWith('.ts');
const OPTIONS =
  FROM_SOURCES && !process.execArgv.includes('--conditions=source')
    ? { execArgv: [...process.execArgv, '--conditions=source'] }
    : {};

/**
 * A new worker thread running this folder's `name` (`projectorWorker`, `replayWorker`);
 * `youngGenerationMb` caps its young generation (V8's default otherwise).
 */
export function startWorker(name: string, youngGenerationMb?: number): Worker {
  return new Worker(new URL(FROM_SOURCES ? `./${name}.mjs` : `./${name}.js`, import.meta.url), {
    ...OPTIONS,
    ...(youngGenerationMb === undefined ? {} : { resourceLimits: { maxYoungGenerationSizeMb: youngGenerationMb } }),
  });
}
