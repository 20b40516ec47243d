/**
 * PostgreSQL as a {@link SqlDatabase}: a `pg.Pool` (ours from a URL, or one its owner passed in), one
 * pooled connection per transaction. See database.ts for the guarantees.
 */
import type { Pool, PoolClient, PoolConfig, QueryResult } from 'pg';
import { loadPg } from '../drivers.js';
import { ignoreError, type SqlDatabase, type SqlDatabaseSettings, type SqlResult, type SqlSession } from '../database.js';
import { toSqlError } from '../errors.js';
import { pgClientConfig } from './connect.js';
import type { PostgresUrl } from './url.js';

/** Runs one statement on a checked-out client. */
export type PgRun = (client: PoolClient, sql: string, values: unknown[]) => Promise<QueryResult>;

/** What a user of PostgreSQL may tune beyond {@link SqlDatabaseSettings}. */
export interface PgTuning {
  /** Server settings for every connection of the pool (sent as `-c name=value` at connect). */
  readonly serverSettings?: Readonly<Record<string, string>>;
  /**
   * pg's pipeline mode: statements issued together are written at once and answered in order. A
   * transaction's BEGIN then goes out with its first statements instead of alone (if BEGIN fails, so do
   * they, and BEGIN's error is the one thrown). Nothing may keep a portal open on such a connection.
   */
  readonly pipeline?: boolean;
  /** How a statement is sent (named, corked …); default `client.query(sql, values)`. Must call pg at once. */
  readonly run?: PgRun;
}

export interface PgDatabaseOptions {
  readonly label: string;
  /** True when this object made the pool, and so ends it on close(). */
  readonly owned: boolean;
  /** Sets `lock_timeout` in every transaction. */
  readonly lockTimeoutMs?: number;
  readonly pipeline?: boolean;
  readonly run?: PgRun;
}

const plainRun: PgRun = (client, sql, values) => client.query(sql, values);

/** Opens a pool for `url` (loading `pg` now); no connection is made before the first statement. */
export async function openPgDatabase(url: PostgresUrl, settings: SqlDatabaseSettings, tuning: PgTuning = {}): Promise<PgDatabase> {
  const pg = await loadPg();
  const config: PoolConfig & { pipeline?: boolean } = {
    ...(await pgClientConfig(url, settings.connectTimeoutMs)),
    max: settings.poolSize,
    idleTimeoutMillis: 30_000,
    ...(settings.queryTimeoutMs !== undefined ? { query_timeout: settings.queryTimeoutMs } : {}),
    ...(settings.keepAlive ? { keepAlive: true } : {}),
    ...(tuning.serverSettings
      ? {
          options: Object.entries(tuning.serverSettings)
            .map(([name, value]) => `-c ${name}=${value}`)
            .join(' '),
        }
      : {}),
    ...(tuning.pipeline ? { pipeline: true } : {}),
  };
  const pool = new pg.Pool(config);
  // An idle client's error would otherwise crash the process; the pool drops it and the next checkout reconnects.
  pool.on('error', ignoreError);
  return new PgDatabase(pool, {
    label: settings.label,
    owned: true,
    ...(settings.lockTimeoutMs !== undefined ? { lockTimeoutMs: settings.lockTimeoutMs } : {}),
    ...(tuning.pipeline ? { pipeline: true } : {}),
    ...(tuning.run ? { run: tuning.run } : {}),
  });
}

export class PgDatabase implements SqlDatabase {
  readonly kind = 'postgres' as const;
  readonly label: string;
  readonly #pool: Pool;
  readonly #options: PgDatabaseOptions;
  readonly #run: PgRun;

  constructor(pool: Pool, options: PgDatabaseOptions) {
    this.#pool = pool;
    this.#options = options;
    this.label = options.label;
    this.#run = options.run ?? plainRun;
  }

  async transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
    const client = await this.#checkout();
    let broken: Error | undefined;
    try {
      const begin = this.#begin(client);
      if (this.#options.pipeline) begin.catch(ignoreError);
      else await begin;
      const result = await fn({ query: (sql, values) => this.#query(client, sql, values) }).finally(() => begin);
      await this.#query(client, 'COMMIT');
      return result;
    } catch (error) {
      // A failed rollback means the connection is gone: release it as broken so the pool drops it.
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw error;
    } finally {
      this.#release(client, broken);
    }
  }

  async query(sql: string, values: readonly unknown[] = []): Promise<SqlResult> {
    const client = await this.#checkout();
    let broken: Error | undefined;
    try {
      return await this.#query(client, sql, values);
    } catch (error) {
      if (toSqlError('postgres', this.label, error).failure === 'connection') broken = error as Error;
      throw error;
    } finally {
      this.#release(client, broken);
    }
  }

  async close(): Promise<void> {
    if (this.#options.owned) await this.#pool.end().catch(ignoreError);
  }

  /** BEGIN, and the transaction's lock timeout; sent together in pipeline mode. */
  #begin(client: PoolClient): Promise<unknown> {
    const begin = this.#query(client, 'BEGIN');
    const lockTimeoutMs = this.#options.lockTimeoutMs;
    if (lockTimeoutMs === undefined) return begin;
    // An integer we computed, not data: SET cannot take a parameter.
    const setTimeout = `SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`;
    if (this.#options.pipeline) return Promise.all([begin, this.#query(client, setTimeout)]);
    return begin.then(() => this.#query(client, setTimeout));
  }

  async #checkout(): Promise<PoolClient> {
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw toSqlError('postgres', this.label, error, true);
    }
    // The pool removes its own 'error' listener while a client is checked out, and pg emits 'error' (besides
    // failing the query) when the connection drops: without a listener that would crash the process.
    client.on('error', ignoreError);
    return client;
  }

  #release(client: PoolClient, broken: Error | undefined): void {
    client.removeListener('error', ignoreError);
    client.release(broken);
  }

  /** Sends the statement at once (no await before the driver call: pipelined statements keep their order). */
  async #query(client: PoolClient, sql: string, values: readonly unknown[] = []): Promise<SqlResult> {
    try {
      const result = await this.#run(client, sql, values as unknown[]);
      return { rows: result.rows as Record<string, unknown>[], affected: result.rowCount ?? 0 };
    } catch (error) {
      throw toSqlError('postgres', this.label, error);
    }
  }
}
