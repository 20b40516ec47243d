/**
 * Opens a relay database from its URL: the SQL layer's pool (or SQLite handle) for the connection, the
 * database's {@link RelayDialect} for what is its own. Only the driver the URL needs is loaded.
 * Every failure of the database leaves as a {@link RelayDatabaseError} whose `transient` says whether
 * a retry may succeed: everything but a `constraint` failure (sql/errors.ts) — a connection, a deadlock,
 * and also a missing table or privilege, which every change would hit alike: the relay pauses until an
 * operator fixes it instead of parking the whole stream.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import type { SqlDatabase, SqlSession } from '../sql/database.js';
import { classifySqlError, SqlError, toSqlError } from '../sql/errors.js';
import { openSqlDatabase } from '../sql/open.js';
import type { SqlKind } from '../sql/schemes.js';
import { parseSqlUrl, type SqlUrl } from '../sql/url.js';
import type { PublisherLock, PublisherLockContext, QueryResult, RelayDatabase, RelayDialect, RelayTx } from './dialects/dialect.js';
import { ensureRelaySchema } from './dialects/dialect.js';
import { mysqlRelay } from './dialects/mysql.js';
import { postgresRelay } from './dialects/postgres.js';
import { sqliteRelay } from './dialects/sqlite.js';
import { RelayDatabaseError } from './errors.js';

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

const DIALECTS: { readonly [K in SqlKind]: () => RelayDialect<Extract<SqlUrl, { readonly kind: K }>> } = {
  postgres: postgresRelay,
  mysql: mysqlRelay,
  sqlite: sqliteRelay,
};

/**
 * Opens the database of a relay node or of an application that emits changes. Connects lazily.
 * @throws ConfigError for a bad URL or option, RelayDatabaseError when a SQLite file cannot be opened.
 */
export async function openRelayDatabase(url: string, options: RelayDatabaseOptions = {}): Promise<RelayDatabase> {
  const poolSize = options.poolSize ?? 6;
  const queryTimeoutMs = options.queryTimeoutMs ?? 30_000;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 100) throw new ConfigError(`poolSize: must be an integer from 1 to 100, got ${poolSize}`);
  if (!Number.isInteger(queryTimeoutMs) || queryTimeoutMs < 100) throw new ConfigError(`queryTimeoutMs: must be at least 100, got ${queryTimeoutMs}`);
  const parsed = parseSqlUrl(url, { label: 'relay database', error: ConfigError });
  const dialect = DIALECTS[parsed.kind]() as RelayDialect;
  const label = `${parsed.kind} ${parsed.kind === 'sqlite' ? parsed.file : parsed.shown}`;
  const connectTimeoutMs = Math.min(10_000, queryTimeoutMs);
  let db: SqlDatabase;
  try {
    db = await openSqlDatabase(parsed, { label, poolSize, connectTimeoutMs, queryTimeoutMs, keepAlive: true }, dialect.tuning);
  } catch (error) {
    throw error instanceof SqlError ? asRelayError(error, label, 'open') : error;
  }
  return new SqlRelayDatabase(db, { url: parsed, connectTimeoutMs, clock: options.clock ?? systemClock }, dialect);
}

class SqlRelayDatabase implements RelayDatabase {
  readonly kind: SqlKind;
  readonly label: string;
  readonly sql: RelayDialect['sql'];
  readonly notifyOutboxWritten?: (tx: RelayTx) => Promise<void>;
  readonly #db: SqlDatabase;
  readonly #lock: Omit<PublisherLockContext, 'db'>;
  readonly #dialect: RelayDialect;

  constructor(db: SqlDatabase, lock: Omit<PublisherLockContext, 'db'>, dialect: RelayDialect) {
    this.#db = db;
    this.#lock = lock;
    this.#dialect = dialect;
    this.kind = db.kind;
    this.label = db.label;
    this.sql = dialect.sql;
    const notify = dialect.notifyOutboxWritten;
    if (notify) this.notifyOutboxWritten = (tx) => notify.call(dialect, tx);
  }

  transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T> {
    return this.#db.transaction((tx) => fn(this.#tx(tx))).catch((error: unknown) => {
      // What `fn` threw is rethrown as it is; BEGIN, COMMIT and the checkout fail as the database.
      throw error instanceof SqlError ? this.wrap(error, error.connecting ? 'connect' : 'query') : error;
    });
  }

  query(sql: string, values?: readonly unknown[]): Promise<QueryResult> {
    return this.#db.query(sql, values).catch((error: unknown) => {
      throw this.wrap(error, error instanceof SqlError && error.connecting ? 'connect' : 'query');
    });
  }

  ensureSchema(): Promise<void> {
    return ensureRelaySchema(this);
  }

  takeSeqs(tx: RelayTx, counts: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    return this.#dialect.takeSeqs(tx, counts);
  }

  tryPublisherLock(): Promise<PublisherLock | undefined> {
    return this.#dialect.tryPublisherLock({ ...this.#lock, db: this });
  }

  wrap(error: unknown, what: string): RelayDatabaseError {
    if (error instanceof RelayDatabaseError) return error;
    return asRelayError(toSqlError(this.kind, this.label, error), this.label, what);
  }

  isUniqueViolation(error: unknown): boolean {
    return classifySqlError(this.kind, error instanceof RelayDatabaseError ? error.cause : error).duplicate;
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  /** Statements of a transaction, failing as RelayDatabaseError. */
  #tx(tx: SqlSession): RelayTx {
    return {
      query: (sql, values) =>
        tx.query(sql, values).catch((error: unknown) => {
          throw this.wrap(error, 'query');
        }),
    };
  }
}

function asRelayError(error: SqlError, label: string, what: string): RelayDatabaseError {
  return new RelayDatabaseError(`${label}: ${what}: ${error.detail}`, error.failure !== 'constraint', { cause: error });
}
