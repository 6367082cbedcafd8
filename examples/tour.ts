/**
 * The five-minute tour, on the embedded default (one SQLite file, no Kafka, no Java): a projector
 * and a reconciler run in this process; a back end sets desired properties, a device reports, the
 * delta converges; then the audit trail and a replay as of an earlier time.
 *
 * Run: `npm run tour` (the database goes to a temporary folder, printed at the start).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTwinClient } from '@twinlog/client';
import { renderTwin } from '@twinlog/core';
import { createEmbeddedLog } from '@twinlog/log-embedded';
import { ensureTwinTopics, history, replay, startProjector } from '@twinlog/projector';
import { startReconciler } from '@twinlog/reconciler';

const path = join(mkdtempSync(join(tmpdir(), 'twinlog-tour-')), 'twinlog.db');
const log = createEmbeddedLog({ path });
await ensureTwinTopics(log);
const projector = await startProjector({ log, physicalNow: () => Date.now() });
const reconciler = await startReconciler({ log, physicalNow: () => Date.now() });
const backend = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'fleet-app' });
const device = createTwinClient({ log, physicalNow: () => Date.now(), actor: 'thermostat-1' });
const step = (text: string): void => console.log(`\n── ${text}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

console.log(`twinlog tour on the embedded log: ${path}`);
const deltas = backend.deltas({ deviceId: 'thermostat-1' });
await deltas.ready;

step('create the device and set a desired target temperature (waits for the projector)');
await backend.createDevice('thermostat-1', { wait: true });
await backend.mergeDesired('thermostat-1', { targetTemperature: 21, fan: { mode: 'auto' } }, { wait: true });
const beforeReport = Date.now();
await sleep(20);
console.log(JSON.stringify((await backend.getTwin('thermostat-1')).properties.desired, null, 2));

step('the device acknowledges (Plug and Play convention) and reports');
const desiredVersion = (await backend.getTwin('thermostat-1')).properties.desired.$version;
await device.mergeReported(
  'thermostat-1',
  { targetTemperature: { value: 21, ac: 200, av: desiredVersion }, fan: { mode: 'auto' } },
  { wait: true },
);

step('watch the delta converge (twin.deltas)');
for await (const record of deltas) {
  const { entries, converged } = record.delta;
  console.log(`delta: ${entries.map((e) => `${e.path.join('.')}=${e.status}`).join(', ') || '(nothing desired yet)'}`);
  if (converged && entries.length > 0) break;
}

step('audit: who changed what, when');
for (const e of await history({ log, deviceId: 'thermostat-1' })) {
  console.log(
    `${e.time}  ${e.actor.padEnd(13)} ${e.section.padEnd(9)} ${JSON.stringify(e.patch)}  → version ${e.versions.version}`,
  );
}

step('time travel: the twin as it was before the device reported');
const past = await replay({ log, deviceId: 'thermostat-1', until: beforeReport });
const then = past.states.get('thermostat-1');
console.log(then === undefined ? '(no twin then)' : JSON.stringify(renderTwin(then).properties.reported));

await Promise.all([backend.close(), device.close()]);
await reconciler.stop();
await projector.stop();
await log.close();
console.log('\ndone.');
