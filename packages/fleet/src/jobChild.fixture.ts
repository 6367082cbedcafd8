/**
 * A child process for the job crash test: `node --conditions=source --import tsx jobChild.fixture.ts <log db> <fleet db>
 * <job id>`. Opens the embedded log and the read model's file (not consuming: the device list is
 * read from what the file holds), schedules the job if the file has none, and runs it one device
 * at a time, printing `{"written":"<deviceId>"}` after each acknowledged append (then pausing, so a
 * kill lands between the append and its record) and `{"done":…}` at the end. Not part of the package.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { createJobRunner } from './createJobRunner.ts';
import { createReadModel } from './createReadModel.ts';
import { isFleetError } from './fleetError.ts';

const [logPath, fleetPath, jobId] = process.argv.slice(2);
if (logPath === undefined || fleetPath === undefined || jobId === undefined)
  throw new Error('usage: <log db> <fleet db> <job id>');
const log = createEmbeddedLog({ path: logPath, synchronous: 'NORMAL' });
const readModel = await createReadModel({ log, path: fleetPath, start: false });
const jobs = createJobRunner({
  readModel,
  log,
  physicalNow: Date.now,
  concurrency: 1,
  onWritten: async ({ deviceId }) => {
    process.stdout.write(JSON.stringify({ written: deviceId }) + '\n');
    await sleep(30);
  },
});
try {
  jobs.scheduleUpdateTwin({
    jobId,
    type: 'scheduleUpdateTwin',
    queryCondition: 'tags.wave = 1 AND properties.reported.battery >= 20',
    updateTwin: { tags: { rollout: 'wave-1' }, properties: { desired: { fw: '2.0' } }, etag: '*' },
  });
} catch (e) {
  if (!isFleetError(e, 'JOB_ALREADY_EXISTS')) throw e;
}
const done = await jobs.run(jobId);
process.stdout.write(JSON.stringify({ done: done.deviceJobStatistics }) + '\n');
await readModel.close();
await log.close();
