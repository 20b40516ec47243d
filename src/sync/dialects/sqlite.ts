/**
 * SQLite target: one better-sqlite3 handle (ours from a `sqlite:` URL, or the caller's). Each transaction
 * is `BEGIN IMMEDIATE`, which takes the database's write lock at once, so the token check and the writes
 * of one page are serialised against every other process. Transactions of one handle are queued, since
 * statements of a synchronous handle shared by two syncs would otherwise interleave.
 *
 * Non-guarantees: better-sqlite3 is synchronous; waiting for another process's write lock blocks the
 * event loop for up to the busy timeout (`lockTimeout` for a handle we open).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { SyncTargetError } from '../errors.js';
import { commonValue, quoteIdentifier, valueTuples, type SqlDialect, type SqlTx, type SqlValue, type SyncStatements } from './dialect.js';
import { loadDriver } from '../../core/driver.js';

const q = (name: string) => quoteIdentifier(name, '"');
const p = () => '?';

export const sqliteStatements: SyncStatements = {
  createCursorTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT PRIMARY KEY,
      cursor_value TEXT,
      token INTEGER NOT NULL DEFAULT 0,
      updated_at_ms INTEGER NOT NULL,
      node TEXT
    )`,
  createRejectsTable: (t) =>
    `CREATE TABLE IF NOT EXISTS ${q(t)} (
      name TEXT NOT NULL,
      fingerprint TEXT NOT NULL,
      record_key TEXT,
      reason TEXT NOT NULL,
      raw TEXT NOT NULL,
      first_seen_ms INTEGER NOT NULL,
      last_seen_ms INTEGER NOT NULL,
      seen INTEGER NOT NULL DEFAULT 1,
      PRIMARY KEY (name, fingerprint)
    )`,
  probeTarget: (t) => `SELECT ${t.columns.map(q).join(', ')} FROM ${q(t.target)} WHERE 1 = 0`,
  // Inserts nothing, but ON CONFLICT (key) is checked when the statement is planned: it fails unless a
  // primary key or unique index covers exactly the key columns.
  probeKey: (t) => ({
    sql: `INSERT INTO ${q(t.target)} (${t.key.map(q).join(', ')}) SELECT ${t.key.map(() => 'NULL').join(', ')} WHERE 0 ON CONFLICT (${t.key.map(q).join(', ')}) DO NOTHING`,
    params: [],
  }),
  insertCursorIfAbsent: (t) => `INSERT INTO ${q(t)} (name, cursor_value, token, updated_at_ms) VALUES (?, NULL, 0, ?) ON CONFLICT (name) DO NOTHING`,
  // No FOR UPDATE in SQLite: BEGIN IMMEDIATE already holds the database's write lock until commit.
  lockCursor: (t) => `SELECT cursor_value, CAST(token AS TEXT) AS token, node FROM ${q(t)} WHERE name = ?`,
  // token <= ?: the fence. A newer owner's token in the row makes this match nothing.
  updateCursor: (t) => `UPDATE ${q(t)} SET cursor_value = ?, token = ?, updated_at_ms = ?, node = ? WHERE name = ? AND token <= ?`,
  upsertRows: (t, count) => {
    const updates = t.columns.filter((c) => !t.key.includes(c)).map((c) => `${q(c)} = excluded.${q(c)}`);
    const onConflict =
      updates.length === 0
        ? 'DO NOTHING'
        : // WHERE on the version: a stale copy of a row (a replayed page) never rolls a newer one back.
          `DO UPDATE SET ${updates.join(', ')}${t.version ? ` WHERE ${q(t.target)}.${q(t.version)} <= excluded.${q(t.version)}` : ''}`;
    return `INSERT INTO ${q(t.target)} (${t.columns.map(q).join(', ')}) VALUES ${valueTuples(count, t.columns.length, p)} ON CONFLICT (${t.key.map(q).join(', ')}) ${onConflict}`;
  },
  upsertRejects: (t, count) =>
    `INSERT INTO ${q(t)} (name, fingerprint, record_key, reason, raw, first_seen_ms, last_seen_ms) VALUES ${valueTuples(count, 7, p)}
     ON CONFLICT (name, fingerprint) DO UPDATE SET reason = excluded.reason, last_seen_ms = excluded.last_seen_ms, seen = ${q(t)}.seen + 1`,
};

export interface SqliteTargetOptions {
  readonly db: BetterSqlite3.Database;
  readonly owned: boolean;
  readonly label: string;
}

/** Handles shared by several syncs share one queue. */
const queues = new WeakMap<BetterSqlite3.Database, { tail: Promise<unknown> }>();

export class SqliteDialect implements SqlDialect {
  readonly kind = 'sqlite' as const;
  readonly statements = sqliteStatements;
  /** SQLite's default limit since 3.32. */
  readonly maxParams = 32_766;
  readonly #options: SqliteTargetOptions;
  readonly #prepared = new Map<string, BetterSqlite3.Statement>();

  constructor(options: SqliteTargetOptions) {
    this.#options = options;
  }

  /** Opens (creating if needed) the file a `sqlite:PATH` or `sqlite://PATH` URL names. */
  static async fromUrl(url: string, lockTimeoutMs: number, label: string): Promise<SqliteDialect> {
    const file = decodeURIComponent(url.replace(/^sqlite:(\/\/)?/i, '').split('?')[0] ?? '');
    const { default: Database } = await loadDriver('better-sqlite3', 'http sync (sqlite target)', () => import('better-sqlite3'));
    let db: BetterSqlite3.Database;
    try {
      db = new Database(file, { timeout: lockTimeoutMs });
      db.pragma('journal_mode = WAL');
      // FULL: a committed page (rows and cursor) survives power loss, not only a process crash.
      db.pragma('synchronous = FULL');
    } catch (error) {
      throw new SyncTargetError(`${label}: target sqlite: cannot open ${JSON.stringify(file)}: ${(error as Error).message}`, { cause: error });
    }
    return new SqliteDialect({ db, owned: true, label });
  }

  value(value: unknown): SqlValue {
    const v = commonValue(value);
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (v instanceof Date) return v.toISOString();
    return v;
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const db = this.#options.db;
    let queue = queues.get(db);
    if (!queue) queues.set(db, (queue = { tail: Promise.resolve() }));
    const run = queue.tail.then(() => this.#transaction(fn));
    queue.tail = run.catch(() => undefined);
    return run;
  }

  async exec(sql: string): Promise<void> {
    this.#guard(() => this.#options.db.exec(sql));
  }

  async close(): Promise<void> {
    if (this.#options.owned && this.#options.db.open) this.#options.db.close();
  }

  async #transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const db = this.#options.db;
    this.#guard(() => db.exec('BEGIN IMMEDIATE'));
    try {
      const tx: SqlTx = {
        rows: async (sql, params) => this.#guard(() => this.#statement(sql).all(...params) as Record<string, unknown>[]),
        write: async (sql, params) => this.#guard(() => this.#statement(sql).run(...params).changes),
      };
      const result = await fn(tx);
      this.#guard(() => db.exec('COMMIT'));
      return result;
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw error;
    }
  }

  #statement(sql: string): BetterSqlite3.Statement {
    let statement = this.#prepared.get(sql);
    if (!statement) {
      // Upserts differ by row count; a page size or two of them is all a sync ever prepares, but bound it anyway.
      if (this.#prepared.size >= 64) this.#prepared.clear();
      statement = this.#options.db.prepare(sql);
      this.#prepared.set(sql, statement);
    }
    return statement;
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      const code = (error as { code?: string }).code;
      throw new SyncTargetError(`${this.#options.label}: target sqlite: ${code ? `${code}: ` : ''}${(error as Error).message}`, { cause: error });
    }
  }
}
