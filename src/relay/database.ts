/**
 * Opens a relay database from its URL and loads only the driver it needs (`pg` for `postgres://`, `mysql2`
 * for `mysql://` / `mariadb://`, `better-sqlite3` for `sqlite:`), as the stores do.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import type { RelayDatabase } from './dialects/dialect.js';

export type { RelayDatabase, RelayTx, QueryResult } from './dialects/dialect.js';

export interface RelayDatabaseOptions {
  /** Connections for transactions. Default 6 (one per partition consumer of a 4-partition node, the publisher, the application). */
  readonly poolSize?: number;
  /**
   * A statement unanswered for this long fails as transient and its connection is dropped (SQLite: the
   * busy timeout, how long a writer waits for another process's write lock). Default 30 s.
   */
  readonly queryTimeoutMs?: number;
  /** The clock of the SQLite publisher lease. Default: the system clock. */
  readonly clock?: Clock;
}

/**
 * Opens the database of a relay node or of an application that emits changes. Connects lazily.
 * @throws ConfigError for an unsupported URL.
 */
export async function openRelayDatabase(url: string, options: RelayDatabaseOptions = {}): Promise<RelayDatabase> {
  const poolSize = options.poolSize ?? 6;
  const queryTimeoutMs = options.queryTimeoutMs ?? 30_000;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 100) throw new ConfigError(`poolSize: must be an integer from 1 to 100, got ${poolSize}`);
  if (!Number.isInteger(queryTimeoutMs) || queryTimeoutMs < 100) throw new ConfigError(`queryTimeoutMs: must be at least 100, got ${queryTimeoutMs}`);
  const scheme = url.slice(0, Math.max(0, url.indexOf(':'))).toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') {
    return (await import('./dialects/postgres.js')).PostgresRelayDatabase.open({ url, poolSize, queryTimeoutMs });
  }
  if (scheme === 'mysql' || scheme === 'mariadb') {
    return (await import('./dialects/mysql.js')).MysqlRelayDatabase.open({ url, poolSize, queryTimeoutMs });
  }
  if (scheme === 'sqlite') {
    return (await import('./dialects/sqlite.js')).SqliteRelayDatabase.open({ url, queryTimeoutMs, clock: options.clock ?? systemClock });
  }
  throw new ConfigError(`database: must be a postgres://, mysql://, mariadb:// or sqlite: URL, got a "${scheme}:" URL`);
}
