import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/core/backoff.js';

/** The delays of `n` attempts with a fixed draw of the random source. */
function delays(random: number, n: number): number[] {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1000, random: () => random });
  return Array.from({ length: n }, () => backoff.next());
}

describe('Backoff (equal jitter)', () => {
  it('keeps every pause between half and all of a ceiling that doubles up to maxMs', () => {
    expect(delays(0, 6)).toEqual([50, 100, 200, 400, 500, 500]); // the lowest draw: half the ceiling, never 0
    expect(delays(0.999999, 6)).toEqual([100, 200, 400, 800, 1000, 1000]); // the highest: the ceiling
    expect(delays(0.5, 4)).toEqual([75, 150, 300, 600]);
  });

  it('starts again from initialMs after reset()', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.next()).toBe(50);
  });

  it('spreads the pauses of many callers over the upper half, not around one value', () => {
    const draws = Array.from({ length: 1000 }, () => new Backoff({ initialMs: 1000, maxMs: 1000 }).next());
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...draws)).toBeLessThanOrEqual(1000);
    expect(new Set(draws).size).toBeGreaterThan(100);
  });
});
