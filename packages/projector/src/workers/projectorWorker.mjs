// Entry of a projector worker thread: the repository runs its TypeScript sources through tsx, in
// workers too (docs/write-path.md, "Both cores").
import { register } from 'tsx/esm/api';

register();
await import('./projectorWorker.ts');
