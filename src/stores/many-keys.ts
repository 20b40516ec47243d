/**
 * The distinct-keys rule of the stores' batched operations (`tryAcquireMany`, `releaseMany`); each store
 * cuts a batch into bounded slices (core/batches.ts) of one statement, transaction, script or Txn each.
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
