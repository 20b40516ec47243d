/**
 * SQLite as a {@link SqlDatabase}: one better-sqlite3 handle (ours from a URL, or one its owner passed
 * in). Every call on a handle goes through one queue — shared by every SqliteDatabase over that handle —
 * so the awaits inside a transaction never let another caller's statement into it; `BEGIN IMMEDIATE`
 * takes the database's write lock at once, serialising writers across processes. Statements are
 * prepared once per handle (a bounded cache). See database.ts for the guarantees.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { busyTimeoutOf, type SqlDatabase, type SqlDatabaseSettings, type SqlResult, type SqlSession } from '../database.js';
import { toSqlError } from '../errors.js';
import { openSqliteFile } from './open.js';
import type { SqliteUrl } from './url.js';

export interface SqliteDatabaseOptions {
  readonly label: string;
  /** True when this object opened the handle, and so closes it. */
  readonly owned: boolean;
}

/** Statements prepared per handle; batch statements differ by row count, so the cache is bounded. */
const MAX_PREPARED = 256;

interface HandleState {
  tail: Promise<unknown>;
  readonly prepared: Map<string, BetterSqlite3.Statement>;
}

/** One queue and one statement cache per handle, whoever wraps it. */
const handles = new WeakMap<BetterSqlite3.Database, HandleState>();

/** Opens (creating if needed) the file `url` names, loading `better-sqlite3` now. @throws SqlError. */
export async function openSqliteDatabase(url: SqliteUrl, settings: Pick<SqlDatabaseSettings, 'label' | 'lockTimeoutMs' | 'queryTimeoutMs'>): Promise<SqliteDatabase> {
  const db = await openSqliteFile(url.file, { busyTimeoutMs: busyTimeoutOf(settings), label: settings.label });
  return new SqliteDatabase(db, { label: settings.label, owned: true });
}

export class SqliteDatabase implements SqlDatabase {
  readonly kind = 'sqlite' as const;
  readonly label: string;
  readonly #db: BetterSqlite3.Database;
  readonly #owned: boolean;
  readonly #state: HandleState;

  constructor(db: BetterSqlite3.Database, options: SqliteDatabaseOptions) {
    this.#db = db;
    this.label = options.label;
    this.#owned = options.owned;
    let state = handles.get(db);
    if (!state) handles.set(db, (state = { tail: Promise.resolve(), prepared: new Map() }));
    this.#state = state;
  }

  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T> {
    return this.#queued(async () => {
      this.#run('BEGIN IMMEDIATE');
      try {
        const result = await fn({ query: async (sql, values) => this.#run(sql, values) });
        this.#run('COMMIT');
        return result;
      } catch (error) {
        // What failed is what the caller needs to see; a rollback that fails too (the handle closed) adds nothing.
        if (this.#db.open && this.#db.inTransaction) this.#rollback();
        throw error;
      }
    });
  }

  query(sql: string, values: readonly unknown[] = []): Promise<SqlResult> {
    return this.#queued(async () => this.#run(sql, values));
  }

  async close(): Promise<void> {
    await this.#state.tail;
    if (this.#owned && this.#db.open) this.#db.close();
  }

  #rollback(): void {
    try {
      this.#db.exec('ROLLBACK');
    } catch {
      // See the caller: the original failure is rethrown.
    }
  }

  /** Runs `fn` after every earlier call on this handle has settled. */
  #queued<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#state.tail.then(fn);
    this.#state.tail = run.catch(() => undefined);
    return run;
  }

  #run(sql: string, values: readonly unknown[] = []): SqlResult {
    try {
      const statement = this.#statement(sql);
      const params = values.map(bindable);
      if (statement.reader) return { rows: statement.all(...params) as Record<string, unknown>[], affected: 0 };
      return { rows: [], affected: statement.run(...params).changes };
    } catch (error) {
      throw toSqlError('sqlite', this.label, error);
    }
  }

  #statement(sql: string): BetterSqlite3.Statement {
    const prepared = this.#state.prepared;
    let statement = prepared.get(sql);
    if (!statement) {
      if (prepared.size >= MAX_PREPARED) prepared.clear();
      statement = this.#db.prepare(sql);
      prepared.set(sql, statement);
    }
    return statement;
  }
}

/** better-sqlite3 binds numbers, bigints, strings, buffers and null; booleans become 1/0, dates ISO-8601 text. */
function bindable(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  return value;
}
