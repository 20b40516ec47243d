/**
 * What the stores' batched operations (`tryAcquireMany`, `releaseMany`) share: the distinct-keys rule of
 * the contract and the split into bounded batches (one statement, transaction, script or Txn each).
 */
import { ConfigError } from '../core/errors.js';

/** Throws ConfigError naming the first key given twice: a batch answers once per key. */
export function assertDistinctKeys(what: string, keys: readonly string[]): void {
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) throw new ConfigError(`${what}: key "${key}" given twice`);
    seen.add(key);
  }
}

/** `items` cut into consecutive slices of at most `size`. */
export function slices<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
