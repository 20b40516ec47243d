/**
 * The port between the relay and one database: transactions, the relay's own tables and their statements,
 * the publisher's lock, and the judgement of whether an error is worth retrying. The connection is the SQL
 * layer's (src/sql/, opened by ../database.ts); each database keeps here only what is its own, a
 * {@link RelayDialect} (postgres.ts, mysql.ts, sqlite.ts): its statements, its sequence numbers, its
 * publisher lock.
 *
 * The relay's tables (created by {@link RelayDatabase.ensureSchema}, all prefixed `relay_`):
 * - `relay_outbox` (id, target, part, body, changes, created_at_ms): bundles of envelopes to publish, in
 *   id order (`body` a JSON array of `changes` envelopes, or one envelope in rows of an earlier version); a
 *   row is deleted only after the broker confirmed it;
 * - `relay_inbox` (id, origin, k, seq, status, at_ms): one row per change received, whatever became of it
 *   (`applied`, `held`, `parked`, `skipped`, `stale`); its primary key is the dedupe; rows older than the
 *   relay's `inboxRetention` are purged (a copy arriving later still finds its key's version has passed);
 * - `relay_versions` (origin, k, seq): the last sequence number applied per origin and key;
 * - `relay_seq` (k, seq): this node's own counters, for changes it originates;
 * - `relay_held` (origin, k, seq, body, at_ms): changes that arrived before an earlier one of their key;
 * - `relay_parked` (id, origin, k, seq, statement, reason, body, at_ms): changes that could not be applied.
 *
 * Guarantees every adapter keeps: `transaction()` commits all of `fn`'s statements or none and rethrows
 * what `fn` threw after rolling back; every error that leaves an adapter is a {@link RelayDatabaseError}
 * whose `transient` says whether a retry may succeed; values always travel as parameters.
 */
import type { Clock } from '../../core/clock.js';
import type { SqlTuning } from '../../sql/open.js';
import { placeholder, placeholderList, valueTuples } from '../../sql/placeholders.js';
import type { SqlKind } from '../../sql/schemes.js';
import type { SqlUrl } from '../../sql/url.js';
import type { DialectKind } from '../statements.js';
import type { RelayDatabaseError } from '../errors.js';

export interface QueryResult {
  readonly rows: Record<string, unknown>[];
  /** Rows written (INSERT/UPDATE/DELETE), 0 for a SELECT. */
  readonly affected: number;
}

/** Statements inside one transaction. */
export interface RelayTx {
  query(sql: string, values?: readonly unknown[]): Promise<QueryResult>;
}

/** The publisher's hold on a database: `signal` aborts when it is lost (the lock's connection broke). */
export interface PublisherLock {
  readonly signal: AbortSignal;
  /** Where the database can tell (PostgreSQL LISTEN): calls `listener` when a transaction wrote outbox rows. */
  onOutboxWritten?(listener: () => void): void;
  release(): Promise<void>;
}

export interface RelayDatabase {
  readonly kind: DialectKind;
  /** Names the database in messages, with its password redacted. */
  readonly label: string;
  readonly sql: RelaySql;
  /** Runs `fn` in one transaction. @throws RelayDatabaseError, or what `fn` throws (after a rollback). */
  transaction<T>(fn: (tx: RelayTx) => Promise<T>): Promise<T>;
  /** One statement on its own (autocommit). */
  query(sql: string, values?: readonly unknown[]): Promise<QueryResult>;
  /** Creates the relay's tables when missing. */
  ensureSchema(): Promise<void>;
  /** Takes the one-publisher-per-database lock without waiting; undefined when another process holds it. */
  tryPublisherLock(): Promise<PublisherLock | undefined>;
  /** Where the database can (PostgreSQL NOTIFY): tells the publisher, at commit, that `tx` wrote outbox rows. */
  notifyOutboxWritten?(tx: RelayTx): Promise<void>;
  /**
   * Takes the next `count` sequence numbers of each key this node originates, in one statement inside the
   * emit's transaction, and returns the last number taken per key. The keys' rows stay locked until the
   * transaction ends, which orders concurrent emits of one key. `counts` must list keys in sorted order
   * (a fixed lock order keeps two emitting transactions from deadlocking on each other's keys).
   */
  takeSeqs(tx: RelayTx, counts: ReadonlyMap<string, number>): Promise<Map<string, number>>;
  /** Wraps a driver error into a RelayDatabaseError with the right `transient` flag. */
  wrap(error: unknown, what: string): RelayDatabaseError;
  /** True for a duplicate-key error (a concurrent relay of the same node inserted the same inbox row). */
  isUniqueViolation(error: unknown): boolean;
  close(): Promise<void>;
}

/** A statement and its values. */
export interface Statement {
  readonly sql: string;
  readonly values: unknown[];
}

/**
 * A statement over many rows, built from each row's values (as listed in its comment): a tuple per row in
 * one dialect, an array per column in another. Callers keep `rows` to a few hundred (parameter limits).
 */
export type RowsStatement = (rows: readonly (readonly unknown[])[]) => Statement;

/** The relay's statements in one dialect: SQL texts and builders, with the values they take in their comment. */
export interface RelaySql {
  readonly ddl: readonly string[];
  /** (): a row when `relay_outbox` has its `changes` column (tables made before bundles do not). */
  readonly outboxHasChanges: string;
  /** (target, part, body, changes, created_at_ms) per row. */
  readonly insertOutbox: RowsStatement;
  /** (limit): the oldest rows: id (as text), target, part, body, changes. */
  readonly readOutbox: string;
  /** (after_id, limit): the oldest rows with an id above `after_id`, as {@link readOutbox}. */
  readonly readOutboxAfter: string;
  /** (id) per row. */
  readonly deleteOutbox: RowsStatement;
  /** (id) per row: the ids already in the inbox. */
  readonly selectInbox: RowsStatement;
  /** (id, origin, k, seq, status, at_ms) per row. */
  readonly insertInbox: RowsStatement;
  /** (status, id). */
  readonly updateInboxStatus: string;
  /** (origin, k) per row: origin, k, seq. */
  readonly selectVersions: RowsStatement;
  /** (origin, k, seq) per row: sets seq. */
  readonly upsertVersions: RowsStatement;
  /** (origin, k) per row: origin, k, seq (as number), body of held changes. */
  readonly selectHeld: RowsStatement;
  /** (origin, k, seq, body, at_ms). */
  readonly insertHeld: string;
  /** (origin, k, seq). */
  readonly deleteHeld: string;
  /** (id, origin, k, seq, statement, reason, body, at_ms). */
  readonly insertParked: string;
  /** (): the number of changes as `n` in each relay table that an operator watches (`t` names it); `oldest_outbox_ms` for 'outbox'. */
  readonly depths: string;
  /** (before_ms, limit): deletes up to `limit` inbox rows older than `before_ms`, never a held change's. */
  readonly purgeInbox: string;
}

/**
 * What one database does its own way, besides the SQL connection: one object per opened database (it may
 * keep state, such as prepared statement names).
 */
export interface RelayDialect<U extends SqlUrl = SqlUrl> {
  readonly sql: RelaySql;
  /** How the SQL layer's pool is tuned for the relay, if at all. */
  readonly tuning?: SqlTuning;
  /** See {@link RelayDatabase.takeSeqs}. */
  takeSeqs(tx: RelayTx, counts: ReadonlyMap<string, number>): Promise<Map<string, number>>;
  /** See {@link RelayDatabase.notifyOutboxWritten}. */
  notifyOutboxWritten?(tx: RelayTx): Promise<void>;
  /** See {@link RelayDatabase.tryPublisherLock}. */
  tryPublisherLock(context: PublisherLockContext<U>): Promise<PublisherLock | undefined>;
}

/** What a publisher lock is taken with: the database's URL (for a connection of its own), the database, a clock. */
export interface PublisherLockContext<U extends SqlUrl = SqlUrl> {
  readonly url: U;
  /** For a connection of the lock's own, unless the URL says otherwise. */
  readonly connectTimeoutMs: number;
  readonly db: RelayDatabase;
  readonly clock: Clock;
}

/** Builds the statements shared by every dialect from its placeholder and upsert syntax. */
export function relaySql(options: {
  readonly kind: SqlKind;
  readonly ddl: readonly string[];
  readonly outboxHasChanges: string;
  /** The clause that makes an insert of an existing (origin, k) overwrite seq. */
  readonly upsertSeq: string;
  readonly purgeInbox: string;
  /** Builders of this dialect's own (arrays instead of tuples, say). */
  readonly rows?: Partial<Pick<RelaySql, 'insertOutbox' | 'deleteOutbox' | 'selectInbox' | 'insertInbox' | 'selectVersions' | 'upsertVersions' | 'selectHeld'>>;
}): RelaySql {
  const p = placeholder(options.kind);
  const tuples = (count: number, width: number) => valueTuples(options.kind, count, width);
  const list = (count: number) => placeholderList(options.kind, count);
  const pairs = (count: number) =>
    Array.from({ length: count }, (_, i) => `(origin = ${p(2 * i + 1)} AND k = ${p(2 * i + 2)})`).join(' OR ');
  const flat = (rows: readonly (readonly unknown[])[]) => rows.flat();
  const overrides = options.rows ?? {};
  return {
    ddl: options.ddl,
    outboxHasChanges: options.outboxHasChanges,
    insertOutbox: overrides.insertOutbox ?? ((rows) => ({ sql: `INSERT INTO relay_outbox (target, part, body, changes, created_at_ms) VALUES ${tuples(rows.length, 5)}`, values: flat(rows) })),
    // Oldest first: the publisher sends in commit-ish order; the receivers' per-key sequence numbers fix the rest.
    readOutbox: `SELECT id, target, part, body, changes FROM relay_outbox ORDER BY id LIMIT ${p(1)}`,
    readOutboxAfter: `SELECT id, target, part, body, changes FROM relay_outbox WHERE id > ${p(1)} ORDER BY id LIMIT ${p(2)}`,
    deleteOutbox: overrides.deleteOutbox ?? ((rows) => ({ sql: `DELETE FROM relay_outbox WHERE id IN (${list(rows.length)})`, values: flat(rows) })),
    selectInbox: overrides.selectInbox ?? ((rows) => ({ sql: `SELECT id FROM relay_inbox WHERE id IN (${list(rows.length)})`, values: flat(rows) })),
    insertInbox: overrides.insertInbox ?? ((rows) => ({ sql: `INSERT INTO relay_inbox (id, origin, k, seq, status, at_ms) VALUES ${tuples(rows.length, 6)}`, values: flat(rows) })),
    updateInboxStatus: `UPDATE relay_inbox SET status = ${p(1)} WHERE id = ${p(2)}`,
    selectVersions: overrides.selectVersions ?? ((rows) => ({ sql: `SELECT origin, k, seq FROM relay_versions WHERE ${pairs(rows.length)}`, values: flat(rows) })),
    upsertVersions: overrides.upsertVersions ?? ((rows) => ({ sql: `INSERT INTO relay_versions (origin, k, seq) VALUES ${tuples(rows.length, 3)} ${options.upsertSeq}`, values: flat(rows) })),
    selectHeld: overrides.selectHeld ?? ((rows) => ({ sql: `SELECT origin, k, seq, body FROM relay_held WHERE ${pairs(rows.length)} ORDER BY seq`, values: flat(rows) })),
    insertHeld: `INSERT INTO relay_held (origin, k, seq, body, at_ms) VALUES (${list(5)})`,
    deleteHeld: `DELETE FROM relay_held WHERE origin = ${p(1)} AND k = ${p(2)} AND seq = ${p(3)}`,
    insertParked: `INSERT INTO relay_parked (id, origin, k, seq, statement, reason, body, at_ms) VALUES (${list(8)})`,
    purgeInbox: options.purgeInbox,
    depths: `SELECT 'outbox' AS t, COALESCE(SUM(changes), 0) AS n, MIN(created_at_ms) AS oldest FROM relay_outbox UNION ALL SELECT 'held', COUNT(*), MIN(at_ms) FROM relay_held UNION ALL SELECT 'parked', COUNT(*), MIN(at_ms) FROM relay_parked`,
  };
}

/** Creates the relay's tables when missing, and adds what tables made by an earlier version lack. */
export async function ensureRelaySchema(db: Pick<RelayDatabase, 'query' | 'sql'>): Promise<void> {
  for (const ddl of db.sql.ddl) await db.query(ddl);
  const hasChanges = async () => (await db.query(db.sql.outboxHasChanges)).rows.length > 0;
  if (await hasChanges()) return;
  try {
    // Rows written before bundles hold one envelope each: 1 is right for them.
    await db.query('ALTER TABLE relay_outbox ADD COLUMN changes INTEGER NOT NULL DEFAULT 1');
  } catch (error) {
    if (!(await hasChanges())) throw error; // else another relay added it meanwhile
  }
}

/** The values of rows as one array per column (for `unnest` and `= ANY`). */
export function columns(rows: readonly (readonly unknown[])[], width: number): unknown[][] {
  const out: unknown[][] = Array.from({ length: width }, () => new Array<unknown>(rows.length));
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as readonly unknown[];
    for (let c = 0; c < width; c++) (out[c] as unknown[])[r] = row[c];
  }
  return out;
}

