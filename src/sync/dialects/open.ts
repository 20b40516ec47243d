/**
 * Chooses the target's adapter from its URL or handle and loads only that driver (`pg` for
 * `postgres://`, `mysql2` for `mysql://`, `better-sqlite3` for `sqlite:`), as the stores do.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Pool as MysqlPool } from 'mysql2/promise';
import type { Pool as PgPool } from 'pg';
import type { TargetDatabase } from '../options.js';
import type { SqlDialect } from './dialect.js';

export async function openDialect(db: TargetDatabase, lockTimeoutMs: number, label: string): Promise<SqlDialect> {
  if (typeof db === 'string') {
    const scheme = db.slice(0, db.indexOf(':')).toLowerCase();
    if (scheme === 'postgres' || scheme === 'postgresql') return (await import('./postgres.js')).PostgresDialect.fromUrl(db, lockTimeoutMs, label);
    if (scheme === 'mysql' || scheme === 'mariadb') return (await import('./mysql.js')).MysqlDialect.fromUrl(db, lockTimeoutMs, label);
    return (await import('./sqlite.js')).SqliteDialect.fromUrl(db, lockTimeoutMs, label);
  }
  if ('postgres' in db) return new (await import('./postgres.js')).PostgresDialect({ pool: db.postgres as PgPool, owned: false, lockTimeoutMs, label });
  if ('mysql' in db) return new (await import('./mysql.js')).MysqlDialect({ pool: db.mysql as MysqlPool, owned: false, lockTimeoutMs, label });
  return new (await import('./sqlite.js')).SqliteDialect({ db: db.sqlite as BetterSqlite3.Database, owned: false, label });
}
