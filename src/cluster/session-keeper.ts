/**
 * The session keeper: ONE heartbeat per node, whatever its number of tasks, and the self-fencing that
 * makes ownership safe (DESIGN.md invariant 4).
 *
 * Guarantees: while {@link LiveSession.isLive} is true, the store has not expired the session: the local
 * deadline is the monotonic time taken *before* the last successful renewal was sent, plus TTL, minus the
 * safety margin. When the deadline passes without a confirmed renewal — including after the event loop
 * stalled (GC, SIGSTOP, a blocking handler) — the session's `signal` aborts before anything else is done
 * with it, and a new session is opened with backoff. Keys held by the old session are never reused.
 * Non-guarantees: a write already in flight when the process stalled may reach the store late; store-side
 * fencing (guarded writes) refuses it if the key has moved on.
 */
import { setMaxListeners } from 'node:events';
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { ClosedError, SessionExpiredError, toError } from '../core/errors.js';
import type { NodeInfo } from '../core/node-info.js';
import type { Store } from '../stores/contract.js';
import type { SessionTiming } from './session-timing.js';

export interface SessionEvents {
  /** A session was opened; `replaces` names the lost session it takes over from (a recovery). */
  'session:opened': { readonly sessionId: string; readonly replaces?: string };
  'session:lost': { readonly sessionId: string; readonly reason: string };
  /** A timer of the keeper fired much later than asked: the event loop was blocked or the process paused. */
  'session:stalled': { readonly lagMs: number };
  'session:renew-failed': { readonly sessionId: string; readonly error: Error };
  /** A renewal succeeded; `durationMs` is its round trip (for `baton_session_renew_duration_seconds`). */
  'session:renewed': { readonly sessionId: string; readonly durationMs: number };
  /**
   * Closing a lost session in the store failed (`attempt` 1, then every {@link CLOSE_REPORT_EVERY}th):
   * it is retried with back-off until the store confirms, so its keys go as soon as the store is back
   * rather than when its TTL runs out there.
   */
  'session:close-failed': { readonly sessionId: string; readonly error: Error; readonly attempt: number };
}

type Emit = <K extends keyof SessionEvents>(event: K, payload: SessionEvents[K]) => void;

const DEADLINE_PASSED = 'local deadline passed without a confirmed renewal';

/** One session of this node in the store. Replaced by a new one (new id) when it is lost. */
export class LiveSession {
  readonly id: string;
  readonly #clock: Clock;
  readonly #controller = new AbortController();
  #deadline: number;

  constructor(id: string, clock: Clock, deadline: number) {
    this.id = id;
    this.#clock = clock;
    this.#deadline = deadline;
    // Every lease of the session listens to it (lease.ts): a node owning 1,000 tasks adds 1,000 listeners,
    // which is no leak (each is removed when its lease ends) but tripped Node's warning at 11.
    setMaxListeners(0, this.#controller.signal);
  }

  /** Aborts when the session is lost or closed; its reason says which. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Local monotonic deadline: the session is provably alive in the store until then. */
  get deadline(): number {
    return this.#deadline;
  }

  /**
   * True while the session is provably alive: not ended and before its local deadline. Asked past the
   * deadline, it ends the session there and then (its signal aborts, and with it every lease of the
   * session): a process that wakes from a pause can run a handler's timer before the keeper's deadline
   * timer, and whoever asks first — a handler, a fenced write — must see the loss, not a stale signal.
   */
  isLive(): boolean {
    if (this.#controller.signal.aborted) return false;
    if (this.#clock.monotonic() < this.#deadline) return true;
    this.end(new SessionExpiredError(`session ${this.id}: ${DEADLINE_PASSED}`));
    return false;
  }

  /** Throws SessionExpiredError unless the session is provably alive; call before every fenced write. */
  assertLive(): void {
    if (this.isLive()) return;
    // Not live means ended: the reason names the session already when the keeper or isLive() gave it.
    const message = toError(this.#controller.signal.reason).message;
    throw new SessionExpiredError(message.startsWith(`session ${this.id}:`) ? message : `session ${this.id}: ${message}`);
  }

  /** @internal */
  extend(deadline: number): void {
    this.#deadline = deadline;
  }

  /** @internal */
  end(reason: Error): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }
}

type KeeperState = 'new' | 'running' | 'closed';

/** Shortest pause between two renewal attempts after a failed one. */
const RENEW_RETRY_FLOOR_MS = 50;
/** First pause before closing a lost session again; it doubles up to renewEvery. */
const CLOSE_RETRY_FIRST_MS = 100;
/** Failed attempts to close a lost session between two reports of the failure. */
export const CLOSE_REPORT_EVERY = 10;

export class SessionKeeper {
  readonly #store: Store;
  #info: NodeInfo;
  readonly #timing: SessionTiming;
  readonly #clock: Clock;
  readonly #emit: Emit;
  readonly #backoff: Backoff;
  readonly #listeners = new Set<(session: LiveSession) => void>();
  #state: KeeperState = 'new';
  #session: LiveSession | undefined;
  #cancelRenew: (() => void) | undefined;
  #cancelDeadline: (() => void) | undefined;
  #reopening: Promise<void> | undefined;
  readonly #stop = new AbortController();
  #unwatch: (() => void) | undefined;
  #lastLost: string | undefined;
  readonly #background = new Set<Promise<unknown>>();

  constructor(options: { store: Store; info: NodeInfo; timing: SessionTiming; clock: Clock; emit: Emit }) {
    this.#store = options.store;
    this.#info = options.info;
    this.#timing = options.timing;
    this.#clock = options.clock;
    this.#emit = options.emit;
    this.#backoff = new Backoff({ initialMs: Math.min(200, options.timing.renewEveryMs), maxMs: options.timing.ttlMs });
  }

  get timing(): SessionTiming {
    return this.#timing;
  }

  /** The current session when it is provably alive. */
  get current(): LiveSession | undefined {
    return this.#session?.isLive() ? this.#session : undefined;
  }

  /** Calls `listener` with every session opened from now on (the first one and those after a loss). */
  onSession(listener: (session: LiveSession) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Replaces the node info published by the next session opened (before start()). */
  updateInfo(info: NodeInfo): void {
    this.#info = info;
  }

  /**
   * Replaces the node info and publishes it on the live session where the store can
   * (`Store.updateSessionInfo`); a session opened later (after a loss) publishes it anyway.
   * @returns whether the live session now shows it.
   */
  async publishInfo(info: NodeInfo): Promise<boolean> {
    this.#info = info;
    const session = this.current;
    if (!session || !this.#store.updateSessionInfo) return false;
    return this.#store.updateSessionInfo(session.id, info);
  }

  /** Opens the first session; fails (and leaves nothing running) when the store refuses. */
  async start(): Promise<LiveSession> {
    if (this.#state !== 'new') throw new ClosedError(`session keeper: start() called in state ${this.#state}`);
    this.#state = 'running';
    if (this.#store.features.crashDetection) {
      // The store ends sessions whose connection is gone: when ours drops, assume the worst at once.
      this.#unwatch = this.#store.watch((change) => {
        if (change.scope === 'connection' && this.#session) this.#lose(this.#session, 'the store connection dropped');
      });
    }
    try {
      return await this.#open();
    } catch (error) {
      this.#state = 'closed';
      this.#unwatch?.();
      throw error;
    }
  }

  /** Stops renewing and closes the session in the store, releasing every key it holds. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#unwatch?.();
    this.#stop.abort(new ClosedError('session keeper: closed'));
    this.#cancelTimers();
    await Promise.allSettled([...this.#background]);
    const session = this.#session;
    this.#session = undefined;
    if (!session) return;
    session.end(new ClosedError(`session ${session.id}: closed`));
    await this.#store.closeSession(session.id);
  }

  async #open(): Promise<LiveSession> {
    const sentAt = this.#clock.monotonic();
    const { id } = await this.#store.openSession(this.#info, this.#timing.ttlMs);
    const session = new LiveSession(id, this.#clock, sentAt + this.#timing.ttlMs - this.#timing.safetyMarginMs);
    if (this.#state === 'closed') {
      await this.#store.closeSession(id);
      throw new ClosedError('session keeper: closed while opening a session');
    }
    this.#session = session;
    this.#backoff.reset();
    this.#armDeadline(session);
    this.#scheduleRenew(this.#timing.renewEveryMs);
    this.#emit('session:opened', { sessionId: id, ...(this.#lastLost ? { replaces: this.#lastLost } : {}) });
    this.#lastLost = undefined;
    for (const listener of [...this.#listeners]) listener(session);
    return session;
  }

  #scheduleRenew(delayMs: number): void {
    this.#cancelRenew?.();
    const expectedAt = this.#clock.monotonic() + delayMs;
    this.#cancelRenew = this.#clock.setTimer(delayMs, () => {
      const lagMs = this.#clock.monotonic() - expectedAt;
      if (lagMs > this.#timing.safetyMarginMs) this.#emit('session:stalled', { lagMs });
      void this.#track(this.#renew());
    });
  }

  #armDeadline(session: LiveSession): void {
    this.#cancelDeadline?.();
    this.#cancelDeadline = this.#clock.setTimer(session.deadline - this.#clock.monotonic(), () => {
      if (this.#clock.monotonic() >= session.deadline) {
        this.#lose(session, DEADLINE_PASSED);
      } else {
        this.#armDeadline(session);
      }
    });
  }

  async #renew(): Promise<void> {
    const session = this.#session;
    if (!session || this.#state !== 'running') return;
    const sentAt = this.#clock.monotonic();
    if (sentAt >= session.deadline) {
      // Woke up past the deadline (stall): the store may already have granted our keys elsewhere.
      this.#lose(session, `woke ${Math.round(sentAt - session.deadline)}ms past the lease deadline`);
      return;
    }
    // A renewal that hangs (a store member gone silent, a leader election: etcd answers only after its
    // call timeout) must not use up the time left: if it has not been answered by half that time, another
    // one is sent, which the client may route to another member. The first answer wins; this timer is
    // replaced when this renewal settles. Halving, down to the floor, bounds the renewals in flight
    // (about log2(time left / 50 ms)); below it the deadline timer decides.
    const hedgeMs = (session.deadline - sentAt) / 2;
    if (hedgeMs >= RENEW_RETRY_FLOOR_MS) this.#scheduleRenew(hedgeMs);
    let renewed: boolean;
    try {
      renewed = await this.#store.renewSession(session.id);
    } catch (error) {
      if (session !== this.#session || this.#state !== 'running') return;
      this.#emit('session:renew-failed', { sessionId: session.id, error: toError(error) });
      // Retry at half the time left, but not more often than RENEW_RETRY_FLOOR_MS: halving alone would
      // send ever more renewals as the deadline nears (dozens in its last millisecond).
      const left = session.deadline - this.#clock.monotonic();
      this.#scheduleRenew(Math.max(RENEW_RETRY_FLOOR_MS, Math.min(this.#timing.renewEveryMs / 2, left / 2)));
      return;
    }
    if (session !== this.#session || this.#state !== 'running' || !session.isLive()) return;
    if (!renewed) {
      this.#lose(session, 'the store reports the session expired');
      return;
    }
    // Max: with renewals in flight together, an older one may be answered last.
    session.extend(Math.max(session.deadline, sentAt + this.#timing.ttlMs - this.#timing.safetyMarginMs));
    this.#emit('session:renewed', { sessionId: session.id, durationMs: this.#clock.monotonic() - sentAt });
    this.#armDeadline(session);
    this.#scheduleRenew(this.#timing.renewEveryMs);
  }

  #lose(session: LiveSession, reason: string): void {
    if (session !== this.#session) return;
    this.#session = undefined;
    this.#lastLost = session.id;
    this.#cancelTimers();
    session.end(new SessionExpiredError(`session ${session.id}: ${reason}`));
    this.#emit('session:lost', { sessionId: session.id, reason });
    // Free our keys as soon as the store answers, not when their TTL runs out there: a store that
    // failed over may even extend it (etcd's new leader renews every lease it takes over).
    this.#track(this.#closeLost(session.id));
    this.#reopening ??= this.#track(this.#reopen()).finally(() => {
      this.#reopening = undefined;
    });
  }

  async #reopen(): Promise<void> {
    while (this.#state === 'running') {
      try {
        await this.#open();
        return;
      } catch (error) {
        if (this.#state !== 'running') return;
        this.#emit('session:renew-failed', { sessionId: '(opening)', error: toError(error) });
        await sleep(this.#clock, this.#backoff.next(), this.#stop.signal).catch(() => undefined);
      }
    }
  }

  /**
   * Closes a lost session in the store, retrying with back-off (CLOSE_RETRY_FIRST_MS doubling up to
   * renewEvery) until the store confirms — closing a session that already expired there succeeds — or
   * the keeper closes. Each attempt is cheap, and past renewEvery of the store being back, the next
   * attempt comes before the session's TTL could free the keys by itself.
   */
  async #closeLost(sessionId: string): Promise<void> {
    const backoff = new Backoff({ initialMs: Math.min(CLOSE_RETRY_FIRST_MS, this.#timing.renewEveryMs), maxMs: this.#timing.renewEveryMs });
    for (let attempt = 1; this.#state === 'running'; attempt++) {
      try {
        await this.#store.closeSession(sessionId);
        return;
      } catch (error) {
        if (this.#state !== 'running') return;
        if (attempt === 1 || attempt % CLOSE_REPORT_EVERY === 0) {
          this.#emit('session:close-failed', { sessionId, error: toError(error), attempt });
        }
        await sleep(this.#clock, backoff.next(), this.#stop.signal).catch(() => undefined);
      }
    }
  }

  /** Keeps a background promise so close() can wait for it; its failure is reported, never thrown. */
  #track<T>(promise: Promise<T>): Promise<T | undefined> {
    const tracked = promise.catch(() => undefined);
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
    return tracked;
  }

  #cancelTimers(): void {
    this.#cancelRenew?.();
    this.#cancelDeadline?.();
    this.#cancelRenew = undefined;
    this.#cancelDeadline = undefined;
  }
}
