/**
 * What a node knows of the cluster's sessions and task owners, kept up to date by the store's change
 * hints instead of re-read on every placement scan. Re-reading both lists every `scanEvery` made the
 * store's read load grow as nodes × tasks: 10 idle nodes with 1,000 tasks read ≈ 108,000 rows/s from
 * PostgreSQL. Here (the informer pattern: list once, then watch):
 * - an owner hint that carries the new holder (`Change.holder`) is applied as it is; one that names only
 *   its key makes the next refresh read that key; one that names an ended session drops its keys, and
 *   the session itself: the membership without it is known at once, before any read (a standby that is
 *   next in line claims on the hint, Coordinator.claimFreed);
 * - a `sessions` hint re-reads the sessions (one row per node; task lists are stored once, task-sets.ts),
 *   and holders of sessions no longer live are dropped;
 * - a hint the store cannot narrow (`any`, `connection`, an owner change without key) re-reads in full;
 * - on stores that do not announce expiries (`features.announcesExpiry`), the sessions are re-read when
 *   one of them could have expired; and everything is re-read every `resyncEveryMs` (anti-entropy).
 *
 * The view is a preference, like placement: the store's atomic acquisition decides who owns a unit, so a
 * stale view costs a wasted acquisition or a later claim, never two owners.
 */
import { mapInBatches } from '../core/batches.js';
import type { Clock } from '../core/clock.js';
import type { Change, Holder, SessionRecord, Store } from '../stores/contract.js';
import { resolveTaskSets, taskSetFingerprint } from './task-sets.js';

/** What a refresh found changed. */
export interface ViewChanges {
  /** Membership or declarations changed: every unit is to be looked at. */
  readonly all: boolean;
  /** Owner keys whose holder changed since the previous refresh. */
  readonly keys: ReadonlySet<string>;
  /** Every holder was re-read (the first refresh, a resync, a hint the store could not narrow). */
  readonly reread?: boolean;
  /**
   * When this refresh ended a time the view may have missed changes (a failed read, a reconnect): the
   * store time up to which it was known current before. A holder found gone now may have left then.
   */
  readonly gapSince?: number;
}

/**
 * Least time between two reads of the sessions: a burst of joins (100 nodes starting together) is read
 * in a few reads, not one per join per node. The first read after a quiet time is immediate.
 */
const SESSIONS_READ_GAP_MS = 100;

/** Above this many keys to read one by one, one read of every holder is cheaper. */
const MAX_KEY_READS = 64;
const PARALLEL_KEY_READS = 16;

export class OwnershipView {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #prefix: string;
  readonly #resyncEveryMs: number;
  #sessions: readonly SessionRecord[] = [];
  /** Local monotonic time the sessions were read (their ages and expiries are as of then). */
  #sessionsAt = Number.NEGATIVE_INFINITY;
  #sessionsExpireAt = Number.POSITIVE_INFINITY;
  #membershipKey = '';
  readonly #holders = new Map<string, Holder>();
  #needSessions = true;
  #needHolders = true;
  readonly #dirty = new Set<string>();
  /** Keys changed by hints since the last refresh. */
  readonly #changed = new Set<string>();
  /** While a read is in flight: keys set by hints meanwhile, newer than what the read returns. */
  #touched: Set<string> | undefined;
  #resyncAt = 0;
  /** Store time of the last hint or read while the view was current. */
  #currentAt = 0;
  /** Set while the view may be missing changes: the store time it was last known current. */
  #brokenSince: number | undefined;
  /** A hint changed the membership without a read (an ended session): the next refresh reports `all`. */
  #membershipHinted = false;

  constructor(options: { store: Store; clock: Clock; prefix: string; resyncEveryMs: number }) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#prefix = options.prefix;
    this.#resyncEveryMs = options.resyncEveryMs;
  }

  /** Live sessions as last read, ordered by id; ages and expiries advanced to now. */
  sessions(): SessionRecord[] {
    const elapsed = this.#clock.monotonic() - this.#sessionsAt;
    return this.#sessions.map((s) => ({ ...s, ageMs: s.ageMs + elapsed, expiresInMs: s.expiresInMs - elapsed }));
  }

  /** Changes whenever the membership or a member's declarations or labels change. */
  get membershipKey(): string {
    return this.#membershipKey;
  }

  /** The holder of an owner key, as far as the view knows. */
  holder(key: string): Holder | undefined {
    return this.#holders.get(key);
  }

  /** Takes a change hint. @returns whether it concerns the view (a refresh then has something to do). */
  hint(change: Change): boolean {
    if (this.#brokenSince === undefined) this.#currentAt = this.#clock.now();
    switch (change.scope) {
      case 'records':
        return false;
      case 'sessions':
        this.#needSessions = true;
        return true;
      case 'owners':
        if (change.key !== undefined) {
          if (!change.key.startsWith(this.#prefix)) return false;
          if (change.holder === undefined) this.#dirty.add(change.key);
          else this.#set(change.key, change.holder ?? undefined);
          return true;
        }
        if (change.endedSession !== undefined) {
          for (const [key, holder] of this.#holders) if (holder.sessionId === change.endedSession) this.#set(key, undefined);
          this.#dropSession(change.endedSession);
          return true;
        }
        this.#needHolders = true;
        return true;
      default:
        // `any` or `connection`: hints may have been lost while the watch was down.
        this.#brokenSince ??= this.#currentAt;
        this.#needSessions = true;
        this.#needHolders = true;
        return true;
    }
  }

  /** Whether a change frees a key the view knows held (`holder: null`). Call before {@link hint}. */
  frees(change: Change): change is Change & { readonly key: string } {
    return change.scope === 'owners' && change.key !== undefined && change.holder === null && this.#holders.has(change.key);
  }

  /** What this node learnt from its own acquisition or release (its hint may come later, or never). */
  note(key: string, holder: Holder | undefined): void {
    this.#set(key, holder);
  }

  /** This node released `key` held with `token`: forget that holder (a newer one the view knows stays). */
  forget(key: string, token: bigint): void {
    if (this.#holders.get(key)?.token === token) this.#set(key, undefined);
  }

  /** Milliseconds until a refresh has reads to do without any hint (an expiry to check, the resync). */
  nextReadDelay(): number {
    const now = this.#clock.monotonic();
    if (this.#needHolders || this.#dirty.size > 0) return 0;
    if (this.#needSessions) return Math.max(0, this.#sessionsAt + SESSIONS_READ_GAP_MS - now);
    return Math.max(0, Math.min(this.#resyncAt, this.#sessionsExpireAt) - now);
  }

  /** Reads what the hints (and timers) call for; nothing when the view is current. @throws what the store throws. */
  async refresh(): Promise<ViewChanges> {
    const started = this.#clock.monotonic();
    const startedAt = this.#clock.now();
    if (started >= this.#resyncAt) {
      this.#needSessions = true;
      this.#needHolders = true;
    }
    if (started >= this.#sessionsExpireAt) this.#needSessions = true;
    const readSessions = this.#needSessions && started >= this.#sessionsAt + SESSIONS_READ_GAP_MS;
    const readHolders = this.#needHolders || this.#dirty.size > MAX_KEY_READS;
    const keys = readHolders ? [] : [...this.#dirty];
    if (readSessions) this.#needSessions = false;
    this.#needHolders = false;
    this.#dirty.clear();
    const touched = (this.#touched = new Set());
    let read: [SessionRecord[] | undefined, Holder[] | undefined, (Holder | null)[]];
    try {
      read = await Promise.all([
        readSessions ? this.#store.listSessions().then((s) => resolveTaskSets(this.#store, s)) : undefined,
        readHolders ? this.#store.listHolders(this.#prefix) : undefined,
        mapInBatches(keys, PARALLEL_KEY_READS, (key) => this.#store.holder(key)),
      ]);
    } catch (error) {
      this.#needSessions ||= readSessions;
      this.#needHolders ||= readHolders;
      for (const key of keys) this.#dirty.add(key);
      this.#brokenSince ??= this.#currentAt;
      throw error;
    } finally {
      this.#touched = undefined;
    }
    const [sessions, holders, single] = read;
    if (holders) {
      const fresh = new Map(holders.map((h) => [h.key, h]));
      for (const key of [...this.#holders.keys()]) if (!fresh.has(key) && !touched.has(key)) this.#set(key, undefined);
      for (const [key, holder] of fresh) if (!touched.has(key)) this.#set(key, holder);
    }
    keys.forEach((key, i) => {
      if (!touched.has(key)) this.#set(key, single[i] ?? undefined);
    });
    let all = this.#membershipHinted;
    this.#membershipHinted = false;
    if (sessions) {
      this.#sessions = sessions;
      this.#sessionsAt = started;
      const live = new Set(sessions.map((s) => s.id));
      for (const [key, holder] of [...this.#holders]) if (!live.has(holder.sessionId) && !touched.has(key)) this.#set(key, undefined);
      this.#sessionsExpireAt = this.#store.features.announcesExpiry
        ? Number.POSITIVE_INFINITY
        : started + Math.max(0, Math.min(...sessions.map((s) => s.expiresInMs)));
      const key = membershipKey(sessions);
      if (key !== this.#membershipKey) {
        this.#membershipKey = key;
        all = true;
      }
    }
    // Jittered, so that the nodes of a cluster started together do not re-read all at once.
    if (readSessions && readHolders) this.#resyncAt = started + this.#resyncEveryMs * (0.75 + Math.random() / 2);
    const changed = new Set(this.#changed);
    this.#changed.clear();
    // A refresh that read nothing proves nothing: only reads and hints show the view current.
    if (!readSessions && !readHolders && keys.length === 0) return { all, keys: changed };
    const gapSince = this.#brokenSince;
    this.#brokenSince = undefined;
    this.#currentAt = startedAt;
    return { all, keys: changed, ...(readHolders ? { reread: true } : {}), ...(gapSince !== undefined ? { gapSince } : {}) };
  }

  /** The store said this session ended: the membership is the rest (a read in flight may still list it). */
  #dropSession(id: string): void {
    const rest = this.#sessions.filter((s) => s.id !== id);
    if (rest.length === this.#sessions.length) return;
    this.#sessions = rest;
    this.#membershipKey = membershipKey(rest);
    this.#membershipHinted = true;
  }

  #set(key: string, holder: Holder | undefined): void {
    this.#touched?.add(key);
    const current = this.#holders.get(key);
    if (current?.token === holder?.token && current?.sessionId === holder?.sessionId) return;
    if (holder) this.#holders.set(key, holder);
    else this.#holders.delete(key);
    this.#changed.add(key);
  }
}

/** Ids, labels, clock states and declared task lists of the members, in id order. */
function membershipKey(sessions: readonly SessionRecord[]): string {
  return sessions
    .map((s) => `${s.id}/${s.info.id}${JSON.stringify(s.info.labels)}${s.info.clockUnbounded ? '!' : ''}:${s.info.taskSet ?? taskSetFingerprint(s.info.tasks)}`)
    .join(',');
}
