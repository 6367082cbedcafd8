/**
 * A child process for the embedded log's crash and cross-process tests:
 * `node --conditions=source --import tsx embeddedLogChild.fixture.ts <mode> <db path> [args]`. Prints one JSON line per
 * event the parent waits on. Not part of the package.
 *
 * Modes:
 * - `writer`: forever, commitBatch #n = 3 records on `crash-a`, 2 on `crash-b` (headers `batch`,
 *   `size`) and group `crash`'s offset of `crash-a`/0 set to n + 1, then one plain append on
 *   `crash-c` tagged with n. Resumes numbering from the committed offset, so each round of
 *   kill-and-restart continues the same sequence.
 * - `subscriber <group> <topic>`: joins the group and stays (holding its lease) until killed.
 * - `appender <topic> <count>`: appends `count` records one call at a time, then exits.
 */
import { createEmbeddedLog } from './createEmbeddedLog.ts';

const [mode, path, ...args] = process.argv.slice(2);
if (mode === undefined || path === undefined) throw new Error('usage: <mode> <db path> [args]');
const log = createEmbeddedLog({ path });
const say = (o: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

if (mode === 'writer') {
  await log.ensureTopics([
    { name: 'crash-a', partitions: 4 },
    { name: 'crash-b', partitions: 4 },
    { name: 'crash-c', partitions: 2 },
  ]);
  let n = (await log.committedOffsets('crash', 'crash-a'))[0] ?? 0;
  for (;;) {
    const headers = { batch: String(n), size: '5' };
    await log.commitBatch({
      fence: 'crash-writer',
      appends: [
        {
          topic: 'crash-a',
          records: [0, 1, 2].map((i) => ({ key: `k${n}-${i}`, value: bytes(`a${n}-${i}`), headers })),
        },
        { topic: 'crash-b', records: [0, 1].map((i) => ({ key: `k${n}-${i}`, value: bytes(`b${n}-${i}`), headers })) },
      ],
      offsets: [{ group: 'crash', topic: 'crash-a', partition: 0, offset: n + 1 }],
    });
    await log.append('crash-c', [{ key: `k${n}`, value: bytes(`c${n}`), headers: { batch: String(n) } }]);
    if (n % 20 === 0) say({ batch: n });
    n += 1;
  }
} else if (mode === 'subscriber') {
  const [group, topic] = args as [string, string];
  await log.subscribe({ group, topics: [topic], eachBatch: async () => undefined });
  say({ subscribed: group, pid: process.pid });
} else if (mode === 'appender') {
  const [topic, count] = args as [string, string];
  for (let i = 0; i < Number(count); i++) await log.append(topic, [{ key: `x${i}`, value: bytes(String(i)) }]);
  say({ appended: Number(count) });
  await log.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
