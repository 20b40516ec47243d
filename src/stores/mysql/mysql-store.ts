/**
 * The MySQL/MariaDB store: nodes on many hosts share one server (MariaDB ≥ 10.3, MySQL ≥ 5.7, InnoDB).
 *
 * Guarantees: the Store contract. Session TTLs are measured by the SERVER's clock (`NOW(3)` inside each
 * statement), never the node's. Each primitive's decision is made inside one locking statement or one
 * short InnoDB transaction whose `SELECT … FOR UPDATE` locks exactly the rows the decision reads
 * (statements.ts says which, and why, at each statement) — never a plain read followed by a write from
 * the client, which would inherit the lost updates Jepsen found with Galera. Fencing tokens come from one
 * durable counter row and grow across releases, expiries and server restarts. Changes are found by
 * polling a small per-cluster version table every `pollMs` (default 50 ms).
 *
 * Crash detection (`crashDetection`, default on): each session records the `CONNECTION_ID()` of the
 * handle's single connection. When that id is no longer in `information_schema.PROCESSLIST` of the same
 * server run, the session is dead and is reaped at once (by the next acquisition of one of its keys, or by
 * the background reaper of any watching handle), long before its TTL. Why this is safe: the server ends a
 * connection's thread at once only when the client's socket is closed, which for a healthy network means
 * the client process exited or crashed (the kernel closes its sockets). A partitioned or frozen client
 * keeps its connection listed until the server's TCP keepalive gives up (Linux default: more than two
 * hours), far longer than any TTL, so that case falls back to the TTL like every other store.
 * What would break it, and is documented as an operating requirement: a server-side `wait_timeout`,
 * `net_read_timeout` on an idle socket, or TCP keepalive shorter than the TTL; an operator's `KILL`; or a
 * proxy/firewall that resets live connections. Then a live owner's session is reaped while its keeper
 * still believes it until its next renewal, and only fencing (invariant 2) protects its writes. Turn
 * `crashDetection` off in such environments to get TTL-only behaviour.
 *
 * Non-guarantees: a server whose wall clock is stepped (NTP, an operator) stretches or shortens live TTLs
 * by the step. Durability of tokens across a crash needs `innodb_flush_log_at_trx_commit = 1`, and across a
 * fail-over to a replica needs synchronous (or semi-synchronous, lossless) replication. Calls of one handle
 * are serialised on its single connection.
 */
import { Backoff } from '../../core/backoff.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { ClosedError, ConfigError, SessionExpiredError, StoreUnavailableError } from '../../core/errors.js';
import { randomId } from '../../core/ids.js';
import type { NodeInfo } from '../../core/node-info.js';
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
import { ChangeListeners } from '../change-listeners.js';
import { slices } from '../../core/batches.js';
import { assertDistinctKeys } from '../many-keys.js';
import type { MysqlDriver } from '../../sql/drivers.js';
import { toSqlError } from '../../sql/errors.js';
import { isDeadlock, isDuplicate, MysqlConnection, type ConnectionSettings, type Run } from './connection.js';
import { ConnectionWatch } from './connection-watch.js';
import { migrate } from './schema.js';
import * as sql from './statements.js';
import { MAX_KEY_BYTES, type ChangeScope, type Sql, type Tables } from './statements.js';

export interface MysqlStoreOptions {
  readonly cluster: string;
  /** Host, port, user, password, database, TLS… as mysql2 takes them. */
  readonly connection: ConnectionSettings['connect'];
  /** The URL with its password redacted, for messages. */
  readonly shown: string;
  /** Timers (polling, timeouts, reconnect backoff). Store time itself is always the server's. Default: system clock. */
  readonly clock?: Clock;
  /** Table name prefix (letters, digits, `_`). Default `baton_`. */
  readonly prefix?: string;
  /**
   * How often watchers read the change table, in ms. Default 50: a graceful hand-over is seen well under 100 ms.
   * After a failed poll the next waits longer (doubling up to 2 s); the first that succeeds again says `any`.
   */
  readonly pollMs?: number;
  /** Bind sessions to their connection and reap those whose connection is gone. Default true. */
  readonly crashDetection?: boolean;
  /** How often a watching handle looks for dead sessions, in ms. Default 250. */
  readonly crashCheckMs?: number;
  /** A call without a reply after this long fails and the connection is replaced, in ms. Default 5000. */
  readonly queryTimeoutMs?: number;
  /** `innodb_lock_wait_timeout` for this handle, in whole seconds. Default 5. */
  readonly lockWaitTimeoutS?: number;
}

interface OwnerRow {
  k: Buffer;
  session_id: Buffer;
  token: string;
  acquired_at: string;
}

interface RecordRow {
  k: Buffer;
  value: string;
  version: number;
  updated_at: string;
}

interface Header {
  affectedRows: number;
  insertId: number;
}

/** Ceiling of the pause after failed change polls (from `pollMs`, doubling): a failing server is not asked 20 times a second. */
const POLL_BACKOFF_MAX_MS = 2000;
/** Keys per transaction of tryAcquireMany and releaseMany: bounds the rows one transaction locks. */
const KEYS_PER_TRANSACTION = 200;
/** An acquisition retried on a deadlock, or on a duplicate key (two inserts raced for a free key). */
const retryOnConflict = (error: unknown): boolean => isDeadlock(error) || isDuplicate(error);

/** How long one crash-watch wait lasts before it re-reads the ring (a joiner is watched within this), in s. */
const CONNECTION_WATCH_RETARGET_S = 2;

/** Several statements sent in one round trip; the server stops at the first error. */
function batch(...statements: Sql[]): Sql {
  return { sql: statements.map((s) => s.sql).join(';\n'), values: statements.flatMap((s) => s.values) };
}

export class MysqlStore implements Store {
  readonly kind = 'mysql' as const;
  readonly features: { readonly crashDetection: boolean; readonly watch: 'poll' };
  readonly cluster: string;
  readonly #db: MysqlConnection;
  readonly #t: Tables;
  readonly #clock: Clock;
  readonly #shown: string;
  readonly #pollMs: number;
  readonly #crashCheckMs: number;
  readonly #listeners = new ChangeListeners();
  #seen: Map<string, number> | undefined;
  #cancelPoll: (() => void) | undefined;
  #pollRun: Promise<void> | undefined;
  readonly #pollBackoff: Backoff;
  /** A poll failed since the last one that succeeded: changes may have been missed. */
  #pollFailed = false;
  #watching = false;
  #lastCrashCheck = -Infinity;
  #closed = false;
  /** Sessions opened through this handle and not known to be gone: re-bound after a reconnection. */
  readonly #ownSessions = new Set<string>();
  #rebinding: Promise<void> | undefined;
  /** What a crash watch connects with: the handle's own driver and settings. */
  readonly #watchFrom: { driver: MysqlDriver; settings: ConnectionSettings };
  #connectionWatch: ConnectionWatch | undefined;
  #connectionWatchClosing: Promise<void> | undefined;

  private constructor(db: MysqlConnection, options: MysqlStoreOptions, t: Tables, watchFrom: { driver: MysqlDriver; settings: ConnectionSettings }) {
    this.#db = db;
    this.#watchFrom = watchFrom;
    this.#t = t;
    this.cluster = options.cluster;
    this.#clock = options.clock ?? systemClock;
    this.#shown = options.shown;
    this.#pollMs = options.pollMs ?? 50;
    this.#pollBackoff = new Backoff({ initialMs: this.#pollMs, maxMs: Math.max(this.#pollMs, POLL_BACKOFF_MAX_MS) });
    this.#crashCheckMs = options.crashCheckMs ?? 250;
    this.features = { crashDetection: options.crashDetection ?? true, watch: 'poll' };
    // Sessions are bound to this connection: once it drops, other nodes may reap them at any moment, so
    // the session keeper gives them up now rather than at its next renewal.
    db.onLost(() => {
      if (this.features.crashDetection) this.#listeners.emit({ scope: 'connection' });
    });
    db.onReconnect(() => {
      if (this.features.crashDetection && this.#ownSessions.size > 0) this.#rebinding ??= this.#rebindOwnSessions();
      this.#listeners.emit({ scope: 'any' });
    });
  }

  /**
   * Connects, creates the schema when missing and the cluster's change rows.
   * @throws StoreUnavailableError when the server cannot be reached; BatonError STORE_SCHEMA.
   */
  static async open(driver: MysqlDriver, options: MysqlStoreOptions): Promise<MysqlStore> {
    if (Buffer.byteLength(options.cluster, 'utf8') > 255 || options.cluster === '') {
      throw new ConfigError(`mysql store: cluster name must be 1 to 255 bytes, got ${JSON.stringify(options.cluster)}`);
    }
    const t = sql.tableNames(options.prefix ?? 'baton_');
    const clock = options.clock ?? systemClock;
    const settings: ConnectionSettings = {
      connect: options.connection,
      shown: options.shown,
      clock,
      queryTimeoutMs: options.queryTimeoutMs ?? 5000,
      lockWaitTimeoutS: options.lockWaitTimeoutS ?? 5,
      crashDetection: options.crashDetection ?? true,
      reconnectMinMs: 50,
      reconnectMaxMs: 2000,
    };
    let db: MysqlConnection;
    try {
      db = await MysqlConnection.open(driver, settings);
    } catch (error) {
      throw new StoreUnavailableError(toSqlError('mysql', `mysql store ${options.shown}`, error, true).message, { cause: error });
    }
    try {
      await db.exclusive('creating the schema', async (run) => {
        // Many nodes may open at once: DDL is serialised by metadata locks, row inserts may deadlock.
        for (let attempt = 1; ; attempt++) {
          try {
            await migrate((text) => run(text), t, options.shown);
            await run(sql.ensureChangeRows(t, options.cluster));
            return;
          } catch (error) {
            if (!isDeadlock(error) || attempt >= 5) throw error;
          }
        }
      });
    } catch (error) {
      await db.close();
      throw error;
    }
    return new MysqlStore(db, options, t, { driver, settings });
  }

  async time(): Promise<number> {
    this.#check();
    const [row] = await this.#db.exclusive('time', (run) => run<{ now: string }[]>(sql.serverTime()));
    return Number(row?.now);
  }

  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    this.#check();
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) {
      throw new ConfigError(`mysql store: session ttlMs must be a positive integer, got ${JSON.stringify(ttlMs)}`);
    }
    const id = randomId();
    await this.#db.exclusive('openSession', (run) =>
      run(
        batch(
          sql.insertSession(this.#t, this.cluster, id, JSON.stringify(info), ttlMs, this.#db.view),
          sql.bumpChange(this.#t, this.cluster, 'sessions'),
        ),
      ),
    );
    this.#ownSessions.add(id);
    // Housekeeping, as SQLite does on open: expired (and crashed) sessions of the cluster go. The session
    // is open whatever happens here; a failure only leaves the dead ones to the next reap.
    await this.#reapDeadSessions().catch(() => undefined);
    return { id };
  }

  async renewSession(sessionId: string): Promise<boolean> {
    this.#check();
    const header = await this.#db.exclusive('renewSession', (run) =>
      run<Header>(sql.renewSession(this.#t, this.cluster, sessionId, this.#db.view)),
    );
    // mysql2 connects with CLIENT_FOUND_ROWS: affectedRows counts matched rows, even when a renewal in the
    // same millisecond leaves the values unchanged.
    const renewed = header.affectedRows === 1;
    if (!renewed) this.#ownSessions.delete(sessionId);
    return renewed;
  }

  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    this.#check();
    const header = await this.#db.exclusive('updateSessionInfo', (run) =>
      run<Header>(sql.updateSessionInfo(this.#t, this.cluster, sessionId, JSON.stringify(info))),
    );
    // CLIENT_FOUND_ROWS (see renewSession): 1 when the live session matched, even if the info was equal.
    const updated = header.affectedRows === 1;
    // The hint follows the change (a hint may be spurious or late, never needed for correctness).
    if (updated) await this.#db.exclusive('updateSessionInfo', (run) => run(sql.bumpChange(this.#t, this.cluster, 'sessions')));
    return updated;
  }

  async closeSession(sessionId: string): Promise<void> {
    this.#check();
    this.#ownSessions.delete(sessionId);
    await this.#db.transaction('closeSession', async (run) => {
      // The session row first: the same lock order as the reaper. Bumps are unconditional; closing an
      // unknown session only sends a spurious hint.
      await run(
        batch(
          sql.deleteSession(this.#t, this.cluster, sessionId),
          sql.deleteOwnersOfSession(this.#t, this.cluster, sessionId),
          sql.bumpChange(this.#t, this.cluster, 'sessions'),
          sql.bumpChange(this.#t, this.cluster, 'owners'),
        ),
      );
    });
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#check();
    const rows = await this.#db.exclusive('listSessions', (run) =>
      run<{ id: Buffer; info: string; ttl_ms: string; age_ms: string; expires_in_ms: string }[]>(sql.liveSessions(this.#t, this.cluster)),
    );
    return rows.map((r) => ({
      id: text(r.id),
      info: JSON.parse(r.info) as NodeInfo,
      ttlMs: Number(r.ttl_ms),
      ageMs: Number(r.age_ms),
      expiresInMs: Number(r.expires_in_ms),
    }));
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    this.#check();
    checkKey(key);
    // One round trip for a free key, for our own key and for a live holder's; a dead or crashed holder
    // needs the locking path, which reaps it.
    const results = await this.#db.transactionInOneTrip<unknown[]>(
      'tryAcquire',
      sql.takeIfFree(this.#t, this.cluster, key, sessionId, this.#db.view),
      retryOnConflict,
    );
    const [taken] = results[sql.TAKE_RESULT] as { taken: number | string; token: string; live: unknown }[];
    if (taken && Number(taken.taken) > 0) return { acquired: true, token: BigInt(taken.token) };
    if (!taken || Number(taken.live) !== 1) {
      throw new SessionExpiredError(`mysql store: session ${sessionId} is not live; cannot acquire "${key}"`);
    }
    const [current] = results[sql.TAKE_HOLDER] as (OwnerRow & { holder_session: Buffer | null; live: unknown; crashed: unknown })[];
    if (current && current.holder_session !== null && Number(current.live) === 1) {
      if (text(current.holder_session) === sessionId) return { acquired: true, token: BigInt(current.token) };
      if (Number(current.crashed) !== 1) return { acquired: false, holder: toHolder(current) };
    }
    const [result] = await this.#acquireLocking('tryAcquire', [key], sessionId);
    return result as AcquireResult;
  }

  /** One transaction per batch of keys: the requester's row is locked once, the change counters bumped once. */
  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    this.#check();
    assertDistinctKeys('mysql store: tryAcquireMany', keys);
    for (const key of keys) checkKey(key);
    const results: AcquireResult[] = [];
    for (const slice of slices(keys, KEYS_PER_TRANSACTION)) {
      try {
        results.push(...(await this.#acquireLocking('tryAcquireMany', slice, sessionId)));
      } catch (error) {
        // Still deadlocked after the transaction's retries (single acquisitions racing the batch for
        // the same keys): one key at a time, each with its own retries.
        if (!isDeadlock(error instanceof Error ? error.cause : error)) throw error;
        for (const key of slice) results.push(await this.tryAcquire(key, sessionId));
      }
    }
    return results;
  }

  /**
   * The acquisition that locks the requester's row, each key's row and its holder's session, in one
   * transaction: reaps a dead or crashed holder.
   */
  #acquireLocking(operation: string, keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    return this.#db.transaction(
      operation,
      async (run): Promise<AcquireResult[]> => {
        const [requester] = await run<{ live: number | string }[]>(sql.lockRequester(this.#t, this.cluster, sessionId));
        if (!requester || Number(requester.live) !== 1) {
          throw new SessionExpiredError(`mysql store: session ${sessionId} is not live; cannot acquire "${keys[0]}"${keys.length > 1 ? ` and ${keys.length - 1} more keys` : ''}`);
        }
        if (keys.length > 1) await run(sql.lockTokenSequence(this.#t));
        const bumps = new Set<ChangeScope>();
        const results: AcquireResult[] = [];
        for (const [i, key] of keys.entries()) results.push(await this.#acquireLocked(run, key, sessionId, bumps, i === keys.length - 1));
        if (bumps.size > 0) await run(batch(...[...bumps].map((scope) => sql.bumpChange(this.#t, this.cluster, scope))));
        return results;
      },
      retryOnConflict,
    );
  }

  /**
   * Takes `key` in the caller's transaction, which locked the live requester's row; notes the scopes to
   * bump, and bumps them with the insert of the `last` key (one round trip fewer for a single key).
   */
  async #acquireLocked(run: Run, key: string, sessionId: string, bumps: Set<ChangeScope>, last: boolean): Promise<AcquireResult> {
    const [current] = await run<(OwnerRow & { holder_session: Buffer | null; live: unknown; crashed: unknown })[]>(
      sql.lockOwner(this.#t, this.cluster, key, this.#db.view),
    );
    if (current) {
      const holderSession = current.holder_session === null ? null : text(current.holder_session);
      const live = holderSession !== null && Number(current.live) === 1;
      if (live && holderSession === sessionId) return { acquired: true, token: BigInt(current.token) };
      if (live && Number(current.crashed) !== 1) return { acquired: false, holder: toHolder(current) };
      // The holder expired or its process is gone: it can never renew again (its row is locked and
      // about to go), so its session and every key it holds are reaped in this transaction.
      if (holderSession !== null) {
        await run(
          batch(sql.deleteOwnersOfSession(this.#t, this.cluster, holderSession), sql.deleteSession(this.#t, this.cluster, holderSession)),
        );
        bumps.add('sessions');
      } else {
        await run(sql.deleteOwner(this.#t, this.cluster, key)); // an orphan left by an interrupted close
      }
    }
    bumps.add('owners');
    const bumpNow = last ? [...bumps].map((scope) => sql.bumpChange(this.#t, this.cluster, scope)) : [];
    if (last) bumps.clear();
    const results = await run<unknown[]>(
      batch(sql.nextToken(this.#t), sql.insertOwner(this.#t, this.cluster, key, sessionId), sql.lastToken(), ...bumpNow),
    );
    const [row] = results[2] as { token: string }[];
    return { acquired: true, token: BigInt(row?.token ?? '0') };
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    this.#check();
    assertDistinctKeys('mysql store: releaseMany', leases.map((l) => l.key));
    const results: boolean[] = [];
    for (const slice of slices(leases, KEYS_PER_TRANSACTION)) {
      // The deletes in one round trip; the change counter, once, in a second when any key was freed.
      const released = await this.#db.exclusive('releaseMany', async (run) => {
        const deletes = slice.map((l) => sql.releaseOwner(this.#t, this.cluster, l.key, l.token));
        const headers = slice.length === 1 ? [await run<Header>(deletes[0] as Sql)] : await run<Header[]>(batch(...deletes));
        const freed = headers.map((h) => h.affectedRows === 1);
        if (freed.includes(true)) await run(sql.bumpChange(this.#t, this.cluster, 'owners'));
        return freed;
      });
      results.push(...released);
    }
    return results;
  }

  async release(key: string, token: bigint): Promise<boolean> {
    this.#check();
    // One trip and one commit: the delete and its change bump in one transaction (as two autocommit
    // statements they were two commits, each waiting for the redo log flush).
    const [header] = await this.#db.transactionInOneTrip<Header[]>(
      'release',
      batch(sql.releaseOwner(this.#t, this.cluster, key, token), sql.bumpChangeIfChanged(this.#t, this.cluster, 'owners')),
    );
    return header?.affectedRows === 1;
  }

  async holder(key: string): Promise<Holder | null> {
    this.#check();
    const [row] = await this.#db.exclusive('holder', (run) => run<OwnerRow[]>(sql.liveHolder(this.#t, this.cluster, key)));
    return row ? toHolder(row) : null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    this.#check();
    const rows = await this.#db.exclusive('listHolders', (run) =>
      run<OwnerRow[]>(sql.liveHoldersByPrefix(this.#t, this.cluster, prefix)),
    );
    return rows.map(toHolder);
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    this.#check();
    const [row] = await this.#db.exclusive('get', (run) => run<RecordRow[]>(sql.getRecord(this.#t, this.cluster, key)));
    return row ? toRecord<T>(row) : null;
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    this.#check();
    checkKey(key);
    const json = JSON.stringify(value) ?? 'null';
    const guard = condition.guard;
    if (!guard) return this.#db.exclusive('put', (run) => this.#write(run, key, json, condition.ifVersion));
    return this.#db.transaction('put', async (run): Promise<WriteResult> => {
      if (!(await this.#lockGuard(run, guard))) return { ok: false, reason: 'fenced' };
      return this.#write(run, key, json, condition.ifVersion);
    });
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    this.#check();
    const rows = await this.#db.exclusive('list', (run) =>
      run<RecordRow[]>(sql.listRecords(this.#t, this.cluster, prefix, options.reverse ?? false, options.limit)),
    );
    return rows.map((r) => toRecord<T>(r));
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    this.#check();
    // 'absent': there is nothing to delete when the condition holds.
    if (condition.ifVersion === 'absent') return false;
    const version = condition.ifVersion;
    const remove = async (run: Run) => {
      const [header] = await run<Header[]>(
        batch(sql.deleteRecord(this.#t, this.cluster, key, version), sql.bumpChangeIfChanged(this.#t, this.cluster, 'records')),
      );
      return header?.affectedRows === 1;
    };
    const guard = condition.guard;
    if (!guard) return this.#db.exclusive('delete', remove);
    return this.#db.transaction('delete', async (run) => (await this.#lockGuard(run, guard)) && remove(run));
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    this.#check();
    const [header] = await this.#db.exclusive('deleteBefore', (run) =>
      run<Header[]>(
        batch(
          sql.deleteRecordsBefore(this.#t, this.cluster, prefix, beforeKey),
          sql.bumpChangeIfChanged(this.#t, this.cluster, 'records'),
        ),
      ),
    );
    return header?.affectedRows ?? 0;
  }

  async listClusters(): Promise<string[]> {
    this.#check();
    const rows = await this.#db.exclusive('listClusters', (run) => run<{ cluster: Buffer }[]>(sql.clustersHeld(this.#t)));
    return rows.map((r) => text(r.cluster));
  }

  watch(listener: (change: Change) => void): () => void {
    this.#check();
    const unsubscribe = this.#listeners.subscribe(listener, () => this.#stopPolling());
    if (!this.#watching) {
      this.#watching = true;
      // The baseline is read now (queued on the connection before anything the caller does next), so a
      // change made right after watch() returns is seen by the first poll.
      this.#seen = undefined;
      this.#pollRun = this.#poll();
      this.#startConnectionWatch();
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopPolling();
    this.#listeners.clear();
    await Promise.all([this.#pollRun, this.#connectionWatchClosing]);
    await this.#rebinding;
    await this.#db.close();
  }

  /** One write statement plus its change bump, sent as one batch. */
  async #write(run: Run, key: string, json: string, ifVersion: number | 'absent' | undefined): Promise<WriteResult> {
    const bump = sql.bumpChangeIfChanged(this.#t, this.cluster, 'records');
    if (ifVersion === undefined) {
      const [header] = await run<Header[]>(batch(sql.upsertRecord(this.#t, this.cluster, key, json), bump));
      // One affected row: a fresh insert (version 1); two: an update, whose new version LAST_INSERT_ID carries.
      return { ok: true, version: header?.affectedRows === 1 ? 1 : Number(header?.insertId) };
    }
    if (ifVersion === 'absent') {
      try {
        await run(batch(sql.insertRecord(this.#t, this.cluster, key, json), bump));
        return { ok: true, version: 1 };
      } catch (error) {
        if (isDuplicate(error)) return { ok: false, reason: 'version' };
        throw error;
      }
    }
    const [header] = await run<Header[]>(batch(sql.updateRecordIfVersion(this.#t, this.cluster, key, json, ifVersion), bump));
    return header?.affectedRows === 1 ? { ok: true, version: ifVersion + 1 } : { ok: false, reason: 'version' };
  }

  /** Binds this handle's live sessions to its new connection, so peers do not take them for crashed. */
  async #rebindOwnSessions(): Promise<void> {
    try {
      for (const id of [...this.#ownSessions]) {
        const header = await this.#db.exclusive('re-binding a session', (run) =>
          run<Header>(sql.rebindSession(this.#t, this.cluster, id, this.#db.view)),
        );
        if (header.affectedRows === 0) this.#ownSessions.delete(id);
      }
    } catch {
      // Lost again: the next reconnection re-binds; until then the keeper's renewals re-bind too.
    } finally {
      this.#rebinding = undefined;
    }
  }

  /** Locks the guard's rows for the rest of the transaction; true when it is held, live, with the token. */
  async #lockGuard(run: Run, guard: Guard): Promise<boolean> {
    const [row] = await run<{ token: string; live: unknown }[]>(sql.lockGuard(this.#t, this.cluster, guard.key));
    return row !== undefined && Number(row.live) === 1 && BigInt(row.token) === guard.token;
  }

  /** Watchers hear of a crashed peer the moment its connection ends (connection-watch.ts). */
  #startConnectionWatch(): void {
    if (!this.features.crashDetection || this.#connectionWatch) return;
    this.#connectionWatch = new ConnectionWatch({
      ...this.#watchFrom,
      clock: this.#clock,
      retargetS: CONNECTION_WATCH_RETARGET_S,
      target: async () => {
        const view = this.#db.view;
        const [row] = await this.#db.exclusive('crash watch target', (run) =>
          run<{ conn_id: string }[]>(sql.ringNext(this.#t, this.cluster, view.connId, view)),
        );
        return row ? Number(row.conn_id) : undefined;
      },
      reap: () => this.#reapDeadSessions(),
      // Heard now, not at the next poll (which reports a reap again: a hint may repeat). A closed peer
      // released its keys just before its connection ended: look now too.
      woke: () => this.#emitOwnershipHints(),
    });
  }

  #emitOwnershipHints(): void {
    this.#listeners.emit({ scope: 'sessions' });
    this.#listeners.emit({ scope: 'owners' });
  }

  /**
   * Deletes the cluster's expired sessions and, with crash detection, those whose connection is gone,
   * with their keys; resolves to how many it deleted. Candidates come from a plain read; each is
   * re-checked under its row lock.
   */
  async #reapDeadSessions(): Promise<number> {
    const candidates = await this.#db.exclusive('reaping dead sessions', (run) =>
      run<{ id: Buffer }[]>(sql.deadSessionCandidates(this.#t, this.cluster, this.#db.view)),
    );
    let reaped = 0;
    for (const candidate of candidates) {
      const id = text(candidate.id);
      await this.#db.transaction('reaping a dead session', async (run) => {
        const [dead] = await run<unknown[]>(sql.lockDeadSession(this.#t, this.cluster, id, this.#db.view));
        if (!dead) return; // renewed (re-bound) in the meantime
        reaped++;
        await run(
          batch(
            sql.deleteOwnersOfSession(this.#t, this.cluster, id),
            sql.deleteSession(this.#t, this.cluster, id),
            sql.bumpChange(this.#t, this.cluster, 'sessions'),
            sql.bumpChange(this.#t, this.cluster, 'owners'),
          ),
        );
      });
    }
    return reaped;
  }

  async #poll(): Promise<void> {
    let delay = this.#pollMs;
    let recovered = false;
    try {
      const now = this.#clock.monotonic();
      if (this.#seen && now - this.#lastCrashCheck >= this.#crashCheckMs) {
        this.#lastCrashCheck = now;
        await this.#reapDeadSessions();
      }
      const rows = await this.#db.exclusive('watch', (run) =>
        run<{ scope: Buffer; version: string }[]>(sql.readChanges(this.#t, this.cluster)),
      );
      const changes = new Map(rows.map((r) => [text(r.scope), Number(r.version)]));
      const seen = this.#seen;
      this.#seen = changes;
      if (seen) {
        for (const [scope, version] of changes) {
          if (seen.get(scope) !== version) this.#listeners.emit({ scope: scope as ChangeScope });
        }
      }
      recovered = this.#pollFailed;
      this.#pollFailed = false;
      this.#pollBackoff.reset();
    } catch {
      // Not reported here: the loops that watch make their own calls, which fail and report. The poll backs
      // off (a connection that keeps failing, or a statement the server keeps refusing, is not asked every
      // pollMs) and says `any` once it succeeds again.
      this.#pollFailed = true;
      delay = this.#pollBackoff.next();
    }
    // Reaped sessions are not in the counters' difference when the reap itself was what failed, and a
    // reconnection's own `any` does not come when only the statement failed: say it here, once.
    if (recovered) this.#listeners.emit({ scope: 'any' });
    if (this.#watching && !this.#closed) {
      this.#cancelPoll = this.#clock.setTimer(delay, () => {
        this.#cancelPoll = undefined;
        this.#pollRun = this.#poll();
      });
    }
  }

  #stopPolling(): void {
    this.#watching = false;
    this.#cancelPoll?.();
    this.#cancelPoll = undefined;
    const watch = this.#connectionWatch;
    this.#connectionWatch = undefined;
    if (watch) this.#connectionWatchClosing = Promise.all([this.#connectionWatchClosing, watch.close()]).then(() => undefined);
  }


  #check(): void {
    if (this.#closed) throw new ClosedError(`mysql store ${this.#shown}: handle is closed`);
  }
}

function checkKey(key: string): void {
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new StoreUnavailableError(`mysql store: key "${key.slice(0, 40)}…" is longer than ${MAX_KEY_BYTES} bytes; refused`);
  }
}

function text(value: Buffer | string): string {
  return typeof value === 'string' ? value : value.toString('utf8');
}

function toRecord<T>(row: RecordRow): StoredRecord<T> {
  return { key: text(row.k), value: JSON.parse(row.value) as T, version: Number(row.version), updatedAt: Number(row.updated_at) };
}

function toHolder(row: OwnerRow): Holder {
  return { key: text(row.k), token: BigInt(row.token), sessionId: text(row.session_id), acquiredAt: Number(row.acquired_at) };
}
