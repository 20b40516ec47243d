/**
 * Waiting for the store to change, without a hot loop: a waiter sleeps until a store hint that concerns
 * it, a local wake-up (`poke`), at most `maxMs` (a bounded poll: hints are only hints, and some
 * expiries — a holder that stopped renewing — produce none), or its signal.
 *
 * The subscription is made when the object is built, before the caller's first look at the store, so a
 * change that lands between that look and the first `next()` is not missed: `next()` then returns at once.
 */
import type { Clock } from '../core/clock.js';
import type { Change, Store } from '../stores/contract.js';

export class ChangeHints {
  readonly #clock: Clock;
  readonly #unwatch: () => void;
  #pending = false;
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(store: Store, clock: Clock, relevant: (change: Change) => boolean) {
    this.#clock = clock;
    this.#unwatch = store.watch((change) => {
      if (relevant(change)) this.poke();
    });
  }

  /** Wakes the waiter (or makes its next `next()` return at once). */
  poke(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /**
   * Resolves at the first hint since the previous call (at once if one arrived in between), after `maxMs`,
   * or when `signal` aborts. Never rejects: the caller looks at `signal` itself.
   */
  next(maxMs: number, signal: AbortSignal): Promise<void> {
    if (this.#pending || signal.aborted || this.#closed) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let cancelTimer: (() => void) | undefined;
      const done = () => {
        cancelTimer?.();
        signal.removeEventListener('abort', done);
        if (this.#wake === done) this.#wake = undefined;
        this.#pending = false;
        resolve();
      };
      this.#wake = done;
      signal.addEventListener('abort', done, { once: true });
      cancelTimer = this.#clock.setTimer(maxMs, done);
    });
  }

  /** Unsubscribes and releases a pending `next()`. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch();
    this.#wake?.();
  }
}

/** Hints that may concern the holder of `key`: its owner changed, a session ended, or the store cannot tell. */
export function ownerHint(matches: (key: string) => boolean): (change: Change) => boolean {
  return (change) =>
    change.scope === 'any' ||
    change.scope === 'connection' ||
    change.scope === 'sessions' ||
    (change.scope === 'owners' && (change.key === undefined || matches(change.key)));
}
