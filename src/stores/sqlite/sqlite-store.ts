/**
 * The SQLite store: the embedded default. Many processes on ONE host share one database file.
 *
 * Guarantees: the Store contract. Every primitive is one `BEGIN IMMEDIATE` transaction, so writers are
 * serialised by SQLite's lock; WAL lets readers run alongside. Session TTLs are measured with the host's
 * monotonic clock, shared by all its processes and immune to wall-clock changes. A crashed owner is
 * detected without waiting for its TTL: its session records pid, pid namespace, boot id and process start
 * time, and a process that provably no longer exists loses its session at once (pid reuse cannot fool
 * the start-time check). A reboot is detected because monotonic time goes backwards.
 *
 * Non-guarantees: the file must not be shared between hosts (network filesystems break SQLite locking
 * and the monotonic clock is per host); use a server store for several hosts. Calls block the event
 * loop for the duration of a statement (better-sqlite3 is synchronous), at most `busyTimeoutMs` when
 * another process holds the write lock.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Backoff } from '../../core/backoff.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { DriverMissingError, loadDriver } from '../../core/driver.js';
import { BatonError, ClosedError, SessionExpiredError, StoreUnavailableError } from '../../core/errors.js';
import { randomId } from '../../core/ids.js';
import type { NodeInfo } from '../../core/node-info.js';
import { processState, type ProcessIdentity } from '../../core/process-identity.js';
import type {
  AcquireResult,
  Change,
  Guard,
  Holder,
  ListOptions,
  SessionRecord,
  Store,
  StoredRecord,
  WriteCondition,
  WriteResult,
} from '../contract.js';
import { toSqlError } from '../../sql/errors.js';
import { openSqliteFile } from '../../sql/sqlite/open.js';
import { ChangeListeners } from '../change-listeners.js';
import { assertDistinctKeys } from '../many-keys.js';
import { migrate } from './schema.js';

export interface SqliteStoreOptions {
  /** Path of the database file; created with its schema when missing. Its directory must exist. */
  readonly file: string;
  readonly cluster: string;
  /** Store time (monotonic for TTLs, wall for timestamps) and poll timers. Default: the system clock. */
  readonly clock?: Clock;
  /**
   * How often watchers look for changes, in ms. Default 50: graceful hand-over well under 100 ms.
   * After a failed poll the next waits longer (doubling up to 2 s); the first that succeeds again says `any`.
   */
  readonly pollMs?: number;
  /** How often crashed processes are looked for, in ms. Default 200. */
  readonly crashCheckMs?: number;
  /**
   * How long a write waits for another process's write lock, in ms. Default 1000: the wait blocks the
   * event loop (better-sqlite3 is synchronous), so it must stay well below the session TTL.
   */
  readonly busyTimeoutMs?: number;
}

type ChangeScope = 'sessions' | 'owners' | 'records';

/** Ceiling of the pause after failed change polls (from `pollMs`, doubling): a failing file is not read 20 times a second. */
const POLL_BACKOFF_MAX_MS = 2000;

interface OwnerRow {
  key: string;
  session_id: string;
  token: bigint;
  /** A bigint too: the owner statements read every integer as one, for the token. */
  acquired_at: bigint;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly features = { crashDetection: true, watch: 'poll' } as const;
  readonly cluster: string;
  readonly file: string;
  readonly #db: BetterSqlite3.Database;
  readonly #clock: Clock;
  readonly #pollMs: number;
  readonly #crashCheckMs: number;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #listeners = new ChangeListeners();
  #seenChanges = new Map<string, number>();
  #cancelPoll: (() => void) | undefined;
  readonly #pollBackoff: Backoff;
  /** A poll failed since the last one that succeeded: changes may have been missed. */
  #pollFailed = false;
  #lastCrashCheck = -Infinity;
  #closed = false;

  private constructor(db: BetterSqlite3.Database, options: SqliteStoreOptions, file: string) {
    this.#db = db;
    this.file = file;
    this.cluster = options.cluster;
    this.#clock = options.clock ?? systemClock;
    this.#pollMs = options.pollMs ?? 50;
    this.#pollBackoff = new Backoff({ initialMs: this.#pollMs, maxMs: Math.max(this.#pollMs, POLL_BACKOFF_MAX_MS) });
    this.#crashCheckMs = options.crashCheckMs ?? 200;
    this.#sql = prepareStatements(db);
  }

  /** Opens (creating if needed) the database file. @throws StoreUnavailableError naming the path. */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const file = resolve(options.file);
    const directory = dirname(file);
    const label = `sqlite store ${JSON.stringify(options.file)}`;
    if (!existsSync(directory) || !statSync(directory).isDirectory()) {
      throw new StoreUnavailableError(`${label}: cannot open: directory ${directory} does not exist`);
    }
    let db: BetterSqlite3.Database;
    try {
      // WAL and synchronous = FULL: a claimed tick or committed checkpoint survives power loss, not only a crash.
      db = await openSqliteFile(file, { busyTimeoutMs: options.busyTimeoutMs ?? 1000, label });
    } catch (error) {
      if (error instanceof DriverMissingError) throw error; // its own code: the fix is an install, not the store
      throw new StoreUnavailableError((error as Error).message, { cause: error });
    }
    try {
      migrate(db, file);
      return new SqliteStore(db, options, file);
    } catch (error) {
      db.close();
      if (error instanceof BatonError) throw error; // STORE_SCHEMA: a newer baton's file
      throw new StoreUnavailableError(toSqlError('sqlite', `${label}: creating the schema`, error).message, { cause: error });
    }
  }

  async time(): Promise<number> {
    this.#check();
    return this.#clock.now();
  }

  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    const id = randomId();
    this.#write(() => {
      const now = this.#clock.monotonic();
      this.#sql.dropDeadSessions.run({ cluster: this.cluster, now });
      if (this.#sql.deleteOrphanOwners.run(this.cluster, this.cluster).changes > 0) this.#bump('owners');
      this.#sql.insertSession.run(this.cluster, id, JSON.stringify(info), JSON.stringify(info.process), ttlMs, now, now, now + ttlMs);
      this.#bump('sessions');
    });
    return { id };
  }

  async renewSession(sessionId: string): Promise<boolean> {
    return this.#write(() => {
      const now = this.#clock.monotonic();
      return this.#sql.renewSession.run({ cluster: this.cluster, id: sessionId, now }).changes === 1;
    });
  }

  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    return this.#write(() => {
      const now = this.#clock.monotonic();
      const updated = this.#sql.updateSessionInfo.run({ cluster: this.cluster, id: sessionId, now, info: JSON.stringify(info) }).changes === 1;
      if (updated) this.#bump('sessions');
      return updated;
    });
  }

  async closeSession(sessionId: string): Promise<void> {
    this.#write(() => this.#dropSession(sessionId));
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#check();
    const now = this.#clock.monotonic();
    const rows = this.#sql.liveSessions.all(this.cluster, now, now) as {
      id: string;
      info: string;
      ttl_ms: number;
      opened_at: number;
      expires_at: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      info: JSON.parse(r.info) as NodeInfo,
      ttlMs: r.ttl_ms,
      ageMs: now - r.opened_at,
      expiresInMs: r.expires_at - now,
    }));
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    return this.#write(() => this.#acquire(key, sessionId));
  }

  /** One transaction for all the keys: SQLite has no round trips, but each write transaction is a fsync. */
  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    assertDistinctKeys('sqlite store: tryAcquireMany', keys);
    if (keys.length === 0) return [];
    return this.#write(() => keys.map((key) => this.#acquire(key, sessionId)));
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    assertDistinctKeys('sqlite store: releaseMany', leases.map((l) => l.key));
    if (leases.length === 0) return [];
    return this.#write(() => leases.map(({ key, token }) => this.#release(key, token)));
  }

  /** Takes `key` inside the caller's write transaction (see {@link tryAcquire}). */
  #acquire(key: string, sessionId: string): AcquireResult {
    const now = this.#clock.monotonic();
    if (!this.#sql.sessionIsLive.get(this.cluster, sessionId, now, now)) {
      throw new SessionExpiredError(`sqlite store: session ${sessionId} is not live; cannot acquire "${key}"`);
    }
    const current = this.#sql.ownerWithSession.get(this.cluster, key) as
      | (OwnerRow & { process: string | null; expires_at: number | null; renewed_at: number | null })
      | undefined;
    if (current) {
      const sessionLive =
        current.expires_at !== null && current.expires_at > now && (current.renewed_at as number) <= now;
      if (sessionLive && current.session_id === sessionId) return { acquired: true, token: current.token };
      if (sessionLive && processState(JSON.parse(current.process as string) as ProcessIdentity) !== 'gone') {
        return { acquired: false, holder: toHolder(current) };
      }
      // The holder's session expired or its process is gone: it can never write again, so reap it.
      if (current.expires_at !== null) this.#dropSession(current.session_id);
      else this.#sql.deleteOwner.run(this.cluster, key);
    }
    const token = this.#sql.nextToken.get() as { value: bigint };
    this.#sql.insertOwner.run(this.cluster, key, sessionId, token.value, this.#clock.now());
    this.#bump('owners');
    return { acquired: true, token: token.value };
  }

  async release(key: string, token: bigint): Promise<boolean> {
    return this.#write(() => this.#release(key, token));
  }

  #release(key: string, token: bigint): boolean {
    const released = this.#sql.releaseOwner.run(this.cluster, key, token).changes === 1;
    if (released) this.#bump('owners');
    return released;
  }

  async holder(key: string): Promise<Holder | null> {
    this.#check();
    const now = this.#clock.monotonic();
    const row = this.#sql.liveHolder.get(this.cluster, key, now, now) as OwnerRow | undefined;
    return row ? toHolder(row) : null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    this.#check();
    const now = this.#clock.monotonic();
    const rows = this.#sql.liveHoldersByPrefix.all(this.cluster, prefix, prefixEnd(prefix), now, now) as OwnerRow[];
    return rows.map(toHolder);
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    this.#check();
    const row = this.#sql.getRecord.get(this.cluster, key) as RecordRow | undefined;
    return row ? toRecord<T>(row) : null;
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    const json = JSON.stringify(value);
    return this.#write((): WriteResult => {
      const refused = this.#refuse(key, condition);
      if (refused) return { ok: false, reason: refused };
      const row = this.#sql.upsertRecord.get({ cluster: this.cluster, key, value: json, now: this.#clock.now() }) as { version: number };
      this.#bump('records');
      return { ok: true, version: row.version };
    });
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    this.#check();
    const statement = options.reverse ? this.#sql.listRecordsDesc : this.#sql.listRecordsAsc;
    const rows = statement.all(this.cluster, prefix, prefixEnd(prefix), options.limit ?? -1) as RecordRow[];
    return rows.map((r) => toRecord<T>(r));
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    return this.#write(() => {
      if (this.#refuse(key, condition)) return false;
      const deleted = this.#sql.deleteRecord.run(this.cluster, key).changes === 1;
      if (deleted) this.#bump('records');
      return deleted;
    });
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    return this.#write(() => this.#sql.deleteRecordsBefore.run({ cluster: this.cluster, prefix, before: beforeKey }).changes);
  }

  async listClusters(): Promise<string[]> {
    this.#check();
    return (this.#sql.clusters.all() as { cluster: string }[]).map((r) => r.cluster);
  }

  watch(listener: (change: Change) => void): () => void {
    this.#check();
    const unsubscribe = this.#listeners.subscribe(listener, () => this.#stopPoll());
    if (!this.#cancelPoll) {
      this.#seenChanges = this.#readChanges();
      this.#schedulePoll();
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopPoll();
    this.#listeners.clear();
    this.#db.close();
  }

  #schedulePoll(delay = this.#pollMs): void {
    this.#cancelPoll = this.#clock.setTimer(delay, () => {
      if (this.#closed) return;
      let next = this.#pollMs;
      let recovered = false;
      try {
        this.#poll();
        recovered = this.#pollFailed;
        this.#pollFailed = false;
        this.#pollBackoff.reset();
      } catch {
        // Not reported here: the loops that watch make their own calls, which fail and report. A busy,
        // locked or unreadable file is read again after a back-off, not every pollMs, and the first poll
        // that succeeds says `any`.
        this.#pollFailed = true;
        next = this.#pollBackoff.next();
      }
      // The counters' difference misses nothing, but a crashed process's session may have been due for
      // reaping by a failed poll: watchers re-read everything once.
      if (recovered) this.#listeners.emit({ scope: 'any' });
      if (this.#cancelPoll) this.#schedulePoll(next);
    });
  }

  #stopPoll(): void {
    this.#cancelPoll?.();
    this.#cancelPoll = undefined;
  }

  #poll(): void {
    const now = this.#clock.monotonic();
    if (now - this.#lastCrashCheck >= this.#crashCheckMs) {
      this.#lastCrashCheck = now;
      this.#reapCrashedProcesses(now);
    }
    const changes = this.#readChanges();
    for (const [scope, version] of changes) {
      if (this.#seenChanges.get(scope) !== version) this.#listeners.emit({ scope: scope as ChangeScope });
    }
    this.#seenChanges = changes;
  }

  /** Closes the sessions of processes on this host that provably no longer exist (crash failover). */
  #reapCrashedProcesses(now: number): void {
    const rows = this.#sql.liveSessionProcesses.all(this.cluster, now, now) as { id: string; process: string }[];
    const gone = rows.filter((r) => processState(JSON.parse(r.process) as ProcessIdentity) === 'gone');
    if (gone.length === 0) return;
    this.#write(() => {
      for (const row of gone) this.#dropSession(row.id);
    });
  }

  #readChanges(): Map<string, number> {
    const rows = this.#sql.readChanges.all(this.cluster) as { scope: string; version: number }[];
    return new Map(rows.map((r) => [r.scope, r.version]));
  }


  #dropSession(sessionId: string): void {
    const owners = this.#sql.deleteOwnersOfSession.run(this.cluster, sessionId).changes;
    const sessions = this.#sql.deleteSession.run(this.cluster, sessionId).changes;
    if (owners > 0) this.#bump('owners');
    if (sessions > 0) this.#bump('sessions');
  }

  #bump(scope: ChangeScope): void {
    this.#sql.bumpChange.run(this.cluster, scope);
  }

  #refuse(key: string, condition: WriteCondition): 'version' | 'fenced' | undefined {
    if (condition.guard) {
      const now = this.#clock.monotonic();
      const holder = this.#sql.liveHolder.get(this.cluster, condition.guard.key, now, now) as OwnerRow | undefined;
      if (!holder || holder.token !== condition.guard.token) return 'fenced';
    }
    if (condition.ifVersion !== undefined) {
      const row = this.#sql.recordVersion.get(this.cluster, key) as { version: number } | undefined;
      if (condition.ifVersion === 'absent' ? row !== undefined : row?.version !== condition.ifVersion) return 'version';
    }
    return undefined;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`sqlite store (${this.file}): handle is closed`);
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction: the write lock is taken up front, so no upgrade deadlock. */
  #write<T>(fn: () => T): T {
    this.#check();
    try {
      return this.#db.transaction(fn).immediate();
    } catch (error) {
      if (error instanceof SessionExpiredError) throw error;
      throw new StoreUnavailableError(toSqlError('sqlite', `sqlite store (${this.file})`, error).message, { cause: error });
    }
  }
}

interface RecordRow {
  key: string;
  value: string;
  version: number;
  updated_at: number;
}

function toRecord<T>(row: RecordRow): StoredRecord<T> {
  return { key: row.key, value: JSON.parse(row.value) as T, version: row.version, updatedAt: row.updated_at };
}

function toHolder(row: OwnerRow): Holder {
  return { key: row.key, token: row.token, sessionId: row.session_id, acquiredAt: Number(row.acquired_at) };
}

/** The smallest string greater than every string starting with `prefix`: turns a prefix into a range scan. */
function prefixEnd(prefix: string): string {
  return `${prefix}\uffff`;
}

/**
 * One prepared statement per operation. "Live" everywhere means `expires_at > now AND renewed_at <= now`:
 * the second half drops sessions written before a reboot, when the monotonic clock restarted from zero.
 */
function prepareStatements(db: BetterSqlite3.Database) {
  const live = 's.expires_at > ? AND s.renewed_at <= ?';
  const tokenStatements = (sql: string) => db.prepare(sql).safeIntegers(true);
  return {
    insertSession: db.prepare(
      `INSERT INTO baton_sessions (cluster, id, info, process, ttl_ms, opened_at, renewed_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // Expired sessions and those from before a reboot go whenever a session opens: no sweeper needed.
    dropDeadSessions: db.prepare(
      `DELETE FROM baton_sessions WHERE cluster = @cluster AND (renewed_at > @now OR expires_at <= @now)`,
    ),
    deleteOrphanOwners: db.prepare(
      `DELETE FROM baton_owners WHERE cluster = ? AND session_id NOT IN (SELECT id FROM baton_sessions WHERE cluster = ?)`,
    ),
    // The WHERE clause makes renewal of an expired session fail: once expired, a session never comes back.
    renewSession: db.prepare(
      `UPDATE baton_sessions SET renewed_at = @now, expires_at = @now + ttl_ms
       WHERE cluster = @cluster AND id = @id AND expires_at > @now AND renewed_at <= @now`,
    ),
    // Only a live session's info: a dead one must not look alive again.
    updateSessionInfo: db.prepare(
      `UPDATE baton_sessions SET info = @info WHERE cluster = @cluster AND id = @id AND expires_at > @now AND renewed_at <= @now`,
    ),
    deleteSession: db.prepare(`DELETE FROM baton_sessions WHERE cluster = ? AND id = ?`),
    deleteOwnersOfSession: db.prepare(`DELETE FROM baton_owners WHERE cluster = ? AND session_id = ?`),
    liveSessions: db.prepare(
      `SELECT id, info, ttl_ms, opened_at, expires_at FROM baton_sessions s WHERE cluster = ? AND ${live} ORDER BY id`,
    ),
    liveSessionProcesses: db.prepare(`SELECT id, process FROM baton_sessions s WHERE cluster = ? AND ${live}`),
    sessionIsLive: db.prepare(`SELECT 1 FROM baton_sessions s WHERE cluster = ? AND id = ? AND ${live}`),
    ownerWithSession: tokenStatements(
      `SELECT o.key, o.session_id, o.token, o.acquired_at, s.process, s.expires_at, s.renewed_at
       FROM baton_owners o LEFT JOIN baton_sessions s ON s.cluster = o.cluster AND s.id = o.session_id
       WHERE o.cluster = ? AND o.key = ?`,
    ),
    liveHolder: tokenStatements(
      `SELECT o.key, o.session_id, o.token, o.acquired_at
       FROM baton_owners o JOIN baton_sessions s ON s.cluster = o.cluster AND s.id = o.session_id
       WHERE o.cluster = ? AND o.key = ? AND ${live}`,
    ),
    liveHoldersByPrefix: tokenStatements(
      `SELECT o.key, o.session_id, o.token, o.acquired_at
       FROM baton_owners o JOIN baton_sessions s ON s.cluster = o.cluster AND s.id = o.session_id
       WHERE o.cluster = ? AND o.key >= ? AND o.key < ? AND ${live} ORDER BY o.key`,
    ),
    // One sequence for all keys: strictly increasing per key too, and it survives release and restart.
    nextToken: tokenStatements(`UPDATE baton_meta SET value = value + 1 WHERE name = 'token_seq' RETURNING value`),
    insertOwner: db.prepare(
      `INSERT OR REPLACE INTO baton_owners (cluster, key, session_id, token, acquired_at) VALUES (?, ?, ?, ?, ?)`,
    ),
    deleteOwner: db.prepare(`DELETE FROM baton_owners WHERE cluster = ? AND key = ?`),
    releaseOwner: db.prepare(`DELETE FROM baton_owners WHERE cluster = ? AND key = ? AND token = ?`),
    getRecord: db.prepare(`SELECT key, value, version, updated_at FROM baton_records WHERE cluster = ? AND key = ?`),
    recordVersion: db.prepare(`SELECT version FROM baton_records WHERE cluster = ? AND key = ?`),
    upsertRecord: db.prepare(
      `INSERT INTO baton_records (cluster, key, value, version, updated_at) VALUES (@cluster, @key, @value, 1, @now)
       ON CONFLICT (cluster, key) DO UPDATE SET value = excluded.value, version = version + 1, updated_at = excluded.updated_at
       RETURNING version`,
    ),
    listRecordsAsc: db.prepare(
      `SELECT key, value, version, updated_at FROM baton_records
       WHERE cluster = ? AND key >= ? AND key < ? ORDER BY key LIMIT ?`,
    ),
    listRecordsDesc: db.prepare(
      `SELECT key, value, version, updated_at FROM baton_records
       WHERE cluster = ? AND key >= ? AND key < ? ORDER BY key DESC LIMIT ?`,
    ),
    deleteRecord: db.prepare(`DELETE FROM baton_records WHERE cluster = ? AND key = ?`),
    deleteRecordsBefore: db.prepare(
      `DELETE FROM baton_records WHERE cluster = @cluster AND key >= @prefix AND key < @before AND substr(key, 1, length(@prefix)) = @prefix`,
    ),
    readChanges: db.prepare(`SELECT scope, version FROM baton_changes WHERE cluster = ?`),
    // UNION also removes duplicates; each part reads the primary key's leading column.
    clusters: db.prepare(`SELECT cluster FROM baton_sessions UNION SELECT cluster FROM baton_owners UNION SELECT cluster FROM baton_records`),
    bumpChange: db.prepare(
      `INSERT INTO baton_changes (cluster, scope, version) VALUES (?, ?, 1)
       ON CONFLICT (cluster, scope) DO UPDATE SET version = version + 1`,
    ),
  };
}
