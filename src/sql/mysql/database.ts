/**
 * MySQL / MariaDB as a {@link SqlDatabase}: a `mysql2/promise` pool (ours from a URL, or one its owner
 * passed in), one pooled connection per transaction (pooled.ts). See database.ts for the guarantees.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { loadMysql } from '../drivers.js';
import { ignoreError, type SqlDatabaseSettings, type SqlResult } from '../database.js';
import { toSqlError } from '../errors.js';
import { PooledDatabase } from '../pooled.js';
import { mysqlConnectionOptions } from './connect.js';
import type { MysqlUrl } from './url.js';

export interface MysqlDatabaseOptions {
  readonly label: string;
  /** True when this object made the pool, and so ends it on close(). */
  readonly owned: boolean;
  /** Sets the connection's `innodb_lock_wait_timeout` (whole seconds, rounded up) before each transaction. */
  readonly lockTimeoutMs?: number;
  /** A statement unanswered this long fails and its connection is dropped. */
  readonly queryTimeoutMs?: number;
}

/** Opens a pool for `url` (loading `mysql2` now); no connection is made before the first statement. */
export async function openMysqlDatabase(url: MysqlUrl, settings: SqlDatabaseSettings): Promise<MysqlDatabase> {
  const mysql = await loadMysql();
  const pool = mysql.createPool({
    ...(await mysqlConnectionOptions(url, settings.connectTimeoutMs)),
    connectionLimit: settings.poolSize,
    // Times travel as UTC: a Date parameter means the same instant whatever the process's time zone.
    timezone: 'Z',
    ...(settings.keepAlive ? { enableKeepAlive: true } : {}),
  });
  // An idle connection's error would otherwise be an unhandled 'error' event; the pool drops that connection.
  pool.on('connection', (connection) => connection.on('error', ignoreError));
  return new MysqlDatabase(pool, {
    label: settings.label,
    owned: true,
    ...(settings.lockTimeoutMs !== undefined ? { lockTimeoutMs: settings.lockTimeoutMs } : {}),
    ...(settings.queryTimeoutMs !== undefined ? { queryTimeoutMs: settings.queryTimeoutMs } : {}),
  });
}

export class MysqlDatabase extends PooledDatabase<PoolConnection> {
  readonly kind = 'mysql' as const;
  readonly #pool: Pool;
  readonly #options: MysqlDatabaseOptions;

  constructor(pool: Pool, options: MysqlDatabaseOptions) {
    super(options.label);
    this.#pool = pool;
    this.#options = options;
  }

  async close(): Promise<void> {
    if (this.#options.owned) await this.#pool.end().catch(ignoreError);
  }

  protected async checkout(): Promise<PoolConnection> {
    try {
      return await this.#pool.getConnection();
    } catch (error) {
      throw toSqlError('mysql', this.label, error, true);
    }
  }

  protected giveBack(connection: PoolConnection, broken: boolean): void {
    if (broken) connection.destroy();
    else connection.release();
  }

  protected async begin(connection: PoolConnection): Promise<void> {
    const lockTimeoutMs = this.#options.lockTimeoutMs;
    // Whole seconds: it bounds the wait behind another writer's row lock (a paused ex-owner's, say).
    if (lockTimeoutMs !== undefined) await this.send(connection, 'SET SESSION innodb_lock_wait_timeout = ?', [Math.max(1, Math.ceil(lockTimeoutMs / 1000))]);
    await this.send(connection, 'START TRANSACTION', []);
  }

  protected async send(connection: PoolConnection, sql: string, values: readonly unknown[]): Promise<SqlResult> {
    try {
      const timeout = this.#options.queryTimeoutMs;
      const [result] = await connection.query({ sql, values: values.map(bindable), ...(timeout !== undefined ? { timeout } : {}) });
      if (Array.isArray(result)) return { rows: result as Record<string, unknown>[], affected: 0 };
      return { rows: [], affected: (result as { affectedRows?: number }).affectedRows ?? 0 };
    } catch (error) {
      throw toSqlError('mysql', this.label, error);
    }
  }
}

/** mysql2 escapes values itself and has no rule for a bigint: it travels as decimal text. */
function bindable(value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
