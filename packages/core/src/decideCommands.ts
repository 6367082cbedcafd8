/**
 * Conditional writes decided by the partition owner (docs/fold.md, "Commands"): `decide(commands, state)`.
 * The decision is made once, recorded in the state, and re-sent on a retry; accepted commands
 * become facts with a fresh owner stamp that dominates everything they were validated against.
 */
import { isTwinlogError } from './errors.ts';
import type { TwinEvent } from './event.ts';
import type { HybridClock } from './hlc.ts';
import { isPlainObject, type JsonObject } from './json.ts';
import { applyMergePatch } from './mergePatch.ts';
import { computeEtag, sectionView } from './renderTwin.ts';
import { dotKey, stampOf, type Dot, type Stamp } from './stamp.ts';
import { applyEvent, sectionVersion, twinExists, type Decision, type TwinState } from './twinState.ts';
import { assertSectionFits, type TwinLimits } from './validatePatch.ts';

export interface CommandDecision {
  readonly decision: Decision;
  /** The accepted facts to append to `twin.backend` (same ids, no `cond`, owner stamps); else empty. */
  readonly facts: readonly TwinEvent[];
  /** True when every command had been decided before: the recorded decision is re-sent. */
  readonly replayed: boolean;
  /**
   * When the unit retries a write the owner already applied (the same event id, or an idempotency
   * key of an accepted decision it still holds): the original's id. The decision is then a
   * `DUPLICATE_WRITE` refusal, not recorded, and nothing is applied (docs/idempotency.md).
   */
  readonly duplicateOf?: Dot;
}

export interface DecideOptions {
  /** The owner's clock; `recv(state.maxStamp)` is called before stamping facts. */
  readonly clock: HybridClock;
  readonly limits?: Partial<TwinLimits>;
}

/** Strip one pair of double quotes (HTTP `If-Match` sends them, the JSON etag has none). */
export function unquoteEtag(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
}

/**
 * Decide a unit of commands (consecutive records sharing `corr`; usually one) against the state
 * that includes everything before them in partition order. All are accepted or all rejected.
 * On acceptance the facts are already applied to `state`; the caller appends them to the log and
 * persists state, offsets and the decision together.
 *
 * @example
 * const { decision, facts } = decideCommands(state, [cmd], { clock })
 * if (decision.accepted) await log.append(facts); else await log.reject(decision)
 */
export function decideCommands(
  state: TwinState,
  commands: readonly TwinEvent[],
  { clock, limits = {} }: DecideOptions,
): CommandDecision {
  const undecided = commands.filter((c) => !state.decided.has(dotKey(c.id)));
  if (undecided.length === 0 && commands.length > 0) {
    const recorded = state.decided.get(dotKey(commands[0]!.id))!;
    if (recorded.accepted) return duplicate(state, commands[0]!, recorded.stamp, undefined);
    return { decision: recorded, facts: [], replayed: true };
  }
  const key = commands.find((c) => c.cond?.key !== undefined)?.cond?.key;
  if (key !== undefined && commands.length > 0) {
    for (const d of state.decided.values())
      if (d.accepted && d.key === key) return duplicate(state, commands[0]!, d.stamp, key);
  }
  const reject = (code: Extract<Decision, { accepted: false }>['code'], message: string): CommandDecision => {
    const etag = twinExists(state) ? computeEtag(state) : undefined;
    let decision: Decision | undefined;
    for (const c of undecided) {
      decision = { accepted: false, code, message, etag, stamp: stampOf(c.stamp, c.id) };
      state.decided.set(dotKey(c.id), decision);
    }
    return { decision: decision!, facts: [], replayed: false };
  };

  if (!twinExists(state)) return reject('DEVICE_NOT_FOUND', `device ${state.deviceId} does not exist`);
  const etag = computeEtag(state);
  const after: Partial<Record<'tags' | 'desired', JsonObject>> = {};
  for (const c of undecided) {
    if (c.section !== 'tags' && c.section !== 'desired') {
      return reject('SECTION_FORBIDDEN', `conditional writes apply to tags and desired only, not ${c.section}`);
    }
    const ifMatch = c.cond?.ifMatch === undefined ? undefined : unquoteEtag(c.cond.ifMatch);
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== etag) {
      return reject('PRECONDITION_FAILED', 'The etag in the request does not match the etag of the twin');
    }
    const ifVersion = c.cond?.ifVersion;
    if (ifVersion !== undefined && ifVersion !== sectionVersion(state, c.section)) {
      return reject('PRECONDITION_FAILED', `The ${c.section} $version does not match ${ifVersion}`);
    }
    const base = c.op === 'replace' ? {} : (after[c.section] ?? sectionView(state, c.section));
    const next = applyMergePatch(base, c.patch);
    after[c.section] = isPlainObject(next) ? next : {};
  }
  for (const section of ['tags', 'desired'] as const) {
    const next = after[section];
    if (next === undefined) continue;
    try {
      assertSectionFits(section, sectionView(state, section), next, limits);
    } catch (e) {
      if (isTwinlogError(e, 'SECTION_TOO_LARGE')) return reject('SECTION_TOO_LARGE', e.message);
      throw e;
    }
  }

  clock.recv(state.maxStamp);
  const facts: TwinEvent[] = [];
  for (const c of undecided) {
    const { cond: _cond, ...rest } = c;
    const fact: TwinEvent = { ...rest, stamp: clock.now() };
    applyEvent(state, fact);
    facts.push(fact);
  }
  const newEtag = computeEtag(state);
  let decision: Decision | undefined;
  facts.forEach((f) => {
    decision = { accepted: true, etag: newEtag, stamp: stampOf(f.stamp, f.id), ...(key === undefined ? {} : { key }) };
    state.decided.set(dotKey(f.id), decision);
  });
  return { decision: decision!, facts, replayed: false };
}

/** The answer to a retry of the applied write `original` (its fact's stamp): refused, not recorded. */
function duplicate(state: TwinState, first: TwinEvent, original: Stamp, key: string | undefined): CommandDecision {
  const id = `${original.writer}/${original.seq}`;
  const message =
    key === undefined
      ? `event ${first.id.writer}/${first.id.seq} was already applied; not applied again`
      : `a write with idempotency key ${JSON.stringify(key)} was already applied as event ${id}; not applied again`;
  return {
    decision: {
      accepted: false,
      code: 'DUPLICATE_WRITE',
      message,
      etag: twinExists(state) ? computeEtag(state) : undefined,
      stamp: stampOf(first.stamp, first.id),
    },
    facts: [],
    replayed: false,
    duplicateOf: { writer: original.writer, seq: original.seq },
  };
}
