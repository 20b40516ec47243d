/**
 * `postgres://` and `postgresql://` URLs: the PostgreSQL store. The `pg` driver is imported only when a
 * store is opened, so a SQLite or memory user never loads it. URL format and options: docs/stores/postgres.md.
 */
import type { Store } from '../contract.js';
import type { OpenStoreOptions } from '../contract.js';
import { PostgresStore } from './postgres-store.js';
import { parsePostgresUrl } from './url.js';

/**
 * Parses `url`, connects and creates the schema if needed.
 * @throws StoreUrlError (bad URL or unreadable certificate file, credentials redacted), StoreUnavailableError (server unreachable).
 */
export async function openPostgresStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const parsed = parsePostgresUrl(url);
  return PostgresStore.open({ url: parsed, cluster: options.cluster, ...(options.clock ? { clock: options.clock } : {}) });
}
