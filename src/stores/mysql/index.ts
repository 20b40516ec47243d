/**
 * Opens the MySQL/MariaDB store from a `mysql://` or `mariadb://` URL. The `mysql2` driver is loaded only
 * now (sql/drivers.ts), so users of other stores never load it. docs/stores/mysql.md documents the URL.
 */
import { loadMysql } from '../../sql/drivers.js';
import type { Store } from '../contract.js';
import type { OpenStoreOptions } from '../contract.js';
import { parseMysqlUrl, storeOptions } from './mysql-url.js';
import { MysqlStore } from './mysql-store.js';

/** @throws StoreUrlError for a bad URL, StoreUnavailableError when the server cannot be reached. */
export async function openMysqlStore(url: string, options: OpenStoreOptions): Promise<Store> {
  const parsed = parseMysqlUrl(url);
  const settings = await storeOptions(parsed, options.cluster);
  const driver = await loadMysql('mysql store');
  return MysqlStore.open(driver, { ...settings, ...(options.clock ? { clock: options.clock } : {}) });
}
