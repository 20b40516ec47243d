/**
 * Runs one task on this node while this node owns it. The loop, per lease:
 *   read the last tick recorded for the task → look at pause and pending triggers → plan the due ticks
 *   (misfire/overlap policies, misfire.ts) → for each tick to run: wait for its dependencies and a
 *   concurrency slot → claim it in the store (a unique, fenced insert: invariant 3) → run its attempts
 *   (run-attempts.ts) → record the outcome.
 *
 * Guarantees: a tick runs at most once cluster-wide (the claim is unique per tick and guarded by the
 * lease's token, so a zombie ex-owner's claim is refused); a manual trigger too (its claim is unique per
 * trigger id). Runs of one task overlap only with overlap `allow`, and then only on the owner node;
 * across nodes only if a handler ignores its aborted signal after its lease ended. Every tick that falls
 * due while some node owns the task is run or recorded as missed, with a reason.
 */
import { sleep, type Clock } from '../core/clock.js';
import { ClosedError, NotOwnerError, SessionExpiredError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo } from '../core/node-info.js';
import { checkedByLease, type Lease } from '../cluster/lease.js';
import type { Store } from '../stores/contract.js';
import { isPaused, pendingTriggers } from './controls.js';
import type { Emit, MissReason, UnitRef } from './events.js';
import type { ControlWatch } from './control-watch.js';
import type { Waker } from './hints.js';
import { canClaimAhead, ClaimLead } from './claim-ahead.js';
import { dueTicks, jitterFor, planTicks, splitAtTakeover } from './misfire.js';
import { pruneHistory, readHistory, recordMissed, recordPaused, STORE_RETRY_MS, withStoreRetry, type PausedRange, type RecordsScope } from './run-records.js';
import { runJob, type RunScope, type TickJob } from './run-tick.js';
import type { AcquireHook, TaskDefinition } from './task.js';
import type { TaskUnit } from './modes.js';
import type { UnitName } from './names.js';

export interface RunnerDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly node: NodeInfo;
  readonly emit: Emit;
  readonly log: Logger;
  /**
   * A lease of `unit` ended, whatever the reason, so placement can look again; `released`: this node
   * freed the key in the store (else it may still show as ours).
   */
  readonly onLeaseEnded: (unit: UnitName, token: bigint, released: boolean) => void;
  /** Concurrency slot keys held by runs of this node (shared by every runner of the node). */
  readonly localSlots: Set<string>;
  /** The node's watcher of triggers and pauses: it wakes this runner when its controls change. */
  readonly controls: ControlWatch;
  /**
   * How far a sample of the store's time moved `clock.now()` forward since monotonic instant `since`
   * (0 if not): ticks that fell due at once after such a correction are recorded `owner-skewed`.
   */
  readonly clockForwardSince?: (since: number) => number;
}

/**
 * Longest idle wait: past it the loop looks at its schedule again (no store call), so a wall clock that
 * jumped forward is noticed within a minute.
 */
const MAX_IDLE_MS = 60_000;

export class TaskRunner {
  readonly def: TaskDefinition;
  readonly unit: TaskUnit;
  readonly #deps: RunnerDeps;
  // Created when first needed: a node declares every task but owns about T/N of them, and a runner it
  // does not own must cost next to nothing (100 nodes × 10,000 tasks in one process are a million runners).
  #stop: AbortController | undefined;
  #active: Set<Promise<void>> | undefined;
  #triggersInFlight: Set<string> | undefined;
  #lease: Lease | undefined;
  #heldAtShutdown: Lease | undefined;
  #loop: Promise<void> | undefined;
  #controls: Waker | undefined;
  #handoverRequested = false;
  #finishedRuns = 0;
  /** Created when the runner first leads: a runner a node does not own costs nothing here. */
  #claimLead: ClaimLead | undefined;

  constructor(def: TaskDefinition, unit: TaskUnit, deps: RunnerDeps) {
    this.def = def;
    this.unit = unit;
    this.#deps = deps;
  }

  /** The task and unit names every event of this runner carries. */
  get #ref(): UnitRef {
    return { task: this.unit.task, unit: this.unit.name };
  }

  get lease(): Lease | undefined {
    return this.#lease;
  }

  /** A run (waiting for a dependency or slot, or executing) is in progress right now. */
  get busy(): boolean {
    return (this.#active?.size ?? 0) > 0;
  }

  /**
   * Starts leading the task under `lease`. `heldUntil`: the store time up to which this node saw another
   * node hold the unit before acquiring it, if it saw one; ticks missed up to then are recorded
   * `owner-stalled`, later ones `no-owner`.
   */
  own(lease: Lease, heldUntil?: number): void {
    if (this.#lease || this.#stop?.signal.aborted) {
      void lease.release(new ClosedError(`task "${this.unit.name}": not accepting a lease`)).catch(() => undefined);
      return;
    }
    this.#lease = lease;
    this.#handoverRequested = false;
    this.#deps.emit('owner:acquired', { ...this.#ref, token: lease.token });
    this.#loop = this.#leadLoop(lease, heldUntil);
  }

  /** Hands the task to another node: at once when idle, else right after the current run(s). */
  requestHandover(): void {
    this.#handoverRequested = true;
    if (!this.busy) this.#lease?.end(new HandoverSignal());
  }

  /**
   * Stops leading: aborts running handlers and waits for them. Returns the lease still held then, ended
   * locally but NOT released: the caller closes the session, which frees every key of the node in one
   * store operation and one notification (faster for the standbys than one release per task).
   */
  async stop(reason: Error = new ClosedError(`task "${this.unit.name}": node is shutting down`)): Promise<Lease | undefined> {
    (this.#stop ??= new AbortController()).abort(reason);
    const loop = this.#loop;
    if (!loop) return undefined;
    let warned = false;
    const cancelWarning = this.#deps.clock.setTimer(5000, () => {
      warned = true;
      this.#deps.log.warn({ task: this.unit.name }, 'close() waits for a handler that does not honour ctx.signal');
    });
    await loop;
    cancelWarning();
    if (warned) this.#deps.log.warn({ task: this.unit.name }, 'handler finished; close() continues');
    const held = this.#heldAtShutdown;
    this.#heldAtShutdown = undefined;
    return held;
  }

  async #leadLoop(lease: Lease, heldUntil: number | undefined): Promise<void> {
    const { clock, emit } = this.#deps;
    const { schedule } = this.def;
    const name = this.unit.name;
    const stop = AbortSignal.any([lease.signal, this.#stopSignal]);
    const { waker: controls, unsubscribe } = this.#deps.controls.subscribe(name, this.def.name);
    this.#controls = controls;
    const scope: RecordsScope = this.#scope(lease, stop);
    let releaseReason: ReleaseReason | undefined;
    try {
      // Before anything runs under the new token: the user's resource learns it first (invariant 4).
      if (this.def.onAcquire) await this.#onAcquire(this.def.onAcquire, lease, stop);
      // A turn unit starts after its newest tick gone by: the turns before were other nodes' to run.
      const history = await readHistory(scope, schedule, this.#turns ? (schedule.latest(clock.now()) ?? clock.now()) - 1 : undefined);
      const state: LeadState = { cursor: history.cursor, paused: history.paused, reason: 'no-owner', takeover: { runEndedAt: history.runEndedAt, heldUntil }, controlsChanged: true };
      while (!stop.aborted) {
        const step = await this.#step(state, lease, scope, stop);
        if (step.kind === 'release') {
          releaseReason = step.reason;
          return;
        }
        if (step.kind === 'idle') {
          const idleFrom = clock.monotonic();
          const nextStart = this.#nextStart(state.cursor);
          state.controlsChanged = await this.#idle(controls, nextStart === undefined ? undefined : nextStart - this.#lead.ms, stop);
          // More than one tick due after a wait means the process stalled past them — or this node's
          // estimate of the store's clock was behind, and a sample moved it forward past them.
          state.reason = (this.#deps.clockForwardSince?.(idleFrom) ?? 0) > 0 ? 'owner-skewed' : 'stalled';
        } else {
          state.reason = 'overlap';
        }
        state.takeover = undefined;
      }
    } catch (error) {
      if (!stop.aborted) {
        // Ownership itself was not lost (that aborts `stop`): a store error, or onAcquire failed — even
        // with NotOwnerError from the user's own resource. The key stays ours in the store and is picked
        // up again after this pause, not in a hot loop.
        const cause = toError(error);
        lease.end(cause);
        emit('error', { where: `task "${name}"`, error: cause });
        await sleep(clock, STORE_RETRY_MS * 5, this.#stopSignal).catch(() => undefined);
      }
    } finally {
      unsubscribe();
      this.#controls = undefined;
      // Runs started with overlap "allow" end (their signals aborted unless this is a hand-over) first.
      await Promise.allSettled([...(this.#active ?? [])]);
      if (this.#stopSignal.aborted) releaseReason = 'shutdown';
      if (lease.signal.reason instanceof HandoverSignal) releaseReason = 'rebalance';
      await this.#endLease(lease, releaseReason);
    }
  }

  /**
   * One decision of the lease's loop and the work it calls for. Controls are read when the lease starts,
   * when the node's ControlWatch says they changed, and (pause) before each tick: an idle task costs the
   * store nothing. Every way to a wait or a release between ticks goes through {@link #rest}.
   */
  async #step(state: LeadState, lease: Lease, scope: RecordsScope, stop: AbortSignal): Promise<Step> {
    const { clock, store } = this.#deps;
    const { schedule, policy } = this.def;
    if (this.#handoverRequested && !this.busy) return { kind: 'release', reason: 'rebalance' };
    // Ticks starting within the lead count as due now: they are read for pause and claimed ahead, and
    // their handlers wait for their start (claim-ahead.ts).
    const leadMs = this.#lead.ms;
    const horizon = () => clock.now() + leadMs;
    const jitter = (tick: number) => this.#jitterOf(tick);
    if (!state.controlsChanged && !state.paused && !dueTicks(schedule, state.cursor, horizon(), jitter)) return this.#rest();
    // Pause is read before each tick: ticks due meanwhile go into one growing `missed` record.
    // A failed read is retried under the lease (like the claim): the owner's session is alive, and
    // ending the lease here made an owner drop and re-take its task, ticks missed, whenever one read
    // fell into the store's own failover (an etcd election, a ZooKeeper server change; issue 22).
    if (await withStoreRetry(scope, () => isPaused(store, this.def.name))) {
      const due = dueTicks(schedule, state.cursor, horizon(), jitter);
      if (due) {
        state.paused = await recordPaused(scope, due, state.paused);
        state.cursor = due.last;
      }
      return this.#rest();
    }
    state.paused = undefined;
    if (state.controlsChanged) {
      state.controlsChanged = false;
      if (await this.#runTriggers(lease, stop)) return { kind: 'worked' };
    }
    const due = dueTicks(schedule, state.cursor, horizon(), jitter);
    if (!due) return this.#rest();
    // The grace is measured from now: a tick claimed ahead is on time.
    const plan = planTicks({ schedule, due, now: clock.now(), policy, cause: state.reason, jitter });
    if (plan.missed) {
      const ranges = state.takeover ? splitAtTakeover(schedule, plan.missed, state.takeover) : [{ ...plan.missed, reason: state.reason }];
      for (const r of ranges) await recordMissed(scope, r.from, r.to, r.count, r.reason);
    }
    state.cursor = due.last;
    const slotDeadline = this.#nextStart(due.last);
    for (const tick of plan.runs) {
      if (stop.aborted) break;
      const jitterMs = this.#jitterOf(tick);
      const startAt = tick + jitterMs;
      // Only a tick prepared about when planned teaches the lead: one long overdue (after a takeover, a
      // stall) says nothing about the store's round trip and would stretch the lead to its maximum.
      const ahead = leadMs > 0 && startAt >= clock.now() - leadMs ? { startAt, onClaimed: (claimedAt: number) => this.#lead.observe(leadMs, startAt, claimedAt) } : undefined;
      await this.#start({ tick, jitterMs, slotDeadline, ...(ahead ? { ahead } : {}) }, lease, stop);
    }
    return { kind: 'worked' };
  }

  /** Runs the task's onAcquire hook for `lease`, with a signal that ends with the lease or the node. */
  async #onAcquire(hook: AcquireHook, lease: Lease, stop: AbortSignal): Promise<void> {
    const { node, log } = this.#deps;
    await hook({
      task: this.def.name,
      unit: this.unit.name,
      ...(this.unit.shard ? { shard: this.unit.shard } : {}),
      token: lease.token,
      node,
      // Its own signal: the accessors checkedByLease installs must not change the loop's `stop`.
      signal: checkedByLease(AbortSignal.any([stop]), lease),
      log: log.child({ task: this.unit.name, hook: 'onAcquire' }),
      assertOwner: () => lease.assertHeld(),
    });
  }

  /** Nothing to do now: a turn unit (mutex, round-robin) gives the task back between ticks; any other waits. */
  #rest(): Step {
    return this.#turns && !this.busy ? { kind: 'release', reason: 'turn' } : { kind: 'idle' };
  }

  /** Units placed by turns hold the task only while something is due. */
  get #turns(): boolean {
    return this.unit.placement === 'turns';
  }

  /** How long before a tick this runner prepares it (claim-ahead.ts). */
  get #lead(): ClaimLead {
    return (this.#claimLead ??= new ClaimLead(canClaimAhead(this.def, this.unit), this.def.schedule.intervalMs));
  }

  /** The jitter of `tick` for this unit (a method, not a closure per runner). */
  #jitterOf(tick: number): number {
    return jitterFor(this.unit.name, tick, this.def.policy.jitterMs);
  }

  /** Aborts when the runner stops; created on first use. */
  get #stopSignal(): AbortSignal {
    return (this.#stop ??= new AbortController()).signal;
  }

  /** The start (tick + jitter) of the first tick after `cursor`, or undefined when there is none. */
  #nextStart(cursor: number): number | undefined {
    const next = this.def.schedule.next(cursor);
    return next === undefined ? undefined : next + this.#jitterOf(next);
  }

  /** Waits for the wall time `until` (at most MAX_IDLE_MS) or a wake; true when woken. */
  async #idle(controls: Waker, until: number | undefined, stop: AbortSignal): Promise<boolean> {
    const ms = until === undefined ? MAX_IDLE_MS : Math.min(MAX_IDLE_MS, until - this.#deps.clock.now());
    return controls.wait(ms, stop);
  }

  async #endLease(lease: Lease, releaseReason: ReleaseReason | undefined): Promise<void> {
    const { emit } = this.#deps;
    let released = false;
    if (releaseReason === 'shutdown' && lease.session.isLive()) {
      lease.end(new ClosedError(`task "${this.unit.name}": node is shutting down`));
      this.#heldAtShutdown = lease; // released with the session by close(), see stop()
    } else if (releaseReason && lease.session.isLive()) {
      try {
        await lease.release(new ClosedError(`task "${this.unit.name}": released (${releaseReason})`));
        released = true;
        emit('owner:released', { ...this.#ref, token: lease.token, reason: releaseReason });
      } catch (error) {
        emit('error', { where: `task "${this.unit.name}": release`, error: toError(error) });
      }
    } else {
      lease.end(new NotOwnerError(`task "${this.unit.name}": lease ended`));
      emit('owner:lost', { ...this.#ref, token: lease.token, reason: toError(lease.signal.reason).message });
    }
    this.#lease = undefined;
    this.#loop = undefined;
    this.#deps.onLeaseEnded(this.unit.name, lease.token, released);
  }

  /** Runs pending triggers, oldest first. Returns whether any was found. */
  async #runTriggers(lease: Lease, stop: AbortSignal): Promise<boolean> {
    const triggers = (await pendingTriggers(this.#deps.store, this.unit.name)).filter((t) => !this.#triggersInFlight?.has(t.id));
    for (const trigger of triggers) {
      if (stop.aborted) break;
      await this.#start({ tick: trigger.requestedAt, jitterMs: 0, trigger, slotDeadline: undefined }, lease, stop);
    }
    return triggers.length > 0;
  }

  /**
   * Starts a run: waits for it (overlap `skip`, `queue`), or lets it go on in the background (`allow`,
   * up to `overlapLimit` at once; beyond it, a tick is recorded missed and a trigger stays pending).
   */
  async #start(job: TickJob, lease: Lease, stop: AbortSignal): Promise<void> {
    const { policy } = this.def;
    const active = (this.#active ??= new Set());
    if (policy.overlap === 'allow' && active.size >= policy.overlapLimit) {
      if (!job.trigger) await recordMissed(this.#scope(lease, stop), job.tick, job.tick, 1, 'overlap');
      return;
    }
    const inFlight = (this.#triggersInFlight ??= new Set());
    if (job.trigger) inFlight.add(job.trigger.id);
    const run = runJob(this.#scope(lease, stop), job).finally(() => {
      active.delete(run);
      if (job.trigger) inFlight.delete(job.trigger.id);
      this.#controls?.wake(); // the loop may be waiting to hand over, or for room under overlapLimit
    });
    active.add(run);
    if (policy.overlap !== 'allow') return run;
    run.catch((error: unknown) => {
      if (stop.aborted) return;
      const cause = toError(error);
      if (!(cause instanceof NotOwnerError || cause instanceof SessionExpiredError)) {
        this.#deps.emit('error', { where: `task "${this.unit.name}"`, error: cause });
      }
      lease.end(cause);
    });
  }

  /** What runs and record writes under `lease` need. */
  #scope(lease: Lease, stop: AbortSignal): RunScope {
    const { store, clock, emit, node, log, localSlots } = this.#deps;
    return {
      def: this.def,
      unit: this.unit,
      store,
      clock,
      emit,
      node,
      log,
      localSlots,
      lease,
      stop,
      onRecorded: () => this.#prune(),
    };
  }

  /** History retention: every quarter of `history` finished runs. */
  async #prune(): Promise<void> {
    this.#finishedRuns += 1;
    if (this.#finishedRuns % Math.max(1, Math.floor(this.def.history / 4)) !== 0) return;
    await pruneHistory(this.#deps.store, this.#deps.emit, this.unit.name, this.def.history);
  }
}

type ReleaseReason = 'shutdown' | 'rebalance' | 'turn';

/** What the lease's loop does after a step: give the unit back, wait, or look again at once. */
type Step = { readonly kind: 'release'; readonly reason: ReleaseReason } | { readonly kind: 'idle' } | { readonly kind: 'worked' };

/** The memory of a lease's loop between two steps. */
interface LeadState {
  /** The newest tick dealt with: run, recorded missed, or passed while paused. */
  cursor: number;
  /** The single growing `missed` record while the task stays paused. */
  paused: PausedRange | undefined;
  /** Why ticks found due were not run at their time: nobody owned them (lease start), a wait overslept, a run overlapped. */
  reason: MissReason;
  /**
   * Until the first ticks are planned: what is known of the time before this lease — when the newest
   * recorded run ended, and until when another node was seen holding the unit — to give ticks missed
   * before it their reason.
   */
  takeover: { readonly runEndedAt: number | undefined; readonly heldUntil: number | undefined } | undefined;
  /** Triggers or pause may have changed since the last look (lease start, a ControlWatch wake). */
  controlsChanged: boolean;
}

/** The reason a lease ends when the task is handed to another node (rebalancing). */
class HandoverSignal extends Error {
  constructor() {
    super('handed over to the preferred node');
  }
}
