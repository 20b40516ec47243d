/**
 * Runs one task on this node while this node owns it. The loop, per lease:
 *   read the last tick recorded for the task → for each due tick: claim it in the store (a unique,
 *   fenced insert: invariant 3) → run the handler → record the outcome.
 *
 * Guarantees: a tick runs at most once cluster-wide (the claim is unique per tick and guarded by the
 * lease's token, so a zombie ex-owner's claim is refused); runs of one task never overlap on a node, and
 * across nodes only if a handler ignores its aborted signal after its lease ended. Every tick that falls
 * due while some node owns the task is run or recorded as missed. When several ticks fell due at once
 * (failover longer than the interval, a run longer than the interval, a stalled process), the most recent
 * one runs now and the earlier ones are recorded in one "missed" record with their count and reason.
 */
import { sleep, type Clock } from '../core/clock.js';
import { ClosedError, NotOwnerError, SessionExpiredError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo } from '../core/node-info.js';
import type { Lease } from '../cluster/lease.js';
import type { Store } from '../stores/contract.js';
import type { Emit, MissReason, RunOutcome } from './events.js';
import { checkpointKey, runKey, runPrefix } from './keys.js';
import { ticksBetween } from './schedule.js';
import type { RunRecord, TaskContext, TaskDefinition } from './task.js';

export interface RunnerDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly node: NodeInfo;
  readonly emit: Emit;
  readonly log: Logger;
  /** Called when a lease ends, whatever the reason, so placement can look again. */
  readonly onLeaseEnded: () => void;
}

/** Pause between attempts to claim a tick while the store is unreachable (the lease deadline bounds it). */
const CLAIM_RETRY_MS = 200;

interface StoredCheckpoint {
  readonly value: unknown;
  readonly tick: number;
  readonly token: string;
  readonly committedAt: number;
}

export class TaskRunner {
  readonly def: TaskDefinition;
  readonly #deps: RunnerDeps;
  readonly #stop = new AbortController();
  #lease: Lease | undefined;
  #loop: Promise<void> | undefined;
  #running = false;
  #handoverRequested = false;
  #finishedRuns = 0;

  constructor(def: TaskDefinition, deps: RunnerDeps) {
    this.def = def;
    this.#deps = deps;
  }

  get lease(): Lease | undefined {
    return this.#lease;
  }

  /** A handler is executing right now. */
  get busy(): boolean {
    return this.#running;
  }

  /** Starts leading the task under `lease`. */
  own(lease: Lease): void {
    if (this.#lease || this.#stop.signal.aborted) {
      void lease.release(new ClosedError(`task "${this.def.name}": not accepting a lease`)).catch(() => undefined);
      return;
    }
    this.#lease = lease;
    this.#handoverRequested = false;
    this.#deps.emit('owner:acquired', { task: this.def.name, token: lease.token });
    this.#loop = this.#lead(lease);
  }

  /** Hands the task to another node: at once when idle, else right after the current run. */
  requestHandover(): void {
    this.#handoverRequested = true;
    if (!this.#running) this.#lease?.end(new HandoverSignal());
  }

  /** Stops leading: aborts a running handler, waits for it, then releases the key in the store. */
  async stop(): Promise<void> {
    this.#stop.abort(new ClosedError(`task "${this.def.name}": node is shutting down`));
    const loop = this.#loop;
    if (!loop) return;
    let warned = false;
    const cancelWarning = this.#deps.clock.setTimer(5000, () => {
      warned = true;
      this.#deps.log.warn({ task: this.def.name }, 'close() waits for a handler that does not honour ctx.signal');
    });
    await loop;
    cancelWarning();
    if (warned) this.#deps.log.warn({ task: this.def.name }, 'handler finished; close() continues');
  }

  async #lead(lease: Lease): Promise<void> {
    const { clock, emit } = this.#deps;
    const stop = AbortSignal.any([lease.signal, this.#stop.signal]);
    let releaseReason: 'shutdown' | 'rebalance' | undefined;
    try {
      let cursor = await this.#lastRecordedTick(lease);
      let reason: MissReason = 'no-owner';
      while (!stop.aborted) {
        const due = ticksBetween(this.def.schedule, cursor, clock.now());
        if (!due) {
          const next = this.def.schedule.next(cursor);
          if (next === undefined) return; // the schedule has no more ticks
          await sleep(clock, Math.max(0, next - clock.now()), stop);
          // More than one tick due after a sleep means the process (or its wall clock) jumped past them.
          reason = 'stalled';
          continue;
        }
        if (due.count > 1) await this.#recordMissed(lease, due.first, due.last, due.count - 1, reason);
        cursor = due.last;
        await this.#runTick(lease, due.last, stop);
        reason = 'overlap';
        if (this.#handoverRequested && !stop.aborted) {
          releaseReason = 'rebalance';
          return;
        }
      }
    } catch (error) {
      if (!stop.aborted) {
        const cause = toError(error);
        lease.end(cause);
        if (!(cause instanceof NotOwnerError || cause instanceof SessionExpiredError)) {
          emit('error', { where: `task "${this.def.name}"`, error: cause });
          // The key stays ours in the store and is picked up again after this pause, not in a hot loop.
          await sleep(clock, CLAIM_RETRY_MS * 5, this.#stop.signal).catch(() => undefined);
        }
      }
    } finally {
      if (this.#stop.signal.aborted) releaseReason = 'shutdown';
      if (lease.signal.reason instanceof HandoverSignal) releaseReason = 'rebalance';
      await this.#endLease(lease, releaseReason);
    }
  }

  async #endLease(lease: Lease, releaseReason: 'shutdown' | 'rebalance' | undefined): Promise<void> {
    const { emit } = this.#deps;
    if (releaseReason && lease.session.isLive()) {
      try {
        await lease.release(new ClosedError(`task "${this.def.name}": released (${releaseReason})`));
        emit('owner:released', { task: this.def.name, token: lease.token, reason: releaseReason });
      } catch (error) {
        emit('error', { where: `task "${this.def.name}": release`, error: toError(error) });
      }
    } else {
      lease.end(new NotOwnerError(`task "${this.def.name}": lease ended`));
      emit('owner:lost', { task: this.def.name, token: lease.token, reason: toError(lease.signal.reason).message });
    }
    this.#lease = undefined;
    this.#loop = undefined;
    this.#deps.onLeaseEnded();
  }

  /** The tick of the newest run record, or now when the task never ran (new tasks do not catch up). */
  async #lastRecordedTick(lease: Lease): Promise<number> {
    lease.assertHeld();
    const [last] = await this.#deps.store.list<RunRecord>(runPrefix(this.def.name), { reverse: true, limit: 1 });
    if (!last) return this.#deps.clock.now();
    const run = last.value;
    if (run.status === 'running' && run.token !== undefined && BigInt(run.token) < lease.token) {
      // The previous owner died during this run: say so, instead of leaving it "running" forever.
      // The CAS on its version loses to the old owner's own end record if that one arrives first.
      const interrupted: RunRecord = {
        ...run,
        status: 'aborted',
        error: `interrupted: ${run.node ?? 'the owner'} lost the task during the run (token ${run.token}; taken over with token ${lease.token})`,
      };
      await lease.put(last.key, interrupted, { ifVersion: last.version });
    }
    return run.tick;
  }

  async #recordMissed(lease: Lease, from: number, lastDue: number, count: number, reason: MissReason): Promise<void> {
    // The record sits at the last missed tick, so that the next owner's cursor starts after it.
    const to = count === 1 ? from : (this.def.schedule.latest(lastDue - 1) ?? from);
    const record: RunRecord = { task: this.def.name, tick: to, status: 'missed', missed: { from, count, reason } };
    const result = await this.#withStoreRetry(lease, () => lease.put(runKey(this.def.name, to), record, { ifVersion: 'absent' }));
    if (result.ok) this.#deps.emit('tick:missed', { task: this.def.name, from, to, count, reason });
  }

  async #runTick(lease: Lease, tick: number, stop: AbortSignal): Promise<void> {
    const { clock, emit, node } = this.#deps;
    const key = runKey(this.def.name, tick);
    const startedAt = clock.now();
    const lateMs = Math.max(0, startedAt - tick);
    const claim: RunRecord = {
      task: this.def.name,
      tick,
      status: 'running',
      node: node.id,
      host: node.host,
      pid: node.pid,
      token: lease.token.toString(),
      startedAt,
      lateMs,
    };
    const claimed = await this.#withStoreRetry(lease, () => lease.put(key, claim, { ifVersion: 'absent' }));
    if (!claimed.ok) {
      // Already claimed: the previous owner started this tick before it lost the task.
      this.#deps.log.debug({ task: this.def.name, tick }, 'tick already claimed');
      return;
    }
    emit('run:started', { task: this.def.name, tick, lateMs, token: lease.token });
    const startedMono = clock.monotonic();
    let outcome: RunOutcome = 'succeeded';
    let failure: Error | undefined;
    // Each run gets its own signal: listeners a handler adds die with its run instead of piling up.
    const run = new AbortController();
    const abortRun = () => run.abort(stop.reason);
    // `stop` may have aborted while the claim was in flight: an abort event would never come then.
    if (stop.aborted) abortRun();
    else stop.addEventListener('abort', abortRun, { once: true });
    this.#running = true;
    try {
      await this.def.handler(this.#context(lease, tick, lateMs, run.signal) as TaskContext<never>);
    } catch (error) {
      failure = toError(error);
      outcome = stop.aborted ? 'aborted' : 'failed';
    } finally {
      this.#running = false;
      stop.removeEventListener('abort', abortRun);
    }
    const durationMs = clock.monotonic() - startedMono;
    const done: RunRecord = {
      ...claim,
      status: outcome,
      endedAt: clock.now(),
      durationMs,
      ...(failure ? { error: failure.stack ?? failure.message } : {}),
    };
    // The record is this run's own (claimed above): no one else writes it, so a version check suffices.
    const written = await this.#deps.store.put(key, done, { ifVersion: claimed.version }).catch((error: unknown) => {
      emit('error', { where: `task "${this.def.name}": run record`, error: toError(error) });
      return undefined;
    });
    emit('run:finished', { task: this.def.name, tick, outcome, durationMs, ...(failure ? { error: failure } : {}) });
    if (written?.ok) await this.#prune();
  }

  #context(lease: Lease, tick: number, lateMs: number, signal: AbortSignal): TaskContext {
    const { store, clock, node, log } = this.#deps;
    const key = checkpointKey(this.def.name);
    return {
      task: this.def.name,
      tick: new Date(tick),
      lateMs,
      token: lease.token,
      node,
      signal,
      log: log.child({ task: this.def.name, tick }),
      checkpoint: {
        get: async () => (await store.get<StoredCheckpoint>(key))?.value.value as never,
        commit: async (value: unknown) => {
          const stored: StoredCheckpoint = { value, tick, token: lease.token.toString(), committedAt: clock.now() };
          await lease.put(key, stored);
        },
      },
    };
  }

  /** Keeps the newest `history` run records; runs every quarter of that many runs. */
  async #prune(): Promise<void> {
    this.#finishedRuns += 1;
    if (this.#finishedRuns % Math.max(1, Math.floor(this.def.history / 4)) !== 0) return;
    const prefix = runPrefix(this.def.name);
    try {
      const newest = await this.#deps.store.list(prefix, { reverse: true, limit: this.def.history + 1 });
      const oldestKept = newest[this.def.history - 1];
      if (newest.length > this.def.history && oldestKept) await this.#deps.store.deleteBefore(prefix, oldestKept.key);
    } catch (error) {
      this.#deps.emit('error', { where: `task "${this.def.name}": history retention`, error: toError(error) });
    }
  }

  /**
   * Retries a store call while the store is unreachable, the lease still holds and the node is not
   * shutting down (close() must not wait for the lease deadline, nor start a run once the store is back).
   */
  async #withStoreRetry<T>(lease: Lease, call: () => Promise<T>): Promise<T> {
    const stop = AbortSignal.any([lease.signal, this.#stop.signal]);
    for (;;) {
      try {
        return await call();
      } catch (error) {
        if (error instanceof NotOwnerError || error instanceof SessionExpiredError || stop.aborted) throw error;
        this.#deps.emit('error', { where: `task "${this.def.name}"`, error: toError(error) });
        await sleep(this.#deps.clock, CLAIM_RETRY_MS, stop);
      }
    }
  }
}

/** The reason a lease ends when the task is handed to another node (rebalancing). */
class HandoverSignal extends Error {
  constructor() {
    super('handed over to the preferred node');
  }
}
