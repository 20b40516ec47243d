/**
 * What locks and semaphores share: taking a key for this node's session, keeping two callers of the same
 * node apart, waiting for a key without a hot loop, and releasing it.
 *
 * Guarantees:
 * - Every key is taken through the node's ONE session (no per-key renewal: the session's heartbeat keeps
 *   all of them), so a key vanishes from the store TTL after its node dies, and its handle's `signal`
 *   aborts when the session is lost — before the store can give the key to another node (invariant 4).
 * - The store would hand a key the session already holds back to any caller of the same node (re-acquiring
 *   returns the current token). Claims keep such callers apart locally: a key is given to one handle of
 *   the node at a time, and every handle gets a token greater than the previous handle's.
 * - A wait is bound to the session that was live when it began: it stops with SessionExpiredError when
 *   that session is lost (etcd-io/etcd#22387 is the bug this avoids), with the caller's abort reason when
 *   its signal aborts, and with ClosedError when the cluster closes; in every case the key it may just
 *   have taken is released, so nothing is left behind.
 *
 * Non-guarantees: not fair (no queue: whoever asks first after a release wins, a local waiter usually
 * before a remote one); a release the store did not confirm (store unreachable) is retried in the
 * background while the session lives, and otherwise the key vanishes with the session.
 */
import { randomInt } from 'node:crypto';
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { asyncDispose } from '../core/disposable.js';
import { parseDuration, formatDuration, type Duration } from '../core/duration.js';
import { BatonError, ClosedError, ConfigError, LockHeldError, SessionExpiredError, type HolderInfo } from '../core/errors.js';
import type { NodeInfo } from '../core/node-info.js';
import type { Change, Guard, Holder, Store, WriteCondition, WriteResult } from '../stores/contract.js';
import { ChangeHints } from './change-hints.js';
import { tryAcquireLease, type Lease } from './lease.js';
import type { LiveSession, SessionKeeper } from './session-keeper.js';

/** What every primitive needs from the cluster. */
export interface PrimitiveDeps {
  readonly store: Store;
  readonly keeper: SessionKeeper;
  readonly clock: Clock;
  /** This node as the store shows it (names it in "held by" messages). */
  readonly node: () => NodeInfo;
  /** Longest pause between two looks at the store while waiting without a hint (the cluster's scanEvery). */
  readonly pollMs: number;
  /**
   * A store error a wait or a watch rode through (it looks again after a back-off, from
   * {@link RETRY_FIRST_MS} doubling up to `pollMs`); `where` names the primitive.
   */
  readonly onError: (where: string, error: Error) => void;
  /** Aborts when the cluster begins to close: every wait and stream ends. */
  readonly closed: AbortSignal;
  /** Throws BatonError INVALID_STATE unless the cluster is running. */
  readonly assertRunning: (what: string) => void;
}

/** First pause after a store error while waiting or watching; it doubles up to the cluster's scanEvery. */
export const RETRY_FIRST_MS = 100;

/** The back-off of a wait or a watch after a store error. */
export function retryBackoff(pollMs: number): Backoff {
  return new Backoff({ initialMs: Math.min(RETRY_FIRST_MS, pollMs), maxMs: pollMs });
}

/**
 * Waits `ms` after a failed look at the store, deaf to hints meanwhile: a store that fails fast while
 * changes keep being announced (a reconnecting connection says `any` each time) is not asked per hint.
 * Resolves early, never rejects, when `signal` aborts: the caller looks at its signals itself.
 */
export async function pauseAfterFailure(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  await sleep(clock, ms, signal).catch((error: unknown) => {
    if (!signal.aborted) throw error;
  });
}

/** Names of locks, semaphores and shared state: like task names, no '/' so keys stay unambiguous. */
const NAME = /^[A-Za-z0-9][\w.:-]{0,127}$/;
const NAMESPACE = /^[A-Za-z0-9][\w.:-]{0,63}$/;
export const DEFAULT_NAMESPACE = 'default';

export function assertPrimitiveName(kind: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(
      `${kind} name: expected 1–128 letters, digits, '_', '.', ':' or '-' starting with a letter or digit, got ${JSON.stringify(name)}`,
    );
  }
}

export function resolveNamespace(what: string, namespace: unknown): string {
  if (namespace === undefined) return DEFAULT_NAMESPACE;
  if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
    throw new ConfigError(
      `${what}: namespace: expected 1–64 letters, digits, '_', '.', ':' or '-' starting with a letter or digit, got ${JSON.stringify(namespace)}`,
    );
  }
  return namespace;
}

/** Refuses options the primitive does not know (a typo must not silently change behaviour). */
export function assertKnownOptions(what: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new ConfigError(`${what}: options must be an object, got ${JSON.stringify(options)}`);
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new ConfigError(`${what}: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${known.join(', ')})`);
  }
}

/** `wait` as milliseconds: 0 = one attempt, Infinity = until acquired (or signal / session loss). */
export function resolveWait(what: string, wait: boolean | Duration | undefined): number {
  if (wait === undefined || wait === true) return Number.POSITIVE_INFINITY;
  if (wait === false) return 0;
  return parseDuration(wait, `${what}: wait`);
}

export function assertSignal(what: string, signal: unknown): asserts signal is AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ConfigError(`${what}: signal must be an AbortSignal`);
}

/** A key this node holds through a lock or a semaphore permit. */
export class HeldKey implements AsyncDisposable {
  /** The store key. */
  readonly key: string;
  /** The fencing token: strictly greater than every earlier token of this key. Put it into your writes. */
  readonly token: bigint;
  /** Aborts when the key is no longer held: released, session lost, or a fenced write refused. */
  readonly signal: AbortSignal;
  readonly #lease: Lease;
  readonly #claims: Claims;
  readonly #what: string;
  #released: Promise<void> | undefined;

  /** @internal */
  constructor(claims: Claims, lease: Lease, what: string) {
    this.#claims = claims;
    this.#lease = lease;
    this.#what = what;
    this.key = lease.key;
    this.token = lease.token;
    this.signal = lease.signal;
  }

  /** Proof of ownership for a store write (`{ guard }` of shared state): refused once the key moved on. */
  get guard(): Guard {
    return this.#lease.guard;
  }

  /** True while the session is provably alive and the key was not released or lost. */
  isHeld(): boolean {
    return this.#lease.isHeld();
  }

  /** Throws NotOwnerError unless the key is provably held; call it before acting on the lock's behalf. */
  assertHeld(): void {
    this.#lease.assertHeld();
  }

  /** A store write guarded by this key's token (see {@link Lease.put}): refused once the key moved on. */
  put(key: string, value: unknown, condition: Omit<WriteCondition, 'guard'> = {}): Promise<WriteResult> {
    return this.#lease.put(key, value, condition);
  }

  /**
   * Releases the key so that a waiter (here or on another node) gets it at once. Safe to call twice and
   * after the key was lost. Never throws: when the store cannot be reached, the release is retried in
   * the background, and the key vanishes with the session otherwise.
   */
  release(): Promise<void> {
    this.#released ??= this.#claims.release(this.#lease, releasedReason(this.#what));
    return this.#released;
  }

  /** `await using` calls this at the end of the scope. */
  [asyncDispose](): Promise<void> {
    return this.release();
  }
}

/**
 * The abort reason of a handle its owner released: a ClosedError without a stack trace. A deliberate
 * release has no failure to trace, and capturing the stack was a sixth of the CPU of a lock acquire +
 * release (measured on the memory store with --cpu-prof).
 */
function releasedReason(what: string): ClosedError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ClosedError(`${what}: released`);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Why an attempt did not take a key: who holds it (store holders, or this node). */
export interface Blocked {
  readonly holders: readonly Holder[];
  /** Keys this node's own handles hold (the store would call them ours). */
  readonly local: readonly { readonly key: string; readonly token: bigint | undefined }[];
}

export type Attempt<T> = { readonly taken: T } | { readonly blocked: Blocked };

export type TakeOutcome = { readonly lease: Lease } | { readonly holder: Holder } | { readonly local: { readonly token: bigint | undefined } };

/** One per cluster: this node's keys taken by locks and semaphores. */
export class Claims {
  readonly deps: PrimitiveDeps;
  /** Keys taken (or being taken) by this node's handles: 'pending' while the store request is in flight. */
  readonly #local = new Map<string, Lease | 'pending'>();
  /**
   * Keys whose release the store did not confirm, with their token: the store may still hold them for
   * our session, and would hand that OLD token to the next caller. They are released before the key is
   * taken again.
   */
  readonly #orphans = new Map<string, bigint>();
  readonly #releasing = new Set<Lease>();
  readonly #localFree = new Set<(key: string) => void>();
  readonly #timers = new Set<() => void>();

  constructor(deps: PrimitiveDeps) {
    this.deps = deps;
    deps.closed.addEventListener('abort', () => {
      for (const cancel of this.#timers) cancel();
      this.#timers.clear();
    });
  }

  /** The session to wait with, or SessionExpiredError/ClosedError when there is none right now. */
  requireSession(what: string): LiveSession {
    this.deps.assertRunning(what);
    if (this.deps.closed.aborted) throw new ClosedError(`${what}: the cluster is closing`);
    const session = this.deps.keeper.current;
    if (!session) {
      throw new SessionExpiredError(`${what}: this node has no live session right now (it was lost and is being re-opened); try again`);
    }
    return session;
  }

  /** True when one of this node's handles holds `key` (or is taking it). */
  isLocal(key: string): boolean {
    return this.#local.has(key);
  }

  /** One attempt to take `key` for `session`. */
  async take(session: LiveSession, key: string): Promise<TakeOutcome> {
    const mine = this.#local.get(key);
    if (mine !== undefined) return { local: { token: mine === 'pending' ? undefined : mine.token } };
    // Reserve before the first await: two callers of this node must not both reach the store.
    this.#local.set(key, 'pending');
    let lease: Lease | undefined;
    try {
      const orphan = this.#orphans.get(key);
      if (orphan !== undefined) {
        // An unconfirmed release: if the store still holds the key for our session, tryAcquire would
        // return the OLD token to a new handle. Release it first (a no-op when the key moved on).
        await this.deps.store.release(key, orphan);
        this.#orphans.delete(key);
      }
      const outcome = await tryAcquireLease(this.deps.store, session, key);
      if ('lease' in outcome) lease = outcome.lease;
      return outcome;
    } finally {
      if (lease) this.#hold(key, lease);
      // A failed reservation wakes nobody: a local waiter that saw it waits for the store's holder, whose
      // release sends a hint (waking it here would let two local waiters wake each other in a loop).
      else this.#local.delete(key);
    }
  }

  /** Ends `lease`, frees its key in the store, then lets this node's waiters at it. Never throws. */
  async release(lease: Lease, reason: Error): Promise<void> {
    if (this.#local.get(lease.key) !== lease) {
      lease.end(reason); // already lost (its abort freed it locally)
      return;
    }
    this.#releasing.add(lease);
    lease.end(reason);
    try {
      // Free it in the store BEFORE locally: a local waiter that reached the store first would get the
      // same token back (the key would still be our session's).
      await this.deps.store.release(lease.key, lease.token);
    } catch {
      this.#orphans.set(lease.key, lease.token);
      this.#retryOrphan(lease);
    } finally {
      this.#releasing.delete(lease);
      this.#free(lease.key);
    }
  }

  /**
   * Calls `attempt` until it takes something, waiting between attempts for a store hint that `relevant`
   * accepts, a local release of a key `isLocalKey` accepts, or `pollMs` at most.
   * @throws LockHeldError when `waitMs` runs out (0: after one attempt); the caller's abort reason;
   *   SessionExpiredError when the session the wait began with is lost; ClosedError when the cluster closes.
   */
  async waitFor<T extends { release(): Promise<void> }>(options: {
    readonly what: string;
    readonly signal: AbortSignal | undefined;
    readonly waitMs: number;
    readonly relevant: (change: Change) => boolean;
    readonly isLocalKey: (key: string) => boolean;
    readonly attempt: (session: LiveSession) => Promise<Attempt<T>>;
    readonly heldMessage: (holders: readonly HolderInfo[], waitedMs: number | undefined) => string;
  }): Promise<T> {
    const { what, signal, waitMs } = options;
    signal?.throwIfAborted();
    const session = this.requireSession(what);
    const stopped = () => session.signal.aborted || this.deps.closed.aborted || signal?.aborted === true;
    const { clock, pollMs } = this.deps;
    // One attempt (wait: false) never waits: no subscription and no combined signal, which would be
    // per-call work above the store's one round trip. A wait subscribes before its first attempt, so
    // that a release landing right after it wakes us.
    let stop: AbortSignal | undefined;
    let hints: ChangeHints | undefined;
    let onLocalFree: ((key: string) => void) | undefined;
    if (waitMs > 0) {
      const subscribed = new ChangeHints(this.deps.store, clock, options.relevant);
      hints = subscribed;
      onLocalFree = (key: string) => {
        if (options.isLocalKey(key)) subscribed.poke();
      };
      this.#localFree.add(onLocalFree);
    }
    const startedAt = clock.monotonic();
    const backoff = retryBackoff(pollMs);
    try {
      for (;;) {
        this.#throwIfStopped(what, session, signal);
        let blocked: Blocked | undefined;
        let failed = false;
        try {
          const result = await options.attempt(session);
          if ('taken' in result) {
            if (stopped()) {
              // Taken while the wait was being cancelled: give it back, leave nothing behind.
              await result.taken.release();
              this.#throwIfStopped(what, session, signal);
            }
            return result.taken;
          }
          blocked = result.blocked;
        } catch (error) {
          this.#throwIfStopped(what, session, signal);
          if (error instanceof SessionExpiredError) throw new SessionExpiredError(`${what}: ${error.message}`);
          // A store error: with no wait, say so; otherwise look again at the next poll (the session keeper
          // decides whether the store is gone for good, and then the wait stops with the session).
          if (waitMs === 0 || !(error instanceof BatonError)) throw error;
          this.deps.onError(what, error);
          failed = true;
        }
        const waited = clock.monotonic() - startedAt;
        if (waited >= waitMs) {
          const holders = blocked ? await this.describe(blocked, session) : [];
          throw new LockHeldError(options.heldMessage(holders, waitMs === 0 ? undefined : waited), holders);
        }
        // waitMs > 0 here (0 is always ≤ waited), so the wait subscribed above.
        stop ??= AbortSignal.any([session.signal, this.deps.closed, ...(signal ? [signal] : [])]);
        if (failed) {
          await pauseAfterFailure(clock, Math.min(backoff.next(), waitMs - waited), stop);
        } else {
          backoff.reset();
          await (hints as ChangeHints).next(Math.min(pollMs, waitMs - waited), stop);
        }
      }
    } finally {
      hints?.close();
      if (onLocalFree) this.#localFree.delete(onLocalFree);
    }
  }

  /** Node, host and pid of each holder (read from the live sessions; best effort). */
  async describe(blocked: Blocked, session: LiveSession): Promise<HolderInfo[]> {
    const me = this.deps.node();
    const own = blocked.local.map((l) => ({ node: me.id, host: me.host, pid: me.pid, token: l.token ?? 0n }));
    if (blocked.holders.length === 0) return own;
    const sessions = await this.deps.store.listSessions().catch(() => []);
    const byId = new Map(sessions.map((s) => [s.id, s.info]));
    const remote = blocked.holders.map((h) => {
      const info = h.sessionId === session.id ? me : byId.get(h.sessionId);
      return { node: info?.id ?? `session ${h.sessionId}`, host: info?.host ?? '?', pid: info?.pid ?? 0, token: h.token };
    });
    return [...remote, ...own];
  }

  #throwIfStopped(what: string, session: LiveSession, signal: AbortSignal | undefined): void {
    // The caller's own reason first: it asked for this.
    signal?.throwIfAborted();
    if (this.deps.closed.aborted) throw new ClosedError(`${what}: the cluster is closing`);
    if (session.signal.aborted) {
      const reason = session.signal.reason as Error | undefined;
      if (reason instanceof ClosedError) throw new ClosedError(`${what}: ${reason.message}`);
      throw new SessionExpiredError(`${what}: gave up waiting: ${reason?.message ?? `session ${session.id} lost`}`);
    }
  }

  #hold(key: string, lease: Lease): void {
    this.#local.set(key, lease);
    lease.signal.addEventListener(
      'abort',
      () => {
        if (this.#releasing.has(lease)) return; // release() frees it once the store confirmed
        // Lost (session, fencing): the store may still show it for our old session; remember the token.
        this.#orphans.set(key, lease.token);
        this.#free(key, lease);
      },
      { once: true },
    );
  }

  #free(key: string, only?: Lease): void {
    if (only && this.#local.get(key) !== only) return;
    this.#local.delete(key);
    for (const listener of [...this.#localFree]) listener(key);
  }

  #retryOrphan(lease: Lease): void {
    const attempt = () => {
      this.#timers.delete(cancel);
      if (this.#orphans.get(lease.key) !== lease.token || !lease.session.isLive() || this.deps.closed.aborted) return;
      this.deps.store.release(lease.key, lease.token).then(
        () => {
          if (this.#orphans.get(lease.key) === lease.token) this.#orphans.delete(lease.key);
        },
        () => this.#retryOrphan(lease),
      );
    };
    const cancel = this.deps.clock.setTimer(this.deps.pollMs, attempt);
    this.#timers.add(cancel);
  }
}

/** A random starting point in `[0, n)`, so that waiters do not all contend on the first slot. */
export function spreadStart(n: number): number {
  return n <= 1 ? 0 : randomInt(n);
}

export function describeHolders(holders: readonly HolderInfo[]): string {
  return holders.map((h) => `${h.node} (${h.host}:${h.pid})`).join(', ');
}

export function waitedSuffix(waitedMs: number | undefined): string {
  return waitedMs === undefined ? '' : ` after waiting ${formatDuration(waitedMs)}`;
}
