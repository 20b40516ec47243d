/**
 * The port between the sync and a target database: the statements it needs, one table per database
 * (postgres.ts, mysql.ts, sqlite.ts), run on a connection of the SQL layer (src/sql/) by open.ts.
 *
 * Guarantees every dialect keeps: identifiers reach SQL only after {@link assertIdentifier} and quoted for
 * the dialect; values always travel as parameters; `transaction()` commits all of `fn`'s statements or
 * none (it rolls back when `fn` throws, and rethrows); statements of one transaction never interleave with
 * others (sql/database.ts).
 */
import { ConfigError } from '../../core/errors.js';
import type { SqlSession } from '../../sql/database.js';
import type { SqlKind } from '../../sql/schemes.js';

/** A value as a driver takes it. */
export type SqlValue = string | number | bigint | boolean | null | Date | Uint8Array;

/** The names of the tables one sync uses, validated. */
export interface SyncTables {
  readonly cursor: string;
  readonly rejects: string;
  readonly target: string;
  readonly columns: readonly string[];
  readonly key: readonly string[];
  /** Updates only when the incoming row's version is ≥ the stored one. */
  readonly version: string | undefined;
}

/** The statements of one dialect. Parameters are listed in each statement's comment, in order. */
export interface SyncStatements {
  /** DDL: the cursor table (name, cursor_value, token, updated_at_ms, node). */
  createCursorTable(table: string): string;
  /** DDL: the rejects table, one row per distinct rejected record (name, fingerprint) . */
  createRejectsTable(table: string): string;
  /** Fails when the target table or one of its columns is missing; returns no row. */
  probeTarget(tables: SyncTables): string;
  /**
   * Checks that the key columns carry a primary key or unique index (what the upsert relies on): a
   * statement that fails without one, or returns the unique indexes' columns for `keyCovered`.
   */
  probeKey(tables: SyncTables): { readonly sql: string; readonly params: readonly SqlValue[]; readonly keyCovered?: (rows: Record<string, unknown>[]) => boolean };
  /** (name, now): creates the cursor row with token 0 when absent. */
  insertCursorIfAbsent(table: string): string;
  /** (name): the cursor row, locked until the transaction ends. */
  lockCursor(table: string): string;
  /** (cursor_value, token, now, node, name, token): fenced — matches only while the stored token ≤ ours. */
  updateCursor(table: string): string;
  /** (row values…, row after row): inserts or updates `count` rows by key. */
  upsertRows(tables: SyncTables, count: number): string;
  /** (name, fingerprint, record_key, reason, raw, now, now, …): `count` rejects, counted again when seen again. */
  upsertRejects(table: string, count: number): string;
}

export interface SqlDialect {
  readonly kind: SqlKind;
  readonly statements: SyncStatements;
  /** The most parameters one statement may carry. */
  readonly maxParams: number;
  /** Converts a mapped row's value for the driver. */
  value(value: unknown): SqlValue;
  /** Runs `fn` in one transaction. @throws what `fn` throws (after rolling back), or SyncTargetError. */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
  /** Runs one statement on its own (DDL). @throws SyncTargetError. */
  exec(sql: string): Promise<void>;
  /** Closes what the sync opened itself (a pool or handle passed in by the caller stays open). */
  close(): Promise<void>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** @throws ConfigError unless `name` is `ident` or `schema.ident` of letters, digits and `_` (≤ 63 each). */
export function assertIdentifier(name: unknown, field: string, options: { qualified?: boolean } = {}): string {
  const parts = typeof name === 'string' ? name.split('.') : [];
  const ok = parts.length >= 1 && parts.length <= (options.qualified ? 2 : 1) && parts.every((p) => IDENTIFIER.test(p));
  if (!ok) {
    const form = options.qualified ? 'a table name such as "orders" or "app.orders"' : 'a column name';
    throw new ConfigError(`${field} must be ${form}: letters, digits and "_", not starting with a digit, at most 63 characters; got ${JSON.stringify(name)}`);
  }
  return name as string;
}

/** Values every driver takes the same way; objects and arrays as JSON text. */
export function commonValue(value: unknown): SqlValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return value;
  if (value instanceof Date || value instanceof Uint8Array) return value;
  return JSON.stringify(value);
}
