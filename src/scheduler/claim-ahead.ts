/**
 * Claiming a tick ahead of its time (issue 21): the owner reads the pause and writes the tick's claim a
 * little before the tick, so the handler starts at the tick instead of one or two store round trips
 * after it. The lead is learnt per runner from how long that preparation took lately.
 *
 * Safety is the claim's, unchanged: the claim is the same unique, lease-guarded insert (invariant 3), and
 * the handler still starts only after `lease.assertHeld()` at the tick (invariant 4), so an owner that
 * claimed ahead and was then paused past its deadline does not run the tick. The price: an owner that
 * dies between its claim and the tick leaves the tick claimed and not run; the next owner finds the claim
 * and marks it interrupted (run-records.ts), so the tick is recorded, not lost silently — at most one tick
 * per owner lost, and only when the owner dies within the lead (a few ms) before a tick. An owner that
 * stops leading while it waits (shutdown, lease lost) withdraws its claim when it still can, so a graceful
 * hand-over loses nothing.
 */
import type { TaskDefinition } from './task.js';
import type { TaskUnit } from './modes.js';

/** No lead below this: a timer's own wake-up is late by a few ms on a loaded machine. */
const MIN_LEAD_MS = 5;
/** Never more than this ahead: the window in which an owner's death loses the tick. */
const MAX_LEAD_MS = 250;
/** The lead before anything was measured: a round trip on a loaded machine (bench ticksQuiet). */
const INITIAL_LEAD_MS = 20;
/** Recent preparations remembered (the lead covers the slowest of them). */
const SAMPLES = 16;
/** Added to the slowest recent preparation: the wake-up of the wait itself. */
const MARGIN_MS = 3;

/** The lead of one runner: how long before a tick its preparation (pause read, claim) starts. */
export class ClaimLead {
  readonly #samples: number[] = [];
  readonly #maxMs: number;

  /** `enabled`: the task can claim ahead at all (see {@link canClaimAhead}). */
  constructor(
    readonly enabled: boolean,
    intervalMs: number | undefined,
  ) {
    // A quarter of the interval at most: the claim ahead never reaches back to the previous tick's time.
    this.#maxMs = intervalMs === undefined ? MAX_LEAD_MS : Math.min(MAX_LEAD_MS, Math.floor(intervalMs / 4));
  }

  /** How long before a tick's start to begin preparing it (0 when the task does not claim ahead). */
  get ms(): number {
    if (!this.enabled) return 0;
    if (this.#samples.length === 0) return Math.min(this.#maxMs, INITIAL_LEAD_MS);
    const slowest = Math.max(...this.#samples);
    return Math.min(this.#maxMs, Math.max(MIN_LEAD_MS, Math.ceil(slowest * 1.25) + MARGIN_MS));
  }

  /**
   * A preparation ended (the claim answered) at `claimedAt`, for a tick starting at `startAt`, with the
   * lead `leadMs` it was planned with: it took `leadMs - (startAt - claimedAt)` from its planned wake-up.
   */
  observe(leadMs: number, startAt: number, claimedAt: number): void {
    const took = Math.max(0, leadMs - (startAt - claimedAt));
    this.#samples.push(took);
    if (this.#samples.length > SAMPLES) this.#samples.shift();
  }
}

/**
 * Whether ticks of `def` can be claimed ahead: not when something must be waited for before the claim
 * (dependencies, a concurrency slot: waiting ahead of the tick would decide on the state before it), nor
 * for units held only while a tick is due (turns: mutex, round-robin).
 */
export function canClaimAhead(def: TaskDefinition, unit: TaskUnit): boolean {
  return def.policy.dependsOn.length === 0 && def.policy.concurrency === undefined && unit.placement !== 'turns' && def.schedule.once === undefined;
}
