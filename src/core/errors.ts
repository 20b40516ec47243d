/**
 * Typed errors. Every error baton raises is a {@link BatonError} with a stable `code`, and its message
 * names the component and the offending field or value (`task "x": invalid cron "* *"`).
 *
 * "Lost" and "never held" stay apart: {@link SessionExpiredError} means a session we had is gone,
 * {@link NotOwnerError} means a fenced write was refused because a newer owner exists or we never held it.
 */

/** Stable error codes; part of the public API. */
export type BatonErrorCode =
  | 'CONFIG_INVALID'
  | 'DURATION_INVALID'
  | 'SCHEDULE_INVALID'
  | 'TASK_DUPLICATE'
  | 'STORE_URL_INVALID'
  | 'STORE_UNAVAILABLE'
  | 'STORE_NOT_FOUND'
  | 'CLUSTER_NOT_FOUND'
  | 'TASK_NOT_FOUND'
  | 'RUN_NOT_FOUND'
  | 'MONITOR_UNAVAILABLE'
  | 'MONITOR_REFUSED'
  | 'LISTEN_FAILED'
  | 'STORE_SCHEMA'
  | 'DRIVER_MISSING'
  | 'SESSION_EXPIRED'
  | 'NOT_OWNER'
  | 'CLOSED'
  | 'INVALID_STATE'
  | 'LOCK_HELD'
  | 'VALUE_INVALID'
  | 'TASK_TIMEOUT'
  | 'SYNC_SOURCE_FAILED'
  | 'SYNC_TARGET_FAILED'
  | 'RELAY_ENVELOPE_INVALID'
  | 'RELAY_SIGNATURE_INVALID'
  | 'RELAY_STATEMENT_INVALID'
  | 'RELAY_DATABASE_FAILED'
  | 'RELAY_BROKER_UNAVAILABLE'
  | 'SQL_FAILED'
  | 'AGENT_COMMAND_FAILED';

export class BatonError extends Error {
  readonly code: BatonErrorCode;
  constructor(code: BatonErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A setting is missing, of the wrong type or out of range. The message names the field and the value. */
export class ConfigError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options);
  }
}

export class DurationError extends BatonError {
  constructor(message: string) {
    super('DURATION_INVALID', message);
  }
}

export class ScheduleError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SCHEDULE_INVALID', message, options);
  }
}

export class TaskDuplicateError extends BatonError {
  constructor(message: string) {
    super('TASK_DUPLICATE', message);
  }
}

export class StoreUrlError extends BatonError {
  constructor(message: string) {
    super('STORE_URL_INVALID', message);
  }
}

/** The store could not be reached or refused the operation for a reason other than fencing. */
export class StoreUnavailableError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORE_UNAVAILABLE', message, options);
  }
}

/** The session this operation relies on has expired or been closed; its keys are no longer ours. */
export class SessionExpiredError extends BatonError {
  constructor(message: string) {
    super('SESSION_EXPIRED', message);
  }
}

/** A fenced write was refused: a newer token exists for the key, or the key is not held with this token. */
export class NotOwnerError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NOT_OWNER', message, options);
  }
}

/** The object was closed; nothing more can be done with it. */
export class ClosedError extends BatonError {
  constructor(message: string) {
    super('CLOSED', message);
  }
}

/** Who holds a key, as far as the store can tell: the holder's node, host and pid, and its token. */
export interface HolderInfo {
  readonly node: string;
  readonly host: string;
  readonly pid: number;
  readonly token: bigint;
}

/**
 * A lock (or every permit of a semaphore) is held by others and the caller chose not to wait, or not
 * longer than it did. `holders` names them (empty when their sessions could not be read). Never held,
 * not lost: compare {@link SessionExpiredError}.
 */
export class LockHeldError extends BatonError {
  readonly holders: readonly HolderInfo[];
  constructor(message: string, holders: readonly HolderInfo[]) {
    super('LOCK_HELD', message);
    this.holders = holders;
  }

  /** The first (for a lock: the only) holder, or null when unknown. */
  get holder(): HolderInfo | null {
    return this.holders[0] ?? null;
  }
}

/** A value cannot be stored: not JSON-serialisable, or larger than the limit. The message says which. */
export class ValueError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VALUE_INVALID', message, options);
  }
}

/**
 * A run attempt exceeded its task's `timeout`: the reason its `ctx.signal` aborts with. Named like the
 * DOM's `TimeoutError` (what `AbortSignal.timeout()` uses), so `signal.reason.name === 'TimeoutError'` works.
 */
export class TimeoutError extends BatonError {
  constructor(message: string) {
    super('TASK_TIMEOUT', message);
  }
}

/** Converts anything thrown into an Error for logging and records. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
