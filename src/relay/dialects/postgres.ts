/**
 * PostgreSQL: a `pg.Pool` (one connection per transaction, at most `poolSize`) and, for the publisher's
 * election, a session-level advisory lock held on a connection of its own — released by the server the
 * moment that connection ends, so a crashed publisher's successor takes over at once. The same connection
 * LISTENs for the NOTIFY that applications' transactions send when they wrote outbox rows, so the
 * publisher wakes at their commit instead of at its next poll.
 */
import type { Client, Pool, PoolClient, PoolConfig } from 'pg';
import { redactUrl } from '../../core/redact.js';
import { RelayDatabaseError } from '../errors.js';
import { columns, ensureRelaySchema, relaySql, type PublisherLock, type QueryResult, type RelayDatabase, type RelayTx } from './dialect.js';
import { loadDriver } from '../../core/driver.js';

const DDL = [
  `CREATE TABLE IF NOT EXISTS relay_outbox (
    id BIGSERIAL PRIMARY KEY,
    target TEXT NOT NULL,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    changes INTEGER NOT NULL DEFAULT 1,
    created_at_ms BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_inbox (
    id CHAR(26) PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    at_ms BIGINT NOT NULL
  )`,
  'CREATE INDEX IF NOT EXISTS relay_inbox_at ON relay_inbox (at_ms)',
  `CREATE TABLE IF NOT EXISTS relay_versions (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (origin, k)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_seq (
    k TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS relay_held (
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (origin, k, seq)
  )`,
  `CREATE TABLE IF NOT EXISTS relay_parked (
    id CHAR(26) PRIMARY KEY,
    origin TEXT NOT NULL,
    k TEXT NOT NULL,
    seq BIGINT NOT NULL,
    statement TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL
  )`,
];

/** The NOTIFY channel that wakes the publisher when an application committed outbox rows. */
const OUTBOX_CHANNEL = 'baton_relay_outbox';

/** The advisory lock key (two int4) of the relay publisher: one per database. */
const PUBLISHER_LOCK = [0x62746e, 0x72656c] as const;

export const postgresRelaySql = relaySql({
  placeholder: (i) => `$${i}`,
  ddl: DDL,
  outboxHasChanges: "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'relay_outbox' AND column_name = 'changes'",
  // A batch carries each (origin, k) once (its last seq), so one row is never updated twice by one statement.
  upsertSeq: 'ON CONFLICT (origin, k) DO UPDATE SET seq = EXCLUDED.seq',
  // No DELETE … LIMIT in PostgreSQL: the bounded sub-select keeps each purge short.
  purgeInbox: "DELETE FROM relay_inbox WHERE id IN (SELECT id FROM relay_inbox WHERE at_ms < $1 AND status <> 'held' LIMIT $2)",
  // One array per column: the text is the same for any number of rows, so it is parsed once per connection
  // (a prepared statement) instead of once per batch with hundreds of placeholders. Not for outbox rows:
  // they are few per batch, and their bodies would be escaped into array literals character by character.
  rows: {
    deleteOutbox: (rows) => ({ sql: 'DELETE FROM relay_outbox WHERE id = ANY($1::bigint[])', values: columns(rows, 1) }),
    selectInbox: (rows) => ({ sql: 'SELECT id FROM relay_inbox WHERE id = ANY($1::bpchar[])', values: columns(rows, 1) }),
    insertInbox: (rows) => ({
      sql: 'INSERT INTO relay_inbox (id, origin, k, seq, status, at_ms) SELECT * FROM unnest($1::bpchar[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[])',
      values: columns(rows, 6),
    }),
    selectVersions: (rows) => ({
      sql: 'SELECT v.origin, v.k, v.seq FROM relay_versions v JOIN unnest($1::text[], $2::text[]) AS q(origin, k) ON v.origin = q.origin AND v.k = q.k',
      values: columns(rows, 2),
    }),
    upsertVersions: (rows) => ({
      sql: 'INSERT INTO relay_versions (origin, k, seq) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT (origin, k) DO UPDATE SET seq = EXCLUDED.seq',
      values: columns(rows, 3),
    }),
    selectHeld: (rows) => ({
      sql: 'SELECT h.origin, h.k, h.seq, h.body FROM relay_held h JOIN unnest($1::text[], $2::text[]) AS q(origin, k) ON h.origin = q.origin AND h.k = q.k ORDER BY h.seq',
      values: columns(rows, 2),
    }),
  },
});

const ignoreError = (): void => undefined;

/** Distinct statement texts prepared per database (per connection on the server). */
const MAX_PREPARED = 256;

/**
 * Worth retrying: connection (08), rollback (40: deadlock, serialization), resources (53), operator
 * intervention (57), system (58), lock not available; and what is wrong with the schema or the registry
 * rather than with one change — syntax error or access rule (42: missing table or column, no privilege),
 * unknown database or schema (3D, 3F) — since every change would fail alike: parking them all would empty
 * the stream, so the relay pauses until an operator fixes it. Everything else (23 constraints, 22 data) is
 * the change's own fault and parks it.
 */
function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true; // a network error, a timeout, a closed pool
  return /^(08|40|42|53|57|58|3D|3F)/.test(code) || code === '55P03' || code === '55006';
}

export interface PostgresRelayOptions {
  readonly url: string;
  /** Connections for transactions (one per partition consumer and one for the publisher is plenty). */
  readonly poolSize: number;
  /** A statement without an answer for this long fails (transient), and its connection is dropped. */
  readonly queryTimeoutMs: number;
}

export class PostgresRelayDatabase implements RelayDatabase {
  readonly kind = 'postgres' as const;
  readonly sql = postgresRelaySql;
  readonly label: string;
  readonly #pg: typeof import('pg');
  readonly #pool: Pool;
  readonly #options: PostgresRelayOptions;
  /** Statement texts prepared on the connections, and their names. */
  readonly #prepared = new Map<string, string>();
  /** Sockets held by {@link #cork} until the next tick. */
  readonly #corked = new WeakSet<object>();

  private constructor(pg: typeof import('pg'), options: PostgresRelayOptions) {
    this.#pg = pg;
    this.#options = options;
    this.label = `postgres ${redactUrl(options.url)}`;
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: Math.min(10_000, options.queryTimeoutMs),
      idleTimeoutMillis: 30_000,
      query_timeout: options.queryTimeoutMs,
      keepAlive: true,
      // Prepared statements keep their parse but are planned at each run with the values at hand: the
      // generic plan of a prepared `id = ANY($1)` made while relay_inbox was empty (a new node) kept
      // scanning it whole as it grew — 5× the CPU of the whole relay chain within 10 s at 5,000 changes/s.
      options: '-c plan_cache_mode=force_custom_plan',
      // Queries issued together are written at once and answered in order (pg's pipeline mode): a relay batch's
      // statements cost a few round trips instead of one each. Nothing here keeps a portal open.
      pipeline: true,
    } as PoolConfig);
    // An idle client's error would otherwise crash the process; the pool drops it and the next checkout reconnects.
    this.#pool.on('error', () => undefined);
  }

  /** Loads `pg` now (and only now). Connects lazily: the first statement opens the first connection. */
  static async open(options: PostgresRelayOptions): Promise<PostgresRelayDatabase> {
    const module = await loadDriver('pg', 'relay (postgres database)', () => import('pg'));
    const pg = (module.default ?? module) as typeof import('pg');
    return new PostgresRelayDatabase(pg, options);
  }

  async transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T> {
    const client = await this.#connect();
    let broken: Error | undefined;
    try {
      // Not awaited alone: pipelined, BEGIN goes out with the transaction's first statements, in order;
      // if it fails, so do they, and its error is the one thrown.
      const begin = this.#query(client, 'BEGIN');
      begin.catch(() => undefined);
      const result = await fn({ query: (sql, values) => this.#query(client, sql, values) }).finally(() => begin);
      await this.#query(client, 'COMMIT');
      return result;
    } catch (error) {
      // A failed rollback means the connection is gone: release it as broken so the pool drops it.
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw error;
    } finally {
      this.#release(client, broken);
    }
  }

  async query(sql: string, values: readonly unknown[] = []): Promise<QueryResult> {
    const client = await this.#connect();
    let broken: Error | undefined;
    try {
      return await this.#query(client, sql, values);
    } catch (error) {
      if ((error as RelayDatabaseError).transient) broken = error as Error;
      throw error;
    } finally {
      this.#release(client, broken);
    }
  }

  ensureSchema(): Promise<void> {
    return ensureRelaySchema(this);
  }

  async takeSeqs(tx: RelayTx, counts: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    // One atomic statement (rows taken in the order given); the row locks it takes serialise concurrent
    // emits of these keys until commit.
    const { rows } = await tx.query(
      'INSERT INTO relay_seq (k, seq) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT (k) DO UPDATE SET seq = relay_seq.seq + EXCLUDED.seq RETURNING k, seq',
      [[...counts.keys()], [...counts.values()]],
    );
    return new Map(rows.map((row) => [String(row.k), Number(row.seq)]));
  }

  async notifyOutboxWritten(tx: RelayTx): Promise<void> {
    // Delivered at commit, and not at all on rollback; several in one transaction are folded into one.
    await tx.query(`SELECT pg_notify('${OUTBOX_CHANNEL}', '')`);
  }

  async tryPublisherLock(): Promise<PublisherLock | undefined> {
    const client: Client = new this.#pg.Client({ connectionString: this.#options.url, connectionTimeoutMillis: 10_000, keepAlive: true });
    const lost = new AbortController();
    // Attached before connect(): an unhandled 'error' event would crash the process.
    client.on('error', (error) => lost.abort(this.wrap(error, 'publisher lock connection')));
    client.on('end', () => lost.abort(new RelayDatabaseError(`${this.label}: publisher lock connection ended`, true)));
    try {
      await client.connect();
      const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS got', [...PUBLISHER_LOCK]);
      if (rows[0]?.got !== true) {
        await client.end().catch(() => undefined);
        return undefined;
      }
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined); // already failing: the connect error is what we report
      throw this.wrap(error, 'publisher lock');
    }
    return {
      signal: lost.signal,
      onOutboxWritten: (listener) => {
        client.on('notification', (message) => {
          if (message.channel === OUTBOX_CHANNEL) listener();
        });
      },
      // Ending the session releases the advisory lock.
      release: async () => {
        lost.abort(new RelayDatabaseError(`${this.label}: publisher lock released`, false));
        await client.end().catch(() => undefined);
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
    return (cause as { code?: string } | null)?.code === '23505';
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
  }

  /** Checks a client out. The caller must release it with {@link #release}. */
  async #connect(): Promise<PoolClient> {
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.wrap(error, 'connect');
    }
    // The pool removes its own 'error' listener while a client is checked out, and pg emits 'error' (besides
    // failing the query) when the connection drops: without a listener that would crash the process.
    client.on('error', ignoreError);
    return client;
  }

  /**
   * Holds the connection's writes until the microtasks queued now have run: the queries a batch sends
   * together (pipelined) leave in one write instead of one system call each — on loopback, the writes
   * were the relay's largest cost. Uses pg's socket (`connection.stream`); without one it does nothing.
   */
  #cork(client: PoolClient): void {
    const stream = (client as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
    if (typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function' || this.#corked.has(stream)) return;
    stream.cork();
    this.#corked.add(stream);
    // After the microtasks queued now: a batch's loop issues its queries in one run of the microtask queue.
    process.nextTick(() => {
      this.#corked.delete(stream);
      stream.uncork?.();
    });
  }

  #release(client: PoolClient, broken: Error | undefined): void {
    client.removeListener('error', ignoreError);
    client.release(broken);
  }

  /**
   * The prepared-statement name of a statement text: the server parses it once per connection instead of
   * at every execution. Bounded: past {@link MAX_PREPARED} texts, statements go unnamed.
   */
  #nameOf(sql: string): string | undefined {
    let name = this.#prepared.get(sql);
    if (name === undefined && this.#prepared.size < MAX_PREPARED) this.#prepared.set(sql, (name = `baton_relay_${this.#prepared.size}`));
    return name;
  }

  async #query(client: PoolClient, sql: string, values: readonly unknown[] = []): Promise<QueryResult> {
    this.#cork(client);
    try {
      const name = values.length > 0 ? this.#nameOf(sql) : undefined;
      const result = name === undefined ? await client.query(sql, values as unknown[]) : await client.query({ name, text: sql, values: values as unknown[] });
      return { rows: result.rows as Record<string, unknown>[], affected: result.rowCount ?? 0 };
    } catch (error) {
      throw this.wrap(error, 'query');
    }
  }
}
