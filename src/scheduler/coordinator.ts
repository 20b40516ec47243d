/**
 * Decides, for this node, which of its declared tasks to try to own and which to hand over. It reads the
 * whole picture in two queries (live sessions and task owners) whatever the number of tasks, when the
 * store hints at a change, and at least every `scanEveryMs`.
 *
 * Placement is a preference, never a vote: the store's atomic acquisition decides who owns a task.
 * - A free task is taken at once by its preferred node (see placement.ts); any other node that declares
 *   it takes it when it stayed free for `claimDelayMs` (the preferred node may be stuck).
 * - An owner hands a task to its preferred node only when that node has been alive for `rebalanceAfterMs`
 *   and the task is between runs: joins move tasks gracefully, and a flapping node does not pull tasks.
 * - An owner that is not the preferred node otherwise keeps its tasks: no re-election while it lives.
 */
import type { Clock } from '../core/clock.js';
import { ClosedError, NotOwnerError, SessionExpiredError, toError } from '../core/errors.js';
import { tryAcquireLease } from '../cluster/lease.js';
import type { SessionKeeper } from '../cluster/session-keeper.js';
import type { Holder, SessionRecord, Store } from '../stores/contract.js';
import type { Emit } from './events.js';
import { ownerKey, TASK_OWNER_PREFIX } from './keys.js';
import { assignTasks } from './placement.js';
import type { TaskRunner } from './task-runner.js';

export interface CoordinatorTiming {
  readonly scanEveryMs: number;
  readonly claimDelayMs: number;
  readonly rebalanceAfterMs: number;
}

type CoordinatorState = 'new' | 'running' | 'closed';

const MAX_PARALLEL_ACQUISITIONS = 16;

export class Coordinator {
  readonly #store: Store;
  readonly #keeper: SessionKeeper;
  readonly #runners: ReadonlyMap<string, TaskRunner>;
  readonly #clock: Clock;
  readonly #emit: Emit;
  readonly #timing: CoordinatorTiming;
  readonly #nodeId: string;
  /** Local monotonic time each task was first seen without owner. */
  readonly #freeSince = new Map<string, number>();
  #state: CoordinatorState = 'new';
  #scan: Promise<void> | undefined;
  #again = false;
  #cancelTimer: (() => void) | undefined;
  #unwatch: (() => void) | undefined;
  #unsession: (() => void) | undefined;
  #assignmentKey = '';
  #assignment = new Map<string, string>();

  constructor(options: {
    store: Store;
    keeper: SessionKeeper;
    runners: ReadonlyMap<string, TaskRunner>;
    clock: Clock;
    emit: Emit;
    timing: CoordinatorTiming;
    nodeId: string;
  }) {
    this.#nodeId = options.nodeId;
    this.#store = options.store;
    this.#keeper = options.keeper;
    this.#runners = options.runners;
    this.#clock = options.clock;
    this.#emit = options.emit;
    this.#timing = options.timing;
  }

  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    this.#unwatch = this.#store.watch((change) => {
      if (change.scope !== 'records') this.requestScan();
    });
    this.#unsession = this.#keeper.onSession(() => this.requestScan());
    this.requestScan();
  }

  /** Asks for a scan soon; scans never overlap, and requests during one are merged into one more. */
  requestScan(): void {
    if (this.#state !== 'running') return;
    if (this.#scan) {
      this.#again = true;
      return;
    }
    this.#cancelTimer?.();
    this.#scan = this.#scanOnce()
      .catch((error: unknown) => this.#emit('error', { where: 'placement scan', error: toError(error) }))
      .finally(() => {
        this.#scan = undefined;
        if (this.#state !== 'running') return;
        if (this.#again) {
          this.#again = false;
          this.requestScan();
        } else {
          this.#cancelTimer = this.#clock.setTimer(this.#nextScanDelay(), () => this.requestScan());
        }
      });
  }

  /** Stops scanning; leases are left to their runners. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#unwatch?.();
    this.#unsession?.();
    this.#cancelTimer?.();
    await this.#scan;
  }

  #nextScanDelay(): number {
    const now = this.#clock.monotonic();
    let delay = this.#timing.scanEveryMs;
    for (const since of this.#freeSince.values()) delay = Math.min(delay, Math.max(0, since + this.#timing.claimDelayMs - now));
    return delay;
  }

  async #scanOnce(): Promise<void> {
    const session = this.#keeper.current;
    if (!session) return;
    const [sessions, holders] = await Promise.all([this.#store.listSessions(), this.#store.listHolders(TASK_OWNER_PREFIX)]);
    if (this.#state !== 'running') return;
    const byKey = new Map(holders.map((h) => [h.key, h]));
    const assignment = this.#preferred(sessions);
    const me = this.#nodeId;
    const now = this.#clock.monotonic();
    const toAcquire: TaskRunner[] = [];
    for (const runner of this.#runners.values()) {
      const task = runner.def.name;
      const holder = byKey.get(ownerKey(task));
      const preferred = assignment.get(task);
      if (runner.lease) {
        this.#freeSince.delete(task);
        this.#checkHeld(runner, holder, preferred, sessions, me);
      } else if (holder?.sessionId === session.id) {
        // Still ours in the store although its runner stopped (e.g. a store error while starting it):
        // re-acquiring returns the same token, so pick it up again at once.
        toAcquire.push(runner);
      } else if (holder) {
        this.#freeSince.delete(task);
      } else {
        const since = this.#freeSince.get(task) ?? now;
        this.#freeSince.set(task, since);
        if (preferred === me || now - since >= this.#timing.claimDelayMs) toAcquire.push(runner);
      }
    }
    // Bounded: a node starting with 1,000 free tasks must not open 1,000 store requests at once.
    for (let i = 0; i < toAcquire.length; i += MAX_PARALLEL_ACQUISITIONS) {
      await Promise.all(toAcquire.slice(i, i + MAX_PARALLEL_ACQUISITIONS).map((runner) => this.#acquire(runner)));
    }
  }

  #checkHeld(runner: TaskRunner, holder: Holder | undefined, preferred: string | undefined, sessions: SessionRecord[], me: string): void {
    const lease = runner.lease;
    if (!lease) return;
    if (!holder || holder.token !== lease.token) {
      // Only trust a missing holder while our session is provably alive: then the store really moved on.
      if (lease.session.isLive()) lease.end(new NotOwnerError(`task "${runner.def.name}": the store shows another holder`));
      return;
    }
    if (preferred === undefined || preferred === me) return;
    // A node restarted under the same id may still show its old session: judge by the youngest.
    const ages = sessions.filter((s) => s.info.id === preferred).map((s) => s.ageMs);
    if (ages.length > 0 && Math.min(...ages) >= this.#timing.rebalanceAfterMs) runner.requestHandover();
  }

  async #acquire(runner: TaskRunner): Promise<void> {
    const session = this.#keeper.current;
    if (!session) return;
    try {
      const outcome = await tryAcquireLease(this.#store, session, ownerKey(runner.def.name));
      if ('lease' in outcome) {
        this.#freeSince.delete(runner.def.name);
        if (this.#state === 'running') runner.own(outcome.lease);
        else await outcome.lease.release(new ClosedError('coordinator closed'));
      }
    } catch (error) {
      if (!(error instanceof SessionExpiredError)) {
        this.#emit('error', { where: `acquire task "${runner.def.name}"`, error: toError(error) });
      }
    }
  }

  /** Preferred owner per task, recomputed only when membership or declarations change. */
  #preferred(sessions: SessionRecord[]): Map<string, string> {
    // Every node must compute the same answer, so it depends on all declarations, not only ours.
    const key = sessions.map((s) => `${s.info.id}:${Object.keys(s.info.tasks).join('|')}`).join(',');
    if (key === this.#assignmentKey) return this.#assignment;
    const candidates = new Map<string, string[]>();
    for (const s of sessions) {
      for (const task of Object.keys(s.info.tasks)) {
        let list = candidates.get(task);
        if (!list) candidates.set(task, (list = []));
        list.push(s.info.id);
      }
    }
    this.#assignmentKey = key;
    this.#assignment = assignTasks(candidates);
    return this.#assignment;
  }
}
