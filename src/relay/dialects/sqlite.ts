/**
 * SQLite: one better-sqlite3 handle per relay database, in WAL mode with `synchronous = FULL` (a
 * committed batch survives power loss). Every statement of the handle goes through one queue, so the
 * awaits inside a transaction never let another caller's statement into it; `BEGIN IMMEDIATE` takes the
 * database's write lock at once, serialising writers across processes (the busy timeout bounds the wait).
 *
 * The publisher's election is a lease row (`relay_publisher`) naming the holder process (host, pid,
 * start time): another process takes it over when the holder is provably gone (same host, pid free or
 * reused — SQLite files are local to one host) or has not renewed it for 10 s; the holder renews it every
 * second and learns it lost the lease when its renewal matches no row.
 *
 * Non-guarantees: better-sqlite3 is synchronous; a statement waiting for another process's write lock
 * blocks the event loop for up to the busy timeout.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Clock } from '../../core/clock.js';
import { randomId } from '../../core/ids.js';
import { currentProcessIdentity, processState, type ProcessIdentity } from '../../core/process-identity.js';
import { RelayDatabaseError } from '../errors.js';
import { ensureRelaySchema, relaySql, type PublisherLock, type QueryResult, type RelayDatabase, type RelayTx } from './dialect.js';
import { loadDriver } from '../../core/driver.js';

const DDL = [
  `CREATE TABLE IF NOT EXISTS relay_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    changes INTEGER NOT NULL DEFAULT 1,
    created_at_ms INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_inbox (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS relay_inbox_at ON relay_inbox (at_ms)',
  `CREATE TABLE IF NOT EXISTS relay_versions (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (origin, k)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_seq (
    k TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_held (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (origin, k, seq)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_parked (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq INTEGER NOT NULL,
    statement TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    at_ms INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_publisher (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    renewed_at_ms INTEGER NOT NULL
  )`,
];

export const sqliteRelaySql = relaySql({
  placeholder: () => '?',
  ddl: DDL,
  outboxHasChanges: "SELECT 1 FROM pragma_table_info('relay_outbox') WHERE name = 'changes'",
  upsertSeq: 'ON CONFLICT (origin, k) DO UPDATE SET seq = excluded.seq',
  purgeInbox: "DELETE FROM relay_inbox WHERE id IN (SELECT id FROM relay_inbox WHERE at_ms < ? AND status <> 'held' LIMIT ?)",
});

const LEASE_RENEW_MS = 1000;
const LEASE_EXPIRES_MS = 10_000;

/**
 * Worth retrying: a busy or locked database, I/O trouble, a full disk; and schema faults every change would
 * hit alike (no such table or column, a syntax error in the registry's SQL). Constraint violations and
 * type mismatches are the change's own fault.
 */
function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return true;
  if (/^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|NOMEM|PROTOCOL|READONLY|INTERRUPT)/.test(code)) return true;
  return code === 'SQLITE_ERROR' && /no such (table|column|function)|syntax error/i.test((error as Error).message);
}

export interface SqliteRelayOptions {
  readonly url: string;
  readonly queryTimeoutMs: number;
  readonly clock: Clock;
}

export class SqliteRelayDatabase implements RelayDatabase {
  readonly kind = 'sqlite' as const;
  readonly sql = sqliteRelaySql;
  readonly label: string;
  readonly #db: BetterSqlite3.Database;
  readonly #clock: Clock;
  readonly #prepared = new Map<string, BetterSqlite3.Statement>();
  /** Tells two handles of one process apart in the lease row. */
  readonly #instance = randomId();
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(db: BetterSqlite3.Database, label: string, clock: Clock) {
    this.#db = db;
    this.label = label;
    this.#clock = clock;
  }

  /** Opens (creating if needed) the file of a `sqlite:PATH` or `sqlite://PATH` URL; loads the driver now. */
  static async open(options: SqliteRelayOptions): Promise<SqliteRelayDatabase> {
    const file = decodeURIComponent(options.url.replace(/^sqlite:(\/\/)?/i, '').split('?')[0] ?? '');
    const label = `sqlite ${file}`;
    const { default: Database } = await loadDriver('better-sqlite3', 'relay (sqlite database)', () => import('better-sqlite3'));
    try {
      const db = new Database(file, { timeout: options.queryTimeoutMs });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      return new SqliteRelayDatabase(db, label, options.clock);
    } catch (error) {
      throw new RelayDatabaseError(`${label}: cannot open: ${(error as Error).message}`, true, { cause: error });
    }
  }

  transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T> {
    return this.#queued(async () => {
      this.#run('BEGIN IMMEDIATE');
      try {
        const result = await fn({ query: async (sql, values) => this.#run(sql, values) });
        this.#run('COMMIT');
        return result;
      } catch (error) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
        throw error;
      }
    });
  }

  query(sql: string, values: readonly unknown[] = []): Promise<QueryResult> {
    return this.#queued(async () => this.#run(sql, values));
  }

  ensureSchema(): Promise<void> {
    return ensureRelaySchema(this);
  }

  async takeSeqs(tx: RelayTx, counts: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    // BEGIN IMMEDIATE already holds the write lock: nobody else can take these keys' numbers meanwhile.
    const tuples = [...counts.keys()].map(() => '(?, ?)').join(', ');
    const { rows } = await tx.query(
      `INSERT INTO relay_seq (k, seq) VALUES ${tuples} ON CONFLICT (k) DO UPDATE SET seq = relay_seq.seq + excluded.seq RETURNING k, seq`,
      [...counts].flat(),
    );
    return new Map(rows.map((row) => [String(row.k), Number(row.seq)]));
  }

  async tryPublisherLock(): Promise<PublisherLock | undefined> {
    const me = JSON.stringify({ ...currentProcessIdentity(), instance: this.#instance });
    const taken = await this.transaction(async (tx) => {
      const [row] = (await tx.query('SELECT holder, renewed_at_ms FROM relay_publisher WHERE id = 1')).rows;
      if (row) {
        const holder = String(row.holder);
        const fresh = this.#clock.now() - Number(row.renewed_at_ms) < LEASE_EXPIRES_MS;
        if (holder !== me && fresh && processState(JSON.parse(holder) as ProcessIdentity) !== 'gone') return false;
      }
      await tx.query('INSERT INTO relay_publisher (id, holder, renewed_at_ms) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, renewed_at_ms = excluded.renewed_at_ms', [me, Math.floor(this.#clock.now())]);
      return true;
    });
    if (!taken) return undefined;
    const lost = new AbortController();
    let cancel = (): void => undefined;
    const renew = () => {
      cancel = this.#clock.setTimer(LEASE_RENEW_MS, () => {
        this.query('UPDATE relay_publisher SET renewed_at_ms = ? WHERE id = 1 AND holder = ?', [Math.floor(this.#clock.now()), me]).then(
          ({ affected }) => {
            if (affected === 0) lost.abort(new RelayDatabaseError(`${this.label}: publisher lease taken over`, true));
            else if (!lost.signal.aborted) renew();
          },
          (error: unknown) => lost.abort(this.wrap(error, 'publisher lease renewal')),
        );
      });
    };
    renew();
    return {
      signal: lost.signal,
      release: async () => {
        cancel();
        lost.abort(new RelayDatabaseError(`${this.label}: publisher lease released`, false));
        await this.query('DELETE FROM relay_publisher WHERE id = 1 AND holder = ?', [me]).catch(() => undefined);
      },
    };
  }

  wrap(error: unknown, what: string): RelayDatabaseError {
    if (error instanceof RelayDatabaseError) return error;
    const code = (error as { code?: string } | null)?.code;
    return new RelayDatabaseError(`${this.label}: ${what}: ${code ? `${code}: ` : ''}${(error as Error)?.message ?? String(error)}`, isTransient(error), { cause: error });
  }

  isUniqueViolation(error: unknown): boolean {
    const cause = error instanceof RelayDatabaseError ? error.cause : error;
    return /^SQLITE_CONSTRAINT_(PRIMARYKEY|UNIQUE)$/.test(String((cause as { code?: string } | null)?.code));
  }

  async close(): Promise<void> {
    await this.#tail;
    if (this.#db.open) this.#db.close();
  }

  /** Runs `fn` after every earlier call of this handle has settled. */
  #queued<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #run(sql: string, values: readonly unknown[] = []): QueryResult {
    try {
      const statement = this.#statement(sql);
      const params = values.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
      if (statement.reader) return { rows: statement.all(...params) as Record<string, unknown>[], affected: 0 };
      return { rows: [], affected: statement.run(...params).changes };
    } catch (error) {
      throw this.wrap(error, 'query');
    }
  }

  #statement(sql: string): BetterSqlite3.Statement {
    let statement = this.#prepared.get(sql);
    if (!statement) {
      // Batch statements differ by row count; bound the cache anyway.
      if (this.#prepared.size >= 256) this.#prepared.clear();
      statement = this.#db.prepare(sql);
      this.#prepared.set(sql, statement);
    }
    return statement;
  }
}
