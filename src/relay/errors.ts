/**
 * The errors of the relay, besides {@link ConfigError} (an invalid topology or option, at construction; its
 * message names the field path, e.g. `topology.levels[1].nodes[0].database`).
 */
import { BatonError } from '../core/errors.js';

/** A message is not a well-formed envelope of a version this relay reads (it is dead-lettered, never applied). */
export class EnvelopeError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RELAY_ENVELOPE_INVALID', message, options);
  }
}

/** A message's HMAC does not verify, or it names a key id this relay does not know (it is dead-lettered). */
export class SignatureError extends BatonError {
  constructor(message: string) {
    super('RELAY_SIGNATURE_INVALID', message);
  }
}

/** A statement name is not in the registry, or its arguments do not match the statement's parameters. */
export class StatementError extends BatonError {
  constructor(message: string) {
    super('RELAY_STATEMENT_INVALID', message);
  }
}

/**
 * A database statement failed. `transient` tells whether trying again later may succeed (connection lost,
 * server shutting down, deadlock, lock timeout, and schema faults every change would hit alike: a missing
 * table or column, a privilege, a syntax error in the registry) or not (a constraint violation, a bad
 * value): the relay pauses and retries on the first kind and parks the change on the second.
 */
export class RelayDatabaseError extends BatonError {
  readonly transient: boolean;
  constructor(message: string, transient: boolean, options?: { cause?: unknown }) {
    super('RELAY_DATABASE_FAILED', message, options);
    this.transient = transient;
  }
}

/** The broker could not be reached, or closed the connection or a channel. The relay reconnects by itself. */
export class BrokerUnavailableError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RELAY_BROKER_UNAVAILABLE', message, options);
  }
}
