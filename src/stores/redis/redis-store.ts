/**
 * The Redis store: a server store for nodes on many hosts, on one Redis (standalone, or one shard of
 * Redis Cluster: all keys of a baton cluster share one hash tag).
 *
 * Guarantees: the Store contract, provided Redis keeps its data (see below). Every primitive is one Lua
 * script (scripts.ts), so it is atomic and one round trip. Session TTLs are measured with the Redis
 * server's clock (`TIME` inside the scripts), never the node's. Fencing tokens come from a per-cluster
 * counter that is never reset and never below the server clock in microseconds nor below the highest
 * token this handle has seen, so they keep increasing even when the server loses its data. Changes are
 * published from inside the scripts on a per-cluster channel; each handle listens on a dedicated
 * subscriber connection that re-subscribes after a reconnect and then hints 'any'. A crashed owner on
 * the same host is detected before its TTL (see {@link RedisStore.reapCrashed} for the safety argument).
 * During an outage calls fail fast with StoreUnavailableError (no offline queue, no resend of a
 * command whose outcome is unknown); the connections reconnect by themselves with jittered backoff.
 *
 * Non-guarantees: records (tick claims, checkpoints) and sessions are only as durable as the server's
 * persistence (`appendonly yes`, `appendfsync always` for no loss; replication is asynchronous, so a
 * failover may lose the last writes). A step of the Redis host's wall clock shortens or lengthens
 * live sessions (Redis offers scripts no monotonic clock); fencing still refuses stale writes.
 * A command that times out (`commandTimeoutMs`) may still have been applied.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { systemClock, type Clock } from '../../core/clock.js';
import { ClosedError, ConfigError, SessionExpiredError, StoreUnavailableError } from '../../core/errors.js';
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
import { ChangeListeners } from '../change-listeners.js';
import { allClustersPattern, clusterKeys, clusterOfIndexKey, type ClusterKeys } from './keys.js';
import { slices } from '../../core/batches.js';
import { assertDistinctKeys } from '../many-keys.js';
import { SCRIPT_KEY_COUNT, SCRIPTS, scriptSource, type ScriptName } from './scripts.js';
import type { RedisStoreConfig } from './url.js';
import { loadDriver } from '../../core/driver.js';

export interface RedisStoreOptions {
  readonly config: RedisStoreConfig;
  readonly cluster: string;
  /** Timers of the crash reaper. Store time is always the server's. Default: the system clock. */
  readonly clock?: Clock;
}

type RedisConstructor = new (options: RedisOptions) => Redis;
type ScriptReply = string | number | null | ScriptReply[];
type ChangeScope = Change['scope'];

const SCOPES: ReadonlySet<string> = new Set<ChangeScope>(['sessions', 'owners', 'records']);

/** Longest pause between two reconnection attempts. */
const MAX_RECONNECT_DELAY_MS = 1000;
/** Keys per script of tryAcquireMany and releaseMany: a script blocks the server while it runs. */
const KEYS_PER_SCRIPT = 500;

/** One key's answer of the acquire scripts, with what tells whether its holder may have crashed. */
type AcquireAttempt =
  | { acquired: true; token: bigint }
  | { acquired: false; holder: Holder; clientId: string; process: ProcessIdentity | null };

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly features = { crashDetection: true, watch: 'push' } as const;
  readonly cluster: string;
  readonly #config: RedisStoreConfig;
  readonly #keys: ClusterKeys;
  readonly #clock: Clock;
  /** Runs the scripts; its CLIENT ID is what sessions opened by this handle are bound to. */
  readonly #redis: Redis;
  /** Subscribed to the cluster's channel; a connection in subscriber mode can do nothing else. */
  readonly #subscriber: Redis;
  readonly #listeners = new ChangeListeners();
  /** CLIENT ID of the command connection, refreshed on every (re)connection; '' when not allowed. */
  #clientId = '';
  /** Highest fencing token this handle has seen: the floor for the next one (see next_token). */
  #tokenFloor = 0n;
  /** Last connection error reported by the driver (wrong password, TLS, refused), for messages. */
  #lastError: Error | undefined;
  /** The command connection is up (for the `connection` hint: once per drop). */
  #connected = true;
  #cancelReaper: (() => void) | undefined;
  #closed = false;

  private constructor(options: RedisStoreOptions, redis: Redis, subscriber: Redis) {
    this.cluster = options.cluster;
    this.#config = options.config;
    this.#keys = clusterKeys(options.config.prefix, options.cluster);
    this.#clock = options.clock ?? systemClock;
    this.#redis = redis;
    this.#subscriber = subscriber;
  }

  /** Connects both connections and subscribes. @throws StoreUnavailableError naming the server. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const { default: Redis } = (await loadDriver('ioredis', 'redis store', () => import('ioredis'))) as unknown as { default: RedisConstructor };
    const connectionOptions = driverOptions(options.config);
    const redis = new Redis(connectionOptions);
    const subscriber = new Redis(connectionOptions);
    const store = new RedisStore(options, redis, subscriber);
    try {
      await store.#connect();
      return store;
    } catch (error) {
      await store.close();
      throw store.#unavailable('cannot connect', store.#lastError ?? error);
    }
  }

  async time(): Promise<number> {
    const [seconds, micros] = (await this.#call(() => this.#redis.time())) as [string | number, string | number];
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new ConfigError(`redis store: ttlMs must be a positive integer, got ${ttlMs}`);
    const id = randomId();
    await this.#script('batonOpenSession', id, JSON.stringify(info), ttlMs, this.#clientId, JSON.stringify(info.process));
    return { id };
  }

  async renewSession(sessionId: string): Promise<boolean> {
    return (await this.#script('batonRenewSession', sessionId, this.#clientId)) === 1;
  }

  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    return (await this.#script('batonUpdateSessionInfo', sessionId, JSON.stringify(info))) === 1;
  }

  async closeSession(sessionId: string): Promise<void> {
    await this.#script('batonCloseSession', sessionId);
  }

  async listSessions(): Promise<SessionRecord[]> {
    return (await this.#liveSessions()).map(({ client: _client, process: _process, ...record }) => record);
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    let result = await this.#tryAcquireOnce(key, sessionId);
    // The holder may be a crashed process: reap it (if it provably is) and try once more.
    if (!result.acquired && (await this.#reapIfCrashed(result.holder.sessionId, result.clientId, result.process))) {
      result = await this.#tryAcquireOnce(key, sessionId);
    }
    return result.acquired ? result : { acquired: false, holder: result.holder };
  }

  /**
   * One script per batch of keys. A key held by a session whose process may have crashed goes the way
   * of tryAcquire (reaped if it provably crashed, then tried once more): rare, so one key at a time.
   */
  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    assertDistinctKeys('redis store: tryAcquireMany', keys);
    const results: AcquireResult[] = [];
    for (const slice of slices(keys, KEYS_PER_SCRIPT)) {
      const replies = (await this.#script('batonTryAcquireMany', sessionId, this.#tokenFloor.toString(), ...slice)) as string[][] | ['expired'];
      if (replies[0] === 'expired') {
        throw new SessionExpiredError(`redis store: session ${sessionId} is not live; cannot acquire ${slice.length} keys`);
      }
      for (const [i, key] of slice.entries()) {
        const result = this.#acquireReply(key, replies[i] as string[]);
        if (result.acquired || !this.#mayHaveCrashed(result.clientId, result.process)) {
          results.push(result.acquired ? result : { acquired: false, holder: result.holder });
        } else results.push(await this.tryAcquire(key, sessionId));
      }
    }
    return results;
  }

  async release(key: string, token: bigint): Promise<boolean> {
    return (await this.#script('batonRelease', key, token.toString())) === 1;
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    assertDistinctKeys('redis store: releaseMany', leases.map((l) => l.key));
    const results: boolean[] = [];
    for (const slice of slices(leases, KEYS_PER_SCRIPT)) {
      const replies = (await this.#script('batonReleaseMany', ...slice.flatMap((l) => [l.key, l.token.toString()]))) as number[];
      results.push(...replies.map((r) => r === 1));
    }
    return results;
  }

  async holder(key: string): Promise<Holder | null> {
    const row = (await this.#script('batonHolder', key)) as string[] | null;
    return row ? this.#toHolder(key, row) : null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    const rows = (await this.#script('batonListHolders', prefix)) as string[][];
    return rows.map(([key, ...row]) => this.#toHolder(key as string, row));
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    const [value, version, at] = (await this.#call(() => this.#redis.hmget(this.#keys.record(key), 'value', 'version', 'at'))) as (
      | string
      | null
    )[];
    return value == null ? null : toRecord<T>([key, value, version as string, at as string]);
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    const json = JSON.stringify(value) ?? 'null';
    const [ok, detail] = (await this.#script('batonPut', key, ...this.#conditionArgs(condition), json)) as [number, number | string];
    return ok === 1 ? { ok: true, version: Number(detail) } : { ok: false, reason: detail as 'version' | 'fenced' };
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    const limit = options.limit === undefined ? -1 : Math.max(0, Math.floor(options.limit));
    const rows = (await this.#script('batonList', prefix, options.reverse ? '1' : '0', limit)) as string[][];
    return rows.map((row) => toRecord<T>(row));
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    return (await this.#script('batonDelete', key, ...this.#conditionArgs(condition))) === 1;
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    return Number(await this.#script('batonDeleteBefore', prefix, beforeKey));
  }

  /** SCANs the whole keyspace (in steps, never blocking the server): for operators, not for a loop. */
  async listClusters(): Promise<string[]> {
    const prefix = this.#config.prefix;
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.#call(() => this.#redis.scan(cursor, 'MATCH', allClustersPattern(prefix), 'COUNT', 1000));
      cursor = next;
      for (const key of keys) {
        const cluster = clusterOfIndexKey(prefix, key);
        if (cluster !== null) found.add(cluster);
      }
    } while (cursor !== '0');
    return [...found];
  }

  watch(listener: (change: Change) => void): () => void {
    this.#check();
    const unsubscribe = this.#listeners.subscribe(listener, () => this.#stopReaper());
    if (!this.#cancelReaper) this.#scheduleReaper();
    return unsubscribe;
  }

  /** Closes both connections (without waiting for replies in flight) and stops the reaper. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopReaper();
    this.#listeners.clear();
    await Promise.all([shutdown(this.#redis), shutdown(this.#subscriber)]);
  }

  /**
   * Crash failover before the TTL. A session is reaped only when BOTH hold:
   * 1. its process provably no longer exists: same host, boot and pid namespace as this process, and
   *    its pid is free or reused (`processState` = 'gone'; it never answers 'gone' for another host);
   * 2. the server no longer lists the connection the session is bound to (`CLIENT LIST ID`).
   * Then reaping (a script conditioned on the same session and client id) is safe: a dead process can
   * neither act nor renew, so invariant 4 holds trivially, and any write it left in flight either ran
   * before the reap (while it still held its keys) or is refused by fencing after it.
   *
   * Why not the client id alone (which would also cover owners on other hosts): a connection also
   * disappears while its process lives — a reset by a proxy or load balancer, `CLIENT KILL`, the server's
   * idle `timeout`, a partition once the server's TCP keepalive (`tcp-keepalive`, 300 s by default) gives
   * up. That owner keeps acting until its own local deadline (up to a TTL later), so reaping it at once
   * would let two nodes act at the same time (DESIGN.md invariant 4). Server-side detection of a dead
   * connection is immediate only when the client's kernel closed the socket because the process died;
   * a server keepalive or idle timeout shorter than the TTL would make the client id alone unsafe
   * even for that. So owners on other hosts wait for their TTL.
   *
   * With `crashDetection=connection` condition 1 is dropped, for owners on every host. The handle then
   * emits a `connection` change when its command connection drops, and the session keeper gives up its
   * sessions at once (DESIGN.md invariant 4); what remains unsafe is a server that drops a connection
   * its client cannot see dropped (a partition with a server `tcp-keepalive` or `timeout` shorter than
   * the TTL) and the short race between the server noticing and the owner's event loop noticing.
   *
   * `CLIENT` cannot run inside a script, hence check-then-act from here; the client-id condition in the
   * reap script makes it safe: only the owner itself re-binds its session (on renewal), and a dead
   * owner cannot. Where the server forbids `CLIENT` (ACL), condition 1 alone decides: it is sufficient.
   */
  async reapCrashed(): Promise<number> {
    const candidates = (await this.#liveSessions()).filter((s) => this.#mayHaveCrashed(s.client, s.process));
    if (candidates.length === 0) return 0;
    const gone = await this.#goneClients(candidates.map((s) => s.client));
    let reaped = 0;
    for (const session of candidates) {
      if (gone.has(session.client)) reaped += Number(await this.#script('batonReapSession', session.id, session.client));
    }
    return reaped;
  }

  /**
   * Condition 1 (or, with `crashDetection=connection`, a known client id: the connection alone decides).
   * A session without a client id (CLIENT forbidden by ACL) always needs the process check.
   */
  #mayHaveCrashed(clientId: string, process: ProcessIdentity | null): boolean {
    if (this.#config.crashDetection === 'connection' && /^\d+$/.test(clientId)) return true;
    return process !== null && processState(process) === 'gone';
  }

  async #reapIfCrashed(sessionId: string, clientId: string, process: ProcessIdentity | null): Promise<boolean> {
    if (!this.#mayHaveCrashed(clientId, process)) return false;
    if (!(await this.#goneClients([clientId])).has(clientId)) return false;
    return (await this.#script('batonReapSession', sessionId, clientId)) === 1;
  }

  /** Which of these client ids the server no longer lists. All of them when CLIENT is not allowed. */
  async #goneClients(ids: string[]): Promise<Set<string>> {
    const known = ids.filter((id) => /^\d+$/.test(id));
    if (known.length === 0) return new Set(ids);
    let listing: string;
    try {
      listing = String(await this.#redis.call('CLIENT', 'LIST', 'ID', ...known));
    } catch (error) {
      if (/NOPERM|unknown (sub)?command/i.test((error as Error).message)) return new Set(ids);
      throw this.#unavailable('CLIENT LIST', error);
    }
    const present = new Set([...listing.matchAll(/^id=(\d+)/gm)].map((m) => m[1]));
    return new Set(ids.filter((id) => !present.has(id)));
  }

  async #tryAcquireOnce(key: string, sessionId: string): Promise<AcquireAttempt> {
    const reply = (await this.#script('batonTryAcquire', key, sessionId, this.#tokenFloor.toString())) as string[];
    if (reply[0] === 'expired') {
      throw new SessionExpiredError(`redis store: session ${sessionId} is not live; cannot acquire "${key}"`);
    }
    return this.#acquireReply(key, reply);
  }

  /** One key's reply of the acquire scripts: `acquired` or `held` (see scripts.ts `acquire`). */
  #acquireReply(key: string, reply: string[]): AcquireAttempt {
    const [status, token, holderSession, acquiredAt, clientId, process] = reply;
    if (status === 'acquired') {
      // reply[2] === '1': the counter was found at or below a token we saw, the server lost data.
      if (reply[2] === '1') this.#listeners.emit({ scope: 'any' });
      return { acquired: true, token: this.#see(BigInt(token as string)) };
    }
    const holder = this.#toHolder(key, [token as string, holderSession as string, acquiredAt as string]);
    return { acquired: false, holder, clientId: clientId ?? '', process: parseProcess(process) };
  }

  async #liveSessions(): Promise<(SessionRecord & { client: string; process: ProcessIdentity | null })[]> {
    const [now, ...rows] = (await this.#script('batonListSessions')) as [string, ...string[][]];
    return rows
      .map(([id, info, ttl, opened, expires, client, process]) => ({
        id: id as string,
        info: JSON.parse(info as string) as NodeInfo,
        ttlMs: Number(ttl),
        ageMs: Number(now) - Number(opened),
        expiresInMs: Number(expires) - Number(now),
        client: client ?? '',
        process: parseProcess(process),
      }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  #conditionArgs(condition: WriteCondition): string[] {
    const guard = condition.guard;
    if (guard) this.#see(guard.token);
    return [
      condition.ifVersion === undefined ? '' : String(condition.ifVersion),
      guard ? '1' : '0',
      guard?.key ?? '',
      guard?.token.toString() ?? '',
    ];
  }

  #toHolder(key: string, [token, sessionId, acquiredAt]: string[]): Holder {
    return { key, token: this.#see(BigInt(token as string)), sessionId: sessionId as string, acquiredAt: Number(acquiredAt) };
  }

  /** Remembers the highest token seen, so a server that lost its counter is detected and re-seeded above it. */
  #see(token: bigint): bigint {
    if (token > this.#tokenFloor) this.#tokenFloor = token;
    return token;
  }

  async #connect(): Promise<void> {
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      this.#redis.defineCommand(name, { numberOfKeys: SCRIPT_KEY_COUNT, lua: scriptSource(name) });
    }
    // Without listeners ioredis reports connection errors as unhandled 'error' events, which crash Node.
    // They need no handling here: calls made meanwhile reject, and the driver keeps reconnecting.
    // The last one is kept: it explains a failed open better than "Connection is closed".
    this.#redis.on('error', (error: Error) => (this.#lastError = error));
    this.#subscriber.on('error', (error: Error) => (this.#lastError = error));
    this.#subscriber.on('message', (_channel: string, message: string) => this.#onMessage(message));
    await Promise.all([this.#redis.connect(), this.#subscriber.connect()]);
    await Promise.all([this.#refreshClientId(), this.#subscriber.subscribe(this.#keys.channel)]);
    // Sessions bound to this connection may be reaped by others as soon as it drops: say so at once.
    if (this.#config.crashDetection === 'connection') {
      this.#redis.on('close', () => {
        if (this.#connected) this.#listeners.emit({ scope: 'connection' });
        this.#connected = false;
      });
    }
    // From now on, every reconnection (the first 'ready' has passed).
    this.#redis.on('ready', () => {
      this.#connected = true;
      this.#lastError = undefined;
      void this.#refreshClientId();
    });
    this.#subscriber.on('ready', () => void this.#resubscribe());
  }

  /** After every (re)connection: the connection's CLIENT ID, bound to sessions opened or renewed on it. */
  async #refreshClientId(): Promise<void> {
    try {
      this.#clientId = String(await this.#redis.call('CLIENT', 'ID'));
    } catch {
      // CLIENT forbidden by ACL, or the connection dropped again (the next 'ready' retries): sessions then
      // carry no client id, and crash detection relies on the process check alone (see reapCrashed).
      this.#clientId = '';
    }
  }

  /**
   * Subscribes again after a reconnection, then hints 'any': changes published while the subscriber was
   * away are lost, so watchers must re-read. (The driver's autoResubscribe is off: this replaces it.)
   */
  async #resubscribe(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.#keys.channel);
    } catch {
      return; // Dropped again before subscribing: the next 'ready' retries.
    }
    this.#listeners.emit({ scope: 'any' });
  }

  #onMessage(message: string): void {
    const space = message.indexOf(' ');
    const scope = space < 0 ? message : message.slice(0, space);
    const key = space < 0 ? '' : message.slice(space + 1);
    if (!SCOPES.has(scope)) return;
    this.#listeners.emit(key ? { scope: scope as ChangeScope, key } : { scope: scope as ChangeScope });
  }


  #scheduleReaper(): void {
    this.#cancelReaper = this.#clock.setTimer(this.#config.crashCheckMs, () => {
      if (this.#closed || !this.#cancelReaper) return;
      void this.reapCrashed()
        .catch(() => undefined) // Unreachable server: the next round retries; watchers only miss a hint.
        .finally(() => {
          if (this.#cancelReaper && !this.#closed) this.#scheduleReaper();
        });
    });
  }

  #stopReaper(): void {
    this.#cancelReaper?.();
    this.#cancelReaper = undefined;
  }

  async #script(name: ScriptName, ...args: (string | number)[]): Promise<ScriptReply> {
    const run = (this.#redis as unknown as Record<ScriptName, (...a: (string | number)[]) => Promise<ScriptReply>>)[name];
    return this.#call(() => run.call(this.#redis, ...this.#keys.scriptKeys, this.#keys.base, this.#keys.channel, ...args));
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    this.#check();
    try {
      return await fn();
    } catch (error) {
      const status = this.#redis.status;
      if (status === 'ready') throw this.#unavailable('command failed', error);
      // The driver's own message ("Stream isn't writeable…") says little: name the state and the cause.
      const cause = this.#lastError ? `, last error: ${this.#lastError.message}` : '';
      throw new StoreUnavailableError(
        `redis store (${this.#config.shown}): not connected (${status}${cause}); the handle reconnects by itself`,
        { cause: error },
      );
    }
  }

  #unavailable(what: string, error: unknown): StoreUnavailableError {
    if (error instanceof StoreUnavailableError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new StoreUnavailableError(`redis store (${this.#config.shown}): ${what}: ${message}`, { cause: error });
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`redis store (${this.#config.shown}): handle is closed`);
  }
}

/**
 * Driver options shared by both connections. Fail fast instead of queueing: no offline queue (a call
 * while disconnected rejects at once), no retry or resend of a command in flight when the connection
 * dropped (its outcome is unknown; resending a put would bump the version twice), and a command timeout.
 */
function driverOptions(config: RedisStoreConfig): RedisOptions {
  return {
    ...(config.sentinel ? sentinelOptions(config.sentinel) : { host: config.host, port: config.port }),
    db: config.db,
    ...(config.username ? { username: config.username } : {}),
    ...(config.password ? { password: config.password } : {}),
    ...(config.tls ? { tls: { ...config.tls } } : {}),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    // Jittered exponential backoff, forever: the handle must come back by itself after any outage.
    retryStrategy: (times) => {
      const ceiling = Math.min(MAX_RECONNECT_DELAY_MS, 25 * 2 ** Math.min(times, 10));
      return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    },
  };
}

/**
 * Redis Sentinel: every (re)connection asks the Sentinels, in order, where the master is, so a connection
 * that the old master's loss dropped comes back on the promoted replica. A switch the Sentinels announce
 * (`+switch-master`) drops the connection at once, even when the old master still answers (a partition).
 * A server that turns out to be a replica (READONLY) is left for the Sentinels' current master.
 */
function sentinelOptions(sentinel: NonNullable<RedisStoreConfig['sentinel']>): RedisOptions {
  return {
    sentinels: sentinel.hosts.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    role: 'master',
    failoverDetector: true,
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
  };
}

/** Closes a connection at once (pending replies are rejected) and resolves when it has ended. */
async function shutdown(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status === 'reconnecting') {
    // Between attempts there is no socket: cancelling the pending attempt is all there is to do, and
    // ioredis emits no 'end' for it.
    redis.disconnect(false);
    return;
  }
  const ended = new Promise((resolve) => redis.once('end', resolve));
  redis.disconnect(false);
  await ended;
}

function parseProcess(json: string | undefined): ProcessIdentity | null {
  if (!json) return null;
  try {
    return JSON.parse(json) as ProcessIdentity;
  } catch {
    return null;
  }
}

function toRecord<T>([key, value, version, at]: string[]): StoredRecord<T> {
  return { key: key as string, value: JSON.parse(value as string) as T, version: Number(version), updatedAt: Number(at) };
}
