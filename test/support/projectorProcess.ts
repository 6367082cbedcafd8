/**
 * A projector as a real process, for crash and rebalance tests: `node --conditions=source --import tsx
 * test/support/projectorProcess.ts` with the environment of `openLog.ts`. Prints one JSON line per
 * committed batch; SIGTERM stops it cleanly; SIGKILL is the point of the tests.
 */
import { startProjector } from '@twinlog/projector';
import { openLogFromEnv } from './openLog.ts';

const log = openLogFromEnv();
const projector = await startProjector({
  log,
  group: process.env['TWINLOG_GROUP'] ?? 'twinlog-projector',
  physicalNow: () => Date.now(),
  workers: Number(process.env['TWINLOG_PROJECTOR_WORKERS'] ?? 0),
  onBatch: (partition, stats) => process.stdout.write(JSON.stringify({ partition, ...stats }) + '\n'),
});
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\n');
process.on('SIGTERM', () => {
  void projector
    .stop()
    .then(() => log.close())
    .then(() => process.exit(0));
});
try {
  await projector.done;
} catch (e) {
  process.stderr.write(`projector failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
