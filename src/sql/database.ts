/**
 * The shape every SQL database takes for the HTTP sync and the relay, whatever the driver: statements
 * that return rows and a count, and transactions.
 *
 * Guarantees every implementation keeps (postgres/database.ts, mysql/database.ts, sqlite/database.ts):
 * - a transaction runs on ONE connection, taken for it alone (or, on SQLite, on the one handle with
 *   every other call of that handle queued behind it): its statements never interleave with others;
 * - `transaction(fn)` commits all of `fn`'s statements or none: when `fn` throws, the transaction is
 *   rolled back and what `fn` threw is rethrown unchanged;
 * - a connection whose rollback failed, or that failed with a `connection` error, is dropped, never
 *   handed out again;
 * - every failure of the database itself is a {@link SqlError} whose `failure` says what it means;
 * - values always travel as parameters.
 * Non-guarantees: a statement whose connection broke before the reply may or may not have committed.
 */
import type { SqlKind } from './schemes.js';

/** What a statement returned: its rows (a SELECT, a RETURNING) and the rows it wrote (0 for a SELECT). */
export interface SqlResult {
  readonly rows: Record<string, unknown>[];
  readonly affected: number;
}

/** Statements on one connection (inside a transaction) or on any (outside one). */
export interface SqlSession {
  /** @throws SqlError */
  query(sql: string, values?: readonly unknown[]): Promise<SqlResult>;
}

export interface SqlDatabase extends SqlSession {
  readonly kind: SqlKind;
  /** Names the database in messages (a URL only ever with its password redacted). */
  readonly label: string;
  /** Runs `fn` in one transaction. @throws SqlError, or what `fn` threw (after a rollback). */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
  /** Closes what this object opened itself (a pool or handle passed in by its owner stays open). */
  close(): Promise<void>;
}

/** How a pool (or SQLite handle) opened from a URL behaves. */
export interface SqlDatabaseSettings {
  /** Names the database in messages, e.g. `http sync "orders": target postgres`. */
  readonly label: string;
  /** Connections at most (PostgreSQL, MySQL); SQLite has one handle. */
  readonly poolSize: number;
  /** A connection attempt is abandoned after this long, unless the URL's `connectTimeoutMs` says otherwise. */
  readonly connectTimeoutMs: number;
  /** A statement unanswered this long fails (`connection`) and its connection is dropped. Default: none. */
  readonly queryTimeoutMs?: number;
  /**
   * How long a statement in a transaction waits for a lock another writer holds before failing
   * (`transient`): PostgreSQL `lock_timeout`, InnoDB `innodb_lock_wait_timeout` (whole seconds), SQLite's
   * busy timeout. Default: the server's own (SQLite: `queryTimeoutMs`, else 5 s).
   */
  readonly lockTimeoutMs?: number;
  /** TCP keepalive on every connection, so a dead server is noticed. Default false. */
  readonly keepAlive?: boolean;
}

/** A no-op for the 'error' events of idle or checked-out connections: the failing statement reports it. */
export const ignoreError = (): void => undefined;

/** The SQLite busy timeout for `settings`. */
export function busyTimeoutOf(settings: Pick<SqlDatabaseSettings, 'lockTimeoutMs' | 'queryTimeoutMs'>): number {
  return settings.lockTimeoutMs ?? settings.queryTimeoutMs ?? 5000;
}
