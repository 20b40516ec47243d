/**
 * Opens the MySQL/MariaDB store from a `mysql://` or `mariadb://` URL. The `mysql2` driver is imported
 * only here, lazily, so users of other stores never load it. docs/stores/mysql.md documents the URL.
 */
import type { Store } from '../contract.js';
import type { OpenStoreOptions } from '../contract.js';
import { parseMysqlUrl, storeOptions } from './mysql-url.js';
import { MysqlStore } from './mysql-store.js';
import { loadDriver } from '../../core/driver.js';

/** @throws StoreUrlError for a bad URL, StoreUnavailableError when the server cannot be reached. */
export async function openMysqlStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const parsed = parseMysqlUrl(url);
  const settings = await storeOptions(parsed, options.cluster);
  const driver = await loadDriver('mysql2', 'mysql store', () => import('mysql2/promise'));
  return MysqlStore.open(driver, { ...settings, ...(options.clock ? { clock: options.clock } : {}) });
}
