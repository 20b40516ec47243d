/**
 * The Store contract: the few primitives every backend offers, all atomic on the store side and all
 * scoped to one cluster name. Everything above (sessions keepers, ownership, the scheduler, the monitor)
 * is written once against this interface; `test/conformance` checks every implementation with one suite.
 *
 * Guarantees every store must keep (DESIGN.md invariants 1–3):
 * - A session lives until `ttlMs` after its last successful open/renew, measured by the *store's* clock,
 *   or until it is closed. Once expired it never comes back: renew answers `false`.
 * - A key is held by at most one live session. Ownership vanishes with its session.
 * - Every successful acquisition of a key returns a token strictly greater than every token ever issued
 *   for that key (across releases, expiries and store restarts).
 * - A write guarded by `{ key, token }` succeeds only while `key` is held, by a live session, with exactly
 *   that token. This is stronger than DESIGN.md's "fails once a greater token exists": a released or
 *   expired owner's writes fail too.
 * - `put` with `ifVersion: 'absent'` is a unique insert: of any number of concurrent attempts, one wins.
 *
 * Non-guarantees: change notifications are hints (they may be late, merged or spurious; re-read state);
 * timestamps are for display and ordering of records, never for lease validity.
 */
import type { Clock } from '../core/clock.js';
import type { NodeInfo } from '../core/node-info.js';

/** Identifies a backend; `memory` and `sqlite` today. */
export type StoreKind = 'memory' | 'sqlite' | 'postgres' | 'mysql' | 'redis' | 'etcd' | 'zookeeper';

export interface StoreFeatures {
  /**
   * The store notices a crashed owner on the same host before its TTL (SQLite: pid + start time).
   */
  readonly crashDetection: boolean;
  /** How change notification works: pushed by the backend or found by polling. */
  readonly watch: 'push' | 'poll';
  /**
   * A session that ends without a close (expiry, crash) is announced with a `sessions` change while
   * anyone watches, within the store's reap interval: watchers need not poll for expiries. Without it
   * (undefined: false) a watcher that caches sessions re-reads them when one of them could have expired.
   */
  readonly announcesExpiry?: boolean;
}

export interface SessionRecord {
  readonly id: string;
  readonly info: NodeInfo;
  readonly ttlMs: number;
  /** Store-measured milliseconds since the session was opened. */
  readonly ageMs: number;
  /** Store-measured milliseconds left before it expires without a renewal. */
  readonly expiresInMs: number;
}

export interface Holder {
  readonly key: string;
  readonly token: bigint;
  readonly sessionId: string;
  /** Store wall time of the acquisition, ms since the epoch. */
  readonly acquiredAt: number;
}

export type AcquireResult =
  | { readonly acquired: true; readonly token: bigint }
  | { readonly acquired: false; readonly holder: Holder };

export interface StoredRecord<T = unknown> {
  readonly key: string;
  readonly value: T;
  /** Starts at 1 and grows by one on every write of the key. */
  readonly version: number;
  /** Store wall time of the last write, ms since the epoch. */
  readonly updatedAt: number;
}

/** Proof of ownership attached to a write. */
export interface Guard {
  readonly key: string;
  readonly token: bigint;
}

export interface WriteCondition {
  /** `'absent'`: insert only (unique claim). A number: compare-and-set against the current version. */
  readonly ifVersion?: number | 'absent';
  /** The write is refused unless `guard.key` is held, by a live session, with `guard.token`. */
  readonly guard?: Guard;
}

export type WriteResult =
  | { readonly ok: true; readonly version: number }
  | { readonly ok: false; readonly reason: 'version' | 'fenced' };

export interface ListOptions {
  /** Newest key first (keys sort as strings). */
  readonly reverse?: boolean;
  readonly limit?: number;
}

/**
 * What changed, as far as the store can tell. `any` when it cannot tell (a poll saw *something*, or a
 * watch was re-established after a reconnect). `connection`: this handle's connection to the server
 * dropped; stores whose sessions are bound to their connection (`features.crashDetection`) may already have
 * ended the sessions opened through it, so the session keeper gives them up at once (invariant 4).
 */
export interface Change {
  readonly scope: 'sessions' | 'owners' | 'records' | 'any' | 'connection';
  readonly key?: string;
  /**
   * For an `owners` change of one `key`, where the store can tell: the key's live holder right after the
   * change, `null` when it was freed. A watcher that caches holders applies it without reading the key
   * back (a cold start of 100 nodes × 10,000 tasks otherwise reads every acquisition back on every node).
   */
  readonly holder?: Holder | null;
  /**
   * For an `owners` change without `key`: the keys freed were those of this ended session, and only
   * those. A watcher that caches holders drops that session's instead of re-reading every holder.
   */
  readonly endedSession?: string;
}

export interface Store {
  readonly kind: StoreKind;
  /** The cluster name every key of this handle lives under. */
  readonly cluster: string;
  readonly features: StoreFeatures;

  /** Store wall time, ms since the epoch (server time where the backend has one). */
  time(): Promise<number>;

  /** Opens a session for `info` that expires `ttlMs` after its last renewal. */
  openSession(info: NodeInfo, ttlMs: number): Promise<{ id: string }>;
  /** Extends the session by its TTL. `false` when it has expired or was closed: it is gone for good. */
  renewSession(sessionId: string): Promise<boolean>;
  /** Closes the session and releases every key it holds. Unknown sessions are ignored. */
  closeSession(sessionId: string): Promise<void>;
  /**
   * Replaces the node info a live session publishes (its declared tasks changed: a task added or removed
   * on a running node, as the agent's config reload does). Keys and expiry are untouched. `false` when
   * the session is not live. Every bundled store offers it (on ZooKeeper it also renews the session, which
   * only moves the expiry later); optional for other implementations: without it, other nodes see the
   * info of the session's opening until the session is re-opened.
   */
  updateSessionInfo?(sessionId: string, info: NodeInfo): Promise<boolean>;
  /** Live sessions, ordered by id. */
  listSessions(): Promise<SessionRecord[]>;

  /**
   * Takes `key` for `sessionId` when no live session holds it. Re-acquiring a key the session already
   * holds returns its current token. @throws SessionExpiredError when the session is not live.
   */
  tryAcquire(key: string, sessionId: string): Promise<AcquireResult>;
  /**
   * {@link tryAcquire} for many distinct keys in a few round trips (start-up, a dead node's share, a
   * hand-over): each key's result is what `tryAcquire` of that key alone would have answered at some
   * point during the call, in the order of `keys`. Not atomic across keys (a store may split them into
   * bounded batches): a key taken is taken even when a later one of the same call is not.
   * @throws SessionExpiredError when the session is not live (keys taken before it was noticed vanish
   *   with the session); ConfigError when a key is given twice.
   */
  tryAcquireMany(keys: readonly string[], sessionId: string): Promise<AcquireResult[]>;
  /** Releases `key` if it is held with `token`; `false` otherwise. */
  release(key: string, token: bigint): Promise<boolean>;
  /** {@link release} for many distinct keys in a few round trips: one answer per lease, in order. */
  releaseMany(leases: readonly Guard[]): Promise<boolean[]>;
  /** The live holder of `key`, or null. */
  holder(key: string): Promise<Holder | null>;
  /** Live holders of keys starting with `prefix`, ordered by key. */
  listHolders(prefix: string): Promise<Holder[]>;

  get<T = unknown>(key: string): Promise<StoredRecord<T> | null>;
  /** Writes `value` (JSON-serialisable) when `condition` holds. */
  put(key: string, value: unknown, condition?: WriteCondition): Promise<WriteResult>;
  /** Records whose key starts with `prefix`, ordered by key. */
  list<T = unknown>(prefix: string, options?: ListOptions): Promise<StoredRecord<T>[]>;
  /** Deletes the record when `condition` holds; `false` when it did not (or the record was absent). */
  delete(key: string, condition?: WriteCondition): Promise<boolean>;
  /** Deletes every record whose key starts with `prefix` and sorts before `beforeKey`; returns how many. */
  deleteBefore(prefix: string, beforeKey: string): Promise<number>;

  /**
   * The names of the clusters this store holds something of (a session, a held key or a record), of every
   * cluster, not only this handle's; in no particular order. Opening a handle and reading through it leave
   * nothing, so a mistyped cluster name is not listed. For operators (`baton status` names them when asked
   * for an unknown cluster): it may scan the store, so it is not for a loop.
   */
  listClusters(): Promise<string[]>;

  /** Calls `listener` on changes (a hint: re-read the state). Returns the unsubscribe function. */
  watch(listener: (change: Change) => void): () => void;

  /** Releases the handle's connections and timers. Sessions are not closed: close them first. */
  close(): Promise<void>;
}

/** What every store's opener takes besides its URL. */
export interface OpenStoreOptions {
  /** Cluster name: every key lives under it, so clusters sharing a store never see each other. */
  readonly cluster: string;
  /** Store time for the stores that measure it locally (memory, SQLite). Default: the system clock. */
  readonly clock?: Clock;
}
