/**
 * The two backends the compatibility suite runs on: the embedded SQLite log (a temp file) and the
 * int tier's Kafka broker (a random topic prefix per test), each with a projector running.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Log } from '@twinlog/core';
import { ensureTwinTopics, startProjector, type Projector } from '@twinlog/projector';
import { openLog } from '../../support/openLog.ts';

export type BackendKind = 'embedded' | 'kafka';

export interface Backend {
  readonly log: Log;
  readonly projector: Projector;
  /** A directory for the gateway's files (device keys, sessions), removed by `stop`. */
  readonly dir: string;
  stop(): Promise<void>;
}

export async function startBackend(kind: BackendKind): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'twinlog-compat-'));
  const log =
    kind === 'embedded'
      ? openLog({ kind, where: join(dir, 'log.db') })
      : openLog({ kind, where: `compat-${Date.now()}-${Math.floor(Math.random() * 1e9)}.` });
  await ensureTwinTopics(log, 2);
  const projector = await startProjector({ log, physicalNow: Date.now, settleIntervalMs: 20 });
  return {
    log,
    projector,
    dir,
    async stop() {
      await projector.stop();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
