/**
 * The etcd v3 store: a session is an etcd lease, ownership is a key attached to that lease, a fencing
 * token is the etcd revision of the put that took the key.
 *
 * Guarantees: the Store contract.
 * - Session TTLs are measured by etcd's lessor on the leader, never by a node's clock. A session of
 *   `ttlMs` is a lease of T + 1 seconds, T = ceil(ttlMs / 1000). etcd reports a lease's remaining TTL in
 *   truncated whole seconds, so the extra (grace) second makes "reads ≥ 1 s" exactly "renewed less than
 *   T seconds ago": that is when `listSessions`, `holder`, `listHolders` stop showing the session and
 *   `renewSession` starts answering `false` (and revokes the lease, so it is final).
 * - Ownership keys carry the session's lease: etcd deletes them in the same revision that revokes the
 *   lease (close, or expiry). Acquisition is one Txn that requires the owner key to be absent and the
 *   session record (on the same lease) to exist. A holder whose session expired is not revoked by us:
 *   `tryAcquire` waits (≤ 2.5 s) for etcd to end the lease itself, so a takeover can never overlap a
 *   renewal that raced the expiry and was confirmed to its owner.
 * - Tokens are etcd revisions: cluster-wide, strictly increasing, persisted, never reused (a restart or
 *   a snapshot restore keeps them), so every acquisition of a key gets a greater token than all before.
 * - Guarded writes are one Txn comparing the owner key's mod revision with the token.
 * - Several handles per process and several clusters per etcd work: each handle has its own client and
 *   TCP connections, each cluster its own key range.
 *
 * Non-guarantees:
 * - Between a session's reported expiry (T s after its last renewal) and etcd's revocation of its lease
 *   (the grace second plus etcd's lessor pass, ≤ 0.5 s), its keys still block other acquirers and its
 *   guarded writes still succeed; never after another session took the key. The session keeper above
 *   gives up its leases before T, so it does not write in that window.
 * - Failover after host loss or a partition takes T + 1 to T + 1.5 s after the last renewal.
 * - After an etcd leader change the new leader extends every lease by its TTL (etcd's own rule), so a
 *   session may live longer then. Never shorter.
 * - Crash detection is same-host only: etcd leases are not bound to connections, so a crashed process on
 *   another host is noticed by its lease TTL. On the same host (same boot id), every handle checks the
 *   sessions' process identities every `crashCheckMs` (500 ms) and revokes the lease of a process that
 *   provably no longer exists (pid gone or reused: `processState` = 'gone'), and `tryAcquire` does the
 *   same for the holder it meets. A process that does not exist cannot renew nor write, so this never
 *   takes a key from a live owner; it only saves the TTL.
 * - `time()`, `acquiredAt`, `updatedAt` and `ageMs` use the local clock of the writing or reading node
 *   (etcd has no clock API). They are for display; no lease decision depends on them.
 */
import type { Etcd3, IKeyValue, IRangeResponse, ITxnResponse } from 'etcd3';
import { sleep, systemClock, type Clock } from '../../core/clock.js';
import { ClosedError, SessionExpiredError, StoreUnavailableError } from '../../core/errors.js';
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
import { connect, keepAliveOnce, type Connection } from './connection.js';
import { KeyLayout, prefixEnd } from './keys.js';
import * as request from './requests.js';
import { slices } from '../../core/batches.js';
import { assertDistinctKeys } from '../many-keys.js';
import type { EtcdUrl } from './url.js';
import { EtcdWatch } from './watch.js';

/** Extra lease seconds beyond the session TTL; see {@link isLive}. */
const GRACE_SECONDS = 1;
/**
 * Longest wait for etcd to revoke an expired holder's lease: the grace second, the lessor pass (500 ms),
 * a Raft commit, and slack.
 */
const REVOCATION_WAIT_MS = 2500;
const REVOCATION_POLL_MS = 100;
/** Keys per Txn of tryAcquireMany and releaseMany: etcd refuses a Txn of more than 128 operations (--max-txn-ops). */
const KEYS_PER_TXN = 60;
/** Txns per batch of tryAcquireMany before it gives up: each round settles every key it found held. */
const MAX_BATCH_ROUNDS = 5;

export interface EtcdStoreOptions {
  readonly url: EtcdUrl;
  readonly cluster: string;
  /** Timers and display timestamps. TTLs are etcd's, never this clock's. Default: the system clock. */
  readonly clock?: Clock;
}

interface SessionValue {
  info: NodeInfo;
  ttlMs: number;
  /** Wall time of the opening node, for `ageMs`. */
  openedAt: number;
}

interface OwnerValue {
  sessionId: string;
  acquiredAt: number;
}

interface RecordValue {
  value: unknown;
  updatedAt: number;
}

export class EtcdStore implements Store {
  readonly kind = 'etcd' as const;
  readonly features = { crashDetection: true, watch: 'push', announcesExpiry: true } as const;
  readonly cluster: string;
  readonly #url: EtcdUrl;
  readonly #client: Etcd3;
  readonly #etcd: Connection['etcd'];
  readonly #clock: Clock;
  readonly #keys: KeyLayout;
  readonly #watch: EtcdWatch;
  #closed = false;
  #cancelCrashCheck: (() => void) | undefined;

  private constructor(connection: Connection, options: EtcdStoreOptions) {
    this.cluster = options.cluster;
    this.#url = options.url;
    this.#client = connection.client;
    this.#etcd = connection.etcd;
    this.#clock = options.clock ?? systemClock;
    this.#keys = new KeyLayout(options.url.prefix, options.cluster);
    this.#watch = new EtcdWatch(connection.client, this.#keys, this.#clock);
  }

  /**
   * Connects and checks that etcd answers (and accepts the credentials) with one read of the cluster's
   * range. Nothing to create: etcd keys need no schema. @throws StoreUnavailableError naming the URL.
   */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const connection = await connect(options.url, options.clock ?? systemClock);
    const store = new EtcdStore(connection, options);
    try {
      await store.#call('open', () => store.#client.kv.range({ ...request.rangeSessions(store.#keys), count_only: true }));
      if (options.url.crashCheckMs > 0) store.#scheduleCrashCheck();
      return store;
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  async time(): Promise<number> {
    this.#check();
    return this.#clock.now();
  }

  /**
   * Grants a lease of `ceil(ttlMs / 1000) + 1` seconds (see {@link GRACE_SECONDS}) and puts the session
   * record on it. Two round trips: etcd cannot grant a lease inside a Txn. If the put fails, the lease
   * holds nothing and expires by itself; the session never became visible.
   */
  async openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }> {
    this.#check();
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000)) + GRACE_SECONDS;
    const grant = await this.#call('openSession', () => this.#client.leaseClient.leaseGrant({ TTL: ttlSeconds }));
    if (grant.error) throw new StoreUnavailableError(`${this.#where()}: openSession: lease grant refused: ${grant.error}`);
    const id = sessionIdOf(grant.ID);
    const value: SessionValue = { info, ttlMs, openedAt: this.#clock.now() };
    await this.#call('openSession', () => this.#client.kv.put(request.putSession(this.#keys, id, grant.ID, JSON.stringify(value))));
    return { id };
  }

  /**
   * Refuses once the session has expired (remaining lease TTL under the grace second), and then revokes
   * the lease so that its keys go at once and no later renewal can find it; otherwise sends one
   * keep-alive, which etcd answers with TTL 0 when the lease is already gone.
   */
  async renewSession(sessionId: string): Promise<boolean> {
    this.#check();
    const lease = leaseOf(sessionId);
    if (lease === undefined) return false;
    const remaining = await this.#leaseTtl('renewSession', lease);
    if (!isLive(remaining)) {
      // Its own keeper is told "expired" right here and never acts on it again, so revoking early is safe.
      if (remaining === 0) await this.#revoke('renewSession', lease);
      return false;
    }
    const ttl = await this.#call('renewSession', () => keepAliveOnce(this.#client, lease, this.#url.timeoutMs));
    return ttl > 0;
  }

  /** Revokes the lease: etcd deletes the session record and every key it holds in one revision. */
  async closeSession(sessionId: string): Promise<void> {
    this.#check();
    const lease = leaseOf(sessionId);
    if (lease !== undefined) await this.#revoke('closeSession', lease);
  }

  /**
   * Rewrites the session's key under the same lease (its expiry is the lease's, untouched). A lease that
   * expired meanwhile makes etcd refuse the put: a dead session is never revived.
   */
  async updateSessionInfo(sessionId: string, info: NodeInfo): Promise<boolean> {
    this.#check();
    const lease = leaseOf(sessionId);
    if (lease === undefined || !isLive(await this.#leaseTtl('updateSessionInfo', lease))) return false;
    const range = await this.#call('updateSessionInfo', () => this.#client.kv.range({ key: this.#keys.session(sessionId) }));
    const kv = range.kvs[0];
    if (!kv) return false;
    const value: SessionValue = { ...(JSON.parse(kv.value.toString()) as SessionValue), info };
    await this.#call('updateSessionInfo', () => this.#client.kv.put(request.putSession(this.#keys, sessionId, lease, JSON.stringify(value))));
    return true;
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#check();
    const range = await this.#call('listSessions', () => this.#client.kv.range(request.rangeSessions(this.#keys)));
    const ttls = await this.#leaseTtls('listSessions', range.kvs);
    const now = this.#clock.now();
    const sessions: SessionRecord[] = [];
    for (const kv of range.kvs) {
      const ttlSeconds = ttls.get(kv.lease) ?? -1;
      if (!isLive(ttlSeconds)) continue;
      const value = JSON.parse(kv.value.toString()) as SessionValue;
      sessions.push({
        id: sessionIdOf(kv.lease),
        info: value.info,
        ttlMs: value.ttlMs,
        ageMs: Math.max(0, now - value.openedAt),
        // Expiry is when the remaining TTL drops under the grace second: within (ttl - 1 s, ttl] of the
        // whole seconds etcd reports. Shown rounded up, never more than the TTL asked for.
        expiresInMs: Math.min(ttlSeconds * 1000, value.ttlMs),
      });
    }
    return sessions.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  }

  async tryAcquire(key: string, sessionId: string): Promise<AcquireResult> {
    this.#check();
    const lease = leaseOf(sessionId);
    if (lease === undefined || !isLive(await this.#leaseTtl('tryAcquire', lease))) throw this.#sessionGone(sessionId, key);
    const value: OwnerValue = { sessionId, acquiredAt: this.#clock.now() };
    // At most two rounds: the second only after etcd revoked an expired holder's lease.
    for (let round = 1; ; round++) {
      const txn = request.acquireOwner(this.#keys, key, sessionId, lease, JSON.stringify(value));
      const response = await this.#call('tryAcquire', () => this.#client.kv.txn(txn));
      // The Txn's revision is the revision of its put: the fencing token.
      if (response.succeeded) return { acquired: true, token: BigInt(response.header.revision) };
      const owner = firstKv(response, 0);
      // Our lease was revoked (closed, or expired and reaped) since the check above.
      if (!firstKv(response, 1)) throw this.#sessionGone(sessionId, key);
      // The owner key vanished between the compare and the read: impossible in one Txn, but harmless.
      if (!owner) continue;
      // Already ours: the token is the revision of the put that took it (an owner key is never rewritten).
      if (owner.lease === lease) return { acquired: true, token: BigInt(owner.mod_revision) };
      const holder = this.#toHolder(owner);
      if (round >= 2) return { acquired: false, holder };
      // A holder whose process on this host is gone: end its lease now instead of waiting for its TTL.
      if (await this.#revokeIfCrashed(owner.lease)) continue;
      if (!(await this.#awaitRevocation(owner.lease))) return { acquired: false, holder };
    }
  }

  /**
   * One Txn per batch of keys while they are free; a key held by another session is that session's
   * unless its lease is ending or its process crashed (checked once per holder), and then goes the way
   * of tryAcquire, one key at a time (rare: a dead node's keys go with its lease).
   */
  async tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]> {
    this.#check();
    assertDistinctKeys(`${this.#where()}: tryAcquireMany`, keys);
    if (keys.length === 0) return [];
    const lease = leaseOf(sessionId);
    if (lease === undefined || !isLive(await this.#leaseTtl('tryAcquireMany', lease))) throw this.#sessionGone(sessionId, keys[0] as string);
    const value = JSON.stringify({ sessionId, acquiredAt: this.#clock.now() } satisfies OwnerValue);
    const results = new Map<string, AcquireResult>();
    const heldBy = new Map<string, IKeyValue[]>();
    for (const slice of slices(keys, KEYS_PER_TXN)) {
      let free = slice;
      // Each round takes all of `free` or learns who holds which: a key found free again is tried again.
      for (let round = 1; free.length > 0; round++) {
        if (round > MAX_BATCH_ROUNDS) throw new StoreUnavailableError(`${this.#where()}: could not settle "${free[0]}" in ${MAX_BATCH_ROUNDS} rounds (heavy contention)`);
        const response = await this.#call('tryAcquireMany', () => this.#client.kv.txn(request.acquireOwners(this.#keys, free, sessionId, lease, value)));
        if (response.succeeded) {
          for (const key of free) results.set(key, { acquired: true, token: BigInt(response.header.revision) });
          break;
        }
        if (!firstKv(response, 0)) throw this.#sessionGone(sessionId, free[0] as string);
        const again: string[] = [];
        free.forEach((key, i) => {
          const owner = firstKv(response, i + 1);
          if (!owner) again.push(key);
          else if (owner.lease === lease) results.set(key, { acquired: true, token: BigInt(owner.mod_revision) });
          else heldBy.set(owner.lease, [...(heldBy.get(owner.lease) ?? []), owner]);
        });
        free = again;
      }
    }
    for (const [holderLease, owners] of heldBy) {
      const alive = isLive(await this.#leaseTtl('tryAcquireMany', holderLease)) && !(await this.#revokeIfCrashed(holderLease));
      for (const owner of owners) {
        const key = this.#keys.ownerKey(owner.key);
        results.set(key, alive ? { acquired: false, holder: this.#toHolder(owner) } : await this.tryAcquire(key, sessionId));
      }
    }
    return keys.map((key) => results.get(key) as AcquireResult);
  }

  async releaseMany(leases: readonly Guard[]): Promise<boolean[]> {
    this.#check();
    assertDistinctKeys(`${this.#where()}: releaseMany`, leases.map((l) => l.key));
    const results: boolean[] = [];
    for (const slice of slices(leases, KEYS_PER_TXN)) {
      const response = await this.#call('releaseMany', () => this.#client.kv.txn(request.releaseOwners(this.#keys, slice)));
      if (response.succeeded) results.push(...slice.map(() => true));
      else results.push(...(await Promise.all(slice.map((l) => this.release(l.key, l.token)))));
    }
    return results;
  }

  async release(key: string, token: bigint): Promise<boolean> {
    this.#check();
    const response = await this.#call('release', () => this.#client.kv.txn(request.releaseOwner(this.#keys, key, token)));
    return response.succeeded;
  }

  async holder(key: string): Promise<Holder | null> {
    this.#check();
    const range = await this.#call('holder', () => this.#client.kv.range(request.getOwner(this.#keys, key)));
    const live = await this.#liveOwners('holder', range);
    return live[0] ?? null;
  }

  async listHolders(prefix: string): Promise<Holder[]> {
    this.#check();
    const range = await this.#call('listHolders', () => this.#client.kv.range(request.rangeOwners(this.#keys, prefix)));
    return this.#liveOwners('listHolders', range);
  }

  async get<T>(key: string): Promise<StoredRecord<T> | null> {
    this.#check();
    const range = await this.#call('get', () => this.#client.kv.range(request.getRecord(this.#keys, key)));
    const kv = range.kvs[0];
    return kv ? this.#toRecord<T>(kv) : null;
  }

  async put(key: string, value: unknown, condition: WriteCondition = {}): Promise<WriteResult> {
    this.#check();
    const json = JSON.stringify({ value, updatedAt: this.#clock.now() } satisfies RecordValue);
    const response = await this.#call('put', () => this.#client.kv.txn(request.putRecord(this.#keys, key, json, condition)));
    if (!response.succeeded) return { ok: false, reason: refusal(response, condition) };
    const previous = response.responses[0]?.response_put?.prev_kv;
    return { ok: true, version: previous ? Number(previous.version) + 1 : 1 };
  }

  async list<T>(prefix: string, options: ListOptions = {}): Promise<StoredRecord<T>[]> {
    this.#check();
    if (options.limit !== undefined && options.limit <= 0) return [];
    const range = await this.#call('list', () => this.#client.kv.range(request.rangeRecords(this.#keys, prefix, options)));
    return range.kvs.map((kv) => this.#toRecord<T>(kv));
  }

  async delete(key: string, condition: WriteCondition = {}): Promise<boolean> {
    this.#check();
    const response = await this.#call('delete', () => this.#client.kv.txn(request.deleteRecord(this.#keys, key, condition)));
    return response.succeeded && Number(response.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
  }

  async deleteBefore(prefix: string, beforeKey: string): Promise<number> {
    this.#check();
    const range = request.deleteRecordsBefore(this.#keys, prefix, beforeKey);
    if (!range) return 0;
    const response = await this.#call('deleteBefore', () => this.#client.kv.deleteRange(range));
    return Number(response.deleted);
  }

  /** One short read per cluster (see {@link request.firstKeyFrom}): for operators, not for a loop. */
  async listClusters(): Promise<string[]> {
    this.#check();
    const all = Buffer.from(`${this.#url.prefix}/`);
    const clusters: string[] = [];
    for (let from: Buffer = all; ; ) {
      const range = await this.#call('listClusters', () => this.#client.kv.range(request.firstKeyFrom(all, from)));
      const key = range.kvs[0]?.key;
      if (!key) return clusters;
      const encoded = key.subarray(all.length).toString().split('/')[0] as string;
      clusters.push(decodeURIComponent(encoded));
      from = prefixEnd(Buffer.concat([all, Buffer.from(`${encoded}/`)]));
    }
  }

  watch(listener: (change: Change) => void): () => void {
    this.#check();
    return this.#watch.add(listener);
  }

  /** Stops the watch stream and closes the client's channels. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelCrashCheck?.();
    this.#cancelCrashCheck = undefined;
    await this.#watch.close(this.#url.timeoutMs);
    this.#client.close();
  }

  /** Live holders among owner keys: those whose lease is not expired (see {@link isLive}). */
  async #liveOwners(operation: string, range: IRangeResponse): Promise<Holder[]> {
    const ttls = await this.#leaseTtls(operation, range.kvs);
    return range.kvs.filter((kv) => isLive(ttls.get(kv.lease) ?? -1)).map((kv) => this.#toHolder(kv));
  }

  /** Remaining TTL in etcd's whole seconds of each distinct lease of `kvs` (see {@link #leaseTtl}). */
  async #leaseTtls(operation: string, kvs: readonly IKeyValue[]): Promise<Map<string, number>> {
    const leases = [...new Set(kvs.map((kv) => kv.lease))];
    const ttls = await Promise.all(leases.map((lease) => this.#leaseTtl(operation, lease)));
    return new Map(leases.map((lease, i) => [lease, ttls[i] as number]));
  }

  /**
   * etcd's remaining TTL of `lease`, measured by the leader: whole seconds, truncated (1.9 s left reads 1,
   * 0.5 s left or 0.5 s past expiry both read 0), and -1 once etcd has revoked it.
   */
  async #leaseTtl(operation: string, lease: string): Promise<number> {
    if (lease === '0') return -1;
    const response = await this.#call(operation, () => this.#client.leaseClient.leaseTimeToLive({ ID: lease }));
    return Number(response.TTL);
  }

  /**
   * Waits for etcd's verdict on a holder whose session expired (TTL under the grace second): `true` once
   * etcd revoked its lease, `false` if it was renewed meanwhile (a renewal racing its expiry) or is still
   * there after REVOCATION_WAIT_MS. A holder with time left is `false` at once.
   *
   * Why wait instead of revoking it ourselves: a renewal checked just before expiry may reach etcd just
   * after it and extend the lease; revoking then would take the key from an owner that was just told
   * "renewed". etcd alone ends a lease, so a takeover never overlaps a confirmed renewal. The wait is
   * short: the grace second plus etcd's lessor pass (every 500 ms) and one Raft commit.
   */
  async #awaitRevocation(lease: string): Promise<boolean> {
    const until = this.#clock.monotonic() + REVOCATION_WAIT_MS;
    for (;;) {
      const remaining = await this.#leaseTtl('tryAcquire', lease);
      if (remaining < 0) return true;
      if (isLive(remaining) || this.#clock.monotonic() >= until) return false;
      await sleep(this.#clock, REVOCATION_POLL_MS);
      this.#check();
    }
  }

  #scheduleCrashCheck(): void {
    this.#cancelCrashCheck = this.#clock.setTimer(this.#url.crashCheckMs, () => {
      if (this.#closed) return;
      void this.#revokeCrashedSessions()
        .catch(() => undefined) // Unreachable etcd: the next round retries; watchers only miss a hint.
        .finally(() => {
          if (this.#cancelCrashCheck && !this.#closed) this.#scheduleCrashCheck();
        });
    });
  }

  /** Revokes the leases of sessions whose process on this host no longer exists (etcd tells the watchers). */
  async #revokeCrashedSessions(): Promise<void> {
    const range = await this.#call('crashCheck', () => this.#client.kv.range(request.rangeSessions(this.#keys)));
    for (const kv of range.kvs) {
      const value = JSON.parse(kv.value.toString()) as SessionValue;
      if (processState(value.info.process) === 'gone') await this.#revoke('crashCheck', kv.lease);
    }
  }

  /** True when `lease` belongs to a session whose process on this host is gone, and it was revoked. */
  async #revokeIfCrashed(lease: string): Promise<boolean> {
    const range = await this.#call('tryAcquire', () => this.#client.kv.range({ key: this.#keys.session(sessionIdOf(lease)) }));
    const session = range.kvs[0];
    if (!session || processState((JSON.parse(session.value.toString()) as SessionValue).info.process) !== 'gone') return false;
    await this.#revoke('tryAcquire', lease);
    return true;
  }

  /** Revokes a lease; an already gone lease is fine (revocation is what we wanted). */
  async #revoke(operation: string, lease: string): Promise<void> {
    await this.#call(operation, async () => {
      try {
        await this.#client.leaseClient.leaseRevoke({ ID: lease });
      } catch (error) {
        if (!(error instanceof this.#etcd.EtcdLeaseInvalidError)) throw error;
      }
    });
  }

  #toHolder(kv: IKeyValue): Holder {
    const value = JSON.parse(kv.value.toString()) as OwnerValue;
    return {
      key: this.#keys.ownerKey(kv.key),
      token: BigInt(kv.mod_revision),
      sessionId: sessionIdOf(kv.lease),
      acquiredAt: value.acquiredAt,
    };
  }

  #toRecord<T>(kv: IKeyValue): StoredRecord<T> {
    const stored = JSON.parse(kv.value.toString()) as RecordValue;
    return { key: this.#keys.recordKey(kv.key), value: stored.value as T, version: Number(kv.version), updatedAt: stored.updatedAt };
  }

  #sessionGone(sessionId: string, key: string): SessionExpiredError {
    return new SessionExpiredError(`${this.#where()}: session ${sessionId} is not live; cannot acquire "${key}"`);
  }

  #where(): string {
    return `etcd store (${this.#url.endpoints.join(',')}, cluster "${this.cluster}")`;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`${this.#where()}: handle is closed`);
  }

  /**
   * Runs one etcd call; any failure (unreachable, deadline, refused) becomes StoreUnavailableError. A call
   * that never left the client (no connection to the host it was given: {@link neverSent}) is sent again,
   * up to once per other endpoint: the client skips the failed host for a moment (connection.ts), so the
   * next attempt goes to another member. Safe even for a Txn, since the failed attempt reached no server;
   * a call that may have reached one is never repeated here (its outcome is unknown).
   */
  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (this.#closed) throw new ClosedError(`${this.#where()}: ${operation}: handle closed during the call`);
        if (attempt < this.#url.endpoints.length && neverSent(error)) continue;
        // etcd3's error classes do not set `name`; the class name says what failed (GRPCUnavailableError…).
        const message = error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error);
        throw new StoreUnavailableError(`${this.#where()}: ${operation} failed: ${message}`, { cause: error });
      }
    }
  }
}

/**
 * Whether a lease reading means a live session. etcd reports remaining TTL in truncated whole seconds,
 * which cannot tell "0.5 s left" from "expired 0.5 s ago" (both read 0), and revokes expired leases
 * up to ~0.5 s late. So leases get one extra second ({@link GRACE_SECONDS}) and a session counts as
 * expired as soon as less than that second is left: "reads ≥ 1" is, to the leader's clock, exactly
 * "renewed less than ceil(ttlMs / 1000) seconds ago".
 */
function isLive(ttlSeconds: number): boolean {
  return ttlSeconds >= GRACE_SECONDS;
}

/** Session ids are lease ids in hex (as `etcdctl lease list` shows them). */
function sessionIdOf(lease: string): string {
  return BigInt(lease).toString(16).padStart(16, '0');
}

/** The lease id (decimal, as the RPCs take it) of a session id, or undefined for a malformed id. */
function leaseOf(sessionId: string): string | undefined {
  return /^[0-9a-f]{16}$/.test(sessionId) ? BigInt(`0x${sessionId}`).toString() : undefined;
}

function firstKv(response: ITxnResponse, index: number): IKeyValue | undefined {
  return response.responses[index]?.response_range?.kvs[0];
}

/** Why a conditional write was refused, from the guard's owner key read in the Txn's failure branch. */
function refusal(response: ITxnResponse, condition: WriteCondition): 'version' | 'fenced' {
  if (condition.guard) {
    const owner = firstKv(response, 0);
    if (!owner || BigInt(owner.mod_revision) !== condition.guard.token) return 'fenced';
  }
  return 'version';
}

/**
 * grpc-js fails a call at once, before sending anything, when its channel has no connection to the host
 * ("14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED …"): a member that is
 * down or restarting. Other UNAVAILABLE errors (a connection dropped mid-call) may follow a request the
 * server received, so they do not count.
 */
export function neverSent(error: unknown): boolean {
  return error instanceof Error && /No connection established|connect ECONNREFUSED/.test(error.message);
}
