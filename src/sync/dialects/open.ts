/**
 * Opens the sync's target: a connection of the SQL layer (src/sql/) — its own small pool or file handle
 * for a URL, or the caller's handle, left open by close() — with the dialect's statement table. Only the
 * driver of the URL's kind is loaded. A failure of the database leaves as SyncTargetError.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Pool as MysqlPool } from 'mysql2/promise';
import type { Pool as PgPool } from 'pg';
import type { SqlDatabase, SqlSession } from '../../sql/database.js';
import { SqlError } from '../../sql/errors.js';
import { MysqlDatabase } from '../../sql/mysql/database.js';
import { openSqlDatabase } from '../../sql/open.js';
import { MAX_PARAMETERS } from '../../sql/placeholders.js';
import { PgDatabase } from '../../sql/postgres/database.js';
import type { SqlKind } from '../../sql/schemes.js';
import { SqliteDatabase } from '../../sql/sqlite/database.js';
import { SyncTargetError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { commonValue, type SqlDialect, type SqlValue, type SyncStatements } from './dialect.js';
import { mysqlStatements } from './mysql.js';
import { postgresStatements } from './postgres.js';
import { sqliteStatements } from './sqlite.js';

const STATEMENTS: Readonly<Record<SqlKind, SyncStatements>> = { postgres: postgresStatements, mysql: mysqlStatements, sqlite: sqliteStatements };

/** A pool the sync opens from a URL: one connection for the run, one spare. */
const POOL_SIZE = 2;
const CONNECT_TIMEOUT_MS = 10_000;

/** @throws SyncTargetError (a SQLite file that cannot be opened), ConfigError (an unreadable certificate file). */
export async function openDialect(db: ResolvedOptions['db'], lockTimeoutMs: number, label: string): Promise<SqlDialect> {
  const database = 'kind' in db ? await openOwn(db, lockTimeoutMs, label) : borrowed(db, lockTimeoutMs, label);
  return new SyncDialect(database);
}

async function openOwn(url: Extract<ResolvedOptions['db'], { kind: SqlKind }>, lockTimeoutMs: number, label: string): Promise<SqlDatabase> {
  try {
    // A SQLite target's messages name its file: which one cannot be opened, or is locked, is what helps.
    const target = url.kind === 'sqlite' ? `target sqlite ${JSON.stringify(url.file)}` : `target ${url.kind}`;
    return await openSqlDatabase(url, { label: `${label}: ${target}`, poolSize: POOL_SIZE, connectTimeoutMs: CONNECT_TIMEOUT_MS, lockTimeoutMs });
  } catch (error) {
    return asTargetError(error);
  }
}

function borrowed(db: Exclude<ResolvedOptions['db'], { kind: SqlKind }>, lockTimeoutMs: number, label: string): SqlDatabase {
  const common = { owned: false, lockTimeoutMs };
  // The options type these handles by shape (no driver types in the public declarations): they are the drivers' own.
  if ('postgres' in db) return new PgDatabase(db.postgres as PgPool, { label: `${label}: target postgres`, ...common });
  if ('mysql' in db) return new MysqlDatabase(db.mysql as MysqlPool, { label: `${label}: target mysql`, ...common });
  // The busy timeout of a caller's handle is the caller's.
  return new SqliteDatabase(db.sqlite as BetterSqlite3.Database, { label: `${label}: target sqlite`, owned: false });
}

class SyncDialect implements SqlDialect {
  readonly kind: SqlKind;
  readonly statements: SyncStatements;
  readonly maxParams: number;
  readonly #db: SqlDatabase;

  constructor(db: SqlDatabase) {
    this.#db = db;
    this.kind = db.kind;
    this.statements = STATEMENTS[db.kind];
    this.maxParams = MAX_PARAMETERS[db.kind];
  }

  value(value: unknown): SqlValue {
    return commonValue(value);
  }

  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
    return this.#db.transaction(fn).catch(asTargetError);
  }

  async exec(sql: string): Promise<void> {
    await this.#db.query(sql).catch(asTargetError);
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

/** A database failure as the sync reports it; anything else (NotOwnerError …) as it is. */
function asTargetError(error: unknown): never {
  throw error instanceof SqlError ? new SyncTargetError(error.message, { cause: error }) : error;
}
