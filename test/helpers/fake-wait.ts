/** Driving promises that wait on a FakeClock: advance fake time in small steps until they settle. */
import type { FakeClock } from '../../src/testing/fake-clock.js';

export interface Settled<T> {
  /** Fake milliseconds it took to settle. */
  readonly tookMs: number;
  readonly value?: T;
  readonly error?: unknown;
}

/** Advances `clock` in `step` ms until `promise` settles; throws when it does not within `maxMs` of fake time. */
export async function settleWithin<T>(clock: FakeClock, promise: Promise<T>, maxMs: number, step = 10): Promise<Settled<T>> {
  let outcome: { value?: T; error?: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  const start = clock.monotonic();
  await clock.advance(0);
  while (!outcome && clock.monotonic() - start < maxMs) await clock.advance(step);
  if (!outcome) throw new Error(`did not settle within ${maxMs}ms of fake time`);
  return { tookMs: clock.monotonic() - start, ...outcome };
}

/** Watches a promise without awaiting it: `state.settled` turns true when it does. */
export function track<T>(promise: Promise<T>): { settled: boolean; value?: T; error?: unknown; promise: Promise<T> } {
  const state: { settled: boolean; value?: T; error?: unknown; promise: Promise<T> } = { settled: false, promise };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}
