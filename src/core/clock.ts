/**
 * The one injected clock. Nothing in baton calls `Date.now()`, `setTimeout` or `performance.now()`
 * directly: production uses {@link systemClock}; tests use `FakeClock` from `baton-fleet/testing`.
 *
 * Two readings with different jobs:
 * - `now()` is wall time (ms since the epoch). It decides *when* a tick is due and is shown to people.
 *   It can jump (NTP, an operator); the scheduler tolerates that because a tick's identity is its
 *   scheduled time and every tick is claimed once in the store.
 * - `monotonic()` never jumps. It decides *whether a lease is still ours* (invariant 4). On Linux,
 *   macOS and Windows the system clock behind it is shared by every process of the host, which is what
 *   lets the SQLite store measure session TTLs across processes with it.
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch. */
  now(): number;
  /** Monotonic milliseconds; only differences are meaningful. */
  monotonic(): number;
  /** Calls `fn` after `ms` (≥ 0). The returned function cancels it; cancelling twice is harmless. */
  setTimer(ms: number, fn: () => void): () => void;
}

const hostMonotonic = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: hostMonotonic,
  setTimer(ms, fn) {
    const handle = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(handle);
  },
};

/**
 * Resolves after `ms` on `clock`, or rejects with the signal's reason when `signal` aborts first.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
