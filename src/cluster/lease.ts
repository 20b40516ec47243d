/**
 * Ownership of one key by this node: a fencing token, a guard to put into writes, and an AbortSignal that
 * fires when ownership ends for any reason (session lost, released, a fenced write refused, or the store
 * shows another holder). Built on a {@link LiveSession}; a lease never manages liveness itself.
 */
import { NotOwnerError, toError } from '../core/errors.js';
import type { Guard, Holder, Store, WriteCondition, WriteResult } from '../stores/contract.js';
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

  /** True while the session is provably alive and the lease was not ended. */
  isHeld(): boolean {
    return !this.signal.aborted && this.session.isLive();
  }

  /**
   * A write guarded by this lease. Checks the local deadline first (a paused zombie never sends), then
   * lets the store refuse it if the key moved on; a refusal ends the lease and throws NotOwnerError.
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
   * Throws NotOwnerError unless the lease is provably held. A session that is not provably alive is
   * reported as NotOwnerError too (with the SessionExpiredError as its cause), so that a refused write is
   * one error whether the refusal came from the local deadline or from the store.
   */
  assertHeld(): void {
    try {
      this.session.assertLive();
    } catch (error) {
      throw new NotOwnerError(`lease ${this.key}: ${toError(error).message}`, { cause: error });
    }
    if (this.signal.aborted) {
      throw new NotOwnerError(`lease ${this.key}: ${toError(this.signal.reason).message}`);
    }
  }

  /** Ends the lease locally (its signal aborts with `reason`). Does not touch the store. */
  end(reason: Error): void {
    this.session.signal.removeEventListener('abort', this.#onSessionLost);
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** Ends the lease and frees the key in the store so a standby can take it at once. */
  async release(reason: Error): Promise<void> {
    this.end(reason);
    await this.#store.release(this.key, this.token);
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
