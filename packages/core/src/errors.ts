/**
 * One error family for all of twinlog. Every failure a caller may branch on carries a stable string
 * `code`; the gateway alone maps codes to IoT Hub numbers and HTTP statuses, using the `iotHub`
 * field recorded here where IoT Hub has an equivalent.
 *
 * Match on `code` with {@link isTwinlogError}, never with `instanceof`: the guard works across
 * duplicated copies of this package.
 */

/** IoT Hub's numeric error code and name for a twinlog code, where one exists. */
export interface IotHubCode {
  readonly status: number;
  readonly code: number;
  readonly name: string;
}

const ARGUMENT_INVALID: IotHubCode = { status: 400, code: 400004, name: 'ArgumentInvalid' };

/** Every code twinlog raises, with IoT Hub's equivalent where there is one. */
export const ERROR_CODES = {
  // patch validation (docs/iot-hub.md, "Limits")
  PATCH_NOT_OBJECT: ARGUMENT_INVALID,
  KEY_INVALID: ARGUMENT_INVALID,
  KEY_TOO_LONG: ARGUMENT_INVALID,
  DEPTH_EXCEEDED: ARGUMENT_INVALID,
  STRING_TOO_LONG: ARGUMENT_INVALID,
  NUMBER_OUT_OF_RANGE: ARGUMENT_INVALID,
  NULL_IN_ARRAY: ARGUMENT_INVALID,
  VALUE_TYPE_INVALID: ARGUMENT_INVALID,
  SECTION_TOO_LARGE: ARGUMENT_INVALID,
  SECTION_FORBIDDEN: ARGUMENT_INVALID,
  DEVICE_ID_INVALID: ARGUMENT_INVALID,
  // events and the fold
  EVENT_INVALID: ARGUMENT_INVALID,
  STAMP_INVALID: ARGUMENT_INVALID,
  STAMP_SKEW: ARGUMENT_INVALID,
  /**
   * The twin can no longer fold this event exactly: it is stamped at or below the twin's GC horizon,
   * or it is a desired or lifecycle event that arrived after its section's window of exact history
   * had passed it (docs/bounded-state.md). It is refused, never applied in part; a write that gets
   * it can be sent again as a new write (new id, new stamp).
   */
  EVENT_LATE: ARGUMENT_INVALID,
  /**
   * Applying this event would make the twin's snapshot larger than the log accepts in one record;
   * the projector refuses the event and keeps the twin at its last good state.
   */
  SNAPSHOT_TOO_LARGE: ARGUMENT_INVALID,
  // commands
  PRECONDITION_FAILED: { status: 412, code: 412001, name: 'PreconditionFailed' },
  DEVICE_NOT_FOUND: { status: 404, code: 404001, name: 'DeviceNotFound' },
  DEVICE_ALREADY_EXISTS: { status: 409, code: 409001, name: 'DeviceAlreadyExists' },
  /**
   * A retry of a write the owner already applied: its idempotency key (or its event id) was
   * accepted before, so it is not applied again (docs/idempotency.md). Writers treat it as
   * success, as Kafka's idempotent producer treats a duplicate sequence number; the record names
   * the original in `duplicateOf`. No IoT Hub equivalent: the gateway answers the retry as a
   * success.
   */
  DUPLICATE_WRITE: undefined,
  /** A writer waited for a command's decision (on `twin.changes` / `twin.rejections`) and gave up. */
  DECISION_TIMEOUT: { status: 504, code: 504101, name: 'GatewayTimeout' },
  // fleet queries (packages/query; docs/iot-hub.md, "Queries"). The reference records only "400" and the text
  // "The query is invalid…" for a bad query (docs/iot-hub.md "Query language", "Query functions and grouping"), so the 400 code of docs/iot-hub.md "Errors" stands in.
  /** The query text does not parse, or parses but means nothing (unknown function, bad GROUP BY …). */
  QUERY_SYNTAX: ARGUMENT_INVALID,
  /** A well-formed request twinlog (or IoT Hub) refuses: ORDER BY, JOIN, GROUP BY on modules … (docs/iot-hub.md "Query language", "Query conditions"). */
  QUERY_UNSUPPORTED: ARGUMENT_INVALID,
  /** Longer than 8192 characters; a real hub answered `PreconditionFailed` (docs/iot-hub.md "Limits"). */
  QUERY_TOO_LONG: { status: 412, code: 412001, name: 'PreconditionFailed' },
  /** A continuation token that this query service did not issue (docs/iot-hub.md "REST (back ends)"). */
  QUERY_CONTINUATION_INVALID: ARGUMENT_INVALID,
  /** A page size that is not a positive integer (docs/iot-hub.md "REST (back ends)"). */
  QUERY_PAGE_SIZE_INVALID: ARGUMENT_INVALID,
  // fleet read model, jobs and configurations (packages/fleet)
  /** The read model did not reflect the requested position within the wait (retryable). */
  READ_MODEL_TIMEOUT: { status: 504, code: 504101, name: 'GatewayTimeout' },
  /** A freshness token that this read model did not write. */
  FRESHNESS_TOKEN_INVALID: ARGUMENT_INVALID,
  /** The read model's consumer stopped; queries still answer from its last state. */
  READ_MODEL_FAILED: undefined,
  /**
   * A projector's consumer resumed past input records its restored state has not folded (the
   * group's committed offsets ahead of the snapshots' checkpoint): the run stops rather than skip
   * them, and restores again (docs/architecture.md, "Restore and resume").
   */
  PROJECTOR_RESUME_AHEAD: undefined,
  /**
   * A reconciler's consumer resumed past snapshot records its restored deltas do not reflect (the
   * group's committed offsets ahead of the checkpoint on `twin.deltas`): the run stops rather than
   * compare against stale deltas, and restores again (docs/architecture.md, "Restore and resume").
   */
  RECONCILER_RESUME_AHEAD: undefined,
  JOB_NOT_FOUND: { status: 404, code: 404002, name: 'JobNotFound' },
  /** A job id already taken (jobs are kept, whatever their status): 409, which the Node SDK raises as its 409 error (docs/iot-hub.md, "Jobs"). */
  JOB_ALREADY_EXISTS: { status: 409, code: 409000, name: 'JobAlreadyExists' },
  /** A job request that is not valid (id, type, query condition, patch). */
  JOB_INVALID: ARGUMENT_INVALID,
  /** IoT Hub answers an unknown configuration id with 404 `ConfigurationNotFound` (docs/iot-hub.md, "Automatic configurations"). */
  CONFIGURATION_NOT_FOUND: { status: 404, code: 404000, name: 'ConfigurationNotFound' },
  /** A configuration that is not valid (id, priority, target condition, content, metrics). */
  CONFIGURATION_INVALID: ARGUMENT_INVALID,
  /** A configuration update whose etag does not match. */
  CONFIGURATION_PRECONDITION_FAILED: { status: 412, code: 412001, name: 'PreconditionFailed' },
  /**
   * One of IoT Hub's per-hub or per-device counts would be exceeded: 100 configurations, 50 module
   * identities per device (docs/iot-hub.md, "Limits").
   */
  QUOTA_EXCEEDED: { status: 403, code: 403002, name: 'IotHubQuotaExceeded' },
  // codec (hostile bytes)
  CODEC_BAD_DATA: undefined,
  CODEC_TRUNCATED: undefined,
  CODEC_LIMIT_EXCEEDED: undefined,
  CODEC_FORBIDDEN_KEY: undefined,
  CODEC_UNSUPPORTED_VERSION: undefined,
  // log adapters (log.ts)
  LOG_TOPIC_NOT_FOUND: undefined,
  LOG_ARGUMENT_INVALID: undefined,
  LOG_CO_PARTITIONING: undefined,
  LOG_FENCED: undefined,
  LOG_GROUP_BUSY: undefined,
  LOG_CLOSED: undefined,
} as const satisfies Record<string, IotHubCode | undefined>;

export type TwinlogErrorCode = keyof typeof ERROR_CODES;

const BRAND = Symbol.for('twinlog.error');

export interface TwinlogErrorOptions {
  /** The underlying error, if any. */
  readonly cause?: unknown;
  /** Path of the offending key inside the section, root first. */
  readonly path?: readonly string[];
  /** Whether retrying the same call may succeed (default false). */
  readonly canRetry?: boolean;
  /** Further structured fields (limits, actual values, current etag …). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * The base of every error twinlog throws or returns on purpose.
 *
 * @example
 * try { assertValidPatch('desired', patch) } catch (e) {
 *   if (isTwinlogError(e, 'KEY_INVALID')) console.log(e.path)
 * }
 */
export class TwinlogError extends Error {
  readonly [BRAND] = true;
  readonly code: TwinlogErrorCode;
  readonly path: readonly string[] | undefined;
  readonly canRetry: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: TwinlogErrorCode, message: string, options: TwinlogErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TwinlogError';
    this.code = code;
    this.path = options.path;
    this.canRetry = options.canRetry ?? false;
    this.details = options.details ?? {};
  }

  /** IoT Hub's code for this error, if IoT Hub has one. */
  get iotHub(): IotHubCode | undefined {
    return ERROR_CODES[this.code];
  }
}

/** True when `e` is a twinlog error (from any copy of the package), optionally with the given code. */
export function isTwinlogError(e: unknown, code?: TwinlogErrorCode): e is TwinlogError {
  if (typeof e !== 'object' || e === null || (e as Record<symbol, unknown>)[BRAND] !== true) return false;
  return code === undefined || (e as TwinlogError).code === code;
}

/** A value-or-error result, for calls that callers routinely branch on (untrusted input). */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: TwinlogError };
