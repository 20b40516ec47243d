/**
 * Store time for schedules (DESIGN.md, the Store contract's "time"). A tick is identified by its wall
 * time, so nodes must agree on what time it is: when each node reads it from the store, a node whose own
 * wall clock is off by 30 s neither runs ticks 30 s early nor, after a hand-over, leaves its successor
 * idle until real time catches up with the ticks it ran early.
 *
 * Guarantees: `now()` is the store's time at the last sample plus the node's monotonic time elapsed since,
 * so a step of the node's wall clock (NTP, an operator) does not show in it at all. The offset is measured
 * with one `Store.time()` call at start and then about every {@link STORE_TIME_SAMPLE_EVERY_MS}; the error
 * of a sample is at most half its round trip. `monotonic()` and timers are the node's own.
 * {@link StoreClock.bounded} says whether that error is known to be small; a node whose clock is not
 * bounded steps aside (it owns no task while a node with a bounded clock declares it: versions.ts).
 * Non-guarantees: between samples the node's monotonic clock may run at a slightly wrong rate (a few ppm
 * on a healthy host); a rate off by more than {@link MAX_DRIFT_MS} per sample period is caught by the
 * next two samples, not sooner. A step of the store's own clock is followed at the next sample. Lease
 * validity never depends on any of this (sessions use the monotonic clock only).
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
/**
 * A sample whose round trip exceeds this says too little about the offset (its error is up to half of
 * it): it is not applied (the first one is, as the best guess there is), and it does not bound the clock.
 */
export const MAX_ROUND_TRIP_MS = 1000;
/**
 * The clock is unbounded when its last bounded sample is older than this: three sample periods in a row
 * without a round trip under {@link MAX_ROUND_TRIP_MS}, or no sample at all (the store is unreachable —
 * then the node has no session either).
 */
export const MAX_SAMPLE_AGE_MS = 3 * STORE_TIME_SAMPLE_EVERY_MS + 5000;
/**
 * Largest disagreement between where the node's clock said the store's time would be at a sample and
 * what the sample measured. One larger jump is a step of the store's clock (followed); two in a row
 * mean this node's clock runs at a wrong rate: it is unbounded until two samples agree again.
 */
export const MAX_DRIFT_MS = 1000;
/**
 * How fast the uncertainty of the offset in use grows with its age (100 ppm, far above a healthy
 * host's drift): a newer sample with a clearly shorter round trip is then the better estimate.
 */
const UNCERTAINTY_GROWTH = 1e-4;
/** A sample replaces the offset in use for its precision only when its error bound is this much smaller. */
const PRECISION_GAIN_MS = 1;

export class StoreClock implements Clock {
  readonly #base: Clock;
  readonly #store: Store;
  /** The store's time at monotonic instant {@link #baseMono}, as last measured; undefined before a sample. */
  #baseStore: number | undefined;
  #baseMono = 0;
  #offsetMs = 0;
  /** Half the round trip of the sample in use: its error bound when it was taken. */
  #baseHalfRoundTrip = Infinity;
  #sampledAt: number | undefined;
  /** Monotonic time of the last sample with a round trip under MAX_ROUND_TRIP_MS. */
  #boundedAt: number | undefined;
  /** Consecutive bounded samples that disagreed with the prediction by more than MAX_DRIFT_MS. */
  #drifts = 0;
  /** Monotonic time of the last correction that moved `now()` forward, and by how much. */
  #lastForward: { at: number; ms: number } | undefined;

  constructor(base: Clock, store: Store) {
    this.#base = base;
    this.#store = store;
  }

  /** Store wall time as this node estimates it (see the module's guarantees). */
  now(): number {
    if (this.#baseStore === undefined) return this.#base.now();
    return this.#baseStore + (this.#base.monotonic() - this.#baseMono);
  }

  monotonic(): number {
    return this.#base.monotonic();
  }

  setTimer(ms: number, fn: () => void): () => void {
    return this.#base.setTimer(ms, fn);
  }

  /** The store's clock minus this node's wall clock, in ms, as last measured (0 before the first sample). */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** True when no sample was taken yet or the last one is older than {@link STORE_TIME_SAMPLE_EVERY_MS}. */
  get sampleDue(): boolean {
    return this.#sampledAt === undefined || this.#base.monotonic() - this.#sampledAt >= STORE_TIME_SAMPLE_EVERY_MS;
  }

  /**
   * True while `now()` is known to be within MAX_ROUND_TRIP_MS / 2 (+ the drift of one sample period) of
   * the store's clock: a recent sample with a short round trip, and no drift seen in the last two.
   */
  get bounded(): boolean {
    return this.#boundedAt !== undefined && this.#base.monotonic() - this.#boundedAt <= MAX_SAMPLE_AGE_MS && this.#drifts < 2;
  }

  /**
   * How far the last sample taken at or after monotonic instant `since` moved `now()` forward, in ms (0
   * if none did): ticks that became due at once then did so because this node's estimate was behind the
   * store's clock, not because its process stalled (the scheduler records them `owner-skewed`).
   */
  forwardSince(since: number): number {
    return this.#lastForward !== undefined && this.#lastForward.at >= since ? this.#lastForward.ms : 0;
  }

  /** Measures the offset once (one `Store.time()` call). Store errors are thrown to the caller. */
  async sample(): Promise<void> {
    const sentMono = this.#base.monotonic();
    const storeNow = await this.#store.time();
    const receivedMono = this.#base.monotonic();
    const roundTrip = receivedMono - sentMono;
    const first = this.#baseStore === undefined;
    this.#sampledAt = sentMono;
    if (roundTrip > MAX_ROUND_TRIP_MS && !first) return;
    // The store read its clock at some instant of the round trip: its middle is off by at most half of it.
    const measured = storeNow + roundTrip / 2;
    const error = first ? 0 : measured - this.now();
    if (roundTrip <= MAX_ROUND_TRIP_MS) {
      this.#drifts = !first && Math.abs(error) > MAX_DRIFT_MS + roundTrip / 2 ? this.#drifts + 1 : 0;
      this.#boundedAt = receivedMono;
    }
    // A sample far more precise than the one in use (taken with a short round trip, where the first one
    // may have been slow: a node starting on a busy host) that disagrees beyond its own error bound
    // corrects the estimate even by less than MIN_STEP_MS: ticks start within ms of the store's time.
    const uncertainty = this.#baseHalfRoundTrip + (receivedMono - this.#baseMono) * UNCERTAINTY_GROWTH;
    const morePrecise = roundTrip / 2 + PRECISION_GAIN_MS < uncertainty && Math.abs(error) > roundTrip / 2;
    if (first || morePrecise || Math.abs(error) > Math.max(roundTrip / 2, MIN_STEP_MS)) {
      if (error > 0) this.#lastForward = { at: receivedMono, ms: Math.round(error) };
      this.#baseStore = Math.round(measured);
      this.#baseMono = receivedMono;
      this.#baseHalfRoundTrip = roundTrip / 2;
      this.#offsetMs = Math.round(measured - this.#base.now());
    }
  }
}
