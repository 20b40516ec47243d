/**
 * The PostgreSQL store: many hosts share one PostgreSQL server (or a primary with synchronous standbys).
 *
 * Guarantees: the Store contract. Every primitive is ONE SQL statement (CTEs, see statements.ts) in
 * autocommit under READ COMMITTED; row locks and re-checks on the newest row version make each decision
 * atomic on the server. Session TTLs and every timestamp come from the server's clock
 * (`clock_timestamp()`), never from a node. Fencing tokens come from one SEQUENCE: never reused, strictly
 * increasing per key across releases, expiries and server restarts. Changes are pushed with LISTEN/NOTIFY,
 * sent by the statement that made the change, on commit. A dropped connection or a restarted server never
 * crashes the process: calls reject with StoreUnavailableError while it is down, the handle reconnects with
 * backoff, and watchers get an `any` hint after their listening connection comes back.
 *
 * Crash detection (DESIGN.md failover ladder, "process crash, host alive"): each handle serves all its
 * statements on ONE connection, and a session records the backend pid and backend start time of the
 * connection that opened (or last renewed) it. A session whose backend is no longer in `pg_stat_activity`
 * is dead at once, and its keys can be taken. Why this keeps invariants 1–4:
 * - When a process dies, its kernel closes its sockets; the backend reads EOF and exits within
 *   milliseconds. The process cannot act any more, so giving its keys away early is safe.
 * - When the client host is lost or partitioned, nothing reaches the server: the backend lingers until the
 *   server's TCP keepalive gives up (`tcp_keepalives_idle`, 2 h by default) — far longer than any TTL — so
 *   the session expires by TTL first, and the owner's keeper has self-fenced by then (invariant 4).
 *   A server keepalive (or `idle_session_timeout`, or a firewall idle timeout that resets connections)
 *   SHORTER than the TTL would break this: the server would drop the session of a partitioned but
 *   running owner before its local deadline. Keep them longer than the TTL, or set `crashDetection=false`.
 * - A server restart ends every connection, of the living too: sessions bound before the server started
 *   are judged by TTL only (`backend_start < pg_postmaster_start_time()`).
 * - Pid reuse cannot revive a dead session: the backend start time must match too.
 * The check runs when someone looks: the reaper every `reapMs`, and — at once — a handle's crash watch
 * when the backend it waits on ends (backend-watch.ts).
 * Non-guarantees: a connection reset while the owner process keeps running (an operator's
 * `pg_terminate_backend`, a proxy or pooler that drops connections, a middlebox RST) kills its session at
 * once, like a crash. The handle reports the drop to the session keeper as soon as its client sees it
 * (a `connection` change), and the keeper aborts the session's signal at once; another node needs a reaper
 * pass (`reapMs`) and an acquisition to take the key, so the window in which both may act is the time the
 * reset takes to reach the owner's client, not a renewal interval. Fenced writes stay safe (the old token is refused), but disable crash detection
 * (`crashDetection=false`) when connections go through a pooler (pgbouncer) or anything that resets them.
 * Behind a transaction pooler the backend pid is meaningless: crash detection MUST be off there.
 *
 * Durability of ownership (tryAcquire, release, and the statements that end sessions: closeSession and
 * the reaper's): with crash detection on (the default), these statements commit with
 * `synchronous_commit = off` — the server answers, and sends their NOTIFY, before the commit's WAL is
 * flushed, which takes a lock round trip from ~5 ms (two fsyncs) to well under 1 ms on this project's
 * machine, and a graceful or crash hand-over's notification ~4 ms earlier. Every other statement (opening
 * and renewing sessions, records, fenced writes) keeps the server's setting. A server crash may then
 * lose the acquisitions, releases and session ends of its last moments (at most 3 × `wal_writer_delay`;
 * 600 ms by default); this is what still holds afterwards, and why:
 * - Every session alive at the crash is given up by its node: its sessions are bound to the connection, the
 *   crash ends every connection, the handle reports the drop (`connection` change) and the session keeper
 *   aborts the session's signal at once, which aborts every lease and lock handle on it. So no node goes on
 *   acting on a key whose row was lost — or on one whose release was lost and came back (the old session's
 *   rows vanish with it, by TTL).
 * - A session end that is lost brings back a session whose process has already stopped acting (it closed
 *   it, or it crashed): the row is bound to a backend older than the server's start, so it is judged by
 *   TTL only and expires without anyone acting on it; a takeover committed after the end is in the WAL
 *   after it, so it is never kept while the end is lost.
 * - Tokens are never issued twice: before a connection issues its first token it moves the token sequence
 *   10^9 ahead in a transaction that DOES wait for the flush (bumpTokens). A crash may roll the sequence
 *   back over values it handed out, but never by more than the acquisitions of its last moments, and
 *   every connection made after the crash starts 10^9 above. Tokens stay strictly increasing per key.
 * - A fenced write is durable, and it makes what it relied on durable: its commit flushes the WAL up to
 *   itself, which includes the acquisition of the token that guarded it. So a stored checkpoint, claim or
 *   record guarded by token t never outlives the acquisition of t, and fenced writes refuse a token whose
 *   row was lost.
 * With crash detection off, a session survives a server restart and could keep a row its node thinks
 * released (or miss one it thinks held): there ownership commits with the server's setting, as before.
 *
 * Failover to a standby (a multi-host URL: connection.ts keeps the read-write host): the connection-bound
 * sessions are given up as above. Sequence values the old primary did not replicate are not issued again:
 * the first connection to a server on a new WAL timeline moves the sequence FAILOVER_TOKEN_GAP ahead.
 * Other non-guarantees: asynchronous replication can lose recently committed sessions, keys and records
 * (tick claims, checkpoints); use synchronous replication for none. A server clock step changes TTLs.
 */
import { createHash } from 'node:crypto';
import type { Client, ClientConfig, Notification } from 'pg';
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
import { loadPg, type PgDriver } from '../../sql/drivers.js';
import { quoteIdentifier } from '../../sql/placeholders.js';
import { pgClientConfig } from '../../sql/postgres/connect.js';
import { ChangeListeners } from '../change-listeners.js';
import { slices } from '../../core/batches.js';
import { assertDistinctKeys } from '../many-keys.js';
import { BackendWatch } from './backend-watch.js';
import { PgConnection, type PgServers } from './connection.js';
import { migrate } from './schema.js';
import { compile, postgresStatements, type Statements, type WriteMode } from './statements.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type PostgresStoreUrl } from './url.js';

export interface PostgresStoreOptions {
  /** Parsed from the URL by `parsePostgresUrl`. */
  readonly url: PostgresStoreUrl;
  readonly cluster: string;
  /** Timers only (reconnects, the reaper, statement timeouts): time itself is the server's. */
  readonly clock?: Clock;
}

/** How long one crash-watch wait lasts before it re-reads the ring (a joiner is watched within this). */
const BACKEND_WATCH_RETARGET_MS = 5000;
/** Reap rounds per `reapMs` the cluster's handles run together (#scheduleReap). */
const REAPERS = 10;
/** The reaper's full round (crashes too), per live session of the cluster: see #reap. */
const FULL_REAP_PER_SESSION_MS = 1000;

/** How many times tryAcquire repeats its statement when it raced an insert it could not see. */
const ACQUIRE_ATTEMPTS = 5;
/** Keys per statement of tryAcquireMany and releaseMany: bounds the rows one transaction locks. */
const KEYS_PER_STATEMENT = 500;

/**
 * How far the token sequence moves ahead when a connection that issues tokens asynchronously is made
 * (see "Durability of ownership"): more than the acquisitions a crash can lose — those of the last
 * 3 × `wal_writer_delay` (≤ 30 s) at the server's rate, far below 10^9 — and small enough for 9·10^9
 * reconnections to fit in a bigint.
 */
const TOKEN_GAP = 1_000_000_000n;

/**
 * How far the token sequence moves ahead the first time a connection finds the server on a WAL timeline
 * it has not issued tokens on (a promoted standby, a point-in-time restore; see "Failover"): more than the
 * tokens the old primary may have issued without replicating them — its acquisitions and its
 * connections' TOKEN_GAP bumps, up to 999 of them, in its last moments — and small enough for 9·10^6
 * failovers to fit in a bigint.
 */
const FAILOVER_TOKEN_GAP = 1_000_000_000_000n;

const SCOPES = new Set(['sessions', 'owners', 'records']);

/**
 * The statement connection plans each prepared statement once (a generic plan) instead of for each of its
 * first five runs: the statements are keyed lookups whose best plan does not depend on the values, and
 * planning tryAcquire costs more than running it (~2.5 ms vs ~0.6 ms here). PostgreSQL 12 and later.
 */
const GENERIC_PLANS = `SELECT set_config('plan_cache_mode', 'force_generic_plan', false) WHERE current_setting('server_version_num')::int >= 120000`;

interface OwnerRow {
  key: string;
  session_id: string;
  token: string;
  acquired_at: number;
}

interface RecordRow {
  key: string;
  value: string;
  version: number;
  updated_at: number;
}

type Params = Readonly<Record<string, unknown>>;

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly features: { readonly crashDetection: boolean; readonly watch: 'push'; readonly announcesExpiry: true };
  readonly cluster: string;
  readonly #url: PostgresStoreUrl;
  readonly #config: PostgresStoreUrl['options'];
  readonly #clock: Clock;
  readonly #sql: Statements;
  /** NOTIFY channel of this schema and cluster: a hash, so any cluster name makes a valid identifier. */
  readonly #channel: string;
  readonly #label: string;
  readonly #listeners = new ChangeListeners();
  #main: PgConnection | undefined;
  #listener: PgConnection | undefined;
  /** The advisory lock class of this schema's backend locks (backend-watch.ts). */
  readonly #lockClass: number;
  /** The backend of #main: the crash watch's place in the ring. */
  #mainPid = 0;
  /** Local monotonic time of the next full reap round (#reap); 0: the first round is one. */
  #fullReapAt = 0;
  /** The cluster's sessions at the last full reap: paces the reaper (#scheduleReap). */
  #sessionsSeen = 1;
  #watchConfig: { readonly driver: PgDriver; readonly config: ClientConfig; readonly servers: PgServers } | undefined;
  #backendWatch: BackendWatch | undefined;
  #backendWatchClosing: Promise<void> | undefined;
  /** True while anyone watches; the reap loop (and the crash watch) runs while it is. */
  #reapActive = false;
  #cancelReapTimer: (() => void) | undefined;
  #reaping: Promise<unknown> | undefined;
  #closed = false;

  private constructor(options: PostgresStoreOptions) {
    this.#url = options.url;
    this.#config = options.url.options;
    this.cluster = options.cluster;
    this.#clock = options.clock ?? systemClock;
    this.features = { crashDetection: this.#config.crashDetection, watch: 'push', announcesExpiry: true };
    this.#sql = postgresStatements(quoteIdentifier('postgres', this.#config.schema));
    this.#channel = `baton_${createHash('sha256').update(`${this.#config.schema}\0${options.cluster}`).digest('hex').slice(0, 40)}`;
    this.#label = `postgres store ${JSON.stringify(options.url.shown)}`;
    this.#lockClass = createHash('sha256').update(`baton backend\0${this.#config.schema}`).digest().readInt32BE(0);
  }

  /**
   * Connects (one connection for statements, one for LISTEN; the crash watch opens a third while anyone
   * watches), creates the schema if needed.
   * @throws StoreUrlError (an unreadable certificate file), StoreUnavailableError when the server cannot be
   * reached; BatonError(STORE_SCHEMA) for a newer schema.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const pg = await loadPg('postgres store');
    const store = new PostgresStore(options);
    try {
      await store.#connect(pg);
      return store;
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  async #connect(driver: PgDriver): Promise<void> {
    const config = this.#config;
    const clientConfig: ClientConfig = {
      ...(await pgClientConfig(this.#url, DEFAULT_CONNECT_TIMEOUT_MS)),
      // The server gives up on a statement when we do: no lock wait outlives the caller's interest.
      statement_timeout: config.queryTimeoutMs,
      // Client-side keepalive only: lets THIS process notice a dead server. The server's keepalive is
      // left alone on purpose (see the crash-detection argument above).
      keepAlive: true,
    };
    // Every connection (statements, LISTEN, crash watch) tries the URL's hosts in turn and keeps the wanted one.
    const servers = { hosts: this.#url.hosts, target: config.target_session_attrs };
    const common = { driver, config: clientConfig, servers, clock: this.#clock, queryTimeoutMs: config.queryTimeoutMs };
    this.#main = await PgConnection.open({
      ...common,
      label: this.#label,
      // Ten lock loops on one handle share round trips instead of queueing for them.
      pipeline: true,
      // Sessions are bound to this connection: once it drops, other nodes may reap them at any moment,
      // so tell the session keeper to give them up now rather than at its next renewal. Its backend holds
      // the lock other handles' crash watches wait for (backend-watch.ts); a new connection bumps the
      // token sequence before it issues a token (the first one's bump follows the migration below).
      ...(config.crashDetection ? { onLost: () => this.#listeners.emit({ scope: 'connection' }) } : {}),
      onConnect: async (client: Client, reconnected: boolean) => {
        if (config.crashDetection) {
          const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_advisory_lock($1, pg_backend_pid())', [this.#lockClass]);
          this.#mainPid = (rows[0] as { pid: number }).pid;
        }
        await client.query(GENERIC_PLANS);
        if (reconnected) {
          await this.#bumpTokens(client);
          await this.#prepareHandOver(client);
        }
      },
    });
    this.#watchConfig = { driver, config: clientConfig, servers };
    await migrate(this.#main, config.schema, this.#url.shown);
    await this.#bumpTokens();
    await this.#prepareHandOver();
    this.#listener = await PgConnection.open({
      ...common,
      label: `${this.#label} (change notifications)`,
      onConnect: (client, reconnected) => this.#listen(client, reconnected),
    });
  }

  /**
   * Ownership is committed without waiting for the WAL flush only where a server crash ends every session
   * holding it: with connection-bound sessions (crashDetection, the default). See "Durability of ownership".
   */
  get #asyncCommit(): boolean {
    return this.#config.crashDetection;
  }

  /**
   * Moves the token sequence past every token a crash (TOKEN_GAP, with asynchronous ownership commits) or
   * an asynchronous failover (FAILOVER_TOKEN_GAP, on a new timeline) may have lost (statements.ts, bumpTokens).
   */
  async #bumpTokens(client?: Client): Promise<void> {
    const { text, names } = compile(this.#sql.bumpTokens);
    const params: Params = {
      schema: this.#config.schema,
      gap: (this.#asyncCommit ? TOKEN_GAP : 0n).toString(),
      failoverGap: FAILOVER_TOKEN_GAP.toString(),
    };
    const values = names.map((name) => params[name]);
    // On reconnection the connection is not up yet (onConnect runs first): the statement goes to its client.
    if (client) await client.query(text, values);
    else await this.#main?.query(text, values);
  }

  /**
   * Prepares (parses and plans) the statements of a hand-over on the statement connection, by running
   * each once on nothing (a session and keys that do not exist: no row is touched, nothing notified). A
   * standby's first takeover otherwise paid the parsing and planning of tryAcquire, the largest
   * statement: 5 ms of a 1 ms round trip (bench, issue 21).
   */
  async #prepareHandOver(client?: Client): Promise<void> {
    const none: Params = { cluster: this.cluster, key: '', session: '', id: '', token: '0', channel: this.#channel, asyncCommit: this.#asyncCommit };
    for (const sql of [this.#sql.tryAcquire, this.#sql.release, this.#sql.closeSession, this.#sql.listSessions, this.#sql.holder]) {
      const { text, names, prepared } = compile(sql);
      const values = names.map((name) => none[name]);
      // On reconnection the connection is not up yet (onConnect runs first): the statement goes to its client.
      if (client) await client.query({ name: prepared, text, values });
      else await this.#main?.query(text, values, prepared);
    }
  }

  async #listen(client: Client, reconnected: boolean): Promise<void> {
    client.on('notification', (message: Notification) => {
      if (message.channel === this.#channel) this.#listeners.emit(parseChange(message.payload));
    });
    await client.query(`LISTEN ${quoteIdentifier('postgres', this.#channel)}`);
    // Changes made while we were not listening are lost: tell watchers to re-read everything.
    if (reconnected) this.#listeners.emit({ scope: 'any' });
  }

  async time(): Promise<number> {
    const [row] = await this.#query<{ now: number }>(this.#sql.time, {});
    return (row as { now: number }).now;
  }

  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) {
      throw new ConfigError(`${this.#label}: session ttlMs must be a positive integer, got ${ttlMs}`);
    }
    const id = randomId();
    await this.#query(this.#sql.openSession, {
      cluster: this.cluster,
      id,
      info: JSON.stringify(info),
      ttl: ttlMs,
      bind: this.#config.crashDetection,
      channel: this.#channel,
    });
    return { id };
  }

  async renewSession(sessionId: string): Promise<boolean> {
    const rows = await this.#query(this.#sql.renewSession, { cluster: this.cluster, id: sessionId, bind: this.#config.crashDetection });
    return rows.length === 1;
  }

  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    const rows = await this.#query<{ updated: number }>(this.#sql.updateSessionInfo, {
      cluster: this.cluster,
      id: sessionId,
      info: JSON.stringify(info),
      channel: this.#channel,
    });
    return rows[0]?.updated === 1;
  }

  async closeSession(sessionId: string): Promise<void> {
    await this.#query(this.#sql.closeSession, { cluster: this.cluster, id: sessionId, channel: this.#channel, asyncCommit: this.#asyncCommit });
  }

  async listSessions(): Promise<SessionRecord[]> {
    const rows = await this.#query<{ id: string; info: string; ttl_ms: number; age_ms: number; expires_in_ms: number }>(
      this.#sql.listSessions,
      { cluster: this.cluster },
    );
    return rows.map((r) => ({
      id: r.id,
      info: JSON.parse(r.info) as NodeInfo,
      ttlMs: r.ttl_ms,
      ageMs: r.age_ms,
      expiresInMs: r.expires_in_ms,
    }));
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    for (let attempt = 1; attempt <= ACQUIRE_ATTEMPTS; attempt++) {
      const [row] = await this.#query<{
        live: number;
        taken_token: string | null;
        session_id: string | null;
        token: string | null;
        acquired_at: number | null;
      }>(this.#sql.tryAcquire, { cluster: this.cluster, key, session: sessionId, channel: this.#channel, asyncCommit: this.#asyncCommit });
      if (!row || row.live === 0) {
        throw new SessionExpiredError(`${this.#label}: session ${sessionId} is not live; cannot acquire "${key}"`);
      }
      if (row.taken_token !== null) return { acquired: true, token: BigInt(row.taken_token) };
      if (row.session_id === sessionId && row.token !== null) return { acquired: true, token: BigInt(row.token) };
      if (row.session_id !== null && row.token !== null) {
        const holder = { key, session_id: row.session_id, token: row.token, acquired_at: row.acquired_at ?? 0 };
        return { acquired: false, holder: toHolder(holder) };
      }
      // The insert conflicted with an owner committed after our snapshot: look again with a new one.
    }
    throw new StoreUnavailableError(`${this.#label}: could not settle "${key}" in ${ACQUIRE_ATTEMPTS} attempts (heavy contention)`);
  }

  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    assertDistinctKeys(`${this.#label}: tryAcquireMany`, keys);
    const results: AcquireResult[] = [];
    for (const slice of slices(keys, KEYS_PER_STATEMENT)) results.push(...(await this.#tryAcquireSlice(slice, sessionId)));
    return results;
  }

  /** One statement per attempt; an attempt repeats only the keys that raced a newer insert. */
  async #tryAcquireSlice(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    const results = new Array<AcquireResult | undefined>(keys.length);
    let pending = keys.map((_, i) => i);
    for (let attempt = 1; attempt <= ACQUIRE_ATTEMPTS && pending.length > 0; attempt++) {
      const rows = await this.#query<{
        live: number;
        taken_token: string | null;
        session_id: string | null;
        token: string | null;
        acquired_at: number | null;
      }>(this.#sql.tryAcquireMany, {
        cluster: this.cluster,
        keys: pending.map((i) => keys[i]),
        session: sessionId,
        channel: this.#channel,
        asyncCommit: this.#asyncCommit,
      });
      if (rows[0]?.live !== 1) throw new SessionExpiredError(`${this.#label}: session ${sessionId} is not live; cannot acquire ${pending.length} keys`);
      const again: number[] = [];
      rows.forEach((row, n) => {
        const i = pending[n] as number;
        const key = keys[i] as string;
        if (row.taken_token !== null) results[i] = { acquired: true, token: BigInt(row.taken_token) };
        else if (row.session_id === sessionId && row.token !== null) results[i] = { acquired: true, token: BigInt(row.token) };
        else if (row.session_id !== null && row.token !== null) {
          results[i] = { acquired: false, holder: toHolder({ key, session_id: row.session_id, token: row.token, acquired_at: row.acquired_at ?? 0 }) };
        } else again.push(i);
      });
      pending = again;
    }
    if (pending.length > 0) throw new StoreUnavailableError(`${this.#label}: could not settle "${keys[pending[0] as number]}" in ${ACQUIRE_ATTEMPTS} attempts (heavy contention)`);
    return results as AcquireResult[];
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    assertDistinctKeys(`${this.#label}: releaseMany`, leases.map((l) => l.key));
    const results: boolean[] = [];
    for (const slice of slices(leases, KEYS_PER_STATEMENT)) {
      const rows = await this.#query<{ released: boolean }>(this.#sql.releaseMany, {
        cluster: this.cluster,
        keys: slice.map((l) => l.key),
        tokens: slice.map((l) => l.token.toString()),
        channel: this.#channel,
        asyncCommit: this.#asyncCommit,
      });
      results.push(...rows.map((r) => r.released));
    }
    return results;
  }

  async release(key: string, token: bigint): Promise<boolean> {
    const [row] = await this.#query<{ released: number }>(this.#sql.release, {
      cluster: this.cluster,
      key,
      token: token.toString(),
      channel: this.#channel,
      asyncCommit: this.#asyncCommit,
    });
    return row?.released === 1;
  }

  async holder(key: string): Promise<Holder | null> {
    const [row] = await this.#query<OwnerRow>(this.#sql.holder, { cluster: this.cluster, key });
    return row ? toHolder(row) : null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    const rows = await this.#query<OwnerRow>(this.#sql.listHolders, { cluster: this.cluster, prefix });
    return rows.map(toHolder);
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    const [row] = await this.#query<RecordRow>(this.#sql.get, { cluster: this.cluster, key });
    return row ? toRecord<T>(row) : null;
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    const { ifVersion, guard } = condition;
    checkVersion(ifVersion, this.#label);
    const mode: WriteMode = ifVersion === 'absent' ? 'absent' : ifVersion === undefined ? 'upsert' : 'version';
    const [row] = await this.#query<{ guard_ok: number; version: number | null }>(this.#sql.put(mode, guard !== undefined), {
      cluster: this.cluster,
      key,
      value: JSON.stringify(value) ?? 'null',
      ...(mode === 'version' ? { version: ifVersion } : {}),
      ...(guard ? { guardKey: guard.key, guardToken: guard.token.toString() } : {}),
      channel: this.#channel,
    });
    if (!row || row.guard_ok === 0) return { ok: false, reason: 'fenced' };
    if (row.version === null) return { ok: false, reason: 'version' };
    return { ok: true, version: row.version };
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const statement = options.reverse ? this.#sql.listDesc : this.#sql.listAsc;
    const rows = await this.#query<RecordRow>(statement, { cluster: this.cluster, prefix, limit: options.limit ?? null });
    return rows.map((r) => toRecord<T>(r));
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    const { ifVersion, guard } = condition;
    checkVersion(ifVersion, this.#label);
    // Deleting "only if absent" can never delete anything.
    if (ifVersion === 'absent') return false;
    const [row] = await this.#query<{ deleted: number }>(this.#sql.delete(ifVersion !== undefined, guard !== undefined), {
      cluster: this.cluster,
      key,
      ...(ifVersion !== undefined ? { version: ifVersion } : {}),
      ...(guard ? { guardKey: guard.key, guardToken: guard.token.toString() } : {}),
      channel: this.#channel,
    });
    return row?.deleted === 1;
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    const [row] = await this.#query<{ deleted: number }>(this.#sql.deleteBefore, {
      cluster: this.cluster,
      prefix,
      before: beforeKey,
      channel: this.#channel,
    });
    return row?.deleted ?? 0;
  }

  /**
   * Pushed by NOTIFY within milliseconds of the commit. While anyone watches, the handle also deletes dead
   * sessions every `reapMs`, so crashes and expiries are announced even when nobody writes.
   */
  async listClusters(): Promise<string[]> {
    const rows = await this.#query<{ cluster: string }>(this.#sql.listClusters, {});
    return rows.map((r) => r.cluster);
  }

  watch(listener: (change: Change) => void): () => void {
    this.#check();
    const unsubscribe = this.#listeners.subscribe(listener, () => this.#stopReap());
    if (!this.#reapActive) {
      this.#reapActive = true;
      if (!this.#reaping) this.#scheduleReap(); // else the round in flight schedules the next one
      this.#startBackendWatch();
    }
    return unsubscribe;
  }

  /** Ends both connections and every timer; resolves when they are gone. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopReap();
    this.#listeners.clear();
    await this.#reaping;
    await Promise.all([this.#main?.close(), this.#listener?.close(), this.#backendWatchClosing]);
  }

  /** While anyone watches: hear a peer's crash when its backend ends (backend-watch.ts). */
  #startBackendWatch(): void {
    if (!this.#config.crashDetection || !this.#watchConfig || this.#backendWatch) return;
    this.#backendWatch = new BackendWatch({
      ...this.#watchConfig,
      clock: this.#clock,
      label: this.#label,
      lockClass: this.#lockClass,
      retargetMs: BACKEND_WATCH_RETARGET_MS,
      queryTimeoutMs: this.#config.queryTimeoutMs,
      target: async () => {
        const [row] = await this.#query<{ pid: number }>(this.#sql.ringNext, { cluster: this.cluster, pid: this.#mainPid });
        return row?.pid;
      },
      reap: () => this.#reap(),
    });
  }

  /** One round at a time: the next is scheduled when the previous settles, never two loops. */
  #scheduleReap(): void {
    // Spread over the handles: with S sessions each handle reaps every reapMs × ⌈S / REAPERS⌉ (jittered),
    // so the cluster runs about REAPERS rounds per reapMs whatever its size (1,000 nodes would otherwise
    // send 5,000 statements a second to find nothing expired).
    const every = this.#config.reapMs * Math.max(1, Math.ceil(this.#sessionsSeen / REAPERS)) * (this.#sessionsSeen > REAPERS ? 0.5 + Math.random() : 1);
    this.#cancelReapTimer = this.#clock.setTimer(every, () => {
      this.#cancelReapTimer = undefined;
      if (this.#closed || !this.#reapActive) return;
      // A failed reap only delays a hint (reads already ignore dead sessions): the next round retries.
      const full = this.#config.crashDetection && this.#clock.monotonic() >= this.#fullReapAt;
      this.#reaping = this.#reap(full)
        .catch(() => undefined)
        .finally(() => {
          this.#reaping = undefined;
          if (this.#reapActive && !this.#closed) this.#scheduleReap();
        });
    });
  }

  /**
   * Deletes dead sessions (expired, or their backend gone) and their keys, notifying; resolves to how
   * many sessions it deleted. The full round reads every session of the cluster, so a handle runs it from
   * its timer only every FULL_REAP_PER_SESSION_MS × sessions (jittered): the cluster as a whole about once
   * per FULL_REAP_PER_SESSION_MS, whatever its size; a crash is announced sooner by the crash watch. The
   * other rounds (`full` false) delete expired sessions only, read from the expiry index.
   */
  async #reap(full = true): Promise<number> {
    const sql = full ? this.#sql.reap : this.#sql.reapExpired;
    const [row] = await this.#query<{ sessions: number; total?: number }>(sql, { cluster: this.cluster, channel: this.#channel, asyncCommit: this.#asyncCommit });
    if (full) {
      this.#sessionsSeen = Math.max(1, row?.total ?? 1);
      this.#fullReapAt = this.#clock.monotonic() + FULL_REAP_PER_SESSION_MS * this.#sessionsSeen * (0.5 + Math.random());
    }
    return row?.sessions ?? 0;
  }

  #stopReap(): void {
    this.#reapActive = false;
    this.#cancelReapTimer?.();
    this.#cancelReapTimer = undefined;
    const watch = this.#backendWatch;
    this.#backendWatch = undefined;
    if (watch) this.#backendWatchClosing = Promise.all([this.#backendWatchClosing, watch.close()]).then(() => undefined);
  }


  #check(): void {
    if (this.#closed) throw new ClosedError(`${this.#label}: handle is closed`);
  }

  /** Runs a statement with named parameters. @throws ClosedError, StoreUnavailableError. */
  async #query<R extends object>(sql: string, params: Params): Promise<R[]> {
    this.#check();
    const main = this.#main;
    if (!main) throw new StoreUnavailableError(`${this.#label}: not connected`);
    const { text, names, prepared } = compile(sql);
    const values = names.map((name) => {
      if (!(name in params)) throw new Error(`${this.#label}: statement parameter :${name} missing (bug)`);
      return params[name];
    });
    // Prepared by name: parsed and planned once per connection, then only bound and run.
    return main.query<R & Record<string, unknown>>(text, values, prepared);
  }
}

function checkVersion(ifVersion: WriteCondition['ifVersion'], label: string): void {
  if (ifVersion === undefined || ifVersion === 'absent') return;
  if (!Number.isInteger(ifVersion) || ifVersion < 0) {
    throw new ConfigError(`${label}: ifVersion must be 'absent' or a non-negative integer, got ${String(ifVersion)}`);
  }
}

/**
 * A notification's payload (statements.ts): `scope` or `scope:key`; a key taken, `held:[key, session, token,
 * acquired at]`; a key freed, `freed:key`; the keys of an ended session, `ended:<session id>`.
 */
function parseChange(payload: string | undefined): Change {
  const text = payload ?? '';
  const colon = text.indexOf(':');
  const scope = colon < 0 ? text : text.slice(0, colon);
  const rest = text.slice(colon + 1);
  if (colon >= 0 && scope === 'held') {
    const [key, sessionId, token, acquiredAt] = JSON.parse(rest) as [string, string, string, number];
    return { scope: 'owners', key, holder: { key, sessionId, token: BigInt(token), acquiredAt } };
  }
  if (colon >= 0 && scope === 'freed') return { scope: 'owners', key: rest, holder: null };
  if (colon >= 0 && scope === 'ended') return { scope: 'owners', endedSession: rest };
  if (!SCOPES.has(scope)) return { scope: 'any' };
  const change = { scope: scope as Change['scope'] };
  return colon < 0 ? change : { ...change, key: rest };
}

function toRecord<T>(row: RecordRow): StoredRecord<T> {
  return { key: row.key, value: JSON.parse(row.value) as T, version: row.version, updatedAt: row.updated_at };
}

function toHolder(row: OwnerRow): Holder {
  return { key: row.key, token: BigInt(row.token), sessionId: row.session_id, acquiredAt: row.acquired_at };
}
