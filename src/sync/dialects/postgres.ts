/**
 * PostgreSQL target: a `pg.Pool` (ours from a URL, with at most 2 connections, or the caller's), one
 * pooled connection per transaction, `lock_timeout` set per transaction so a writer stuck behind a paused
 * one fails instead of waiting forever.
 */
import type { Pool, PoolClient } from 'pg';
import { SyncTargetError } from '../errors.js';
import { commonValue, quoteIdentifier, valueTuples, type SqlDialect, type SqlTx, type SqlValue, type SyncStatements } from './dialect.js';
import { loadDriver } from '../../core/driver.js';

const q = (name: string) => quoteIdentifier(name, '"');
const p = (i: number) => `$${i}`;

export const postgresStatements: SyncStatements = {
  createCursorTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT PRIMARY KEY,
      cursor_value TEXT,
      token BIGINT NOT NULL DEFAULT 0,
      updated_at_ms BIGINT NOT NULL,
      node TEXT
    )`,
  createRejectsTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      record_key TEXT,
      reason TEXT NOT NULL,
      raw TEXT NOT NULL,
      first_seen_ms BIGINT NOT NULL,
      last_seen_ms BIGINT NOT NULL,
      seen INTEGER NOT NULL DEFAULT 1,
      PRIMARY KEY (name, fingerprint)
    )`,
  probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
  // Inserts nothing, but ON CONFLICT (key) is checked when the statement is planned: it fails unless a
  // primary key or unique index covers exactly the key columns.
  probeKey: (t) => ({
    sql: `INSERT INTO ${q(t.target)} (${t.key.map(q).join(', ')}) SELECT ${t.key.map(() => 'NULL').join(', ')} WHERE false ON CONFLICT (${t.key.map(q).join(', ')}) DO NOTHING`,
    params: [],
  }),
  // ON CONFLICT DO NOTHING: two first runs racing both see the row afterwards; neither fails.
  insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES ($1, NULL, 0, $2) ON CONFLICT (name) DO NOTHING`,
  // FOR UPDATE: holds the row until commit, so the token check and the cursor write see no other writer.
  lockCursor: (t) => `SELECT cursor_value, token::text AS token, node FROM ${q(t)} WHERE name = $1 FOR UPDATE`,
  // token <= $6: the fence. A newer owner's token in the row makes this match nothing.
  updateCursor: (t) => `UPDATE ${q(t)} SET cursor_value = $1, token = $2, updated_at_ms = $3, node = $4 WHERE name = $5 AND token <= $6`,
  upsertRows: (t, count) => {
    const updates = t.columns.filter((c) => !t.key.includes(c)).map((c) => `${q(c)} = EXCLUDED.${q(c)}`);
    const onConflict =
      updates.length === 0
        ? 'DO NOTHING'
        : // WHERE on the version: a stale copy of a row (a replayed page) never rolls a newer one back.
          `DO UPDATE SET ${updates.join(', ')}${t.version ? ` WHERE ${q(t.target)}.${q(t.version)} <= EXCLUDED.${q(t.version)}` : ''}`;
    return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples(count, t.columns.length, p)} ON CONFLICT (${t.key.map(q).join(', ')}) ${onConflict}`;
  },
  upsertRejects: (t, count) =>
    `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples(count, 7, p)}
     ON CONFLICT (name, fingerprint) DO UPDATE SET reason = EXCLUDED.reason, last_seen_ms = EXCLUDED.last_seen_ms, seen = ${q(t)}.seen + 1`,
};

export interface PostgresTargetOptions {
  readonly pool: Pool;
  /** True when we created the pool (from a URL) and so must end it. */
  readonly owned: boolean;
  readonly lockTimeoutMs: number;
  readonly label: string;
}

export class PostgresDialect implements SqlDialect {
  readonly kind = 'postgres' as const;
  readonly statements = postgresStatements;
  readonly maxParams = 65_535;
  readonly #options: PostgresTargetOptions;

  constructor(options: PostgresTargetOptions) {
    this.#options = options;
  }

  /** Creates our own pool for `url`; the driver is loaded only now. */
  static async fromUrl(url: string, lockTimeoutMs: number, label: string): Promise<PostgresDialect> {
    const pg = await loadDriver('pg', 'http sync (postgres target)', () => import('pg'));
    const Pool = (pg.default ?? pg).Pool;
    const pool = new Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
    // An idle client's error would otherwise crash the process; the pool drops it and the next checkout reconnects.
    pool.on('error', () => undefined);
    return new PostgresDialect({ pool, owned: true, lockTimeoutMs, label });
  }

  value(value: unknown): SqlValue {
    const v = commonValue(value);
    return typeof v === 'bigint' ? v.toString() : v;
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const client = await this.#connect();
    let broken: Error | undefined;
    try {
      await this.#query(client, 'BEGIN');
      // lock_timeout is an integer we computed, not data: SET cannot take a parameter.
      await this.#query(client, `SET LOCAL lock_timeout = ${Math.max(1, Math.round(this.#options.lockTimeoutMs))}`);
      const tx: SqlTx = {
        rows: async (sql, params) => (await this.#query(client, sql, params)).rows,
        write: async (sql, params) => (await this.#query(client, sql, params)).rowCount ?? 0,
      };
      const result = await fn(tx);
      await this.#query(client, 'COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((e: Error) => (broken = e)); // a failed rollback means the connection is gone: drop it
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async exec(sql: string): Promise<void> {
    const client = await this.#connect();
    let broken: Error | undefined;
    try {
      await this.#query(client, sql);
    } catch (error) {
      broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.#options.owned) await this.#options.pool.end().catch(() => undefined);
  }

  async #connect(): Promise<PoolClient> {
    try {
      return await this.#options.pool.connect();
    } catch (error) {
      throw new SyncTargetError(`${this.#options.label}: target postgres: cannot connect: ${(error as Error).message}`, { cause: error });
    }
  }

  async #query(client: PoolClient, sql: string, params: readonly SqlValue[] = []) {
    try {
      return await client.query(sql, params as unknown[]);
    } catch (error) {
      const code = (error as { code?: string }).code;
      throw new SyncTargetError(`${this.#options.label}: target postgres: ${code ? `${code}: ` : ''}${(error as Error).message}`, { cause: error });
    }
  }
}
