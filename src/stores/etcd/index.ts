/**
 * Entry point of the etcd store: `etcd://host:port[,host:port][?options]`, `etcds://` over TLS.
 * See docs/stores/etcd.md for the URL options, permissions and failover behaviour.
 */
import type { Store } from '../contract.js';
import type { OpenStoreOptions } from '../contract.js';
import { EtcdStore } from './etcd-store.js';
import { parseEtcdUrl } from './url.js';

/**
 * Parses `url` and opens a store handle for `options.cluster`. The `etcd3` driver is loaded only here.
 * @throws StoreUrlError for a malformed URL, StoreUnavailableError when etcd cannot be reached or refuses
 * the credentials.
 */
export async function openEtcdStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const parsed = parseEtcdUrl(url);
  return EtcdStore.open({ url: parsed, cluster: options.cluster, ...(options.clock ? { clock: options.clock } : {}) });
}
