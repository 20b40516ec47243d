/**
 * PostgreSQL as a {@link SqlDatabase}: a `pg.Pool` (ours from a URL, or one its owner passed in), one
 * pooled connection per transaction (pooled.ts). See database.ts for the guarantees.
 */
import type { Pool, PoolClient, PoolConfig } from 'pg';
import { loadPg } from '../drivers.js';
import { ignoreError, type SqlDatabaseSettings, type SqlResult } from '../database.js';
import { toSqlError } from '../errors.js';
import { PooledDatabase } from '../pooled.js';
import { pgClientConfig } from './connect.js';
import type { PgRun, PgTuning } from './tuning.js';
import type { PostgresUrl } from './url.js';

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

export class PgDatabase extends PooledDatabase<PoolClient> {
  readonly kind = 'postgres' as const;
  readonly #pool: Pool;
  readonly #options: PgDatabaseOptions;
  readonly #run: PgRun;

  constructor(pool: Pool, options: PgDatabaseOptions) {
    super(options.label);
    this.#pool = pool;
    this.#options = options;
    this.#run = options.run ?? plainRun;
  }

  async close(): Promise<void> {
    if (this.#options.owned) await this.#pool.end().catch(ignoreError);
  }

  protected override get pipelined(): boolean {
    return this.#options.pipeline === true;
  }

  protected async checkout(): Promise<PoolClient> {
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

  protected giveBack(client: PoolClient, broken: boolean): void {
    client.removeListener('error', ignoreError);
    client.release(broken);
  }

  /** BEGIN, and the transaction's lock timeout; sent together in pipeline mode. */
  protected begin(client: PoolClient): Promise<unknown> {
    const begin = this.send(client, 'BEGIN', []);
    const lockTimeoutMs = this.#options.lockTimeoutMs;
    if (lockTimeoutMs === undefined) return begin;
    // An integer we computed, not data: SET cannot take a parameter.
    const setTimeout = `SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`;
    if (this.pipelined) return Promise.all([begin, this.send(client, setTimeout, [])]);
    return begin.then(() => this.send(client, setTimeout, []));
  }

  /** Sends the statement at once (no await before the driver call: pipelined statements keep their order). */
  protected async send(client: PoolClient, sql: string, values: readonly unknown[]): Promise<SqlResult> {
    try {
      const result = await this.#run(client, sql, values as unknown[]);
      return { rows: result.rows as Record<string, unknown>[], affected: result.rowCount ?? 0 };
    } catch (error) {
      throw toSqlError('postgres', this.label, error);
    }
  }
}
