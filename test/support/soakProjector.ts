/**
 * A projector process for the soak tests: `node --expose-gc --conditions=source --import tsx test/support/soakProjector.ts`
 * with the environment of `openLog.ts`, `TWINLOG_GROUP`, and `SOAK_PROJECTOR_OPTIONS` (JSON of
 * extra `startProjector` options). Prints one JSON line per committed batch
 * (`{ batch: { partition, stats, rejectedByCode } }`); on a `mem` line on stdin it collects garbage
 * (when `--expose-gc` is on) and prints `{ mem: { heapUsed, rss, gc } }`. SIGTERM stops it cleanly.
 */
import { createInterface } from 'node:readline';
import { startProjector } from '@twinlog/projector';
import { openLogFromEnv } from './openLog.ts';

const log = openLogFromEnv();
const options = JSON.parse(process.env['SOAK_PROJECTOR_OPTIONS'] ?? '{}') as Record<string, number>;
const projector = await startProjector({
  log,
  group: process.env['TWINLOG_GROUP'] ?? 'twinlog-projector',
  physicalNow: () => Date.now(),
  ...options,
  onBatch: (partition, stats, { rejectedByCode }) =>
    process.stdout.write(JSON.stringify({ batch: { partition, stats, rejectedByCode } }) + '\n'),
});
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\n');

const gc = (globalThis as { gc?: () => void }).gc;
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'mem') return;
  if (gc !== undefined) for (let i = 0; i < 3; i++) gc();
  const { heapUsed, rss } = process.memoryUsage();
  process.stdout.write(JSON.stringify({ mem: { heapUsed, rss, gc: gc !== undefined } }) + '\n');
});

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
