/**
 * Waiting on store change hints. A hint only says "look again" (it may be late, merged, spurious or lost),
 * so every wait here also ends after a poll period, and the caller re-reads the state.
 *
 * Stores that name the changed key (memory, etcd, Redis …) wake a waiter at once when the key matches;
 * stores that only name the scope (SQLite's poll) would wake it on every write of any record, so those
 * keyless hints wake it at most once per `coalesceMs`.
 */
import { sleep, type Clock } from '../core/clock.js';
import type { Change, Store } from '../stores/contract.js';

/** A wait that something else can cut short: `wake()` ends the current wait (or the next one, if none runs). */
export class Waker {
  readonly #clock: Clock;
  #pending = false;
  #wake: (() => void) | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Wakes the current (or next) wait. */
  wake(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /**
   * Waits up to `ms` for a wake. Resolves true when woken (or woken since the last wait), false after
   * `ms`; rejects with the signal's reason when `signal` aborts.
   */
  async wait(ms: number, signal: AbortSignal): Promise<boolean> {
    if (this.#pending) {
      this.#pending = false;
      return true;
    }
    if (signal.aborted) throw signal.reason;
    const woken = new AbortController();
    this.#wake = () => woken.abort();
    // A listener removed after each wait, not AbortSignal.any: a long-lived `signal` (a lease's, waited on
    // once per tick) would otherwise collect a dependent signal per wait (MaxListenersExceededWarning).
    const onAbort = () => woken.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await sleep(this.#clock, Math.max(0, ms), woken.signal);
      return false;
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      this.#pending = false;
      return true;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.#wake = undefined;
    }
  }
}

/** A {@link Waker} woken by the store's change hints that concern it. */
export class HintWaker extends Waker {
  readonly #clock: Clock;
  readonly #coalesceMs: number;
  readonly #unwatch: () => void;
  #lastKeyless = -Infinity;
  #cancelKeyless: (() => void) | undefined;

  /**
   * @param matches whether a change concerns the waiter: `'key'` for a change of a key it watches,
   *   `'scope'` for a keyless change of a scope it watches.
   */
  constructor(store: Store, clock: Clock, matches: (change: Change) => 'key' | 'scope' | false, coalesceMs = 1000) {
    super(clock);
    this.#clock = clock;
    this.#coalesceMs = coalesceMs;
    this.#unwatch = store.watch((change) => {
      const match = matches(change);
      if (match === 'key') this.wake();
      else if (match === 'scope') this.#keyless();
    });
  }

  close(): void {
    this.#unwatch();
    this.#cancelKeyless?.();
  }

  #keyless(): void {
    if (this.#cancelKeyless) return; // a coalesced wake is already planned
    const wait = this.#lastKeyless + this.#coalesceMs - this.#clock.monotonic();
    const fire = () => {
      this.#cancelKeyless = undefined;
      this.#lastKeyless = this.#clock.monotonic();
      this.wake();
    };
    if (wait <= 0) fire();
    else this.#cancelKeyless = this.#clock.setTimer(wait, fire);
  }
}

/** Matches changes of records whose key starts with one of `prefixes` (keyed), or any keyless records change. */
export function recordsMatching(...prefixes: string[]): (change: Change) => 'key' | 'scope' | false {
  return (change) => {
    if (change.scope !== 'records' && change.scope !== 'any') return false;
    if (change.key === undefined) return 'scope';
    return prefixes.some((p) => change.key!.startsWith(p)) ? 'key' : false;
  };
}
