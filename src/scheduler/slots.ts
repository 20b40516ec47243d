/**
 * Cluster-wide concurrency limits: a group of tasks with `concurrency: N` has N slot keys
 * `slot/<group>/0 … N-1` in the store. A run holds one (an ownership key of the node's session, so a
 * crashed node's slots vanish with its session) from before its claim until its end.
 *
 * Guarantees: at any store instant at most N runs of the group hold a slot (invariant 1 on each key), and
 * slots of a lost session free themselves. Non-guarantees: as with task ownership, a handler that ignores
 * its aborted signal can outlive the session that held its slot; and the limit is the one each node
 * declared — nodes declaring different limits for one group use their own (declare the same).
 */
import type { Clock } from '../core/clock.js';
import { SessionExpiredError, toError } from '../core/errors.js';
import type { LiveSession } from '../cluster/session-keeper.js';
import type { Change, Store } from '../stores/contract.js';
import type { Emit } from './events.js';
import { HintWaker } from './hints.js';
import { slotKey, slotPrefix } from './keys.js';

export interface HeldSlot {
  readonly key: string;
  readonly token: bigint;
}

/** Poll period of a slot wait when no hint arrives. */
const SLOT_POLL_MS = 1000;

/**
 * Takes a free slot of `group`, waiting for one until the wall time `until` (undefined: no bound) or the
 * signal aborts. `localSlots` holds the slot keys this node's runs hold: the store's acquisition is
 * re-entrant per session, so two runs of one node must not pick the same key.
 * @returns the slot, or undefined when none freed up in time.
 */
export async function acquireSlot(options: {
  readonly store: Store;
  readonly clock: Clock;
  readonly session: LiveSession;
  readonly group: string;
  readonly limit: number;
  readonly localSlots: Set<string>;
  readonly until: number | undefined;
  readonly signal: AbortSignal;
  readonly onWait: () => void;
}): Promise<HeldSlot | undefined> {
  const { store, clock, session, group, limit, localSlots, until, signal } = options;
  const prefix = slotPrefix(group);
  const matches = (change: Change) =>
    change.scope === 'owners' || change.scope === 'any' ? (change.key === undefined ? 'scope' : change.key.startsWith(prefix) ? 'key' : false) : false;
  const waker = new HintWaker(store, clock, matches, 250);
  let waited = false;
  try {
    for (;;) {
      const slot = await tryTakeSlot(store, session, group, limit, localSlots);
      if (slot) return slot;
      const left = until === undefined ? SLOT_POLL_MS : until - clock.now();
      if (left <= 0) return undefined;
      if (!waited) options.onWait();
      waited = true;
      await waker.wait(Math.min(left, SLOT_POLL_MS), signal);
    }
  } finally {
    waker.close();
  }
}

async function tryTakeSlot(store: Store, session: LiveSession, group: string, limit: number, localSlots: Set<string>): Promise<HeldSlot | undefined> {
  session.assertLive();
  const held = new Set((await store.listHolders(slotPrefix(group))).map((h) => h.key));
  for (let i = 0; i < limit; i++) {
    const key = slotKey(group, i);
    if (held.has(key) || localSlots.has(key)) continue;
    // Reserve it locally before the await: another run of this node must not pick it meanwhile.
    localSlots.add(key);
    try {
      const result = await store.tryAcquire(key, session.id);
      if (result.acquired) return { key, token: result.token };
    } catch (error) {
      localSlots.delete(key);
      throw error;
    }
    localSlots.delete(key);
  }
  return undefined;
}

/** Frees a slot (best effort: a lost session's slots are already free). */
export async function releaseSlot(store: Store, slot: HeldSlot, localSlots: Set<string>, emit: Emit, task: string): Promise<void> {
  try {
    await store.release(slot.key, slot.token);
  } catch (error) {
    if (!(error instanceof SessionExpiredError)) emit('error', { where: `task "${task}": release ${slot.key}`, error: toError(error) });
  } finally {
    localSlots.delete(slot.key);
  }
}
