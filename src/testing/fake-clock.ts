import type { Clock } from '../core/clock.js';

interface PendingTimer {
  readonly due: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * A controllable {@link Clock} for tests and simulations: time moves only when `advance()` is called.
 * Timers fire in due order, each at its own instant, with pending promise work settled in between, so
 * code under test sees the same interleavings it would in real time, without sleeping.
 */
export class FakeClock implements Clock {
  #wall: number;
  #mono = 1_000_000;
  #seq = 0;
  #timers: PendingTimer[] = [];

  constructor(startWallMs = Date.UTC(2026, 0, 1)) {
    this.#wall = startWallMs;
  }

  now(): number {
    return this.#wall;
  }

  monotonic(): number {
    return this.#mono;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: PendingTimer = { due: this.#mono + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Number of timers waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Moves both clocks forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    const fireFrom = this.#mono;
    await settle();
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      const next = this.#timers.reduce<PendingTimer | undefined>(
        (best, t) => (t.due <= target && (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) ? t : best),
        undefined,
      );
      if (!next) break;
      this.#move(Math.max(next.due, fireFrom));
      next.cancelled = true;
      next.fn();
      await settle();
    }
    this.#move(target);
    await settle();
  }

  /**
   * Moves both clocks forward by `ms` without firing anything on the way, then fires the overdue timers
   * late, in order: what a process sees after a GC pause, a blocked event loop or SIGSTOP/SIGCONT.
   */
  async stall(ms: number): Promise<void> {
    this.#move(this.#mono + ms);
    await this.advance(0);
  }

  /**
   * Moves both clocks forward by `ms` and fires nothing: the process is paused, and when it wakes
   * something other than a timer (an I/O completion, a resolved promise) runs before any overdue timer.
   * The overdue timers fire, late and in order, at the next {@link advance} or {@link stall}.
   */
  pause(ms: number): void {
    this.#move(this.#mono + ms);
  }

  /** Moves only the wall clock (an NTP step or an operator): monotonic time is untouched. */
  jumpWall(deltaMs: number): void {
    this.#wall += deltaMs;
  }

  #move(mono: number): void {
    this.#wall += mono - this.#mono;
    this.#mono = mono;
  }
}

/** Lets pending promise chains and immediates run to completion (bounded). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A node's view of a shared clock whose wall time is off by `offsetMs` (clock skew between hosts). */
export class SkewedClock implements Clock {
  readonly #base: Clock;
  offsetMs: number;

  constructor(base: Clock, offsetMs: number) {
    this.#base = base;
    this.offsetMs = offsetMs;
  }

  now(): number {
    return this.#base.now() + this.offsetMs;
  }

  monotonic(): number {
    return this.#base.monotonic();
  }

  setTimer(ms: number, fn: () => void): () => void {
    return this.#base.setTimer(ms, fn);
  }
}
