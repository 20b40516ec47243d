/**
 * MySQL / MariaDB (InnoDB): a `mysql2/promise` pool (one connection per transaction) and, for the
 * publisher's election, `GET_LOCK()` (named after the database) held on a connection of its own — released
 * by the server the moment that connection ends.
 */
import type { Pool, PoolConnection, Connection } from 'mysql2/promise';
import { redactUrl } from '../../core/redact.js';
import { RelayDatabaseError } from '../errors.js';
import { ensureRelaySchema, relaySql, type PublisherLock, type QueryResult, type RelayDatabase, type RelayTx } from './dialect.js';
import { loadDriver } from '../../core/driver.js';

// Keys and node ids are VARBINARY: compared byte for byte. A text column would use the connection's
// collation — case-insensitive and PAD SPACE by default — and merge the versions of "K", "k" and "k ".
const DDL = [
  `CREATE TABLE IF NOT EXISTS relay_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    target VARCHAR(64) NOT NULL,
    part INT NOT NULL,
    body LONGTEXT NOT NULL,
    changes INT NOT NULL DEFAULT 1,
    created_at_ms BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_inbox (
    id CHAR(26) NOT NULL PRIMARY KEY,
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    at_ms BIGINT NOT NULL,
    INDEX relay_inbox_at (at_ms)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_versions (
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (origin, k)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_seq (
    k VARBINARY(512) NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_held (
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    body LONGTEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (origin, k, seq)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS relay_parked (
    id CHAR(26) NOT NULL PRIMARY KEY,
    origin VARBINARY(64) NOT NULL,
    k VARBINARY(512) NOT NULL,
    seq BIGINT NOT NULL,
    statement VARCHAR(64) NOT NULL,
    reason TEXT NOT NULL,
    body LONGTEXT NOT NULL,
    at_ms BIGINT NOT NULL
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];


export const mysqlRelaySql = relaySql({
  placeholder: () => '?',
  ddl: DDL,
  outboxHasChanges: "SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'relay_outbox' AND column_name = 'changes'",
  upsertSeq: 'ON DUPLICATE KEY UPDATE seq = VALUES(seq)',
  purgeInbox: "DELETE FROM relay_inbox WHERE at_ms < ? AND status <> 'held' LIMIT ?",
});

/**
 * Server errors worth retrying: connection and server state (1040, 1053, 1317, 1927, 20xx), lock wait and
 * deadlock (1205, 1213); and schema or registry faults that every change would hit alike — access denied
 * (1044, 1045, 1142, 1143), unknown database, table, column or function (1049, 1146, 1054, 1305), syntax
 * (1064) — on which the relay pauses rather than park the whole stream. Client-side errors (no errno, or
 * fatal) are connection trouble, also retried. The rest (duplicate key, null in a NOT NULL column, bad
 * value …) is the change's own fault and parks it.
 */
const TRANSIENT_ERRNO = new Set([1040, 1044, 1045, 1049, 1053, 1054, 1064, 1142, 1143, 1146, 1205, 1213, 1305, 1317, 1927, 2002, 2003, 2006, 2013, 2055]);

function isTransient(error: unknown): boolean {
  const e = error as { errno?: unknown; fatal?: unknown } | null;
  if (e?.fatal === true) return true;
  if (typeof e?.errno !== 'number') return true;
  return TRANSIENT_ERRNO.has(e.errno);
}

export interface MysqlRelayOptions {
  readonly url: string;
  readonly poolSize: number;
  readonly queryTimeoutMs: number;
}

export class MysqlRelayDatabase implements RelayDatabase {
  readonly kind = 'mysql' as const;
  readonly sql = mysqlRelaySql;
  readonly label: string;
  readonly #mysql: typeof import('mysql2/promise');
  readonly #pool: Pool;
  readonly #options: MysqlRelayOptions;

  private constructor(mysql: typeof import('mysql2/promise'), options: MysqlRelayOptions) {
    this.#mysql = mysql;
    this.#options = options;
    this.label = `mysql ${redactUrl(options.url)}`;
    this.#pool = mysql.createPool({ ...this.#connectOptions(), connectionLimit: options.poolSize });
    // An idle connection's error would otherwise be an unhandled 'error' event; the pool drops that connection.
    this.#pool.on('connection', (connection) => connection.on('error', () => undefined));
  }

  /** Loads `mysql2` now (and only now). Connects lazily. */
  static async open(options: MysqlRelayOptions): Promise<MysqlRelayDatabase> {
    const module = await loadDriver('mysql2', 'relay (mysql database)', () => import('mysql2/promise'));
    const mysql = (module.default ?? module) as typeof import('mysql2/promise');
    return new MysqlRelayDatabase(mysql, options);
  }

  async transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T> {
    const connection = await this.#connect();
    let broken = false;
    try {
      await this.#query(connection, 'START TRANSACTION');
      const result = await fn({ query: (sql, values) => this.#query(connection, sql, values) });
      await this.#query(connection, 'COMMIT');
      return result;
    } catch (error) {
      await connection.query('ROLLBACK').catch(() => (broken = true)); // a failed rollback means the connection is gone
      throw error;
    } finally {
      if (broken) connection.destroy();
      else connection.release();
    }
  }

  async query(sql: string, values: readonly unknown[] = []): Promise<QueryResult> {
    const connection = await this.#connect();
    let broken = false;
    try {
      return await this.#query(connection, sql, values);
    } catch (error) {
      broken = (error as RelayDatabaseError).transient;
      throw error;
    } finally {
      if (broken) connection.destroy();
      else connection.release();
    }
  }

  ensureSchema(): Promise<void> {
    return ensureRelaySchema(this);
  }

  async takeSeqs(tx: RelayTx, counts: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    const keys = [...counts.keys()];
    // The upsert locks the keys' rows until commit (serialising concurrent emits of a key); the SELECT then
    // reads this transaction's own writes.
    await tx.query(`INSERT INTO relay_seq (k, seq) VALUES ${keys.map(() => '(?, ?)').join(', ')} ON DUPLICATE KEY UPDATE seq = seq + VALUES(seq)`, [...counts].flat());
    const { rows } = await tx.query(`SELECT k, seq FROM relay_seq WHERE k IN (${keys.map(() => '?').join(', ')})`, keys);
    return new Map(rows.map((row) => [String(row.k), Number(row.seq)]));
  }

  async tryPublisherLock(): Promise<PublisherLock | undefined> {
    let connection: Connection;
    try {
      connection = await this.#mysql.createConnection(this.#connectOptions());
    } catch (error) {
      throw this.wrap(error, 'publisher lock');
    }
    const lost = new AbortController();
    connection.on('error', (error: Error) => lost.abort(this.wrap(error, 'publisher lock connection')));
    connection.on('end', () => lost.abort(new RelayDatabaseError(`${this.label}: publisher lock connection ended`, true)));
    try {
      // GET_LOCK names are server-wide: the database's name (hashed, as names are limited to 64 characters)
      // keeps the publishers of two databases on one server from shutting each other out.
      const [rows] = await connection.query("SELECT GET_LOCK(CONCAT('baton.relay.', SHA1(DATABASE())), 0) AS got");
      if (Number((rows as { got: unknown }[])[0]?.got) !== 1) {
        connection.destroy();
        return undefined;
      }
    } catch (error) {
      connection.destroy();
      throw this.wrap(error, 'publisher lock');
    }
    return {
      signal: lost.signal,
      // Closing the connection releases GET_LOCK.
      release: async () => {
        lost.abort(new RelayDatabaseError(`${this.label}: publisher lock released`, false));
        connection.destroy();
      },
    };
  }

  wrap(error: unknown, what: string): RelayDatabaseError {
    if (error instanceof RelayDatabaseError) return error;
    const code = (error as { code?: string } | null)?.code;
    return new RelayDatabaseError(`${this.label}: ${what}: ${code ? `${code}: ` : ''}${(error as Error)?.message ?? String(error)}`, isTransient(error), { cause: error });
  }

  isUniqueViolation(error: unknown): boolean {
    const cause = error instanceof RelayDatabaseError ? error.cause : error;
    return (cause as { errno?: number } | null)?.errno === 1062;
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
  }

  #connectOptions() {
    return {
      uri: this.#options.url.replace(/^mariadb:/i, 'mysql:'),
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4_general_ci',
      timezone: 'Z',
      connectTimeout: Math.min(10_000, this.#options.queryTimeoutMs),
      enableKeepAlive: true,
    };
  }

  async #connect(): Promise<PoolConnection> {
    try {
      return await this.#pool.getConnection();
    } catch (error) {
      throw this.wrap(error, 'connect');
    }
  }

  async #query(connection: PoolConnection, sql: string, values: readonly unknown[] = []): Promise<QueryResult> {
    try {
      const [result] = await connection.query({ sql, values: values as unknown[], timeout: this.#options.queryTimeoutMs });
      if (Array.isArray(result)) return { rows: result as Record<string, unknown>[], affected: 0 };
      return { rows: [], affected: (result as { affectedRows?: number }).affectedRows ?? 0 };
    } catch (error) {
      throw this.wrap(error, 'query');
    }
  }
}
