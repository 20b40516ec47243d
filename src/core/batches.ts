/**
 * `fn` over `items`, at most `size` at a time (one batch after the other), in order. Bounds what one node
 * sends a store at once: a node starting with 10,000 free tasks must not open 10,000 requests together.
 * Stops before the next batch once `stop()` says so; the results then cover the batches run.
 */
export async function mapInBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>, stop?: () => boolean): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length && !stop?.(); i += size) results.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return results;
}

/** `items` cut into consecutive slices of at most `size` (one store request each, for instance). */
export function slices<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
