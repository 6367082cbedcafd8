/**
 * A child process for the read model's crash test: `node --conditions=source --import tsx readModelChild.fixture.ts
 * <log db> <fleet db>`. Consumes `twin.snapshots` into the read model and prints
 * `{"batch":<n>}` after each committed batch, until killed. Not part of the package.
 */
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createReadModel } from './createReadModel.ts';

const [logPath, fleetPath] = process.argv.slice(2);
if (logPath === undefined || fleetPath === undefined) throw new Error('usage: <log db> <fleet db>');
const log = createEmbeddedLog({ path: logPath, synchronous: 'NORMAL', maxBatchSize: 50, pollIntervalMs: 5 });
const readModel = await createReadModel({ log, path: fleetPath, start: false });
let batches = 0;
readModel.onUpdate(() => {
  process.stdout.write(JSON.stringify({ batch: ++batches }) + '\n');
});
await readModel.start();
process.stdout.write(JSON.stringify({ started: true }) + '\n');
