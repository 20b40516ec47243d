/**
 * Cluster-wide counting semaphores: at most `limit` permits held at once, across every node.
 *
 * A semaphore is `limit` slot keys `sem/<namespace>/<name>/<i>` (i in 0…limit-1); a permit is one slot
 * taken with the store's atomic acquisition, so it has everything a lock has: a fencing token (per slot),
 * a guard, a signal that aborts when the permit is lost, TTL auto-release with the node's session, and
 * `await using`. Each attempt reads the slot holders once and tries the free slots from a random start,
 * so that contenders spread over the slots instead of all racing for slot 0.
 *
 * Guarantees: while every node uses the same `limit`, at most `limit` permits are held at any store
 * instant (each slot is held by at most one live session, and within a node by one permit); waits stop
 * on the caller's signal, on session loss (SessionExpiredError) and on close, leaving no slot behind.
 *
 * Non-guarantees: no fairness or FIFO order. Nodes that disagree on `limit` (a rolling deploy changing
 * it): each node only takes slots below its own limit, so at most max(limits) permits are held in total,
 * and a node with the smaller limit may acquire while more than its limit are held (slots above it held
 * by the other nodes do not count for it). {@link Semaphore.holders} shows every slot, including those.
 */
import { ConfigError } from '../core/errors.js';
import type { Duration } from '../core/duration.js';
import type { LiveSession } from './session-keeper.js';
import {
  assertKnownOptions,
  assertPrimitiveName,
  assertSignal,
  DEFAULT_NAMESPACE,
  describeHolders,
  HeldKey,
  resolveNamespace,
  resolveWait,
  spreadStart,
  waitedSuffix,
  type Attempt,
  type Claims,
} from './claims.js';
import { ownerHint } from './change-hints.js';
import type { Holder } from '../stores/contract.js';

export interface SemaphoreOptions {
  /** How many permits may be held at once, cluster-wide. An integer from 1 to {@link MAX_SEMAPHORE_LIMIT}. */
  readonly limit: number;
  /** Domain, as for locks. Default `"default"`. */
  readonly namespace?: string;
}

export interface PermitOptions {
  /** As for locks: `true` (default) until acquired, `false` one attempt, or a Duration. */
  readonly wait?: boolean | Duration;
  /** Aborts the wait (rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

/** Each attempt lists the slots once; a much larger limit wants a different design (a counter). */
export const MAX_SEMAPHORE_LIMIT = 1000;
const SEMAPHORE_OPTIONS = ['limit', 'namespace'] as const satisfies readonly (keyof SemaphoreOptions)[];
const ACQUIRE_OPTIONS = ['wait', 'signal'] as const satisfies readonly (keyof PermitOptions)[];

export const SEMAPHORE_PREFIX = 'sem/';
export const semaphorePrefix = (namespace: string, name: string): string => `${SEMAPHORE_PREFIX}${namespace}/${name}/`;

/** One held permit: a slot of the semaphore. */
export class Permit extends HeldKey {
  readonly name: string;
  readonly namespace: string;
  /** The slot taken, in 0…limit-1. */
  readonly slot: number;

  /** @internal */
  constructor(claims: Claims, lease: ConstructorParameters<typeof HeldKey>[1], name: string, namespace: string, slot: number, label: string) {
    super(claims, lease, `${label}: permit ${slot}`);
    this.name = name;
    this.namespace = namespace;
    this.slot = slot;
  }
}

/** A slot holder as the store shows it. */
export interface SemaphoreHolder {
  readonly slot: number;
  readonly node: string;
  readonly host: string;
  readonly pid: number;
  readonly token: bigint;
}

export class Semaphore {
  readonly name: string;
  readonly namespace: string;
  readonly limit: number;
  readonly #claims: Claims;
  readonly #prefix: string;
  readonly #label: string;

  /** @internal use `cluster.semaphore()`. */
  constructor(claims: Claims, name: unknown, options: SemaphoreOptions) {
    assertPrimitiveName('semaphore', name);
    const what = `semaphore "${name}"`;
    if (options === undefined) throw new ConfigError(`${what}: options with a limit are required, e.g. { limit: 3 }`);
    assertKnownOptions(what, options, SEMAPHORE_OPTIONS);
    const { limit } = options;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_SEMAPHORE_LIMIT) {
      throw new ConfigError(`${what}: limit must be an integer from 1 to ${MAX_SEMAPHORE_LIMIT}, got ${JSON.stringify(limit)}`);
    }
    this.name = name;
    this.namespace = resolveNamespace(what, options.namespace);
    this.limit = limit;
    this.#claims = claims;
    this.#prefix = semaphorePrefix(this.namespace, name);
    this.#label = this.namespace === DEFAULT_NAMESPACE ? what : `semaphore "${this.namespace}/${name}"`;
  }

  /**
   * Takes a permit, waiting as `options.wait` says.
   * @throws LockHeldError (all permits held and no wait, or the wait ran out; names the holders), the
   *   signal's reason, SessionExpiredError, ClosedError, ConfigError for bad options.
   */
  async acquire(options?: PermitOptions): Promise<Permit> {
    const what = this.#label;
    assertKnownOptions(what, options, ACQUIRE_OPTIONS);
    assertSignal(what, options?.signal);
    const waitMs = resolveWait(what, options?.wait);
    return this.#claims.waitFor<Permit>({
      what,
      signal: options?.signal,
      waitMs,
      relevant: ownerHint((k) => k.startsWith(this.#prefix)),
      isLocalKey: (k) => k.startsWith(this.#prefix),
      attempt: (session) => this.#attempt(session),
      heldMessage: (holders, waitedMs) =>
        `${what}: all ${this.limit} permit${this.limit === 1 ? '' : 's'} ${waitedMs === undefined ? 'held' : 'still held'}` +
        `${holders.length > 0 ? ` by ${describeHolders(holders)}` : ''}${waitedSuffix(waitedMs)}`,
    });
  }

  /** Runs `fn` with a permit, released when `fn` settles. */
  async withPermit<T>(fn: (permit: Permit) => Promise<T> | T, options?: PermitOptions): Promise<T> {
    const permit = await this.acquire(options);
    try {
      return await fn(permit);
    } finally {
      await permit.release();
    }
  }

  /** Every held slot, read from the store (slots at or above `limit` too: see the module notes). */
  async holders(): Promise<SemaphoreHolder[]> {
    this.#claims.deps.assertRunning(this.#label);
    const { store } = this.#claims.deps;
    const [holders, sessions] = await Promise.all([store.listHolders(this.#prefix), store.listSessions()]);
    const byId = new Map(sessions.map((s) => [s.id, s.info]));
    return holders
      .map((h) => ({ h, slot: this.#slotOf(h.key) }))
      .filter(({ slot }) => slot !== undefined)
      .map(({ h, slot }) => {
        const info = byId.get(h.sessionId);
        return { slot: slot as number, node: info?.id ?? `session ${h.sessionId}`, host: info?.host ?? '?', pid: info?.pid ?? 0, token: h.token };
      })
      .sort((a, b) => a.slot - b.slot);
  }

  async #attempt(session: LiveSession): Promise<Attempt<Permit>> {
    const claims = this.#claims;
    const held = await claims.deps.store.listHolders(this.#prefix);
    const heldSlots = new Map<number, Holder>();
    for (const h of held) {
      const slot = this.#slotOf(h.key);
      if (slot !== undefined) heldSlots.set(slot, h);
    }
    const local: { key: string; token: bigint | undefined }[] = [];
    const start = spreadStart(this.limit);
    for (let i = 0; i < this.limit; i++) {
      const slot = (start + i) % this.limit;
      if (heldSlots.has(slot)) continue;
      const key = `${this.#prefix}${slot}`;
      const outcome = await claims.take(session, key);
      if ('lease' in outcome) return { taken: new Permit(claims, outcome.lease, this.name, this.namespace, slot, this.#label) };
      // Lost the race for this slot (another node, or another permit of this node): try the next one.
      if ('holder' in outcome) heldSlots.set(slot, outcome.holder);
      else local.push({ key, token: outcome.local.token });
    }
    const blockers = [...heldSlots.entries()].filter(([slot, h]) => slot < this.limit && !local.some((l) => l.key === h.key));
    return { blocked: { holders: blockers.map(([, h]) => h), local } };
  }

  #slotOf(key: string): number | undefined {
    if (!key.startsWith(this.#prefix)) return undefined;
    const rest = key.slice(this.#prefix.length);
    return /^\d+$/.test(rest) ? Number(rest) : undefined;
  }
}
