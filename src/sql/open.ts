/**
 * Opens a {@link SqlDatabase} for a parsed URL: a small pool for a server, the file's handle for SQLite.
 * Only the driver of the URL's kind is loaded (drivers.ts).
 */
import type { SqlDatabase, SqlDatabaseSettings } from './database.js';
import { openMysqlDatabase } from './mysql/database.js';
import { openPgDatabase } from './postgres/database.js';
import type { PgTuning } from './postgres/tuning.js';
import { openSqliteDatabase } from './sqlite/database.js';
import type { SqlUrl } from './url.js';

export interface SqlTuning {
  readonly postgres?: PgTuning;
}

/** @throws the URL's error for an unreadable certificate file; SqlError when a SQLite file cannot be opened. */
export async function openSqlDatabase(url: SqlUrl, settings: SqlDatabaseSettings, tuning: SqlTuning = {}): Promise<SqlDatabase> {
  switch (url.kind) {
    case 'postgres':
      return openPgDatabase(url, settings, tuning.postgres);
    case 'mysql':
      return openMysqlDatabase(url, settings);
    case 'sqlite':
      return openSqliteDatabase(url, settings);
  }
}
