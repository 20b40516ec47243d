import type { SessionEvents } from '../cluster/session-keeper.js';
import type { TaskName, UnitName } from './names.js';

/**
 * How a run ended. `timed-out`: its last attempt threw after the task's `timeout` aborted its signal.
 * `aborted`: it ended because the node lost the task or shut down.
 */
export type RunOutcome = 'succeeded' | 'failed' | 'timed-out' | 'aborted';

/** Why ticks were not run. */
export type MissReason =
  /**
   * No node held the task when they fell due (every node down, or the gap between the holder's session
   * ending and the successor acquiring). Recorded by the node that acquires the task next.
   */
  | 'no-owner'
  /**
   * Another node held the task when they fell due but did not run them (its process stopped or crashed,
   * its event loop blocked, its store connection cut) until its session expired. Recorded by the node
   * that acquires the task next, from what that node saw of the holder (see docs/scheduling.md).
   */
  | 'owner-stalled'
  /** They fell due while a run was still going (overlap `skip`, or beyond `overlapLimit` for `queue`/`allow`). */
  | 'overlap'
  /** The owner's own process was stalled (GC, SIGSTOP, a blocked event loop) past them, and it kept the task: recorded by that owner. */
  | 'stalled'
  /**
   * The owner's estimate of the store's clock was behind: a new sample of the store's time moved it
   * forward past them, so they fell due at once (store-clock.ts). Recorded by that owner. An owner whose
   * clock cannot be bounded at all steps aside instead of holding the task (versions.ts).
   */
  | 'owner-skewed'
  /** The task was paused cluster-wide by an operator (`cluster.pause()`): not a stalled process. */
  | 'paused'
  /** A task of `dependsOn` did not succeed for the same tick within `dependencyTimeout`. */
  | 'dependency'
  /** No slot of the task's concurrency group freed up before its next tick was due. */
  | 'concurrency';

/**
 * What every event about one unit of a task carries: the task's name and the unit's (names.ts) — the
 * same for most modes, `task#i` for a shard, `task@node` for a broadcast share.
 */
export interface UnitRef {
  readonly task: TaskName;
  readonly unit: UnitName;
}

/**
 * The run events and what each means, the same in the scheduler (this node's runs, as they happen) and in
 * the monitor (every node's runs, from their records): `run:started` a claimed run began; `run:finished`
 * a run ended, whatever its outcome; `run:succeeded` it ended well; `run:failed` it failed, timed out or
 * was aborted (`outcome` says which); `tick:missed` ticks were not run (`reason` says why).
 */
export type RunEventName = 'run:started' | 'run:finished' | 'run:succeeded' | 'run:failed' | 'tick:missed';

/** The event, besides `run:finished`, that a run ending with `outcome` also gives. */
export function runEndEvent(outcome: RunOutcome): 'run:succeeded' | 'run:failed' {
  return outcome === 'succeeded' ? 'run:succeeded' : 'run:failed';
}

type RunEnd = UnitRef & {
  readonly tick: number;
  readonly outcome: RunOutcome;
  readonly durationMs: number;
  readonly error?: Error;
  /** Attempts made (1 without retries). */
  readonly attempts?: number;
  readonly trigger?: string;
};

export interface SchedulerEvents {
  'owner:acquired': UnitRef & { readonly token: bigint };
  'owner:lost': UnitRef & { readonly token: bigint; readonly reason: string };
  /** `turn`: a `mutex` or `round-robin` task is released after its tick ran. */
  'owner:released': UnitRef & { readonly token: bigint; readonly reason: 'shutdown' | 'rebalance' | 'turn' | 'removed' };
  /**
   * A tick (or a manual trigger) was claimed and its first attempt is about to run. `lateMs` is measured
   * from the tick plus its `jitterMs`, so jitter never counts as lateness.
   */
  'run:started': UnitRef & {
    readonly tick: number;
    readonly lateMs: number;
    readonly token: bigint;
    readonly jitterMs?: number;
    /** The trigger's id, for a run requested with `cluster.trigger()`. */
    readonly trigger?: string;
  };
  /** An attempt failed (or timed out) and the run is retried after `delayMs`, as attempt `attempt`. */
  'run:retrying': UnitRef & {
    readonly tick: number;
    readonly attempt: number;
    readonly delayMs: number;
    readonly error: Error;
  };
  /** A run ended, whatever its outcome. */
  'run:finished': RunEnd;
  /** A run ended with outcome `succeeded` (also given as `run:finished`). */
  'run:succeeded': RunEnd;
  /** A run ended `failed`, `timed-out` or `aborted` (also given as `run:finished`). */
  'run:failed': RunEnd;
  'tick:missed': UnitRef & { readonly from: number; readonly to: number; readonly count: number; readonly reason: MissReason };
  /** A run waits before its claim: for a task it depends on, or for a concurrency slot. */
  'tick:waiting': UnitRef & { readonly tick: number; readonly for: 'dependency' | 'slot' };
  /** This node wrote a trigger record (`cluster.trigger()`); the owner, wherever it is, runs it. */
  'task:triggered': { readonly task: TaskName; readonly id: string };
  /** This node paused or resumed a task cluster-wide. */
  'task:paused': { readonly task: TaskName };
  'task:resumed': { readonly task: TaskName };
  /** A consumer of a `dispatch` task took an item (delivery number `attempt`). */
  'item:started': { readonly task: TaskName; readonly id: string; readonly attempt: number };
  /**
   * A delivery ended: `succeeded` (acknowledged, deleted), `failed` (visible again after the backoff),
   * `dead` (moved to the dead letters after `maxAttempts`), `aborted` (node shutting down; visible again
   * at once), `lost` (its visibility ran out and another consumer took it).
   */
  'item:finished': {
    readonly task: TaskName;
    readonly id: string;
    readonly attempt: number;
    readonly outcome: 'succeeded' | 'failed' | 'dead' | 'aborted' | 'lost';
    readonly durationMs: number;
    readonly error?: Error;
  };
  /**
   * Live nodes declare the task with different options (a rolling deploy, or a mistake). Only the nodes
   * with the version of the longest-lived declaring node run it; the others stay out (this node is one
   * of them when `excluded`). `error` names the task and the fields that differ.
   */
  'task:conflict': { readonly task: TaskName; readonly fingerprints: readonly string[]; readonly active: string; readonly excluded: boolean; readonly error: Error };
  /** A background operation failed; baton retries by itself. Listening is optional: nothing throws. */
  error: { readonly where: string; readonly error: Error };
}

/** Every event a cluster emits, by name. */
export type BatonEvents = SessionEvents & SchedulerEvents;
export type Emit = <K extends keyof BatonEvents>(event: K, payload: BatonEvents[K]) => void;
