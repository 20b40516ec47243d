/**
 * Ownership of one key by this node: a fencing token, a guard to put into writes, and an AbortSignal that
 * fires when ownership ends for any reason (session lost, released, a fenced write refused, or the store
 * shows another holder). Built on a {@link LiveSession}; a lease never manages liveness itself.
 */
import { NotOwnerError, toError } from '../core/errors.js';
import type { Guard, Holder, Store, WriteCondition, WriteResult } from '../stores/contract.js';
import { releaseInBatch } from './release-batch.js';
import type { LiveSession } from './session-keeper.js';

export class Lease {
  readonly key: string;
  readonly token: bigint;
  readonly session: LiveSession;
  readonly #store: Store;
  readonly #controller = new AbortController();
  readonly signal: AbortSignal;

  readonly #onSessionLost: () => void;

  constructor(store: Store, session: LiveSession, key: string, token: bigint) {
    this.#store = store;
    this.session = session;
    this.key = key;
    this.token = token;
    this.signal = this.#controller.signal;
    // A listener removed by end(), not AbortSignal.any(): that one made a signal, weak references and
    // finalizer work per lease, about a third of the CPU of a lock acquire + release measured on the
    // memory store (bench/lock-profile.ts, --cpu-prof). Every lease is ended (released, lost or handed over).
    this.#onSessionLost = () => this.end(session.signal.reason as Error);
    if (session.signal.aborted) this.#onSessionLost();
    else session.signal.addEventListener('abort', this.#onSessionLost, { once: true });
  }

  /** Proof of ownership for a store write: refused once a newer token exists for the key. */
  get guard(): Guard {
    return { key: this.key, token: this.token };
  }

  /**
   * True while the session is provably alive and the lease was not ended. Asked past the session's local
   * deadline, it ends the session (and so this lease) at once: see {@link LiveSession.isLive}.
   */
  isHeld(): boolean {
    return !this.signal.aborted && this.session.isLive();
  }

  /**
   * A write guarded by this lease. Checks the local deadline first (a paused zombie never sends), then
   * lets the store refuse it if the key moved on; either refusal ends the lease and throws NotOwnerError.
   */
  async put(key: string, value: unknown, condition: Omit<WriteCondition, 'guard'> = {}): Promise<WriteResult> {
    this.assertHeld();
    const result = await this.#store.put(key, value, { ...condition, guard: this.guard });
    if (!result.ok && result.reason === 'fenced') {
      const error = new NotOwnerError(`lease ${this.key}: token ${this.token} was superseded; write to "${key}" refused`);
      this.end(error);
      throw error;
    }
    return result;
  }

  /**
   * Throws NotOwnerError unless the lease is provably held, and ends the lease when it throws, so that
   * its signal is aborted by the time the caller sees the error (a run refused this way ends `aborted`,
   * whichever store it is on). A session that is not provably alive is reported as NotOwnerError too
   * (with the SessionExpiredError as its cause), so that a refused write is one error whether the
   * refusal came from the local deadline or from the store.
   */
  assertHeld(): void {
    let error: NotOwnerError | undefined;
    try {
      this.session.assertLive();
    } catch (cause) {
      error = new NotOwnerError(`lease ${this.key}: ${toError(cause).message}`, { cause });
    }
    if (!error && this.signal.aborted) error = new NotOwnerError(`lease ${this.key}: ${toError(this.signal.reason).message}`);
    if (!error) return;
    this.end(error);
    throw error;
  }

  /** Ends the lease locally (its signal aborts with `reason`). Does not touch the store. */
  end(reason: Error): void {
    this.session.signal.removeEventListener('abort', this.#onSessionLost);
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /**
   * Ends the lease and frees the key in the store so a standby can take it at once (with the other
   * releases of this turn in one round trip, see release-batch.ts).
   */
  async release(reason: Error): Promise<void> {
    this.end(reason);
    await releaseInBatch(this.#store, this.key, this.token);
  }
}

export type AcquireOutcome = { readonly lease: Lease } | { readonly holder: Holder };

/** Tries once to take `key` for the session. */
export async function tryAcquireLease(store: Store, session: LiveSession, key: string): Promise<AcquireOutcome> {
  session.assertLive();
  const result = await store.tryAcquire(key, session.id);
  if (!result.acquired) return { holder: result.holder };
  return { lease: new Lease(store, session, key, result.token) };
}

/**
 * Tries once to take each of `keys` (distinct) for the session, in a few store round trips
 * ({@link Store.tryAcquireMany}): one outcome per key, in order.
 */
export async function tryAcquireLeases(store: Store, session: LiveSession, keys: readonly string[]): Promise<AcquireOutcome[]> {
  session.assertLive();
  const results = await store.tryAcquireMany(keys, session.id);
  return results.map((result, i) => (result.acquired ? { lease: new Lease(store, session, keys[i] as string, result.token) } : { holder: result.holder }));
}

const abortedOf = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get! as (this: AbortSignal) => boolean;
const reasonOf = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'reason')!.get! as (this: AbortSignal) => unknown;

/**
 * Makes `signal` — one the caller created and that aborts when `lease` ends — answer from the local
 * deadline at the moment it is asked: reading `aborted` or `reason`, or calling `throwIfAborted()`,
 * first checks the lease ({@link Lease.isHeld}), which ends it (and so aborts `signal`, synchronously)
 * once the deadline has passed. Why: a process woken from a pause may run the handler's own timer or
 * I/O callback before any timer of baton's, and the handler's next look at its signal must already say
 * the ownership is gone. The accessors are own properties of this one signal instance; the platform's
 * own uses of the signal (`fetch`, `AbortSignal.any`) see the abort when it is made.
 * @returns `signal` itself.
 */
export function checkedByLease(signal: AbortSignal, lease: Lease): AbortSignal {
  const check = (): void => {
    if (!abortedOf.call(signal)) lease.isHeld();
  };
  Object.defineProperties(signal, {
    aborted: {
      get: () => {
        check();
        return abortedOf.call(signal);
      },
      configurable: true,
    },
    reason: {
      get: () => {
        check();
        return reasonOf.call(signal);
      },
      configurable: true,
    },
    throwIfAborted: {
      value: () => {
        check();
        AbortSignal.prototype.throwIfAborted.call(signal);
      },
      configurable: true,
      writable: true,
    },
  });
  return signal;
}
