/** StoreClock: the node's estimate of the store's wall time, from one `Store.time()` call per sample. */
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import { MAX_DRIFT_MS, MAX_ROUND_TRIP_MS, MAX_SAMPLE_AGE_MS, STORE_TIME_SAMPLE_EVERY_MS, StoreClock } from '../../src/cluster/store-clock.js';
import type { Store } from '../../src/stores/contract.js';

/** A node clock and a store whose time() answers `offsetMs` ahead of it, each call taking `roundTripMs`. */
function fixture() {
  let mono = 0;
  let wallStep = 0;
  const wall0 = 1_767_225_600_000;
  const node: Clock = { now: () => wall0 + mono + wallStep, monotonic: () => mono, setTimer: () => () => undefined };
  const next: { offsetMs: number; roundTripMs: number }[] = [];
  const store = {
    time: async () => {
      const answer = next.shift() ?? { offsetMs: 0, roundTripMs: 0 };
      // The store reads its clock half-way through the round trip.
      mono += answer.roundTripMs / 2;
      const storeNow = wall0 + mono + wallStep + answer.offsetMs;
      mono += answer.roundTripMs / 2;
      return storeNow;
    },
  } as unknown as Store;
  return {
    clock: new StoreClock(node, store),
    node,
    answer: (offsetMs: number, roundTripMs = 0) => next.push({ offsetMs, roundTripMs }),
    wait: (ms: number) => (mono += ms),
    /** Steps the node's wall clock only (NTP, an operator); the store's answers are given relative to it. */
    stepWall: (ms: number) => (wallStep += ms),
  };
}

describe('StoreClock', () => {
  it('reads the store’s time through the node’s clock plus the measured offset', async () => {
    const f = fixture();
    f.answer(30_000, 40);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(30_000);
    expect(f.clock.now()).toBe(f.node.now() + 30_000);
    expect(f.clock.monotonic()).toBe(f.node.monotonic());
  });

  it('keeps its offset through jitter of a few ms, and follows a real change', async () => {
    const f = fixture();
    f.answer(-30_000, 2);
    await f.clock.sample();
    f.answer(-29_995, 2);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(-30_000);
    f.answer(-25_000, 2); // the node's clock was stepped by 5 s
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(-25_000);
  });

  it('takes a later, far more precise sample that disagrees beyond its own error (a first sample on a busy host)', async () => {
    const f = fixture();
    f.answer(8, 40); // a slow first round trip: ±20 ms
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(8);
    f.answer(0, 2); // ±1 ms says the estimate is 8 ms off: less than MIN_STEP_MS, still corrected
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(0);
    f.answer(2, 2); // as precise as the one in use: jitter, not applied
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(0);
  });

  it('ignores a later sample whose round trip was too long to say anything (the first is always taken)', async () => {
    const f = fixture();
    f.answer(5000, 3000);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(5000);
    f.answer(0, 3000);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(5000);
  });

  it('is due for a sample at first and again after STORE_TIME_SAMPLE_EVERY_MS', async () => {
    const f = fixture();
    expect(f.clock.sampleDue).toBe(true);
    await f.clock.sample();
    expect(f.clock.sampleDue).toBe(false);
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    expect(f.clock.sampleDue).toBe(true);
  });

  it('does not show a step of the node’s wall clock: it counts from the last sample on the monotonic clock', async () => {
    const f = fixture();
    f.answer(0, 4);
    await f.clock.sample();
    const before = f.clock.now();
    f.stepWall(-30_000);
    f.wait(1000);
    expect(f.clock.now()).toBe(before + 1000);
    // The next sample measures the store's clock where it always was (30 s ahead of the stepped wall clock).
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(30_000, 4);
    await f.clock.sample();
    expect(f.clock.now()).toBe(before + 1000 + STORE_TIME_SAMPLE_EVERY_MS + 4);
    expect(f.clock.bounded).toBe(true);
  });

  it('is bounded only after a sample with a short round trip, and for MAX_SAMPLE_AGE_MS after it', async () => {
    const f = fixture();
    expect(f.clock.bounded).toBe(false); // no sample yet
    f.answer(5000, MAX_ROUND_TRIP_MS + 500);
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(5000); // the best guess there is…
    expect(f.clock.bounded).toBe(false); // …but its error may be 750 ms
    f.answer(5000, 20);
    await f.clock.sample();
    expect(f.clock.bounded).toBe(true);
    for (let waited = 0; waited + STORE_TIME_SAMPLE_EVERY_MS <= MAX_SAMPLE_AGE_MS; waited += STORE_TIME_SAMPLE_EVERY_MS) {
      f.wait(STORE_TIME_SAMPLE_EVERY_MS);
      f.answer(5000, MAX_ROUND_TRIP_MS + 500);
      await f.clock.sample();
      expect(f.clock.bounded).toBe(true);
    }
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(5000, MAX_ROUND_TRIP_MS + 500);
    await f.clock.sample();
    expect(f.clock.bounded).toBe(false); // no short round trip for more than MAX_SAMPLE_AGE_MS
  });

  it('follows one jump of the store’s clock, and is unbounded while samples keep disagreeing (a clock running at a wrong rate)', async () => {
    const f = fixture();
    f.answer(0, 2);
    await f.clock.sample();
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(5000, 2); // one step: followed, still bounded
    await f.clock.sample();
    expect(f.clock.offsetMs).toBe(5000);
    expect(f.clock.bounded).toBe(true);
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(5000 + MAX_DRIFT_MS + 500, 2); // and again: this node's clock cannot be trusted between samples
    await f.clock.sample();
    expect(f.clock.bounded).toBe(false);
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(5000 + MAX_DRIFT_MS + 505, 2);
    await f.clock.sample();
    expect(f.clock.bounded).toBe(true); // two samples agree again
  });

  it('says when a sample moved its time forward (the node’s clock had been behind)', async () => {
    const f = fixture();
    f.answer(0, 2);
    await f.clock.sample();
    const since = f.node.monotonic();
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(-3000, 2);
    await f.clock.sample();
    expect(f.clock.forwardSince(since)).toBe(0); // backwards
    f.wait(STORE_TIME_SAMPLE_EVERY_MS);
    f.answer(2000, 2);
    await f.clock.sample();
    expect(f.clock.forwardSince(since)).toBe(5000);
    expect(f.clock.forwardSince(f.node.monotonic() + 1)).toBe(0);
  });
});
