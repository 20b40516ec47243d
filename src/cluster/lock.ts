/**
 * Cluster-wide locks: `await using lock = await cluster.lock('report')`.
 *
 * Guarantees:
 * - Mutual exclusion at every store instant: a lock is one store key (`lock/<namespace>/<name>`), held by
 *   at most one live session, and within a node by at most one handle (invariant 1).
 * - Every acquisition carries a fencing token strictly greater than all earlier ones for that lock; put
 *   it (or `guard`) into the writes the lock protects, and have them refused once a newer token exists
 *   (invariant 2). Ownership is advisory: the token is what makes it safe.
 * - Auto-renewal without per-lock requests: the lock is bound to the node's session, which the node's one
 *   heartbeat keeps alive whatever its number of locks. TTL auto-unlock: when the node dies, its locks
 *   vanish `ttl` (the cluster's session TTL) after its last renewal; `close()` releases them at once.
 * - `signal` aborts when the lock is lost — session lost (including after an event-loop stall), released,
 *   or a guarded write refused — before the store can grant the lock to another node (invariant 4).
 * - A waiter stops when its signal aborts, when its node's session is lost (SessionExpiredError: a waiter
 *   never outlives its session, unlike etcd-io/etcd#22387), or when the cluster closes, and leaves no key
 *   behind. Waiting is driven by store change hints plus a bounded poll (`scanEvery`), never a hot loop.
 *
 * Non-guarantees: no fairness or FIFO order among waiters; not re-entrant (a second `lock()` of the same
 * lock on the same node waits for the first handle, so never nest them in one flow); a per-lock TTL
 * different from the session TTL cannot be honoured and is refused; if the store drops the session
 * behind the node's back (an operator, a store failover), the signal aborts at the next renewal (within
 * `renewEvery`) — guarded writes are refused by the store meanwhile.
 */
import { parseDuration, type Duration } from '../core/duration.js';
import { ConfigError, type HolderInfo } from '../core/errors.js';
import {
  assertKnownOptions,
  assertPrimitiveName,
  assertSignal,
  DEFAULT_NAMESPACE,
  describeHolders,
  HeldKey,
  resolveNamespace,
  resolveWait,
  waitedSuffix,
  type Claims,
} from './claims.js';
import { ownerHint } from './change-hints.js';

export interface LockOptions {
  /** Lock domain: the same name in two namespaces is two locks. Default `"default"`. */
  readonly namespace?: string;
  /**
   * How long to wait while another holder has the lock. `true` (default): until acquired, the signal
   * aborts, the session is lost or the cluster closes. `false` (or 0): one attempt, LockHeldError when
   * held. A Duration (`"5s"`, ms): wait that long at most (measured on this node's monotonic clock), then
   * LockHeldError.
   */
  readonly wait?: boolean | Duration;
  /** Aborts the wait (the promise rejects with the signal's reason). Does not release a lock once taken. */
  readonly signal?: AbortSignal;
  /**
   * Not a per-lock setting: a lock lives as long as the node's session, and vanishes the session TTL
   * after its node dies. Accepted only when equal to the cluster's `ttl` (then it documents intent);
   * anything else is refused with a ConfigError, because it could not be honoured.
   */
  readonly ttl?: Duration;
}

const LOCK_OPTIONS = ['namespace', 'wait', 'signal', 'ttl'] as const satisfies readonly (keyof LockOptions)[];

export const LOCK_PREFIX = 'lock/';
export const lockKey = (namespace: string, name: string): string => `${LOCK_PREFIX}${namespace}/${name}`;

/** A held lock. `await using` releases it at the end of the scope; so does `release()`. */
export class LockHandle extends HeldKey {
  readonly name: string;
  readonly namespace: string;

  /** @internal */
  constructor(claims: Claims, lease: ConstructorParameters<typeof HeldKey>[1], name: string, namespace: string) {
    super(claims, lease, lockLabel(name, namespace));
    this.name = name;
    this.namespace = namespace;
  }
}

function lockLabel(name: string, namespace: string): string {
  return namespace === DEFAULT_NAMESPACE ? `lock "${name}"` : `lock "${namespace}/${name}"`;
}

/** Checks every option and resolves the wait, before anything is sent. */
export function resolveLockOptions(
  name: unknown,
  options: LockOptions | undefined,
  sessionTtlMs: number,
): { name: string; namespace: string; waitMs: number; signal: AbortSignal | undefined } {
  assertPrimitiveName('lock', name);
  const what = `lock "${name}"`;
  assertKnownOptions(what, options, LOCK_OPTIONS);
  const namespace = resolveNamespace(what, options?.namespace);
  if (options?.ttl !== undefined) {
    const ttlMs = parseDuration(options.ttl, `${what}: ttl`);
    if (ttlMs !== sessionTtlMs) {
      throw new ConfigError(
        `${what}: ttl (${ttlMs}ms) cannot differ from the cluster's session ttl (${sessionTtlMs}ms): a lock is bound to its ` +
          "node's session (one heartbeat renews every lock) and vanishes ttl after the node dies; set ttl on createCluster() instead",
      );
    }
  }
  assertSignal(what, options?.signal);
  return { name, namespace, waitMs: resolveWait(what, options?.wait), signal: options?.signal };
}

/**
 * Takes lock `name` for this node, waiting as `options.wait` says.
 * @throws LockHeldError (held, and no wait or the wait ran out; names the holder's node, host and pid),
 *   the signal's reason, SessionExpiredError (the node's session was lost while waiting or is being
 *   re-opened), ClosedError (the cluster closes), ConfigError for bad options.
 */
export async function acquireLock(claims: Claims, name: string, options: LockOptions | undefined, sessionTtlMs: number): Promise<LockHandle> {
  const resolved = resolveLockOptions(name, options, sessionTtlMs);
  const key = lockKey(resolved.namespace, resolved.name);
  const label = lockLabel(resolved.name, resolved.namespace);
  return claims.waitFor<LockHandle>({
    what: label,
    signal: resolved.signal,
    waitMs: resolved.waitMs,
    relevant: ownerHint((k) => k === key),
    isLocalKey: (k) => k === key,
    attempt: async (session) => {
      const outcome = await claims.take(session, key);
      if ('lease' in outcome) return { taken: new LockHandle(claims, outcome.lease, resolved.name, resolved.namespace) };
      if ('holder' in outcome) return { blocked: { holders: [outcome.holder], local: [] } };
      return { blocked: { holders: [], local: [{ key, token: outcome.local.token }] } };
    },
    heldMessage: (holders: readonly HolderInfo[], waitedMs) =>
      `${label}: ${waitedMs === undefined ? 'held' : 'still held'} by ${holders.length > 0 ? describeHolders(holders) : 'another session'}${waitedSuffix(waitedMs)}`,
  });
}
