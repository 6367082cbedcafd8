// Entry of a replay worker thread when the projector runs from its TypeScript sources (tests,
// benchmarks): tsx compiles them in the worker too. Compiled, replayInWorkers.ts starts
// dist/workers/replayWorker.js instead.
import { register } from 'tsx/esm/api';

register();
await import('./replayWorker.ts');
