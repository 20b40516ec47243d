/**
 * The errors of an HTTP sync run, besides {@link ConfigError} (bad options, at construction) and
 * {@link NotOwnerError} (a newer owner holds the sync's cursor: this run's page was rolled back).
 */
import { BatonError } from '../core/errors.js';

/**
 * The source API could not give a usable page within the attempts allowed: every attempt failed with a
 * network error, a timeout, a retryable status (408, 429, 5xx), malformed JSON or a page that did not
 * advance the cursor; or it answered with a status that is not worth retrying (400, 401, 404 …), or with
 * JSON of the wrong shape. The pages committed before it stay committed; the next run starts from them.
 */
export class SyncSourceError extends BatonError {
  /** The HTTP status of the last answer, when there was one. */
  readonly status: number | undefined;
  /** Attempts made for this page (1 when the failure was not retryable). */
  readonly attempts: number;
  constructor(message: string, details: { readonly status?: number; readonly attempts: number; readonly cause?: unknown }) {
    super('SYNC_SOURCE_FAILED', message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.attempts = details.attempts;
  }
}

/**
 * The target database refused or failed a statement (connection lost, lock timeout, a missing table or
 * unique key, a value of the wrong type). The transaction was rolled back: neither the page's rows nor
 * its cursor landed.
 */
export class SyncTargetError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SYNC_TARGET_FAILED', message, options);
  }
}
