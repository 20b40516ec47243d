/**
 * One watcher per node of the cluster-wide controls — triggers (`trigger/<unit>/<id>`) and pauses
 * (`pause/<task>`) — for all the tasks the node runs, so that the store load of a node does not grow with
 * its number of tasks: a task's runner reads its controls only when this watcher wakes it (or before a
 * tick), never on a timer of its own.
 *
 * A change hint naming a control key wakes the runners it concerns at once. A hint without a key (stores
 * that only see "some record changed", like SQLite's poll) and a safety timer (hints are lost around
 * reconnects) both lead to one look at every pending trigger and pause — two list calls for the whole
 * node — at most once per `coalesceMs`, which wakes the runners whose controls changed.
 *
 * After a failed look, no look is made before a back-off (`coalesceMs` doubling up to
 * CONTROLS_RETRY_MAX_MS) whatever hints arrive: a store that fails fast and keeps sending key-less hints
 * (a poll that sees its own reconnects) is not asked once per `coalesceMs` for as long as it fails.
 * Meanwhile runners still read their pause before each tick, and keyed hints still wake them.
 */
import { Backoff } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import type { Change, Store } from '../stores/contract.js';
import { Waker } from './hints.js';
import { PAUSE_PREFIX, TRIGGER_PREFIX } from './keys.js';

/** Longest time between two looks at the controls when no hint arrives. */
export const CONTROLS_POLL_MS = 15_000;
/** Longest pause after failed looks: a trigger seen only through a key-less hint waits at most this long once the store is back. */
export const CONTROLS_RETRY_MAX_MS = 5000;

interface Subscriber {
  readonly unit: string;
  readonly task: string;
  readonly waker: Waker;
}

export class ControlWatch {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #onError: (error: Error) => void;
  readonly #coalesceMs: number;
  readonly #subscribers = new Set<Subscriber>();
  #unwatch: (() => void) | undefined;
  #cancelPoll: (() => void) | undefined;
  /** Monotonic time of the planned look (valid while #cancelPoll is set). */
  #plannedAt = Infinity;
  #lastLook = -Infinity;
  /** Monotonic time before which no look is made (set after a failed look). */
  #notBefore = -Infinity;
  readonly #backoff: Backoff;
  #looking = false;
  #paused = new Set<string>();
  #closed = false;

  constructor(options: { store: Store; clock: Clock; onError: (error: Error) => void; coalesceMs?: number }) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#onError = options.onError;
    this.#coalesceMs = options.coalesceMs ?? 1000;
    this.#backoff = new Backoff({ initialMs: this.#coalesceMs, maxMs: Math.max(this.#coalesceMs, CONTROLS_RETRY_MAX_MS) });
  }

  start(): void {
    this.#unwatch = this.#store.watch((change) => this.#onChange(change));
    this.#schedule(CONTROLS_POLL_MS);
  }

  /** The waker of a runner while it leads `unit` (of `task`); call the returned function when it stops. */
  subscribe(unit: string, task: string): { waker: Waker; unsubscribe: () => void } {
    const subscriber: Subscriber = { unit, task, waker: new Waker(this.#clock) };
    this.#subscribers.add(subscriber);
    return { waker: subscriber.waker, unsubscribe: () => this.#subscribers.delete(subscriber) };
  }

  close(): void {
    this.#closed = true;
    this.#unwatch?.();
    this.#cancelPoll?.();
    this.#subscribers.clear();
  }

  #onChange(change: Change): void {
    if (change.scope !== 'records' && change.scope !== 'any') return;
    const key = change.key;
    if (key === undefined) {
      const now = this.#clock.monotonic();
      this.#schedule(Math.max(0, this.#lastLook + this.#coalesceMs - now, this.#notBefore - now));
    } else if (key.startsWith(TRIGGER_PREFIX)) {
      const unit = key.slice(TRIGGER_PREFIX.length, key.lastIndexOf('/'));
      for (const s of this.#subscribers) if (s.unit === unit) s.waker.wake();
    } else if (key.startsWith(PAUSE_PREFIX)) {
      const task = key.slice(PAUSE_PREFIX.length);
      for (const s of this.#subscribers) if (s.task === task) s.waker.wake();
    }
  }

  /** Plans the next look in `ms` (or sooner, if one is planned sooner already). */
  #schedule(ms: number): void {
    if (this.#closed) return;
    const at = this.#clock.monotonic() + ms;
    if (this.#cancelPoll && this.#plannedAt <= at) return;
    this.#cancelPoll?.();
    this.#plannedAt = at;
    this.#cancelPoll = this.#clock.setTimer(ms, () => {
      this.#cancelPoll = undefined;
      void this.#look();
    });
  }

  async #look(): Promise<void> {
    if (this.#closed || this.#looking) return;
    const early = this.#notBefore - this.#clock.monotonic();
    if (early > 0) {
      // A look planned by a hint during the failed one: it waits for the back-off like the others.
      this.#schedule(early);
      return;
    }
    this.#looking = true;
    this.#lastLook = this.#clock.monotonic();
    let next = CONTROLS_POLL_MS;
    try {
      if (this.#subscribers.size === 0) return;
      const [triggers, pauses] = await Promise.all([this.#store.list(TRIGGER_PREFIX), this.#store.list(PAUSE_PREFIX)]);
      const pending = new Set(triggers.map((t) => t.key.slice(TRIGGER_PREFIX.length, t.key.lastIndexOf('/'))));
      const paused = new Set(pauses.map((p) => p.key.slice(PAUSE_PREFIX.length)));
      for (const s of this.#subscribers) {
        if (pending.has(s.unit) || paused.has(s.task) !== this.#paused.has(s.task)) s.waker.wake();
      }
      this.#paused = paused;
      this.#backoff.reset();
      this.#notBefore = -Infinity;
    } catch (error) {
      // The next look tries again after the back-off; runners still read their pause before each tick.
      this.#onError(toError(error));
      next = this.#backoff.next();
      this.#notBefore = this.#clock.monotonic() + next;
    } finally {
      this.#looking = false;
      this.#schedule(next);
    }
  }
}
