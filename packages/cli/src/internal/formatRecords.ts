/**
 * One-line, human-readable renderings of twinlog's records for the terminal, and a JSON form
 * (bytes as base64) for machines.
 */
import type { ChangeRecord, DeadLetterRecord, DeltaRecord, RejectionRecord } from '@twinlog/codec';
import type { HistoryEntry } from '@twinlog/projector';

const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms));

export function formatHistoryEntry(e: HistoryEntry): string {
  const v = e.versions;
  const what = e.section === 'create' || e.section === 'delete' ? '' : `${e.op} ${JSON.stringify(e.patch)}`;
  return `${e.time}  ${e.actor.padEnd(14)} ${e.section.padEnd(9)} ${what === '' ? '' : `${what}  `}→ version ${v.version} (tags ${v.tags}, desired ${v.desired}, reported ${v.reported})`;
}

export function formatChange(c: ChangeRecord): string {
  return `${iso(c.wall)}  ${c.deviceId}  ${c.actor}  ${c.section.padEnd(9)} ${JSON.stringify(c.diff)}  → version ${c.version} (desired ${c.desiredVersion}, reported ${c.reportedVersion})`;
}

export function formatDelta(d: DeltaRecord, appendTime: number): string {
  const { entries, converged } = d.delta;
  const list = entries.map((e) => `${e.path.join('.')}=${e.status}`).join(', ');
  return `${iso(appendTime)}  ${d.deviceId}  ${converged ? 'converged' : 'not converged'}: ${list === '' ? '(nothing desired)' : list}  (desired v${d.delta.desiredVersion}, reported v${d.delta.reportedVersion})`;
}

export function formatRejection(r: RejectionRecord, appendTime: number): string {
  const id = r.id === null ? '' : `  (event ${r.id.writer}:${r.id.seq})`;
  return `${iso(appendTime)}  ${r.deviceId}  ${r.code}: ${r.message}${id}`;
}

export function formatDeadLetter(r: DeadLetterRecord, appendTime: number): string {
  return `${iso(appendTime)}  ${r.key}  ${r.code}: ${r.message}  (${r.bytes?.length ?? 0} bytes from ${r.source.topic}/${r.source.partition}@${r.source.offset})`;
}

/** JSON with `Uint8Array`s as base64. */
export function toJsonLine(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));
}
