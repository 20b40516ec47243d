/**
 * One run, from the decision to run a tick (or a trigger) to its final record:
 *   dependencies (dependencies.ts) → a concurrency slot (slots.ts) → the claim (a unique insert guarded
 *   by the lease: invariant 3) → the attempts (run-attempts.ts) → the final record.
 * Waiting for a dependency or a slot happens *before* the claim: a tick that gives up is recorded missed,
 * and a new owner finds it unclaimed if the lease ends meanwhile.
 */
import type { Logger } from '../core/logger.js';
import type { NodeInfo } from '../core/node-info.js';
import { sleep } from '../core/clock.js';
import { NotOwnerError, toError } from '../core/errors.js';
import { checkedByLease } from '../cluster/lease.js';
import type { TriggerRecord } from './controls.js';
import { awaitDependencies, SINGLE_TICK_DEPENDENCY_TIMEOUT_MS } from './dependencies.js';
import { checkpointKey, runKey, triggerKey, triggerRunKey } from './keys.js';
import { runAttempts } from './run-attempts.js';
import { recordMissed, withStoreRetry, type RecordsScope } from './run-records.js';
import { runEndEvent } from './events.js';
import { acquireSlot, releaseSlot, type HeldSlot } from './slots.js';
import { boundRunOutput, type ProducerContext, type RunOutput, type RunRecord, type TaskContext, type TaskDefinition } from './task.js';
import { enqueue } from './queue.js';

/** One tick (or trigger) to run. */
export interface TickJob {
  readonly tick: number;
  readonly jitterMs: number;
  readonly trigger?: TriggerRecord;
  /** Wall time until which the tick may wait for a concurrency slot; undefined: no bound. */
  readonly slotDeadline: number | undefined;
  /**
   * Claimed ahead of its time (claim-ahead.ts): the handler waits after the claim until `startAt` (the
   * tick plus its jitter); `onClaimed` learns when the claim was answered.
   */
  readonly ahead?: { readonly startAt: number; readonly onClaimed: (claimedAt: number) => void };
}

export interface RunScope extends RecordsScope {
  readonly def: TaskDefinition;
  readonly node: NodeInfo;
  readonly log: Logger;
  readonly localSlots: Set<string>;
  /** Called after the final record was written (history retention). */
  readonly onRecorded: () => Promise<void>;
}

interface StoredCheckpoint {
  readonly value: unknown;
  readonly tick: number;
  readonly token: string;
  readonly committedAt: number;
}

/** Dependencies, then a concurrency slot, then the claim and the attempts. */
export async function runJob(scope: RunScope, job: TickJob): Promise<void> {
  const { store, clock, emit, localSlots, lease, stop } = scope;
  const { policy, schedule } = scope.def;
  const ref = { task: scope.unit.task, unit: scope.unit.name };
  if (!job.trigger && policy.dependsOn.length > 0) {
    const next = schedule.next(job.tick);
    const timeoutMs = policy.dependencyTimeoutMs ?? (next === undefined ? SINGLE_TICK_DEPENDENCY_TIMEOUT_MS : next - job.tick);
    const result = await awaitDependencies({
      store,
      clock,
      dependsOn: policy.dependsOn,
      tick: job.tick,
      timeoutMs,
      signal: stop,
      onWait: () => emit('tick:waiting', { ...ref, tick: job.tick, for: 'dependency' }),
    });
    if (!result.ok) {
      await recordMissed(scope, job.tick, job.tick, 1, 'dependency', result.reason);
      return;
    }
  }
  let slot: HeldSlot | undefined;
  if (policy.concurrency) {
    const { group, limit } = policy.concurrency;
    slot = await acquireSlot({
      store,
      clock,
      session: lease.session,
      group,
      limit,
      localSlots,
      until: job.trigger ? undefined : job.slotDeadline,
      signal: stop,
      onWait: () => emit('tick:waiting', { ...ref, tick: job.tick, for: 'slot' }),
    });
    if (!slot) {
      await recordMissed(scope, job.tick, job.tick, 1, 'concurrency', `no slot of group "${group}" (limit ${limit}) before the next tick`);
      return;
    }
  }
  try {
    await claimAndRun(scope, job);
  } finally {
    if (slot) await releaseSlot(store, slot, localSlots, emit, scope.unit.name);
  }
}

async function claimAndRun(scope: RunScope, job: TickJob): Promise<void> {
  const { clock, emit, node, store, lease, stop } = scope;
  const { policy } = scope.def;
  const { name, task } = scope.unit;
  const ref = { task, unit: name };
  const key = job.trigger ? triggerRunKey(name, job.trigger.id) : runKey(name, job.tick);
  const claimedAt = clock.now();
  // Claimed ahead: the record says when the handler is to start (it cannot be written at that instant
  // without the round trip the claim ahead saves); `claimedAt` says it was claimed before.
  const startedAt = job.ahead ? Math.max(claimedAt, job.ahead.startAt) : claimedAt;
  const claim: RunRecord = {
    task,
    unit: name,
    tick: job.tick,
    status: 'running',
    node: node.id,
    host: node.host,
    pid: node.pid,
    token: lease.token.toString(),
    startedAt,
    lateMs: Math.max(0, startedAt - job.tick - job.jitterMs),
    ...(startedAt > claimedAt ? { claimedAt } : {}),
    ...(policy.jitterMs > 0 ? { jitterMs: job.jitterMs } : {}),
    ...(job.trigger ? { trigger: true, triggerId: job.trigger.id } : {}),
  };
  const claimed = await withStoreRetry(scope, () => lease.put(key, claim, { ifVersion: 'absent' }));
  // A trigger is consumed once its run is claimed (by this node now, or by an earlier owner).
  if (job.trigger) await store.delete(triggerKey(name, job.trigger.id), { guard: lease.guard });
  if (!claimed.ok) {
    // Already claimed: the previous owner started this tick before it lost the task.
    scope.log.debug({ task: name, tick: job.tick }, 'tick already claimed');
    return;
  }
  if (job.ahead && !(await waitForStart(scope, job.ahead, key, claimed.version))) return;
  const lateMs = Math.max(0, clock.now() - job.tick - job.jitterMs);
  const trigger = job.trigger ? { trigger: job.trigger.id } : {};
  emit('run:started', { ...ref, tick: job.tick, lateMs, token: lease.token, ...(policy.jitterMs > 0 ? { jitterMs: job.jitterMs } : {}), ...trigger });
  const startedMono = clock.monotonic();
  let version = claimed.version;
  // Set by the handler through ctx.recordOutput (the agent's commands); goes into the records below.
  let output: RunOutput | undefined;
  const setOutput = (value: RunOutput) => (output = boundRunOutput(value));
  const result = await runAttempts({
    clock,
    policy,
    task: name,
    stop,
    invoke: (attempt, signal) => {
      // Synchronously right before the call: a process paused since its claim was answered (SIGSTOP, a
      // long GC) wakes here past its local deadline, and must not start the handler (NotOwnerError ends
      // the lease, so the run ends aborted).
      lease.assertHeld();
      return scope.def.handler(context(scope, job, lateMs, attempt, signal, setOutput) as TaskContext<never>);
    },
    beforeRetry: async (next, error, delayMs) => {
      // Fenced and version-checked: a lost lease (or a new owner that marked the run aborted) stops the retries.
      const progress: RunRecord = { ...claim, attempts: next - 1, error: error.stack ?? error.message, ...(output ? { output } : {}) };
      const written = await lease.put(key, progress, { ifVersion: version });
      if (!written.ok) throw new NotOwnerError(`task "${name}": run record ${key} changed under this run`);
      version = written.version;
      emit('run:retrying', { ...ref, tick: job.tick, attempt: next, delayMs, error });
    },
  });
  const durationMs = clock.monotonic() - startedMono;
  const { outcome, attempts } = result;
  const failure = outcome === 'succeeded' ? undefined : result.error;
  const done: RunRecord = {
    ...claim,
    status: outcome,
    endedAt: clock.now(),
    durationMs,
    ...(policy.retries > 0 ? { attempts } : {}),
    ...(failure ? { error: failure.stack ?? failure.message } : {}),
    ...(output ? { output } : {}),
  };
  // The record is this run's own (claimed above): no one else writes it, so a version check suffices.
  const written = await store.put(key, done, { ifVersion: version }).catch((error: unknown) => {
    emit('error', { where: `task "${name}": run record`, error: toError(error) });
    return undefined;
  });
  const ended = {
    ...ref,
    tick: job.tick,
    outcome,
    durationMs,
    ...(failure ? { error: failure } : {}),
    ...(policy.retries > 0 ? { attempts } : {}),
    ...trigger,
  };
  emit('run:finished', ended);
  emit(runEndEvent(outcome), ended);
  if (written?.ok) await scope.onRecorded();
}

/**
 * After a claim ahead: waits for the tick's start. False when the lease or the node stopped meanwhile:
 * the handler must not start then, and the claim is withdrawn while the lease still allows it (a
 * shutdown, a hand-over), so the next owner runs the tick instead of finding it claimed and not run.
 */
async function waitForStart(scope: RunScope, ahead: NonNullable<TickJob['ahead']>, key: string, version: number): Promise<boolean> {
  const { clock, lease, stop } = scope;
  ahead.onClaimed(clock.now());
  const waitMs = ahead.startAt - clock.now();
  if (waitMs > 0) await sleep(clock, waitMs, stop).catch(() => undefined);
  if (!stop.aborted) return true;
  if (lease.isHeld()) {
    // Guarded and version-checked: refused (and left to the next owner to mark) once the lease is gone.
    await scope.store.delete(key, { ifVersion: version, guard: lease.guard }).catch((error: unknown) => {
      scope.emit('error', { where: `task "${scope.unit.name}": withdrawing a claim ahead`, error: toError(error) });
    });
  }
  return false;
}

function context(scope: RunScope, job: TickJob, lateMs: number, attempt: number, signal: AbortSignal, recordOutput: (output: RunOutput) => void): TaskContext {
  const { store, clock, node, log, lease, def, unit } = scope;
  const key = checkpointKey(unit.name);
  const tick = job.tick;
  const base: TaskContext = {
    task: def.name,
    unit: unit.name,
    ...(unit.shard ? { shard: unit.shard } : {}),
    tick: new Date(tick),
    lateMs,
    jitterMs: job.jitterMs,
    attempt,
    trigger: job.trigger !== undefined,
    token: lease.token,
    node,
    signal: checkedByLease(signal, lease),
    log: log.child({ task: unit.name, tick, attempt }),
    recordOutput,
    assertOwner: () => lease.assertHeld(),
    checkpoint: {
      get: async () => {
        // A zombie that reads its successor's progress would act on it: refuse the read as a write is refused.
        lease.assertHeld();
        return (await store.get<StoredCheckpoint>(key))?.value.value as never;
      },
      commit: async (value: unknown) => {
        const stored: StoredCheckpoint = { value, tick, token: lease.token.toString(), committedAt: clock.now() };
        await lease.put(key, stored);
      },
    },
  };
  if (def.mode.kind !== 'dispatch') return base;
  const producer: ProducerContext = {
    ...base,
    enqueue: (payload, options) => enqueue({ store, clock, lease, task: def.name, payload, ...(options ? { options } : {}) }),
  };
  return producer;
}
