/**
 * Store time for schedules (DESIGN.md, the Store contract's "time"). A tick is identified by its wall
 * time, so nodes must agree on what time it is: when each node reads it from the store, a node whose own
 * wall clock is off by 30 s neither runs ticks 30 s early nor, after a hand-over, leaves its successor
 * idle until real time catches up with the ticks it ran early.
 *
 * Guarantees: `now()` is the node's wall clock plus its offset to the store's clock, measured with one
 * `Store.time()` call at start and then about every {@link STORE_TIME_SAMPLE_EVERY_MS}; the error of a
 * sample is at most half its round trip. `monotonic()` and timers are the node's own.
 * Non-guarantees: a step of the node's wall clock (NTP, an operator) shows in `now()` until the next
 * sample; lease validity never depends on any of this (sessions use the monotonic clock only).
 */
import type { Clock } from '../core/clock.js';
import type { Store } from '../stores/contract.js';

/** How often the offset to the store's clock is measured again. */
export const STORE_TIME_SAMPLE_EVERY_MS = 10_000;
/**
 * Smallest change of offset that is applied: samples differ by a few ms of network jitter, and applying
 * each would move `now()` back and forth.
 */
const MIN_STEP_MS = 10;
/** A later sample whose round trip exceeds this says little about the offset: it is ignored. */
const MAX_ROUND_TRIP_MS = 1000;

export class StoreClock implements Clock {
  readonly #base: Clock;
  readonly #store: Store;
  #offsetMs = 0;
  #sampledAt: number | undefined;

  constructor(base: Clock, store: Store) {
    this.#base = base;
    this.#store = store;
  }

  /** Store wall time as this node estimates it: its own wall clock plus the measured offset. */
  now(): number {
    return this.#base.now() + this.#offsetMs;
  }

  monotonic(): number {
    return this.#base.monotonic();
  }

  setTimer(ms: number, fn: () => void): () => void {
    return this.#base.setTimer(ms, fn);
  }

  /** The store's clock minus this node's, in ms, as last measured (0 before the first sample). */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** True when no sample was taken yet or the last one is older than {@link STORE_TIME_SAMPLE_EVERY_MS}. */
  get sampleDue(): boolean {
    return this.#sampledAt === undefined || this.#base.monotonic() - this.#sampledAt >= STORE_TIME_SAMPLE_EVERY_MS;
  }

  /** Measures the offset once (one `Store.time()` call). Store errors are thrown to the caller. */
  async sample(): Promise<void> {
    const sentMono = this.#base.monotonic();
    const sentWall = this.#base.now();
    const storeNow = await this.#store.time();
    const roundTrip = this.#base.monotonic() - sentMono;
    const first = this.#sampledAt === undefined;
    this.#sampledAt = sentMono;
    if (!first && roundTrip > MAX_ROUND_TRIP_MS) return;
    // The store read its clock at some instant of the round trip: its middle is off by at most half of it.
    const offset = storeNow - (sentWall + roundTrip / 2);
    if (Math.abs(offset - this.#offsetMs) > Math.max(roundTrip / 2, MIN_STEP_MS)) this.#offsetMs = Math.round(offset);
  }
}
