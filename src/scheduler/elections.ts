/**
 * Election events: who leads each task, as an async iterator.
 *
 * ```ts
 * for await (const e of cluster.elections({ signal })) {
 *   if (e.role === 'leader') console.log(`leading ${e.task} with token ${e.token}`);
 *   else console.log(`${e.task} is led by ${e.owner?.node ?? 'nobody'}`);
 * }
 * ```
 *
 * Each event is this node's role for one task and the owner it knows of. The first event of each task is
 * its current state (`previousRole: null`); after that, an event comes when this node starts leading
 * (`leader`), stops leading (`follower` with `previousRole: 'leader'`), or — while following — the owner
 * changes (`follower` with the new owner, or `owner: null` while the task has none).
 *
 * Guarantees:
 * - Unambiguous: "stopped leading" is exactly `role: 'follower', previousRole: 'leader'`, and only a node
 *   that emitted `leader` for the task can get it (a node that never led never does: the opposite of
 *   client-go's OnStoppedLeading, kubernetes/client-go#1187).
 * - Leader events come from this node's own ownership (the scheduler's owner:acquired / owner:lost /
 *   owner:released), the moment it changes; a leader event carries the lease's `signal`, which aborts when
 *   leadership ends — act on it, not on the next event. Follower events come from the store (the task's
 *   owner key and the owner's session), re-read on every change hint and at least every `scanEvery`, so
 *   a follower learns the NEW owner, with its node, host, pid and token.
 * - The stream survives the loss of this node's session (that loss is itself reported: `follower` events
 *   for the tasks it led) and ends quietly when its signal aborts or the cluster closes.
 *
 * Non-guarantees: follower events are a view of the store, not a log: an owner that held a task only
 * briefly between two reads may never be seen. Tasks are those this node declares, or the one named.
 */
import { Backoff } from '../core/backoff.js';
import { sleep, type Clock } from '../core/clock.js';
import { ConfigError, toError } from '../core/errors.js';
import type { Listener } from '../core/events.js';
import type { NodeInfo } from '../core/node-info.js';
import type { Holder, SessionRecord, Store } from '../stores/contract.js';
import { ChangeHints } from '../cluster/change-hints.js';
import { assertKnownOptions, assertSignal } from '../cluster/claims.js';
import type { Lease } from '../cluster/lease.js';
import type { SchedulerEvents } from './events.js';
import { concernsTaskOwners, TASK_OWNER_PREFIX, unitOfOwnerKey } from './keys.js';

export type ElectionRole = 'leader' | 'follower';

/** The node owning a task. */
export interface OwnerInfo {
  readonly node: string;
  readonly host: string;
  readonly pid: number;
}

export interface ElectionEvent {
  readonly task: string;
  /** This node's role for the task from now on. */
  readonly role: ElectionRole;
  /** This node's role before this event; null for the first event of a task in this stream. */
  readonly previousRole: ElectionRole | null;
  /** The owner: this node when leader; another node, or null while nobody owns the task, when follower. */
  readonly owner: OwnerInfo | null;
  /** The owner's fencing token; null when there is no owner. */
  readonly token: bigint | null;
  /** Leader events only: aborts when this node stops leading the task. */
  readonly signal?: AbortSignal;
}

export interface ElectionsOptions {
  /** One task (declared here or not); default: every task this node declares. */
  readonly task?: string;
  /** Ends the stream (quietly) when it aborts. */
  readonly signal?: AbortSignal;
}

/** What the election stream needs of the node: its session, store, clock, and the scheduler's ownership. */
export interface ElectionDeps {
  readonly store: Store;
  readonly clock: Clock;
  /** This node as the store shows it. */
  readonly node: () => NodeInfo;
  /** Longest pause between two looks at the store without a hint (the cluster's scanEvery). */
  readonly pollMs: number;
  /** A failed look at the store (reported; the stream goes on and looks again after a back-off). */
  readonly onError: (error: Error) => void;
  /** Aborts when the node begins to close: the stream ends. */
  readonly closed: AbortSignal;
  /** Throws BatonError INVALID_STATE unless the node is running. */
  readonly assertRunning: (what: string) => void;
  /** The tasks this node declares. */
  readonly tasks: () => readonly string[];
  /** Subscribes to the node's ownership events; returns the unsubscribe function. */
  readonly on: <K extends OwnershipEvent>(event: K, listener: Listener<SchedulerEvents[K]>) => () => void;
  /** The lease this node holds for `task`, if any. */
  readonly leaseOf: (task: string) => Lease | undefined;
}

type OwnershipEvent = 'owner:acquired' | 'owner:lost' | 'owner:released';

/** First pause after a failed read of the owners; it doubles up to pollMs. */
const ELECTIONS_RETRY_MS = 100;

interface Emitted {
  readonly role: ElectionRole;
  readonly node: string | null;
  readonly token: bigint | null;
}

/** Resolves the options and returns the stream; nothing is subscribed until the first `next()`. */
export function electionEvents(deps: ElectionDeps, options: ElectionsOptions = {}): AsyncIterableIterator<ElectionEvent> {
  assertKnownOptions('elections', options, ['task', 'signal']);
  assertSignal('elections', options.signal);
  if (options.task !== undefined && (typeof options.task !== 'string' || options.task === '')) {
    throw new ConfigError(`elections: task must be a task name, got ${JSON.stringify(options.task)}`);
  }
  deps.assertRunning('elections');
  const tasks = options.task !== undefined ? [options.task] : [...deps.tasks()];
  return stream(deps, tasks, options.signal);
}

async function* stream(deps: ElectionDeps, tasks: readonly string[], signal: AbortSignal | undefined): AsyncGenerator<ElectionEvent> {
  const { store, clock, pollMs, closed } = deps;
  const wanted = new Set(tasks);
  const me = deps.node();
  const finished = new AbortController();
  const stop = AbortSignal.any([closed, finished.signal, ...(signal ? [signal] : [])]);
  const queue: ElectionEvent[] = [];
  const emitted = new Map<string, Emitted>();
  /** Bumped on every local ownership change of a task: a store read begun before it is stale for it. */
  const epochs = new Map<string, number>();
  let wake: (() => void) | undefined;

  const push = (task: string, next: Emitted, owner: OwnerInfo | null, leaseSignal?: AbortSignal) => {
    const previous = emitted.get(task);
    if (previous && previous.role === next.role && previous.node === next.node && previous.token === next.token) return;
    emitted.set(task, next);
    queue.push({
      task,
      role: next.role,
      previousRole: previous?.role ?? null,
      owner,
      token: next.token,
      ...(leaseSignal ? { signal: leaseSignal } : {}),
    });
    wake?.();
  };
  const bump = (task: string) => epochs.set(task, (epochs.get(task) ?? 0) + 1);
  const self: OwnerInfo = { node: me.id, host: me.host, pid: me.pid };
  const lead = (task: string, lease: Lease) => push(task, { role: 'leader', node: me.id, token: lease.token }, self, lease.signal);

  // Subscribe before the first store read (ordering hazard: a change between the two must not be missed).
  const hints = new ChangeHints(store, clock, concernsTaskOwners);
  const unsubscribe = [
    deps.on('owner:acquired', (e) => {
      // Elections are about tasks with one unit (names.ts): there the unit's name is the task's.
      const task = e.unit as string;
      if (!wanted.has(task)) return;
      bump(task);
      const lease = deps.leaseOf(task);
      if (lease && lease.token === e.token) lead(task, lease);
      else push(task, { role: 'leader', node: me.id, token: e.token }, self);
    }),
    ...(['owner:lost', 'owner:released'] as const).map((event) =>
      deps.on(event, (e) => {
        const task = e.unit as string;
        if (!wanted.has(task)) return;
        bump(task);
        const previous = emitted.get(task);
        // Only a node that announced leading this token hears that it stopped.
        if (previous?.role !== 'leader' || previous.token !== e.token) return;
        push(task, { role: 'follower', node: null, token: null }, null);
        hints.poke(); // learn the new owner
      }),
    ),
  ];
  for (const task of tasks) {
    const lease = deps.leaseOf(task);
    if (lease?.isHeld()) lead(task, lease);
  }

  /** False when the store failed the read (reported): the loop then waits for its back-off. */
  const refresh = async (): Promise<boolean> => {
    const started = new Map(epochs);
    let sessions: SessionRecord[];
    let holders: Holder[];
    try {
      [sessions, holders] = await Promise.all([store.listSessions(), store.listHolders(TASK_OWNER_PREFIX)]);
    } catch (error) {
      deps.onError(toError(error));
      return false;
    }
    const infoBySession = new Map(sessions.map((s) => [s.id, s.info]));
    const holderByUnit = new Map<string, Holder>(holders.map((h) => [unitOfOwnerKey(h.key), h]));
    for (const task of tasks) {
      if ((epochs.get(task) ?? 0) !== (started.get(task) ?? 0)) continue; // changed locally during the read
      if (emitted.get(task)?.role === 'leader') continue; // leadership is decided by our own lease
      const holder = holderByUnit.get(task);
      const info: NodeInfo | undefined = holder ? infoBySession.get(holder.sessionId) : undefined;
      // Our own key without our lease is a leftover of a lost session: nobody leads through it.
      if (!holder || !info || info.id === me.id) push(task, { role: 'follower', node: null, token: null }, null);
      else push(task, { role: 'follower', node: info.id, token: holder.token }, { node: info.id, host: info.host, pid: info.pid });
    }
    return true;
  };

  // After a failed read, hints do not wake the loop until the back-off has passed: a store that fails
  // fast while changes keep being announced (a reconnecting connection says `any` each time) is not
  // read once per hint.
  const backoff = new Backoff({ initialMs: Math.min(ELECTIONS_RETRY_MS, pollMs), maxMs: pollMs });
  const watcher = (async () => {
    while (!stop.aborted) {
      const ok = await refresh();
      if (stop.aborted) break;
      if (ok) {
        backoff.reset();
        await hints.next(pollMs, stop);
      } else {
        await sleep(clock, backoff.next(), stop).catch(() => undefined);
      }
    }
  })();

  try {
    for (;;) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (stop.aborted) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          stop.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        };
        wake = done;
        stop.addEventListener('abort', done, { once: true });
      });
      if (signal?.aborted || closed.aborted) return;
    }
  } finally {
    finished.abort();
    for (const off of unsubscribe) off();
    hints.close();
    await watcher;
  }
}
