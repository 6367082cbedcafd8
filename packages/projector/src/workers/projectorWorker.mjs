// Entry of a projector worker thread when the projector runs from its TypeScript sources (tests,
// benchmarks, `npm run twinlog`): tsx compiles them in the worker too (docs/write-path.md, "Both
// cores"). Compiled, workerPool.ts starts dist/workers/projectorWorker.js instead.
import { register } from 'tsx/esm/api';

register();
await import('./projectorWorker.ts');
