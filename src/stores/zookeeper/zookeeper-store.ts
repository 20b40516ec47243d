/**
 * The ZooKeeper store: sessions, ownership and fenced records as znodes, changes pushed by watches.
 *
 * Guarantees: the Store contract. Every write is one ZooKeeper `multi` (all or nothing). Where a
 * decision needs state first (is the holder alive? does the guard still hold?), the store reads, then
 * commits a multi conditioned on the versions it read (`check`/versioned `setData`/`remove`): the multi
 * fails if any of them changed in between, and the call starts over. That is a compare-and-set, as
 * atomic as one statement, never a blind read-then-write.
 * - Session TTLs are measured by the ZooKeeper leader's clock: a renewal is a `setData`, whose `mtime`
 *   the leader stamps; "now" is the `mtime` of a write to `<cluster>/clock` made in the same call.
 *   A session is live while `mtime + ttl > now` and its last renewal was itself in time (see
 *   {@link isSessionLive}); once expired it can never come back.
 * - Tokens are the `mzxid` of the write that made the acquisition: ZooKeeper transaction ids are unique
 *   and strictly increasing over the ensemble's whole life (the leader epoch is their high half), so a
 *   later acquisition of any key always gets a greater token, across releases, expiries and restarts.
 *   No counter, so no contention between keys.
 * - Owner znodes are persistent and never deleted: every acquisition and release bumps their version,
 *   so a guard (`check(owner, version)`) cannot be fooled by a delete-and-recreate (ABA).
 * - Crash failover before the TTL on the same host: a holder whose process provably no longer exists
 *   (pid gone or reused: same check as the SQLite store) loses its session at once. A dead process
 *   cannot send anything more, and anything it sent before dying that lands later is still checked
 *   against the owner znode's version, so invariants 1–4 hold.
 *
 * Why ZooKeeper sessions (ephemeral nodes) do not give faster failover: the server ends a ZK session
 * only after its timeout with no contact, never when the socket closes (the client may reconnect to
 * another server). And that timeout must not be SHORTER than a baton session's TTL: a partitioned owner
 * believes it holds its keys until its local deadline (last renewal + TTL − margin); if its ephemeral
 * nodes vanished earlier, another node could take over while it still acts (invariant 4). So a session
 * znode is ephemeral only when its TTL fits within the granted ZK session timeout, and then only as
 * garbage collection of crashed processes' sessions; liveness always comes from the TTL rule.
 *
 * Non-guarantees: TTLs follow the leader's wall clock, so ensemble members need synchronized clocks
 * (NTP), and a leader change or a clock step on the leader lengthens or shortens live TTLs by the
 * skew. A guarded write checks its guard's liveness against server time read in the same call, one
 * round trip before its multi commits: a write can land within that round trip after the guard
 * session's TTL ran out, but never after another session took the key (the owner version check).
 * Notifications are hints: a TTL running out by itself produces none. Closing a handle ends its ZK
 * session, which removes its ephemeral session znodes at once (close sessions first anyway).
 */
import { systemClock, type Clock } from '../../core/clock.js';
import { ClosedError, ConfigError, SessionExpiredError, StoreUnavailableError } from '../../core/errors.js';
import { randomId } from '../../core/ids.js';
import type { NodeInfo } from '../../core/node-info.js';
import { processState } from '../../core/process-identity.js';
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
import { ZkCode, ZkConnection, type NodeData, type ZkDriver, type ZkOp } from './connection.js';
import {
  EMPTY,
  FREE_OWNER,
  clusterPaths,
  decodeJson,
  decodeName,
  encodeJson,
  isRenewalInTime,
  isSessionLive,
  layoutNodes,
  type ClusterPaths,
  type OwnerData,
  type SessionData,
} from './layout.js';
import { loadDriver } from '../../core/driver.js';

export interface ZookeeperStoreOptions {
  /** `host:port[,host:port]`: the ensemble (the driver tries the servers in turn). */
  readonly servers: string;
  /** Parent path of every cluster, created when missing. Default `/baton`. */
  readonly chroot?: string;
  readonly cluster: string;
  /** Digest credentials; nodes are then created with the creator-only ACL. */
  readonly auth?: { readonly user: string; readonly password: string };
  /**
   * ZooKeeper session timeout requested, in ms (the server clamps it to its min/max). Default 30000.
   * It only decides which baton sessions get ephemeral znodes (TTL ≤ timeout) and how fast the
   * znodes of a crashed process are cleaned up; too short makes brief network blips expire the
   * connection (and with it this handle's ephemeral sessions, which were within their TTL anyway).
   */
  readonly sessionTimeoutMs?: number;
  /**
   * How long one request may go unanswered before the call fails with StoreUnavailableError and the
   * connection is re-established, in ms. Default 2000. Keep it well under the shortest session TTL,
   * or a hung renewal outlives the lease it tries to keep.
   */
  readonly requestTimeoutMs?: number;
  /** How long `open` waits for a first connection, in ms. Default 10000. */
  readonly connectTimeoutMs?: number;
  /** Upper bound of the random pause before retrying the server list after all failed, in ms. Default 250. */
  readonly reconnectDelayMs?: number;
  /** While someone watches, how often this host's crashed processes are looked for, in ms. Default 500. */
  readonly crashCheckMs?: number;
  /** Timers and timeouts (store time comes from the server). Default: the system clock. */
  readonly clock?: Clock;
  /** The URL to show in messages, credentials redacted. */
  readonly label?: string;
}

type WatchedScope = 'sessions' | 'owners' | 'records';

/** Prefix of the `owners` parent's data written by closeSession: `ended:<session id>`. */
const ENDED = 'ended:';

/** How many times a call starts over when a concurrent writer changed what it read. */
const MAX_ATTEMPTS = 20;
/** Keys per `multi` of tryAcquireMany and releaseMany: bounds the request (jute.maxbuffer, 1 MB by default). */
const KEYS_PER_MULTI = 100;

export class ZookeeperStore implements Store {
  readonly kind = 'zookeeper' as const;
  readonly features = { crashDetection: true, watch: 'push' } as const;
  readonly cluster: string;
  readonly #zk: ZkConnection;
  readonly #paths: ClusterPaths;
  readonly #clock: Clock;
  readonly #label: string;
  readonly #crashCheckMs: number;
  readonly #listeners = new ChangeListeners();
  readonly #stopReconnectListener: () => void;
  #cancelCrashCheck: (() => void) | undefined;
  #closed = false;

  private constructor(zk: ZkConnection, options: ZookeeperStoreOptions, paths: ClusterPaths, label: string) {
    this.#zk = zk;
    this.cluster = options.cluster;
    this.#paths = paths;
    this.#label = label;
    this.#clock = options.clock ?? systemClock;
    this.#crashCheckMs = options.crashCheckMs ?? 500;
    this.#stopReconnectListener = zk.onReconnect(() => this.#onReconnect());
  }

  /** Connects and creates the cluster's nodes when missing. @throws StoreUnavailableError */
  static async open(options: ZookeeperStoreOptions): Promise<ZookeeperStore> {
    const clock = options.clock ?? systemClock;
    const label = options.label ?? `zk://${options.servers}${options.chroot ?? ''}`;
    const chroot = options.chroot ?? '/baton';
    const requestTimeoutMs = options.requestTimeoutMs ?? 2000;
    const sessionTimeoutMs = options.sessionTimeoutMs ?? 30_000;
    if (requestTimeoutMs >= sessionTimeoutMs) {
      throw new ConfigError(`zookeeper store (${label}): requestTimeoutMs (${requestTimeoutMs}) must be below sessionTimeoutMs (${sessionTimeoutMs})`);
    }
    const module = (await loadDriver('node-zookeeper-client', 'zookeeper store', () => import('node-zookeeper-client'))) as unknown as { default?: ZkDriver } & ZkDriver;
    const driver = module.default ?? module;
    const zk = await ZkConnection.open(
      driver,
      {
        servers: options.servers,
        label,
        ...(options.auth ? { auth: options.auth } : {}),
        sessionTimeoutMs,
        requestTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
        reconnectDelayMs: options.reconnectDelayMs ?? 250,
      },
      clock,
    );
    const paths = clusterPaths(chroot, options.cluster);
    try {
      // Parents first; "already exists" is fine, so any number of nodes may open concurrently.
      for (const path of layoutNodes(chroot, paths)) await zk.ensure(path);
    } catch (error) {
      await zk.close();
      throw error;
    }
    return new ZookeeperStore(zk, options, paths, label);
  }

  async time(): Promise<number> {
    this.#check();
    return this.#now();
  }

  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    this.#check();
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) {
      throw new ConfigError(`zookeeper store: session ttlMs must be a positive integer, got ${JSON.stringify(ttlMs)}`);
    }
    const id = randomId();
    const path = this.#paths.session(id);
    const data = encodeJson({ info, ttlMs, renewedFrom: null } satisfies SessionData);
    // Ephemeral only when the ZK session cannot end before the TTL would (see the header).
    const ephemeral = ttlMs <= this.#zk.sessionTimeoutMs;
    // create + setData: the znode starts at version 1, never at the driver's ambiguous version 0.
    const outcome = await this.#zk.multi([
      { op: 'create', path, data, ephemeral },
      { op: 'set', path, data, version: -1 },
    ]);
    if (!outcome.ok) throw new StoreUnavailableError(`zookeeper store (${this.#label}): cannot create session ${id} (code ${outcome.code})`);
    return { id };
  }

  async renewSession(sessionId: string): Promise<boolean> {
    return this.#rewriteSession(sessionId, 'renew session', (session) => session);
  }

  /**
   * A write to the session's znode moves its mtime, which is what renews it here: so this is a renewal
   * that also replaces the info. An extra renewal only moves the store's expiry later than the keeper's
   * local deadline, never earlier — the safe direction for invariant 4.
   */
  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    return this.#rewriteSession(sessionId, 'update session info', (session) => ({ ...session, info }));
  }

  /** Rewrites a live session's znode (renewing it), versioned; false once it is gone or expired. */
  async #rewriteSession(sessionId: string, what: string, change: (session: SessionData) => SessionData): Promise<boolean> {
    this.#check();
    const path = this.#paths.session(sessionId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#zk.getData(path);
      if (!current) return false;
      const session = decodeJson<SessionData>(current.data);
      // Never extend a void version: this keeps "expired once, expired forever" inductive.
      if (!isRenewalInTime(session, current.stat)) return false;
      const renewed = encodeJson({ ...change(session), renewedFrom: current.stat.mtime } satisfies SessionData);
      // Versioned: if another renewal or a removal came first, read again rather than overwrite it.
      const outcome = await this.#zk.multi([{ op: 'set', path, data: renewed, version: current.stat.version }]);
      if (!outcome.ok) {
        if (outcome.code === ZkCode.NO_NODE) return false;
        continue;
      }
      const stat = outcome.stats[0];
      if (stat && stat.mtime - current.stat.mtime < session.ttlMs) return true;
      // The renewal landed after the TTL ran out: it is void (isRenewalInTime). Remove the dead znode.
      if (stat) await this.#removeIfUnchanged(path, stat.version);
      return false;
    }
    throw this.#contention(`${what} ${sessionId}`);
  }

  async closeSession(sessionId: string): Promise<void> {
    this.#check();
    const path = this.#paths.session(sessionId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const [session, owners] = await Promise.all([this.#zk.getData(path), this.#readOwners()]);
      const held = owners.filter((o) => o.owner.sessionId === sessionId);
      const ops: ZkOp[] = [];
      if (session) ops.push({ op: 'remove', path, version: -1 });
      // Each key is freed only if unchanged since we read it: a concurrent takeover wins, we retry.
      for (const o of held) ops.push({ op: 'set', path: this.#paths.owner(o.key), data: FREE_OWNER, version: o.node.stat.version });
      // The parent's data names the session: a watcher that reads it on re-arming learns whose keys went.
      if (held.length > 0) ops.push(this.#bump('owners', Buffer.from(`${ENDED}${sessionId}`)));
      if (ops.length === 0) return;
      if ((await this.#zk.multi(ops)).ok) return;
    }
    throw this.#contention(`close session ${sessionId}`);
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#check();
    const ids = ((await this.#zk.getChildren(this.#paths.sessions)) ?? []).map(decodeName);
    const [nodes, now] = await this.#readThenNow(Promise.all(ids.map((id) => this.#readSession(id))));
    const live: SessionRecord[] = [];
    for (const [i, node] of nodes.entries()) {
      const id = ids[i] as string;
      if (!node) continue;
      if (!isSessionLive(node.session, node.stat, now)) {
        // Expired for good (the liveness rule), so removing it changes nothing but the clutter.
        await this.#removeIfUnchanged(this.#paths.session(id), node.stat.version);
        continue;
      }
      live.push({
        id,
        info: node.session.info,
        ttlMs: node.session.ttlMs,
        ageMs: now - node.stat.ctime,
        expiresInMs: node.stat.mtime + node.session.ttlMs - now,
      });
    }
    return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    this.#check();
    const ownerPath = this.#paths.owner(key);
    const sessionPath = this.#paths.session(sessionId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const [[mine, owner], now] = await this.#readThenNow(Promise.all([this.#readSession(sessionId), this.#zk.getData(ownerPath)]));
      if (!mine || !isSessionLive(mine.session, mine.stat, now)) {
        throw new SessionExpiredError(`zookeeper store: session ${sessionId} is not live; cannot acquire "${key}"`);
      }
      const holderId = owner ? decodeJson<OwnerData>(owner.data).sessionId : undefined;
      if (owner && holderId === sessionId) return { acquired: true, token: owner.stat.mzxid };
      // Our session must still be the version we judged live when the multi commits.
      const ops: ZkOp[] = [{ op: 'check', path: sessionPath, version: mine.stat.version }];
      if (owner && holderId !== undefined) {
        const [theirs, later] = await this.#readThenNow(this.#readSession(holderId));
        if (theirs && isSessionLive(theirs.session, theirs.stat, later) && processState(theirs.session.info.process) !== 'gone') {
          return { acquired: false, holder: toHolder(key, holderId, owner) };
        }
        // The holder's session expired or its process is gone: remove it in the same multi, so it is
        // gone for everyone (and its other keys with it). Versioned: a renewal since our read wins.
        if (theirs) ops.push({ op: 'remove', path: this.#paths.session(holderId), version: theirs.stat.version });
      }
      const data = encodeJson({ sessionId } satisfies OwnerData);
      // Take the key only from the owner version we read (free, or held by the dead session above);
      // a first acquisition creates it at version 1, and a concurrent creator makes ours fail.
      if (owner) ops.push({ op: 'set', path: ownerPath, data, version: owner.stat.version });
      else ops.push({ op: 'create', path: ownerPath, data: EMPTY }, { op: 'set', path: ownerPath, data, version: -1 });
      const ownerSet = ops.length - 1;
      ops.push(this.#bump('owners'));
      const outcome = await this.#zk.multi(ops);
      const stat = outcome.ok ? outcome.stats[ownerSet] : undefined;
      if (stat) return { acquired: true, token: stat.mzxid };
      // Someone changed the key or a session since we read them: look again.
    }
    throw this.#contention(`acquire "${key}"`);
  }

  /**
   * Per batch of keys: one pipelined read of our session and the owners, then one `multi` that takes
   * every free key (checked against our session's version, as tryAcquire does). A key held by a session
   * that is dead or whose process crashed goes the way of tryAcquire, one key at a time (rare); a multi
   * that failed (something changed since the read) is tried again from the read.
   */
  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    this.#check();
    assertDistinctKeys('zookeeper store: tryAcquireMany', keys);
    const results: AcquireResult[] = [];
    for (const slice of slices(keys, KEYS_PER_MULTI)) results.push(...(await this.#tryAcquireSlice(slice, sessionId)));
    return results;
  }

  async #tryAcquireSlice(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const [[mine, owners], now] = await this.#readThenNow(
        Promise.all([this.#readSession(sessionId), Promise.all(keys.map((key) => this.#zk.getData(this.#paths.owner(key))))]),
      );
      if (!mine || !isSessionLive(mine.session, mine.stat, now)) {
        throw new SessionExpiredError(`zookeeper store: session ${sessionId} is not live; cannot acquire ${keys.length} keys`);
      }
      const results = new Array<AcquireResult | undefined>(keys.length);
      const ops: ZkOp[] = [{ op: 'check', path: this.#paths.session(sessionId), version: mine.stat.version }];
      const setAt = new Map<number, number>();
      const holders = new Map<string, number[]>();
      const data = encodeJson({ sessionId } satisfies OwnerData);
      keys.forEach((key, i) => {
        const owner = owners[i];
        const path = this.#paths.owner(key);
        const holderId = owner ? decodeJson<OwnerData>(owner.data).sessionId : undefined;
        if (owner && holderId === sessionId) results[i] = { acquired: true, token: owner.stat.mzxid };
        else if (holderId !== undefined) holders.set(holderId, [...(holders.get(holderId) ?? []), i]);
        else {
          if (owner) ops.push({ op: 'set', path, data, version: owner.stat.version });
          else ops.push({ op: 'create', path, data: EMPTY }, { op: 'set', path, data, version: -1 });
          setAt.set(i, ops.length - 1);
        }
      });
      const [sessions, later] = await this.#readThenNow(Promise.all([...holders.keys()].map((id) => this.#readSession(id))));
      const takeOneByOne: number[] = [];
      [...holders.values()].forEach((indexes, n) => {
        const theirs = sessions[n];
        const alive = theirs && isSessionLive(theirs.session, theirs.stat, later) && processState(theirs.session.info.process) !== 'gone';
        for (const i of indexes) {
          const owner = owners[i] as NodeData;
          if (alive) results[i] = { acquired: false, holder: toHolder(keys[i] as string, decodeJson<OwnerData>(owner.data).sessionId as string, owner) };
          else takeOneByOne.push(i);
        }
      });
      if (setAt.size > 0) {
        ops.push(this.#bump('owners'));
        const outcome = await this.#zk.multi(ops);
        if (!outcome.ok) continue; // someone changed a key or our session since the read: look again
        for (const [i, at] of setAt) results[i] = { acquired: true, token: (outcome.stats[at] as NodeData['stat']).mzxid };
      }
      for (const i of takeOneByOne) results[i] = await this.tryAcquire(keys[i] as string, sessionId);
      return results as AcquireResult[];
    }
    throw this.#contention(`acquire ${keys.length} keys`);
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    this.#check();
    assertDistinctKeys('zookeeper store: releaseMany', leases.map((l) => l.key));
    const results: boolean[] = [];
    for (const slice of slices(leases, KEYS_PER_MULTI)) {
      const owners = await Promise.all(slice.map((l) => this.#zk.getData(this.#paths.owner(l.key))));
      const held = slice.flatMap((l, i) => {
        const owner = owners[i];
        return owner && decodeJson<OwnerData>(owner.data).sessionId !== undefined && owner.stat.mzxid === l.token ? [{ lease: l, version: owner.stat.version }] : [];
      });
      // Versioned: only the acquisitions that issued the tokens are freed. When any moved on since the
      // read, each key is released on its own (all or nothing would otherwise keep the others).
      const ops: ZkOp[] = held.map(({ lease, version }) => ({ op: 'set', path: this.#paths.owner(lease.key), data: FREE_OWNER, version }));
      const freed = held.length > 0 && (await this.#zk.multi([...ops, this.#bump('owners')])).ok;
      if (freed || held.length === 0) {
        const released = new Set(held.map((h) => h.lease.key));
        results.push(...slice.map((l) => released.has(l.key)));
      } else results.push(...(await Promise.all(slice.map((l) => this.release(l.key, l.token)))));
    }
    return results;
  }

  async release(key: string, token: bigint): Promise<boolean> {
    this.#check();
    const path = this.#paths.owner(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const owner = await this.#zk.getData(path);
      if (!owner || decodeJson<OwnerData>(owner.data).sessionId === undefined || owner.stat.mzxid !== token) return false;
      // Versioned: only the acquisition that issued `token` is freed, never a newer one.
      const outcome = await this.#zk.multi([{ op: 'set', path, data: FREE_OWNER, version: owner.stat.version }, this.#bump('owners')]);
      if (outcome.ok) return true;
    }
    throw this.#contention(`release "${key}"`);
  }

  async holder(key: string): Promise<Holder | null> {
    this.#check();
    const owner = await this.#zk.getData(this.#paths.owner(key));
    const holderId = owner ? decodeJson<OwnerData>(owner.data).sessionId : undefined;
    if (!owner || holderId === undefined) return null;
    const [session, now] = await this.#readThenNow(this.#readSession(holderId));
    return session && isSessionLive(session.session, session.stat, now) ? toHolder(key, holderId, owner) : null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    this.#check();
    const owners = (await this.#readOwners()).filter((o) => o.key.startsWith(prefix) && o.owner.sessionId !== undefined);
    const ids = [...new Set(owners.map((o) => o.owner.sessionId as string))];
    const [sessions, now] = await this.#readThenNow(Promise.all(ids.map((id) => this.#readSession(id))));
    const live = new Set(ids.filter((_, i) => {
      const s = sessions[i];
      return s !== null && s !== undefined && isSessionLive(s.session, s.stat, now);
    }));
    return owners
      .filter((o) => live.has(o.owner.sessionId as string))
      .map((o) => toHolder(o.key, o.owner.sessionId as string, o.node))
      .sort((a, b) => compareKeys(a.key, b.key));
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    this.#check();
    const node = await this.#zk.getData(this.#paths.record(key));
    return node ? toRecord<T>(key, node) : null;
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    this.#check();
    const path = this.#paths.record(key);
    const data = encodeJson(value);
    const { ifVersion } = condition;
    let exists = true; // unconditional writes guess "update" first, then switch on the answer
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const guardOps = condition.guard ? await this.#guardChecks(condition.guard) : [];
      if (guardOps === 'fenced') return { ok: false, reason: 'fenced' };
      if (typeof ifVersion === 'number' && !isRecordVersion(ifVersion)) return { ok: false, reason: 'version' };
      const recordOps: ZkOp[] =
        ifVersion === 'absent' || (ifVersion === undefined && !exists)
          ? // A unique insert: create fails with NODE_EXISTS for all but one concurrent writer.
            [{ op: 'create', path, data: EMPTY }, { op: 'set', path, data, version: -1 }]
          : // Compare-and-set on the record's version (-1: unconditional update).
            [{ op: 'set', path, data, version: ifVersion ?? -1 }];
      const ops = [...guardOps, ...recordOps, this.#bump('records')];
      const outcome = await this.#zk.multi(ops);
      if (outcome.ok) return { ok: true, version: outcome.stats[guardOps.length + recordOps.length - 1]?.version ?? 1 };
      if (outcome.failedIndex < guardOps.length) continue; // the guard's owner or session moved: judge again
      if (ifVersion !== undefined) return { ok: false, reason: 'version' };
      exists = outcome.code !== ZkCode.NO_NODE;
    }
    throw this.#contention(`write "${key}"`);
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    this.#check();
    let keys = (await this.#recordKeys()).filter((k) => k.startsWith(prefix)).sort(compareKeys);
    if (options.reverse) keys.reverse();
    if (options.limit !== undefined) keys = keys.slice(0, Math.max(0, options.limit));
    const nodes = await Promise.all(keys.map((k) => this.#zk.getData(this.#paths.record(k))));
    // A record deleted between the listing and the read is simply left out.
    return keys.flatMap((k, i) => {
      const node = nodes[i];
      return node ? [toRecord<T>(k, node)] : [];
    });
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    this.#check();
    const { ifVersion } = condition;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const guardOps = condition.guard ? await this.#guardChecks(condition.guard) : [];
      if (guardOps === 'fenced') return false;
      if (ifVersion === 'absent' || (typeof ifVersion === 'number' && !isRecordVersion(ifVersion))) return false;
      // Versioned remove is the compare-and-delete; -1 deletes whatever version is there.
      const ops: ZkOp[] = [...guardOps, { op: 'remove', path: this.#paths.record(key), version: ifVersion ?? -1 }, this.#bump('records')];
      const outcome = await this.#zk.multi(ops);
      if (outcome.ok) return true;
      if (outcome.failedIndex >= guardOps.length) return false; // absent, or another version
    }
    throw this.#contention(`delete "${key}"`);
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    this.#check();
    let deleted = 0;
    let conflicts = 0;
    while (conflicts < MAX_ATTEMPTS) {
      const doomed = (await this.#recordKeys()).filter((k) => k.startsWith(prefix) && k < beforeKey);
      if (doomed.length === 0) return deleted;
      // Batches keep each multi well under ZooKeeper's request size limit (jute.maxbuffer, 1 MB).
      const batch = doomed.slice(0, 200);
      const ops: ZkOp[] = batch.map((k) => ({ op: 'remove', path: this.#paths.record(k), version: -1 }));
      const outcome = await this.#zk.multi([...ops, this.#bump('records')]);
      // A failed batch means another writer deleted one of them first: list again.
      if (outcome.ok) deleted += batch.length;
      else conflicts++;
    }
    throw this.#contention(`delete records of "${prefix}" before "${beforeKey}"`);
  }

  /**
   * Opening a handle creates its cluster's nodes, so a cluster counts only when one of its sessions,
   * owners or records nodes has a child: three reads per cluster, for operators, not for a loop.
   */
  async listClusters(): Promise<string[]> {
    this.#check();
    const names = (await this.#zk.getChildren(this.#paths.root)) ?? [];
    const held = await Promise.all(
      names.map(async (name) => {
        const paths = clusterPaths(this.#paths.root, decodeName(name));
        const children = await Promise.all([paths.sessions, paths.owners, paths.records].map((path) => this.#zk.getChildren(path)));
        return children.some((c) => (c?.length ?? 0) > 0) ? decodeName(name) : null;
      }),
    );
    return held.filter((name): name is string => name !== null);
  }

  watch(listener: (change: Change) => void): () => void {
    this.#check();
    const first = this.#listeners.size === 0;
    const unsubscribe = this.#listeners.subscribe(listener, () => this.#stopCrashCheck());
    if (first) {
      this.#armAll();
      this.#scheduleCrashCheck();
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopCrashCheck();
    this.#stopReconnectListener();
    this.#listeners.clear();
    await this.#zk.close();
  }

  // --- watches -------------------------------------------------------------------------------------

  /**
   * One-shot ZooKeeper watches, re-armed after each event: a child watch on `sessions` (opened and
   * removed sessions) and data watches on `owners` and `records` (every write there bumps the parent's
   * data, see {@link #bump}). The same function per path lets the driver de-duplicate re-arming.
   */
  readonly #onSessions = () => this.#fired('sessions');
  readonly #onOwners = () => this.#fired('owners');
  readonly #onRecords = () => this.#fired('records');

  #fired(scope: WatchedScope): void {
    if (this.#closed || this.#listeners.size === 0) return; // unwatched: let the watch lapse
    // Re-arm BEFORE telling listeners: a change landing between the event and the re-arm is then
    // either visible to the listener's re-read or fires the new watch; it cannot fall in a gap.
    void this.#arm(scope).then(
      (ended) => {
        // The newest owners write closed a session: say whose keys went first (a standby next in line
        // claims on it), then the change itself (other writes may have been merged into this event).
        if (ended !== undefined) this.#listeners.emit({ scope: 'owners', endedSession: ended });
        this.#listeners.emit({ scope });
      },
      () => this.#listeners.emit({ scope }),
    );
  }

  /**
   * Arms all three watches, then sends an 'any' hint: a change made by another handle while the
   * watches were being set up (between `watch()` and the server registering them) fires nothing, but
   * is visible to a re-read made after this hint.
   */
  #armAll(): void {
    void Promise.all([this.#arm('sessions'), this.#arm('owners'), this.#arm('records')]).finally(() => {
      if (!this.#closed && this.#listeners.size > 0) this.#listeners.emit({ scope: 'any' });
    });
  }

  /**
   * Never rejects: while disconnected arming fails, and #onReconnect arms again. Resolves to the session
   * whose close was the newest owners write, when the `owners` parent's data names one (closeSession).
   */
  async #arm(scope: WatchedScope): Promise<string | undefined> {
    if (scope === 'sessions') {
      await this.#zk.getChildren(this.#paths.sessions, this.#onSessions).catch(() => undefined);
      return undefined;
    }
    const node = await this.#zk
      .getData(scope === 'owners' ? this.#paths.owners : this.#paths.records, scope === 'owners' ? this.#onOwners : this.#onRecords)
      .catch(() => null);
    const data = scope === 'owners' ? node?.data.toString() : undefined;
    return data?.startsWith(ENDED) ? data.slice(ENDED.length) : undefined;
  }

  #onReconnect(): void {
    if (this.#closed || this.#listeners.size === 0) return;
    // After a new ZK session the old watches are gone; after a plain reconnect re-arming is a no-op.
    // Either way anything may have changed while we were away: #armAll ends with an 'any' hint.
    this.#armAll();
  }


  /** Every write of a scope also writes its parent node, so one data watch per scope sees them all. */
  #bump(scope: 'owners' | 'records', data: Buffer = EMPTY): ZkOp {
    return { op: 'set', path: scope === 'owners' ? this.#paths.owners : this.#paths.records, data, version: -1 };
  }

  // --- crash detection -----------------------------------------------------------------------------

  #scheduleCrashCheck(): void {
    this.#cancelCrashCheck = this.#clock.setTimer(this.#crashCheckMs, () => {
      this.#reapCrashedProcesses()
        // During an outage the next round tries again; watchers lose nothing but a hint.
        .catch(() => undefined)
        .finally(() => {
          if (this.#cancelCrashCheck && !this.#closed) this.#scheduleCrashCheck();
        });
    });
  }

  #stopCrashCheck(): void {
    this.#cancelCrashCheck?.();
    this.#cancelCrashCheck = undefined;
  }

  /**
   * Removes the sessions of processes on this host that provably no longer exist, so watchers of every
   * handle hear of it (the removal fires the sessions watch) and take over without waiting for a TTL.
   */
  async #reapCrashedProcesses(): Promise<void> {
    const ids = ((await this.#zk.getChildren(this.#paths.sessions)) ?? []).map(decodeName);
    const nodes = await Promise.all(ids.map((id) => this.#readSession(id)));
    for (const [i, node] of nodes.entries()) {
      if (node && processState(node.session.info.process) === 'gone') {
        await this.#removeIfUnchanged(this.#paths.session(ids[i] as string), node.stat.version);
      }
    }
  }

  // --- helpers -------------------------------------------------------------------------------------

  /**
   * Runs `reads`, then reads server time. ZooKeeper answers one client's requests in order, so "now"
   * is stamped after the reads were served: a session judged live against it was live when read.
   */
  async #readThenNow<T>(reads: Promise<T>): Promise<[T, number]> {
    return Promise.all([reads, this.#now()]);
  }

  #now(): Promise<number> {
    return this.#zk.touch(this.#paths.clock);
  }

  async #readSession(id: string): Promise<{ session: SessionData; stat: NodeData['stat'] } | null> {
    const node = await this.#zk.getData(this.#paths.session(id));
    return node ? { session: decodeJson<SessionData>(node.data), stat: node.stat } : null;
  }

  async #readOwners(): Promise<{ key: string; owner: OwnerData; node: NodeData }[]> {
    const names = (await this.#zk.getChildren(this.#paths.owners)) ?? [];
    const nodes = await Promise.all(names.map((name) => this.#zk.getData(`${this.#paths.owners}/${name}`)));
    return names.flatMap((name, i) => {
      const node = nodes[i];
      return node ? [{ key: decodeName(name), owner: decodeJson<OwnerData>(node.data), node }] : [];
    });
  }

  async #recordKeys(): Promise<string[]> {
    return ((await this.#zk.getChildren(this.#paths.records)) ?? []).map(decodeName);
  }

  /**
   * The ops that make a write conditional on `guard`, or 'fenced' when it does not hold now: the key
   * is held with exactly this token by a session live at server time. The returned checks pin the owner
   * znode's version (any release or takeover bumps it) and the holder session's version (a removal or
   * a renewal changes it; a renewal merely sends the caller round again).
   */
  async #guardChecks(guard: Guard): Promise<ZkOp[] | 'fenced'> {
    const ownerPath = this.#paths.owner(guard.key);
    const owner = await this.#zk.getData(ownerPath);
    const holderId = owner ? decodeJson<OwnerData>(owner.data).sessionId : undefined;
    if (!owner || holderId === undefined || owner.stat.mzxid !== guard.token) return 'fenced';
    const [session, now] = await this.#readThenNow(this.#readSession(holderId));
    if (!session || !isSessionLive(session.session, session.stat, now)) return 'fenced';
    return [
      { op: 'check', path: ownerPath, version: owner.stat.version },
      { op: 'check', path: this.#paths.session(holderId), version: session.stat.version },
    ];
  }

  /** Removes a node if it is still at `version`; a node already gone or changed is left alone. */
  async #removeIfUnchanged(path: string, version: number): Promise<void> {
    await this.#zk.multi([{ op: 'remove', path, version }]);
  }

  #contention(what: string): StoreUnavailableError {
    return new StoreUnavailableError(`zookeeper store (${this.#label}): could not ${what}: state kept changing (${MAX_ATTEMPTS} attempts)`);
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`zookeeper store (${this.#label}): handle is closed`);
  }
}

/** Record versions start at 1 (our create + setData); anything else can never match. */
function isRecordVersion(version: number): boolean {
  return Number.isInteger(version) && version >= 1;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toHolder(key: string, sessionId: string, owner: NodeData): Holder {
  // The last write of a held owner znode is its acquisition: its zxid is the token, its mtime the time.
  return { key, token: owner.stat.mzxid, sessionId, acquiredAt: owner.stat.mtime };
}

function toRecord<T>(key: string, node: NodeData): StoredRecord<T> {
  return { key, value: decodeJson<T>(node.data), version: node.stat.version, updatedAt: node.stat.mtime };
}

