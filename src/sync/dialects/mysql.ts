/**
 * MySQL / MariaDB target: a `mysql2/promise` pool (ours from a `mysql://` or `mariadb://` URL, with at most
 * 2 connections, or the caller's), one pooled connection per transaction, InnoDB's lock wait bounded per
 * transaction. Upserts are `INSERT … ON DUPLICATE KEY UPDATE`: the target table needs a PRIMARY KEY or
 * UNIQUE index on exactly the key columns, and no other unique index a row could collide on.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { SyncTargetError } from '../errors.js';
import { commonValue, quoteIdentifier, valueTuples, type SqlDialect, type SqlTx, type SqlValue, type SyncStatements } from './dialect.js';
import { loadDriver } from '../../core/driver.js';

const q = (name: string) => quoteIdentifier(name, '`');
const p = () => '?';

export const mysqlStatements: SyncStatements = {
  createCursorTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name VARCHAR(191) NOT NULL PRIMARY KEY,
      cursor_value TEXT NULL,
      token BIGINT NOT NULL DEFAULT 0,
      updated_at_ms BIGINT NOT NULL,
      node VARCHAR(255) NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  createRejectsTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name VARCHAR(191) NOT NULL,
      fingerprint CHAR(64) NOT NULL,
      record_key VARCHAR(255) NULL,
      reason TEXT NOT NULL,
      raw LONGTEXT NOT NULL,
      first_seen_ms BIGINT NOT NULL,
      last_seen_ms BIGINT NOT NULL,
      seen INT NOT NULL DEFAULT 1,
      PRIMARY KEY (name, fingerprint)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
  // ON DUPLICATE KEY names no key: read the unique indexes and check that one covers exactly the key.
  probeKey: (t) => {
    const [schema, table] = t.target.includes('.') ? t.target.split('.') : [undefined, t.target];
    return {
      sql: `SELECT INDEX_NAME AS name, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',') AS cols
            FROM information_schema.STATISTICS
            WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0
            GROUP BY INDEX_NAME`,
      params: [schema ?? null, table as string],
      keyCovered: (rows) => rows.some((r) => String(r.cols).split(',').sort().join(',') === [...t.key].sort().join(',')),
    };
  },
  // "name = name" makes the duplicate a no-op without INSERT IGNORE, which would also swallow real errors.
  insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES (?, NULL, 0, ?) ON DUPLICATE KEY UPDATE name = name`,
  // FOR UPDATE: a locking read of the latest committed row (not the transaction's snapshot), held until commit.
  lockCursor: (t) => `SELECT cursor_value, CAST(token AS CHAR) AS token, node FROM ${q(t)} WHERE name = ? FOR UPDATE`,
  // token <= ?: the fence. A newer owner's token in the row makes this match nothing. Tokens travel as
  // decimal text; CAST keeps the comparison in integers (a text operand would compare as a double).
  updateCursor: (t) =>
    `UPDATE ${q(t)} SET cursor_value = ?, token = CAST(? AS SIGNED), updated_at_ms = ?, node = ? WHERE name = ? AND token <= CAST(? AS SIGNED)`,
  upsertRows: (t, count) => {
    const others = t.columns.filter((c) => !t.key.includes(c));
    let updates: string[];
    if (t.version) {
      // Assignments run left to right and see earlier ones: every column is compared against the stored
      // version before the version itself is assigned, last. A stale copy (older version) changes nothing.
      const newer = `${q(t.version)} <= VALUES(${q(t.version)})`;
      updates = others.filter((c) => c !== t.version).map((c) => `${q(c)} = IF(${newer}, VALUES(${q(c)}), ${q(c)})`);
      updates.push(`${q(t.version)} = IF(${newer}, VALUES(${q(t.version)}), ${q(t.version)})`);
    } else {
      updates = others.map((c) => `${q(c)} = VALUES(${q(c)})`);
    }
    // With only key columns there is nothing to update: re-assigning the first key makes the duplicate a no-op.
    if (updates.length === 0) updates = [`${q(t.key[0] as string)} = ${q(t.key[0] as string)}`];
    return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples(count, t.columns.length, p)} ON DUPLICATE KEY UPDATE ${updates.join(', ')}`;
  },
  upsertRejects: (t, count) =>
    `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples(count, 7, p)}
     ON DUPLICATE KEY UPDATE reason = VALUES(reason), last_seen_ms = VALUES(last_seen_ms), seen = seen + 1`,
};

export interface MysqlTargetOptions {
  readonly pool: Pool;
  readonly owned: boolean;
  readonly lockTimeoutMs: number;
  readonly label: string;
}

export class MysqlDialect implements SqlDialect {
  readonly kind = 'mysql' as const;
  readonly statements = mysqlStatements;
  readonly maxParams = 65_535;
  readonly #options: MysqlTargetOptions;

  constructor(options: MysqlTargetOptions) {
    this.#options = options;
  }

  /** Creates our own pool for `url` (`mysql://` or `mariadb://`); the driver is loaded only now. */
  static async fromUrl(url: string, lockTimeoutMs: number, label: string): Promise<MysqlDialect> {
    const mysql = await loadDriver('mysql2', 'http sync (mysql target)', () => import('mysql2/promise'));
    const pool = (mysql.default ?? mysql).createPool({
      uri: url.replace(/^mariadb:/i, 'mysql:'),
      connectionLimit: 2,
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'utf8mb4_general_ci',
      timezone: 'Z',
      connectTimeout: 10_000,
    });
    return new MysqlDialect({ pool, owned: true, lockTimeoutMs, label });
  }

  value(value: unknown): SqlValue {
    const v = commonValue(value);
    return typeof v === 'bigint' ? v.toString() : v;
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const connection = await this.#connect();
    let broken = false;
    try {
      // innodb_lock_wait_timeout is in whole seconds; it bounds the wait behind a paused writer's row lock.
      await this.#query(connection, 'SET SESSION innodb_lock_wait_timeout = ?', [Math.max(1, Math.ceil(this.#options.lockTimeoutMs / 1000))]);
      await this.#query(connection, 'START TRANSACTION');
      const tx: SqlTx = {
        rows: async (sql, params) => (await this.#query(connection, sql, params)) as Record<string, unknown>[],
        write: async (sql, params) => {
          const header = (await this.#query(connection, sql, params)) as { affectedRows?: number };
          return header.affectedRows ?? 0;
        },
      };
      const result = await fn(tx);
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

  async exec(sql: string): Promise<void> {
    const connection = await this.#connect();
    try {
      await this.#query(connection, sql);
    } finally {
      connection.release();
    }
  }

  async close(): Promise<void> {
    if (this.#options.owned) await this.#options.pool.end().catch(() => undefined);
  }

  async #connect(): Promise<PoolConnection> {
    try {
      return await this.#options.pool.getConnection();
    } catch (error) {
      throw new SyncTargetError(`${this.#options.label}: target mysql: cannot connect: ${(error as Error).message}`, { cause: error });
    }
  }

  async #query(connection: PoolConnection, sql: string, params: readonly unknown[] = []): Promise<unknown> {
    try {
      const [result] = await connection.query(sql, params as unknown[]);
      return result;
    } catch (error) {
      const code = (error as { code?: string }).code;
      throw new SyncTargetError(`${this.#options.label}: target mysql: ${code ? `${code}: ` : ''}${(error as Error).message}`, { cause: error });
    }
  }
}

