import { expect, it } from 'vitest';
import { mapInBatches } from '../../src/core/batches.js';

it('maps in order with at most `size` calls in flight, and stops before the next batch when asked', async () => {
  let inFlight = 0;
  let most = 0;
  const seen: number[] = [];
  const fn = async (n: number) => {
    inFlight += 1;
    most = Math.max(most, inFlight);
    await new Promise((resolve) => setImmediate(resolve));
    inFlight -= 1;
    seen.push(n);
    return n * 2;
  };
  expect(await mapInBatches([1, 2, 3, 4, 5], 2, fn)).toEqual([2, 4, 6, 8, 10]);
  expect(most).toBe(2);
  seen.length = 0;
  expect(await mapInBatches([1, 2, 3, 4, 5], 2, fn, () => seen.length >= 2)).toEqual([2, 4]);
});
