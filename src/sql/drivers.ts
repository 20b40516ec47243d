/**
 * The SQL drivers, each imported here and only when a URL of its kind is opened: a user of SQLite never
 * loads `pg`, a user of PostgreSQL never loads `better-sqlite3`. Every module of baton that needs a SQL
 * driver gets it from this file, so what happens when one is missing is decided in one place.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { loadDriver } from '../core/driver.js';

export type PgDriver = typeof import('pg');
export type MysqlDriver = typeof import('mysql2/promise');
export type SqliteDriver = typeof BetterSqlite3;

/**
 * `pg` (node-postgres). `neededBy` names the user in the message when it is not installed
 * (DriverMissingError, core/driver.ts).
 */
export async function loadPg(neededBy = 'a postgres:// URL'): Promise<PgDriver> {
  const module = await loadDriver('pg', neededBy, () => import('pg'));
  return (module.default ?? module) as PgDriver;
}

/** `mysql2/promise`. */
export async function loadMysql(neededBy = 'a mysql:// URL'): Promise<MysqlDriver> {
  const module = await loadDriver('mysql2', neededBy, () => import('mysql2/promise'));
  return (module.default ?? module) as MysqlDriver;
}

/** `better-sqlite3`: the Database constructor. */
export async function loadSqlite(neededBy = 'a sqlite: URL'): Promise<SqliteDriver> {
  return (await loadDriver('better-sqlite3', neededBy, () => import('better-sqlite3'))).default;
}
