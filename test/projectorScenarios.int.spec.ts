/**
 * The projector's scenario suite on the real logs: the embedded SQLite log and a real Kafka broker
 * (the int tier's global setup provides it; a missing broker fails the run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProjectorScenarios } from '@twinlog/projector/testing';
import { openLog } from './support/openLog.ts';

runProjectorScenarios('the embedded SQLite log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-scenario-'));
  return {
    log: openLog({ kind: 'embedded', where: join(dir, 'log.db') }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

runProjectorScenarios('Kafka', async () => ({
  log: openLog({ kind: 'kafka', where: `scenario-${Date.now()}-${Math.floor(Math.random() * 1e9)}.` }),
}));
