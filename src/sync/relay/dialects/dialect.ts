/**
 * The port between the relay and one database: transactions, the relay's own tables and their statements,
 * the publisher's lock, and the judgement of whether an error is worth retrying. One adapter per database
 * (postgres.ts, mysql.ts), each loading its driver lazily.
 *
 * The relay's tables (created by {@link RelayDatabase.ensureSchema}, all prefixed `relay_`):
 * - `relay_outbox` (id, target, part, body, created_at_ms): envelopes to publish, in id order; a row is
 *   deleted only after the broker confirmed it;
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
import type { DialectKind } from '../statements.js';
import { RelayDatabaseError } from '../errors.js';

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

/** The relay's statements in one dialect: SQL text builders, with the values they take in their comment. */
export interface RelaySql {
  readonly ddl: readonly string[];
  /** (target, part, body, created_at_ms) × count. */
  insertOutbox(count: number): string;
  /** (limit): the oldest rows: id (as text), target, part, body. */
  readonly readOutbox: string;
  /** (after_id, limit): the oldest rows with an id above `after_id`, as {@link readOutbox}. */
  readonly readOutboxAfter: string;
  /** (id) × count. */
  deleteOutbox(count: number): string;
  /** (id) × count: the ids already in the inbox. */
  selectInbox(count: number): string;
  /** (id, origin, k, seq, status, at_ms) × count. */
  insertInbox(count: number): string;
  /** (status, id). */
  readonly updateInboxStatus: string;
  /** (origin, k) × count: origin, k, seq. */
  selectVersions(count: number): string;
  /** (origin, k, seq) × count: sets seq. */
  upsertVersions(count: number): string;
  /** (origin, k) × count: origin, k, seq (as number), body of held changes. */
  selectHeld(count: number): string;
  /** (origin, k, seq, body, at_ms). */
  readonly insertHeld: string;
  /** (origin, k, seq). */
  readonly deleteHeld: string;
  /** (id, origin, k, seq, statement, reason, body, at_ms). */
  readonly insertParked: string;
  /** (): the number of rows as `n` in each relay table that an operator watches (`t` names it); `oldest_outbox_ms` for 'outbox'. */
  readonly depths: string;
  /** (before_ms, limit): deletes up to `limit` inbox rows older than `before_ms`, never a held change's. */
  readonly purgeInbox: string;
}

/** Builds the statements shared by every dialect from its placeholder and upsert syntax. */
export function relaySql(options: {
  readonly placeholder: (i: number) => string;
  readonly ddl: readonly string[];
  /** The clause that makes an insert of an existing (origin, k) overwrite seq. */
  readonly upsertSeq: string;
  readonly purgeInbox: string;
}): RelaySql {
  const p = options.placeholder;
  const tuples = (count: number, width: number) => {
    const rows: string[] = [];
    for (let r = 0; r < count; r++) {
      const cells: string[] = [];
      for (let c = 0; c < width; c++) cells.push(p(r * width + c + 1));
      rows.push(`(${cells.join(', ')})`);
    }
    return rows.join(', ');
  };
  const list = (count: number) => Array.from({ length: count }, (_, i) => p(i + 1)).join(', ');
  const pairs = (count: number) =>
    Array.from({ length: count }, (_, i) => `(origin = ${p(2 * i + 1)} AND k = ${p(2 * i + 2)})`).join(' OR ');
  return {
    ddl: options.ddl,
    insertOutbox: (count) => `INSERT INTO relay_outbox (target, part, body, created_at_ms) VALUES ${tuples(count, 4)}`,
    // Oldest first: the publisher sends in commit-ish order; the receivers' per-key sequence numbers fix the rest.
    readOutbox: `SELECT id, target, part, body FROM relay_outbox ORDER BY id LIMIT ${p(1)}`,
    readOutboxAfter: `SELECT id, target, part, body FROM relay_outbox WHERE id > ${p(1)} ORDER BY id LIMIT ${p(2)}`,
    deleteOutbox: (count) => `DELETE FROM relay_outbox WHERE id IN (${list(count)})`,
    selectInbox: (count) => `SELECT id FROM relay_inbox WHERE id IN (${list(count)})`,
    insertInbox: (count) => `INSERT INTO relay_inbox (id, origin, k, seq, status, at_ms) VALUES ${tuples(count, 6)}`,
    updateInboxStatus: `UPDATE relay_inbox SET status = ${p(1)} WHERE id = ${p(2)}`,
    selectVersions: (count) => `SELECT origin, k, seq FROM relay_versions WHERE ${pairs(count)}`,
    upsertVersions: (count) => `INSERT INTO relay_versions (origin, k, seq) VALUES ${tuples(count, 3)} ${options.upsertSeq}`,
    selectHeld: (count) => `SELECT origin, k, seq, body FROM relay_held WHERE ${pairs(count)} ORDER BY seq`,
    insertHeld: `INSERT INTO relay_held (origin, k, seq, body, at_ms) VALUES (${list(5)})`,
    deleteHeld: `DELETE FROM relay_held WHERE origin = ${p(1)} AND k = ${p(2)} AND seq = ${p(3)}`,
    insertParked: `INSERT INTO relay_parked (id, origin, k, seq, statement, reason, body, at_ms) VALUES (${list(8)})`,
    purgeInbox: options.purgeInbox,
    depths: `SELECT 'outbox' AS t, COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM relay_outbox UNION ALL SELECT 'held', COUNT(*), MIN(at_ms) FROM relay_held UNION ALL SELECT 'parked', COUNT(*), MIN(at_ms) FROM relay_parked`,
  };
}

/** The password of a database URL replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}
