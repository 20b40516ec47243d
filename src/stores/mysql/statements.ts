/**
 * Every SQL statement of the MySQL/MariaDB store, one function each. Values are sent as `?` parameters
 * (escaped by mysql2), table names come from a validated prefix.
 *
 * Conventions that every statement relies on:
 * - Time is the server's: {@link NOW_MS} is evaluated by the server inside the statement (UTC session time
 *   zone, millisecond precision), never sent by the client. `NOW(3)` is fixed for a whole statement.
 * - Keys and cluster names are VARBINARY: byte order, exact comparison, no collation or PAD SPACE surprises
 *   (with a `_ci` collation "Prod" and "prod" would be one cluster). A prefix scan is the byte range
 *   `[prefix, prefix + 0xFF)`: no UTF-8 string contains the byte 0xFF.
 * - "Live" means `expires_at > NOW_MS`. A session whose owner process is provably gone is not filtered
 *   out by reads; the reaper and `tryAcquire` delete it (see {@link crashedCondition}).
 * - Change bumps come last in a transaction, always in the order sessions → owners → records, so two
 *   transactions never take the change rows in opposite orders.
 */
import { ConfigError } from '../../core/errors.js';

export interface Sql {
  readonly sql: string;
  readonly values: readonly unknown[];
}

export type ChangeScope = 'sessions' | 'owners' | 'records';

/** Server wall time in ms since the epoch, computed by the server. Needs `time_zone = '+00:00'` (no DST). */
export const NOW_MS = 'CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)';

/** Longest key the schema stores, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

export interface Tables {
  readonly meta: string;
  readonly sessions: string;
  readonly owners: string;
  readonly records: string;
  readonly changes: string;
}

export function tableNames(prefix: string): Tables {
  if (!/^[A-Za-z0-9_]{0,32}$/.test(prefix)) {
    throw new ConfigError(`mysql store: table prefix may hold up to 32 letters, digits and '_', got ${JSON.stringify(prefix)}`);
  }
  return {
    meta: `\`${prefix}meta\``,
    sessions: `\`${prefix}sessions\``,
    owners: `\`${prefix}owners\``,
    records: `\`${prefix}records\``,
    changes: `\`${prefix}changes\``,
  };
}

/** How this handle's connection judges other connections; see {@link crashedCondition}. */
export interface CrashView {
  /** False: TTL only, for this handle's sessions and for the sessions it judges. */
  readonly enabled: boolean;
  /** `@@hostname:@@port` of the server this connection talks to. */
  readonly serverName: string;
  /** Server start, in seconds since the epoch (NOW − Uptime), ±1 s. */
  readonly serverBoot: number;
  /** The account holds PROCESS, so PROCESSLIST shows every account's connections, not only its own. */
  readonly seesAllConnections: boolean;
  /** `CONNECTION_ID()` of this connection (the id its sessions are bound to). */
  readonly connId: number;
}

/** The byte range of keys starting with `prefix`, as [from, to). */
export function prefixRange(prefix: string): [Buffer, Buffer] {
  const from = Buffer.from(prefix, 'utf8');
  return [from, Buffer.concat([from, Buffer.from([0xff])])];
}

function bin(value: string): Buffer {
  return Buffer.from(value, 'utf8');
}

/**
 * True for a session whose connection no longer exists on this very server run: its client process died
 * (the kernel closed its socket and the server ended the thread), or its connection was cut.
 *
 * Each clause keeps a false "dead" impossible:
 * - `server_name` and `server_boot` (±2 s) must match the judge's own server: after a restart or a
 *   fail-over to another server, connection ids start again and say nothing about the old ones.
 * - Without PROCESS, PROCESSLIST lists only the judge's own account: sessions of other accounts are then
 *   judged by TTL alone.
 * - A connection id is never reused within one server run, so "absent" stays true once seen; the check
 *   may read PROCESSLIST outside the row locks and still be right.
 */
export function crashedCondition(view: CrashView): Sql {
  if (!view.enabled) return { sql: 'FALSE', values: [] };
  return {
    sql: `(s.conn_id IS NOT NULL AND s.server_name = ? AND ABS(s.server_boot - ?) <= 2
           AND (? OR s.conn_account = CURRENT_USER())
           AND NOT EXISTS (SELECT 1 FROM information_schema.PROCESSLIST p WHERE p.ID = s.conn_id))`,
    values: [view.serverName, view.serverBoot, view.seesAllConnections],
  };
}

// ---- connection set-up ----

/** Per-connection settings every statement depends on. */
export function sessionSettings(lockWaitTimeoutS: number): string {
  return [
    // UTC: UNIX_TIMESTAMP(NOW(3)) is then exact; in a DST zone the repeated autumn hour would be ambiguous.
    `SET SESSION time_zone = '+00:00'`,
    // Strict: an over-long key is an error, never silently truncated; no NO_BACKSLASH_ESCAPES, which the
    // driver's escaping relies on; NO_ENGINE_SUBSTITUTION: the tables are InnoDB or creation fails.
    `SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'`,
    // Locking reads below rely on InnoDB's REPEATABLE READ (DML reads of other tables take shared locks).
    `SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ`,
    // A node paused inside a transaction must not block every other node for InnoDB's default 50 s.
    `SET SESSION innodb_lock_wait_timeout = ${Math.max(1, Math.round(lockWaitTimeoutS))}`,
  ].join('; ');
}

export function connectionIdentity(): Sql {
  return {
    sql: `SELECT CONNECTION_ID() AS conn_id, CONCAT(@@hostname, ':', @@port) AS server_name,
            UNIX_TIMESTAMP(NOW(3)) AS now_s,
            EXISTS (SELECT 1 FROM information_schema.USER_PRIVILEGES
                    WHERE PRIVILEGE_TYPE = 'PROCESS'
                      AND GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''',
                                           SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')) AS sees_all;
          SHOW GLOBAL STATUS LIKE 'Uptime'`,
    values: [],
  };
}

/**
 * The user-level lock every crash-detecting connection holds for its whole life, named by its own
 * connection id (unique within a server run, so no two connections, of any deployment, share a name). The
 * server releases it the moment the connection's thread ends — a crashed process, a cut connection — which
 * is what a crash watch blocked on it hears. Lock names are server-wide: the prefix keeps them apart from
 * the application's own.
 */
export function connectionLockName(connId: number | string): string {
  return `baton-conn-${connId}`;
}

/** Taken once per connection, right after connecting; 0 s: nobody else can hold a name with our id. */
export function holdConnectionLock(): Sql {
  return { sql: `SELECT GET_LOCK(CONCAT('baton-conn-', CONNECTION_ID()), 0) AS held`, values: [] };
}

/**
 * Blocks until the lock is free or `timeoutS` passed; when it was had, it is given back in the same
 * statement, so a watcher holds it for microseconds. 1: the holder's connection ended (or it never held
 * it); 0: the wait timed out.
 */
export function awaitConnectionLock(name: string, timeoutS: number): Sql {
  return { sql: `SELECT IF(GET_LOCK(?, ?) = 1, RELEASE_LOCK(?), 0) AS freed`, values: [name, timeoutS, name] };
}

/**
 * The crash watch's target: the connection of the next live, judgeable session of the cluster after
 * `ownConnId` in id order, wrapping round (a ring: every bound session has one watcher, each watcher one
 * target). Only sessions on this server run, visible to this account, are judgeable.
 */
export function ringNext(t: Tables, cluster: string, ownConnId: number, view: CrashView): Sql {
  return {
    sql: `SELECT conn_id FROM ${t.sessions}
          WHERE cluster = ? AND conn_id IS NOT NULL AND conn_id <> ? AND expires_at > ${NOW_MS}
            AND server_name = ? AND ABS(server_boot - ?) <= 2 AND (? OR conn_account = CURRENT_USER())
          ORDER BY conn_id > ? DESC, conn_id LIMIT 1`,
    values: [bin(cluster), ownConnId, view.serverName, view.serverBoot, view.seesAllConnections, ownConnId],
  };
}

export function serverTime(): Sql {
  return { sql: `SELECT ${NOW_MS} AS now`, values: [] };
}

// ---- change rows ----

/** Creates the cluster's change rows once, so every later bump is a plain single-row UPDATE. */
export function ensureChangeRows(t: Tables, cluster: string): Sql {
  return {
    sql: `INSERT IGNORE INTO ${t.changes} (cluster, scope, version) VALUES (?, 'sessions', 0), (?, 'owners', 0), (?, 'records', 0)`,
    values: [bin(cluster), bin(cluster), bin(cluster)],
  };
}

export function readChanges(t: Tables, cluster: string): Sql {
  return { sql: `SELECT scope, version FROM ${t.changes} WHERE cluster = ?`, values: [bin(cluster)] };
}

export function bumpChange(t: Tables, cluster: string, scope: ChangeScope): Sql {
  return { sql: `UPDATE ${t.changes} SET version = version + 1 WHERE cluster = ? AND scope = ?`, values: [bin(cluster), scope] };
}

/**
 * Bumps only when the statement just before it (in the same batch) touched a row. ROW_COUNT() is saved
 * first in a user variable, the documented idiom: reading it inside another DML statement is not
 * specified to return the previous statement's count on every server version.
 */
export function bumpChangeIfChanged(t: Tables, cluster: string, scope: ChangeScope): Sql {
  return {
    sql: `SET @baton_changed = ROW_COUNT();
          UPDATE ${t.changes} SET version = version + 1 WHERE cluster = ? AND scope = ? AND @baton_changed > 0`,
    values: [bin(cluster), scope],
  };
}

// ---- sessions ----

export function insertSession(
  t: Tables,
  cluster: string,
  id: string,
  info: string,
  ttlMs: number,
  view: CrashView,
): Sql {
  // The session is bound to this connection (CONNECTION_ID()) only when crash detection is on.
  const bind = view.enabled ? 'CONNECTION_ID(), CURRENT_USER(), ?, ?' : 'NULL, NULL, NULL, NULL';
  return {
    sql: `INSERT INTO ${t.sessions}
            (cluster, id, info, ttl_ms, opened_at, renewed_at, expires_at, conn_id, conn_account, server_name, server_boot)
          VALUES (?, ?, ?, ?, ${NOW_MS}, ${NOW_MS}, ${NOW_MS} + ?, ${bind})`,
    values: [bin(cluster), bin(id), info, ttlMs, ttlMs, ...(view.enabled ? [view.serverName, view.serverBoot] : [])],
  };
}

/**
 * One atomic UPDATE: the `expires_at > NOW` clause makes renewal of an expired session fail, so once
 * expired a session never comes back; a reaped session has no row, so it fails too. It also re-binds the
 * session to the current connection (after a reconnect), which only a live session can do.
 */
export function renewSession(t: Tables, cluster: string, id: string, view: CrashView): Sql {
  const bind = view.enabled
    ? 'conn_id = CONNECTION_ID(), conn_account = CURRENT_USER(), server_name = ?, server_boot = ?'
    : 'conn_id = NULL, conn_account = NULL, server_name = NULL, server_boot = NULL';
  return {
    sql: `UPDATE ${t.sessions} SET renewed_at = ${NOW_MS}, expires_at = ${NOW_MS} + ttl_ms, ${bind}
          WHERE cluster = ? AND id = ? AND expires_at > ${NOW_MS}`,
    values: [...(view.enabled ? [view.serverName, view.serverBoot] : []), bin(cluster), bin(id)],
  };
}

/** A live session's published info (its declared tasks changed); an expired one stays dead. */
export function updateSessionInfo(t: Tables, cluster: string, id: string, info: string): Sql {
  return {
    sql: `UPDATE ${t.sessions} SET info = ? WHERE cluster = ? AND id = ? AND expires_at > ${NOW_MS}`,
    values: [info, bin(cluster), bin(id)],
  };
}

/**
 * After a reconnection: binds a live session to the new connection without extending it (its keeper
 * alone decides renewals). Until this runs, a peer may judge the session crashed — the window documented
 * in mysql-store.ts; this keeps it as short as the reconnection.
 */
export function rebindSession(t: Tables, cluster: string, id: string, view: CrashView): Sql {
  return {
    sql: `UPDATE ${t.sessions} SET conn_id = CONNECTION_ID(), conn_account = CURRENT_USER(), server_name = ?, server_boot = ?
          WHERE cluster = ? AND id = ? AND conn_id IS NOT NULL AND expires_at > ${NOW_MS}`,
    values: [view.serverName, view.serverBoot, bin(cluster), bin(id)],
  };
}

export function deleteSession(t: Tables, cluster: string, id: string): Sql {
  return { sql: `DELETE FROM ${t.sessions} WHERE cluster = ? AND id = ?`, values: [bin(cluster), bin(id)] };
}

export function deleteOwnersOfSession(t: Tables, cluster: string, sessionId: string): Sql {
  return { sql: `DELETE FROM ${t.owners} WHERE cluster = ? AND session_id = ?`, values: [bin(cluster), bin(sessionId)] };
}

export function liveSessions(t: Tables, cluster: string): Sql {
  return {
    sql: `SELECT id, info, ttl_ms, ${NOW_MS} - opened_at AS age_ms, expires_at - ${NOW_MS} AS expires_in_ms
          FROM ${t.sessions} WHERE cluster = ? AND expires_at > ${NOW_MS} ORDER BY id`,
    values: [bin(cluster)],
  };
}

/** Every cluster with a session, an owner or a record row (UNION removes duplicates); for operators. */
export function clustersHeld(t: Tables): Sql {
  return {
    sql: `SELECT cluster FROM ${t.sessions} UNION SELECT cluster FROM ${t.owners} UNION SELECT cluster FROM ${t.records}`,
    values: [],
  };
}

/** Candidates for the reaper: a plain read; each one is re-checked under its row lock before deletion. */
export function deadSessionCandidates(t: Tables, cluster: string, view: CrashView): Sql {
  const crashed = crashedCondition(view);
  return {
    sql: `SELECT s.id FROM ${t.sessions} s WHERE s.cluster = ? AND (s.expires_at <= ${NOW_MS} OR ${crashed.sql}) LIMIT 100`,
    values: [bin(cluster), ...crashed.values],
  };
}

/**
 * FOR UPDATE locks the session row, so a renewal (which needs the same row lock) cannot slip in between
 * this check and the deletion that follows in the same transaction.
 */
export function lockDeadSession(t: Tables, cluster: string, id: string, view: CrashView): Sql {
  const crashed = crashedCondition(view);
  return {
    sql: `SELECT s.id FROM ${t.sessions} s
          WHERE s.cluster = ? AND s.id = ? AND (s.expires_at <= ${NOW_MS} OR ${crashed.sql}) FOR UPDATE`,
    values: [bin(cluster), bin(id), ...crashed.values],
  };
}

// ---- ownership ----

/**
 * Locks the requesting session's row: until commit nobody can close, reap or renew it, so "the requester
 * is live" stays true while its ownership row is written.
 */
export function lockRequester(t: Tables, cluster: string, sessionId: string): Sql {
  return {
    sql: `SELECT expires_at > ${NOW_MS} AS live FROM ${t.sessions} WHERE cluster = ? AND id = ? FOR UPDATE`,
    values: [bin(cluster), bin(sessionId)],
  };
}

/**
 * Locks the key's ownership row AND its holder's session row (FOR UPDATE locks every row a join reads):
 * the holder cannot renew, close or be reaped by someone else while this transaction decides whether the
 * holder is live. A missing row is not locked here; the later plain INSERT then fails with a duplicate
 * key (or InnoDB reports a deadlock on the gap lock) for all but one concurrent acquirer.
 */
export function lockOwner(t: Tables, cluster: string, key: string, view: CrashView): Sql {
  const crashed = crashedCondition(view);
  return {
    sql: `SELECT o.k, o.session_id, o.token, o.acquired_at, s.id AS holder_session,
                 s.expires_at > ${NOW_MS} AS live, ${crashed.sql} AS crashed
          FROM ${t.owners} o LEFT JOIN ${t.sessions} s ON s.cluster = o.cluster AND s.id = o.session_id
          WHERE o.cluster = ? AND o.k = ? FOR UPDATE`,
    values: [...crashed.values, bin(cluster), bin(key)],
  };
}

export function deleteOwner(t: Tables, cluster: string, key: string): Sql {
  return { sql: `DELETE FROM ${t.owners} WHERE cluster = ? AND k = ?`, values: [bin(cluster), bin(key)] };
}

/**
 * The next fencing token, as the new value of the counter row: one more than the counter, but never below
 * the server's clock in microseconds. With `innodb_flush_log_at_trx_commit = 1` (the default) a committed
 * value is durable and the counter alone keeps tokens growing across restarts. The clock floor keeps them
 * growing where the last commits can be lost — `innodb_flush_log_at_trx_commit = 0 or 2` and an OS crash,
 * a fail-over to an asynchronous replica: every token was at most its issue time in µs (a counter
 * cannot run ahead of the clock below a million acquisitions a second), so the first token after the
 * restart is above every token issued before the crash, unless the server's clock stepped back by more
 * than the outage lasted.
 */
const NEXT_TOKEN = 'LAST_INSERT_ID(GREATEST(value + 1, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)))';

/**
 * One counter row for every key of every cluster. The UPDATE holds its row lock until commit, so tokens
 * are handed out in commit order; LAST_INSERT_ID(expr) keeps the new value for this connection only.
 * See {@link NEXT_TOKEN} for why tokens keep growing across server restarts and crashes.
 */
/**
 * Locks the token counter's row for the rest of the transaction: batches of acquisitions (tryAcquireMany)
 * take it before any owner row, so two of them never hold each other's gap locks (a deadlock that
 * repeated until the retries ran out when two batches raced for the same keys).
 */
export function lockTokenSequence(t: Tables): Sql {
  return { sql: `SELECT value FROM ${t.meta} WHERE name = 'token_seq' FOR UPDATE`, values: [] };
}

export function nextToken(t: Tables): Sql {
  return { sql: `UPDATE ${t.meta} SET value = ${NEXT_TOKEN} WHERE name = 'token_seq'`, values: [] };
}

/** Plain INSERT (no upsert): of two acquirers that both found the key free, the second gets ER_DUP_ENTRY. */
export function insertOwner(t: Tables, cluster: string, key: string, sessionId: string): Sql {
  return {
    sql: `INSERT INTO ${t.owners} (cluster, k, session_id, token, acquired_at) VALUES (?, ?, ?, LAST_INSERT_ID(), ${NOW_MS})`,
    values: [bin(cluster), bin(key), bin(sessionId)],
  };
}

export function lastToken(): Sql {
  return { sql: 'SELECT LAST_INSERT_ID() AS token', values: [] };
}

/**
 * An acquisition of a free key, decided and written by the server in one batch (sent inside one
 * transaction, see MysqlConnection.transactionInOneTrip), so that the common case is one round trip:
 * 1. The token counter row is locked (UPDATE) and bumped only when the requester's session is live and
 *    the key has no ownership row. Both conditions are subqueries of a DML statement, which InnoDB reads
 *    with shared locks under REPEATABLE READ, held to commit: the requester cannot be closed, reaped or
 *    renewed, nor the key inserted by anyone else, until the ownership row below is committed. The counter
 *    row's lock also queues concurrent acquirers: the next one re-reads the key after this commit.
 * 2. The ownership row is inserted with the new token, and the `owners` change bumped, only if 1 did.
 * 3. Result sets: `{ taken, token, live }` (live = the requester's session), then, only when not taken,
 *    the key's current row with its holder's liveness (a plain read; as in {@link lockOwner}).
 * Not taken and held by a dead or crashed holder: the caller takes the locking path ({@link lockOwner})
 * that reaps it. Statement indexes: see {@link TAKE_RESULT} and {@link TAKE_HOLDER}.
 */
export function takeIfFree(t: Tables, cluster: string, key: string, sessionId: string, view: CrashView): Sql {
  const crashed = crashedCondition(view);
  return {
    sql: `UPDATE ${t.meta} SET value = ${NEXT_TOKEN}
          WHERE name = 'token_seq'
            AND EXISTS (SELECT 1 FROM ${t.sessions} s WHERE s.cluster = ? AND s.id = ? AND s.expires_at > ${NOW_MS})
            AND NOT EXISTS (SELECT 1 FROM ${t.owners} o WHERE o.cluster = ? AND o.k = ?);
          SET @baton_taken = ROW_COUNT();
          INSERT INTO ${t.owners} (cluster, k, session_id, token, acquired_at)
            SELECT ?, ?, ?, LAST_INSERT_ID(), ${NOW_MS} FROM DUAL WHERE @baton_taken > 0;
          UPDATE ${t.changes} SET version = version + 1 WHERE cluster = ? AND scope = 'owners' AND @baton_taken > 0;
          SELECT @baton_taken AS taken, LAST_INSERT_ID() AS token,
                 (SELECT s.expires_at > ${NOW_MS} FROM ${t.sessions} s WHERE s.cluster = ? AND s.id = ?) AS live;
          SELECT o.k, o.session_id, o.token, o.acquired_at, s.id AS holder_session,
                 s.expires_at > ${NOW_MS} AS live, ${crashed.sql} AS crashed
          FROM ${t.owners} o LEFT JOIN ${t.sessions} s ON s.cluster = o.cluster AND s.id = o.session_id
          WHERE o.cluster = ? AND o.k = ? AND @baton_taken = 0`,
    values: [
      bin(cluster), bin(sessionId), bin(cluster), bin(key),
      bin(cluster), bin(key), bin(sessionId),
      bin(cluster),
      bin(cluster), bin(sessionId),
      ...crashed.values, bin(cluster), bin(key),
    ],
  };
}

/** Index of `{ taken, token, live }` among {@link takeIfFree}'s results. */
export const TAKE_RESULT = 4;
/** Index of the key's current row (when not taken) among {@link takeIfFree}'s results. */
export const TAKE_HOLDER = 5;

/** One atomic DELETE: only the exact token's holder row goes. */
export function releaseOwner(t: Tables, cluster: string, key: string, token: bigint): Sql {
  return { sql: `DELETE FROM ${t.owners} WHERE cluster = ? AND k = ? AND token = ?`, values: [bin(cluster), bin(key), token] };
}

export function liveHolder(t: Tables, cluster: string, key: string): Sql {
  return {
    sql: `SELECT o.k, o.session_id, o.token, o.acquired_at
          FROM ${t.owners} o JOIN ${t.sessions} s ON s.cluster = o.cluster AND s.id = o.session_id
          WHERE o.cluster = ? AND o.k = ? AND s.expires_at > ${NOW_MS}`,
    values: [bin(cluster), bin(key)],
  };
}

export function liveHoldersByPrefix(t: Tables, cluster: string, prefix: string): Sql {
  const [from, to] = prefixRange(prefix);
  return {
    sql: `SELECT o.k, o.session_id, o.token, o.acquired_at
          FROM ${t.owners} o JOIN ${t.sessions} s ON s.cluster = o.cluster AND s.id = o.session_id
          WHERE o.cluster = ? AND o.k >= ? AND o.k < ? AND s.expires_at > ${NOW_MS} ORDER BY o.k`,
    values: [bin(cluster), from, to],
  };
}

/**
 * The fencing check of a guarded write. FOR UPDATE locks the guard's ownership row and its session row
 * until the write commits: no takeover, release, close or reap of the guard can interleave, so the check
 * and the write are one atomic decision (a plain read could see a token that a concurrent takeover is
 * replacing, and let a zombie's write land after the new owner's).
 */
export function lockGuard(t: Tables, cluster: string, key: string): Sql {
  return {
    sql: `SELECT o.token, s.expires_at > ${NOW_MS} AS live
          FROM ${t.owners} o JOIN ${t.sessions} s ON s.cluster = o.cluster AND s.id = o.session_id
          WHERE o.cluster = ? AND o.k = ? FOR UPDATE`,
    values: [bin(cluster), bin(key)],
  };
}

// ---- records ----

export function getRecord(t: Tables, cluster: string, key: string): Sql {
  return { sql: `SELECT k, value, version, updated_at FROM ${t.records} WHERE cluster = ? AND k = ?`, values: [bin(cluster), bin(key)] };
}

/**
 * Unconditional write in one statement. The row lock of ON DUPLICATE KEY UPDATE makes `version + 1`
 * atomic; LAST_INSERT_ID(version + 1) hands the new version back in the OK packet (insertId). A fresh
 * insert reports one affected row (an update two): the version is then 1.
 */
export function upsertRecord(t: Tables, cluster: string, key: string, json: string): Sql {
  return {
    sql: `INSERT INTO ${t.records} (cluster, k, value, version, updated_at) VALUES (?, ?, ?, 1, ${NOW_MS})
          ON DUPLICATE KEY UPDATE value = ?, updated_at = ${NOW_MS}, version = LAST_INSERT_ID(version + 1)`,
    values: [bin(cluster), bin(key), json, json],
  };
}

/** Unique insert: of concurrent inserts of one key, exactly one succeeds; the others get ER_DUP_ENTRY. */
export function insertRecord(t: Tables, cluster: string, key: string, json: string): Sql {
  return {
    sql: `INSERT INTO ${t.records} (cluster, k, value, version, updated_at) VALUES (?, ?, ?, 1, ${NOW_MS})`,
    values: [bin(cluster), bin(key), json],
  };
}

/** Compare-and-set in one UPDATE: the version is compared on the latest committed row, under its lock. */
export function updateRecordIfVersion(t: Tables, cluster: string, key: string, json: string, version: number): Sql {
  return {
    sql: `UPDATE ${t.records} SET value = ?, version = version + 1, updated_at = ${NOW_MS}
          WHERE cluster = ? AND k = ? AND version = ?`,
    values: [json, bin(cluster), bin(key), version],
  };
}

export function deleteRecord(t: Tables, cluster: string, key: string, version: number | undefined): Sql {
  return version === undefined
    ? { sql: `DELETE FROM ${t.records} WHERE cluster = ? AND k = ?`, values: [bin(cluster), bin(key)] }
    : { sql: `DELETE FROM ${t.records} WHERE cluster = ? AND k = ? AND version = ?`, values: [bin(cluster), bin(key), version] };
}

export function deleteRecordsBefore(t: Tables, cluster: string, prefix: string, beforeKey: string): Sql {
  const [from, to] = prefixRange(prefix);
  return {
    sql: `DELETE FROM ${t.records} WHERE cluster = ? AND k >= ? AND k < ? AND k < ?`,
    values: [bin(cluster), from, to, bin(beforeKey)],
  };
}

export function listRecords(t: Tables, cluster: string, prefix: string, reverse: boolean, limit: number | undefined): Sql {
  const [from, to] = prefixRange(prefix);
  const limitClause = limit === undefined ? '' : ' LIMIT ?';
  return {
    sql: `SELECT k, value, version, updated_at FROM ${t.records}
          WHERE cluster = ? AND k >= ? AND k < ? ORDER BY k ${reverse ? 'DESC' : 'ASC'}${limitClause}`,
    values: [bin(cluster), from, to, ...(limit === undefined ? [] : [limit])],
  };
}
