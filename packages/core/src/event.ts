/** The decoded event envelope (docs/formats.md, "Events"; docs/fold.md, "Events and stamps"). */
import type { Patch } from './json.ts';
import type { Dot, Hlc } from './stamp.ts';

export type Section = 'tags' | 'desired' | 'reported';
export const SECTIONS: readonly Section[] = ['tags', 'desired', 'reported'];
export type Lifecycle = 'create' | 'delete';
export type EventKind = Section | Lifecycle;

/** Current envelope schema version. */
export const ENVELOPE_VERSION = 1;

/** A precondition: present = the record is a *command*, decided by the partition owner. */
export interface Condition {
  /** Etag the writer read; `*` (quoted or not) matches any existing twin. */
  readonly ifMatch?: string;
  /** Required current `$version` of the event's section. */
  readonly ifVersion?: number;
  /**
   * Idempotency key of the logical write (printable ASCII, 1–128 characters): the owner applies a
   * command whose key it accepted before only once; a retry is answered `DUPLICATE_WRITE` with
   * the original's id (docs/idempotency.md).
   */
  readonly key?: string;
}

export interface TwinEvent {
  readonly v: number;
  readonly id: Dot;
  readonly deviceId: string;
  readonly section: EventKind;
  readonly op: 'merge' | 'replace';
  /** RFC 7396 merge patch relative to the section root; `{}` for lifecycle events. */
  readonly patch: Patch;
  readonly stamp: Hlc;
  readonly cond?: Condition;
  /** Who wrote it: device id, policy name, app id (audit trail). */
  readonly actor: string;
  /** Correlation id a writer waits on; shared by the records of one request. */
  readonly corr?: string;
}

export function isSection(kind: string): kind is Section {
  return kind === 'tags' || kind === 'desired' || kind === 'reported';
}
