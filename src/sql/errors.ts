/**
 * What a SQL failure means, decided from the driver's code in this one place for every dialect:
 * PostgreSQL SQLSTATEs, MySQL/MariaDB error numbers, SQLite result codes. Stores, the HTTP sync and the
 * relay act on the class (reconnect, retry, pause, park) and never read a driver's code themselves.
 */
import { BatonError } from '../core/errors.js';
import type { SqlKind } from './schemes.js';

/**
 * - `connection`: the connection could not be made, broke, or the server is going away; the same
 *   statement on a new connection may succeed. The connection is not reused.
 * - `transient`: the server refused for now — a deadlock, a serialization failure, a lock wait timeout,
 *   a busy database, resources exhausted; trying again may succeed.
 * - `statement`: the statement cannot run against this database as it is — a syntax error, a missing
 *   table, column, function, database or schema, a missing privilege; every statement of its kind fails
 *   alike until an operator fixes the schema or the SQL.
 * - `constraint`: this statement's values were refused — unique, foreign key, not null or check
 *   constraint, a value of the wrong type or out of range, or any other error the server raised for them
 *   (a trigger's exception, a bad password); trying the same again fails again.
 */
export type SqlFailure = 'connection' | 'transient' | 'statement' | 'constraint';

export interface SqlFailureInfo {
  readonly failure: SqlFailure;
  /** The driver's code: a SQLSTATE, a MySQL error code (`ER_DUP_ENTRY`), a SQLite code; undefined when it gave none. */
  readonly driverCode: string | undefined;
  /** A unique or primary key refused a duplicate. */
  readonly duplicate: boolean;
  /** The server rolled the whole transaction back (deadlock, serialization failure): all of it may be retried. */
  readonly rolledBack: boolean;
}

/** A SQL statement or connection failed; `failure` says what that means. */
export class SqlError extends BatonError implements SqlFailureInfo {
  readonly kind: SqlKind;
  readonly failure: SqlFailure;
  readonly driverCode: string | undefined;
  readonly duplicate: boolean;
  readonly rolledBack: boolean;
  /** True when the connection could not be made or the file opened (no statement reached the database). */
  readonly connecting: boolean;
  /** The failure without the database's label: `23505: duplicate key value violates unique constraint …`. */
  readonly detail: string;

  constructor(kind: SqlKind, label: string, info: SqlFailureInfo & { readonly connecting: boolean; readonly detail: string }, cause: unknown) {
    super('SQL_FAILED', `${label}: ${info.connecting ? `cannot ${kind === 'sqlite' ? 'open' : 'connect'}: ` : ''}${info.detail}`, { cause });
    this.kind = kind;
    this.failure = info.failure;
    this.driverCode = info.driverCode;
    this.duplicate = info.duplicate;
    this.rolledBack = info.rolledBack;
    this.connecting = info.connecting;
    this.detail = info.detail;
  }
}

/**
 * Wraps what a driver threw (a SqlError is returned as it is).
 * @param connecting true for a failure to connect (or to check a connection out of a pool).
 */
export function toSqlError(kind: SqlKind, label: string, error: unknown, connecting = false): SqlError {
  if (error instanceof SqlError) return error;
  const info = classifySqlError(kind, error);
  const message = (error as Error | null)?.message ?? String(error);
  return new SqlError(kind, label, { ...info, connecting, detail: `${info.driverCode ? `${info.driverCode}: ` : ''}${message}` }, error);
}

/** What `error`, thrown by the driver of `kind` (or a SqlError), means. */
export function classifySqlError(kind: SqlKind, error: unknown): SqlFailureInfo {
  if (error instanceof SqlError) return error;
  switch (kind) {
    case 'postgres':
      return postgresFailure(error);
    case 'mysql':
      return mysqlFailure(error);
    case 'sqlite':
      return sqliteFailure(error);
  }
}

const info = (failure: SqlFailure, driverCode: string | undefined, flags: Partial<Pick<SqlFailureInfo, 'duplicate' | 'rolledBack'>> = {}): SqlFailureInfo => ({
  failure,
  driverCode,
  duplicate: flags.duplicate ?? false,
  rolledBack: flags.rolledBack ?? false,
});

/**
 * SQLSTATE classes: 08 connection exception and 57 operator intervention (shutdown, a cancelled or
 * timed-out statement) end the connection; 40 transaction rollback (serialization, deadlock), 53
 * insufficient resources, 58 system error, 55P03 lock not available and 55006 object in use pass; 42
 * syntax error or access rule, 3D unknown database, 3F unknown schema are the statement's; the rest (23
 * integrity, 22 data, P0 raised by a function …) refuse the values. No SQLSTATE: a network error, a
 * client-side timeout, a closed pool.
 */
function postgresFailure(error: unknown): SqlFailureInfo {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return info('connection', typeof code === 'string' ? code : undefined);
  if (/^(08|57)/.test(code)) return info('connection', code);
  if (code.startsWith('40')) return info('transient', code, { rolledBack: true });
  if (/^(53|58)/.test(code) || code === '55P03' || code === '55006') return info('transient', code);
  if (/^(42|3D|3F)/.test(code)) return info('statement', code);
  return info('constraint', code, { duplicate: code === '23505' });
}

/** MySQL / MariaDB error numbers (mysql2 sets `errno`, and `fatal` when the connection is unusable). */
const MYSQL = {
  connection: new Set([
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    1927, // ER_CONNECTION_KILLED
    2002, // CR_CONNECTION_ERROR (socket)
    2003, // CR_CONN_HOST_ERROR
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
    2055, // CR_SERVER_LOST_EXTENDED
  ]),
  transient: new Set([
    1205, // ER_LOCK_WAIT_TIMEOUT
    1317, // ER_QUERY_INTERRUPTED
  ]),
  deadlock: 1213, // ER_LOCK_DEADLOCK: InnoDB rolled the transaction back
  statement: new Set([
    1044, // ER_DBACCESS_DENIED_ERROR
    1045, // ER_ACCESS_DENIED_ERROR
    1049, // ER_BAD_DB_ERROR
    1054, // ER_BAD_FIELD_ERROR
    1064, // ER_PARSE_ERROR
    1142, // ER_TABLEACCESS_DENIED_ERROR
    1143, // ER_COLUMNACCESS_DENIED_ERROR
    1146, // ER_NO_SUCH_TABLE
    1305, // ER_SP_DOES_NOT_EXIST
  ]),
  duplicate: 1062, // ER_DUP_ENTRY
} as const;

function mysqlFailure(error: unknown): SqlFailureInfo {
  const e = error as { errno?: unknown; code?: unknown; fatal?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (e?.fatal === true || typeof e?.errno !== 'number') return info('connection', code);
  if (MYSQL.connection.has(e.errno)) return info('connection', code);
  if (e.errno === MYSQL.deadlock) return info('transient', code, { rolledBack: true });
  if (MYSQL.transient.has(e.errno)) return info('transient', code);
  if (MYSQL.statement.has(e.errno)) return info('statement', code);
  return info('constraint', code, { duplicate: e.errno === MYSQL.duplicate });
}

/**
 * SQLite result codes (better-sqlite3 sets the extended code, `SQLITE_BUSY_SNAPSHOT` …): no such file or
 * I/O trouble is `connection`; busy, locked, full, out of memory, read-only, interrupted pass; a missing
 * table, column or function and a syntax error (all `SQLITE_ERROR`) are the statement's.
 */
function sqliteFailure(error: unknown): SqlFailureInfo {
  const raw = (error as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' ? raw : undefined;
  if (code === undefined || !code.startsWith('SQLITE_')) return info('connection', code);
  if (/^SQLITE_(CANTOPEN|IOERR)/.test(code)) return info('connection', code);
  if (/^SQLITE_(BUSY|LOCKED|FULL|NOMEM|PROTOCOL|READONLY|INTERRUPT)/.test(code)) return info('transient', code);
  if (code === 'SQLITE_ERROR' && /no such (table|column|function)|syntax error/i.test((error as Error).message)) return info('statement', code);
  return info('constraint', code, { duplicate: /^SQLITE_CONSTRAINT_(PRIMARYKEY|UNIQUE)$/.test(code) });
}
