/**
 * Opens the Redis store from a `redis://` or `rediss://` URL (docs/stores/redis.md lists every option).
 * The URL is validated before anything loads; the store module, and with it `ioredis`, is imported
 * only here, so users of other stores never load the Redis driver.
 */
import type { Store } from '../contract.js';
import type { OpenStoreOptions } from '../contract.js';
import { parseRedisUrl } from './url.js';

/** @throws StoreUrlError for a bad URL, StoreUnavailableError when the server cannot be reached. */
export async function openRedisStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const config = parseRedisUrl(url);
  const { RedisStore } = await import('./redis-store.js');
  return RedisStore.open({ config, cluster: options.cluster, ...(options.clock ? { clock: options.clock } : {}) });
}
