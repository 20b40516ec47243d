/**
 * The MySQL/MariaDB store's URL: `mysql://[user[:password]@]host[:port]/database[?option=value&…]` (also
 * `mariadb://`), read by the SQL layer's one parser (sql/url.ts) — host or `socket`, credentials,
 * database, TLS (`ssl`, `sslCa`, `sslCert`, `sslKey`, `sslRejectUnauthorized`), `connectTimeoutMs` — plus
 * the store's own options below (docs/stores/mysql.md describes each). Every error is a StoreUrlError
 * naming the URL with its password redacted and the part that is wrong.
 */
import { StoreUrlError } from '../../core/errors.js';
import { mysqlConnectionOptions } from '../../sql/mysql/connect.js';
import type { OptionTable } from '../../sql/url-options.js';
import { parseSqlUrl, type MysqlUrl } from '../../sql/url.js';
import type { MysqlStoreOptions } from './mysql-store.js';

/** The store's options, besides the connection options every MySQL URL takes. */
export const MYSQL_STORE_OPTIONS = {
  prefix: { type: 'text', default: 'baton_', pattern: /^[A-Za-z0-9_]{0,32}$/, rule: "up to 32 letters, digits and '_'" },
  pollMs: { type: 'integer', min: 5, max: 10_000, default: 50 },
  crashDetection: { type: 'boolean', default: true },
  crashCheckMs: { type: 'integer', min: 10, max: 60_000, default: 250 },
  queryTimeoutMs: { type: 'integer', min: 100, max: 600_000, default: 5000 },
  lockWaitTimeoutS: { type: 'integer', min: 1, max: 3600, default: 5 },
} as const satisfies OptionTable;

/** A parsed store URL: the connection, and the store's options in `options`. */
export type ParsedMysqlUrl = MysqlUrl<typeof MYSQL_STORE_OPTIONS>;

/** How long a connection attempt may take when the URL sets no `connectTimeoutMs`. */
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** @throws StoreUrlError naming the URL (credentials redacted) and the bad part. */
export function parseMysqlUrl(url: string): ParsedMysqlUrl {
  return parseSqlUrl(url, { label: 'mysql store', error: StoreUrlError, kinds: ['mysql'], options: MYSQL_STORE_OPTIONS });
}

/** Turns a parsed URL into store options, reading the TLS files it names. @throws StoreUrlError. */
export async function storeOptions(url: ParsedMysqlUrl, cluster: string): Promise<Omit<MysqlStoreOptions, 'clock'>> {
  return {
    cluster,
    shown: JSON.stringify(url.shown),
    connection: await mysqlConnectionOptions(url, DEFAULT_CONNECT_TIMEOUT_MS),
    ...url.options,
  };
}
