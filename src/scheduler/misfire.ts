/**
 * Which due ticks run and which are recorded missed: the misfire and overlap policies, as pure functions
 * of the schedule, the time and the task's policy (no store, no clock), plus jitter.
 *
 * A tick is *on time* when it is the newest due tick and starts at most `misfireGrace` after its
 * scheduled time plus its jitter; an on-time tick always runs. The other due ticks have *misfired*
 * (a tick superseded by a newer due tick has misfired whatever the grace); what happens to them depends on why they
 * piled up:
 * - after a run of the task (`cause: 'overlap'`): overlap `queue` runs the newest `overlapLimit` of all due
 *   ticks, oldest first; overlap `skip` applies the misfire policy, without catching up (`catchUp` acts as
 *   `run-once` there: catching up on ticks a long run overlapped is what `queue` is for);
 * - otherwise (`no-owner`, `owner-stalled`, `stalled`): the misfire policy — `run-once` runs the newest due tick when no
 *   tick is on time; `skip` runs none; `{ catchUp: N }` runs the newest N misfired ticks, oldest first.
 * What is not run is a contiguous range of the oldest due ticks, recorded in one `missed` record.
 */
import { score } from './placement.js';
import type { MissReason } from './events.js';
import type { Schedule } from './schedule.js';
import { ticksBetween } from './schedule.js';
import type { RunPolicy } from './task-options.js';

export interface DueTicks {
  readonly first: number;
  readonly last: number;
  readonly count: number;
}

export interface TickPlan {
  /** The oldest due ticks, recorded as missed; `to` is the newest of them. */
  readonly missed?: { readonly from: number; readonly to: number; readonly count: number };
  /** Ticks to run, oldest first. */
  readonly runs: readonly number[];
}

/** Upper bound on ticks run from one plan, whatever the grace (a grace of days on a 1s task). */
const MAX_RUNS = 1000;

/**
 * The deterministic delay of a tick's start in [0, jitterMs): derived from (task, tick) only, so every
 * node computes the same value and a new owner waits exactly as the old one would have.
 */
export function jitterFor(task: string, tick: number, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  return Math.floor((score(task, `tick:${tick}`) / 2 ** 32) * jitterMs);
}

/**
 * Ticks in (cursor, now] whose start (tick + jitter) has come. Only the newest can still be waiting for
 * its jitter: jitter is less than the gap between ticks, so starts keep the order of ticks.
 */
export function dueTicks(schedule: Schedule, cursor: number, now: number, jitter: (tick: number) => number): DueTicks | undefined {
  const due = ticksBetween(schedule, cursor, now);
  if (!due || due.last + jitter(due.last) <= now) return due;
  if (due.count === 1) return undefined;
  const last = schedule.latest(due.last - 1);
  return last === undefined || last < due.first ? undefined : { first: due.first, last, count: due.count - 1 };
}

export function planTicks(options: {
  readonly schedule: Schedule;
  readonly due: DueTicks;
  readonly now: number;
  readonly policy: RunPolicy;
  readonly cause: MissReason;
  readonly jitter: (tick: number) => number;
}): TickPlan {
  const { schedule, due, now, policy, cause, jitter } = options;
  const previous = (tick: number): number | undefined => {
    const p = schedule.latest(tick - 1);
    return p !== undefined && p >= due.first ? p : undefined;
  };
  // Newest first while collecting.
  const runs: number[] = [];
  let cursor: number | undefined = due.last;
  const take = (count: number, condition: (tick: number) => boolean = () => true) => {
    while (cursor !== undefined && runs.length < Math.min(count, MAX_RUNS) && condition(cursor)) {
      runs.push(cursor);
      cursor = previous(cursor);
    }
  };
  if (cause === 'overlap' && policy.overlap === 'queue') {
    take(policy.overlapLimit);
  } else {
    // Only the newest due tick can be on time: one that a newer tick has superseded has misfired.
    take(1, (tick) => now - tick - jitter(tick) <= policy.misfireGraceMs);
    const misfired = due.count - runs.length;
    const misfire = cause === 'overlap' && policy.misfire.kind === 'catch-up' ? ({ kind: 'run-once' } as const) : policy.misfire;
    if (misfire.kind === 'run-once' && runs.length === 0) take(1);
    if (misfire.kind === 'catch-up') take(runs.length + Math.min(misfire.max, misfired));
  }
  runs.reverse();
  const missedCount = due.count - runs.length;
  if (missedCount <= 0) return { runs };
  const oldestRun = runs[0];
  const to = oldestRun === undefined ? due.last : (schedule.latest(oldestRun - 1) ?? due.first);
  return { runs, missed: { from: due.first, to, count: missedCount } };
}

/** A range of missed ticks and the reason it is recorded with. */
export interface MissedRange {
  readonly from: number;
  readonly to: number;
  readonly count: number;
  readonly reason: MissReason;
}

/**
 * Splits the ticks a new owner found missed at acquisition by what it knows of the time before it:
 * those due up to `runEndedAt` (the end of the newest run recorded, by the previous owner) fell due
 * while that run was going (`overlap`); those due up to `heldUntil` (the store time up to which this node
 * saw another node hold the unit) fell due while that node held it without running them
 * (`owner-stalled`); the newer ones fell due while nobody held it (`no-owner`). Oldest range first.
 */
export function splitAtTakeover(
  schedule: Schedule,
  missed: NonNullable<TickPlan['missed']>,
  known: { readonly runEndedAt?: number | undefined; readonly heldUntil?: number | undefined },
): MissedRange[] {
  const ranges: MissedRange[] = [];
  let after = missed.from - 1;
  const bounds: [number | undefined, MissReason][] = [
    [known.runEndedAt, 'overlap'],
    [known.heldUntil, 'owner-stalled'],
    [missed.to, 'no-owner'],
  ];
  for (const [until, reason] of bounds) {
    if (until === undefined) continue;
    const part = ticksBetween(schedule, after, Math.min(missed.to, until));
    if (!part) continue;
    ranges.push({ from: part.first, to: part.last, count: part.count, reason });
    after = part.last;
  }
  return ranges;
}
