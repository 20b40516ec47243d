/**
 * The PostgreSQL store's URL: `postgres://[user[:password]@]host[:port][,host[:port]…][/database][?option=value&...]`
 * (also `postgresql://`), read by the SQL layer's one parser (sql/url.ts) — host, credentials, database,
 * TLS (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), `connectTimeoutMs`, `applicationName` — plus the
 * store's own options below. Unknown options are refused, so a typo never silently disables TLS. Every
 * error is a StoreUrlError naming the URL with its password redacted, and the bad part. Certificate files
 * are read when the store opens. docs/stores/postgres.md describes every option.
 */
import { StoreUrlError } from '../../core/errors.js';
import type { OptionTable } from '../../sql/url-options.js';
import { parseSqlUrl, type PostgresUrl } from '../../sql/url.js';

/** The store's options, besides the connection options every PostgreSQL URL takes. */
export const POSTGRES_STORE_OPTIONS = {
  /** Schema holding baton's tables; created on open. */
  schema: { type: 'text', default: 'baton', pattern: /^[a-z_][a-z0-9_]{0,62}$/, rule: "a lower-case SQL identifier (letters, digits, '_', at most 63)" },
  /** A statement without an answer after this long drops its connection (then reconnects). */
  queryTimeoutMs: { type: 'integer', min: 100, max: 600_000, default: 5000 },
  /** Bind sessions to their connection's backend so a crashed process loses them at once. */
  crashDetection: { type: 'boolean', default: true },
  /** How often a handle with watchers deletes dead sessions (and so notifies). */
  reapMs: { type: 'integer', min: 10, max: 60_000, default: 200 },
  /**
   * Which of the URL's hosts to keep, as libpq: `read-write` (default) the first whose sessions may write,
   * `primary` the first not in recovery. Hosts are tried in order on every (re)connection, so after a
   * failover the handle finds the promoted standby by itself.
   */
  target_session_attrs: { type: 'choice', choices: ['read-write', 'primary'], default: 'read-write' },
} as const satisfies OptionTable;

/** A parsed store URL: the connection, and the store's options in `options`. */
export type PostgresStoreUrl = PostgresUrl<typeof POSTGRES_STORE_OPTIONS>;

/** How long a connection attempt may take when the URL sets no `connectTimeoutMs`. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** @throws StoreUrlError naming the redacted URL and what is wrong with it. */
export function parsePostgresUrl(url: string): PostgresStoreUrl {
  return parseSqlUrl(url, { label: 'postgres store', error: StoreUrlError, kinds: ['postgres'], options: POSTGRES_STORE_OPTIONS, multiHost: true });
}
