/**
 * Units placed by turns (`mutex`, `round-robin`): nobody owns them between ticks. When a tick's start
 * comes, nodes compete for the unit's owner key; the winner's runner runs what is due (misfire and
 * overlap policies as for any task, the tick claimed once) and releases the key when idle.
 *
 * - `mutex`: every node tries at once; the first acquisition wins (ShedLock-style, but fenced).
 * - `round-robin`: the node after the last runner (in the sorted ids of the live declaring nodes) tries
 *   at once; the others wait `claimDelay` and step in only when the tick is still not recorded — the
 *   node whose turn it was may be dead.
 *
 * A node dead between ticks holds nothing, so a crash between ticks costs no failover at all; a crash
 * during a run is detected like any owner's (session), and the next acquirer records or resumes the tick.
 */
import type { Clock } from '../core/clock.js';
import { toError } from '../core/errors.js';
import type { Holder, SessionRecord, Store } from '../stores/contract.js';
import type { Emit } from './events.js';
import { runPrefix, triggerPrefix } from './keys.js';
import { jitterFor } from './misfire.js';
import type { RunRecord } from './task.js';
import type { TaskRunner } from './task-runner.js';

interface DueTurn {
  readonly tick: number;
  /** Local monotonic time the turn came. */
  readonly at: number;
  /** True when this node goes first (mutex: always; round-robin: when it is this node's turn). */
  readonly mine: boolean;
  /** The session seen holding the unit after the turn came: if it is still alive once the unit is free, it ran the tick. */
  heldBy?: string;
  /** Not this node's turn, and the claim delay passed: the store says the tick is still not recorded. */
  unhandled?: boolean;
  checking?: boolean;
}

interface TurnState {
  readonly runner: TaskRunner;
  cancel?: () => void;
  lastTimed?: number;
  due?: DueTurn;
  /** Sorted ids of the live nodes declaring the active version, as of the last scan. */
  members: readonly string[];
}

export class Turns {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #nodeId: string;
  readonly #claimDelayMs: number;
  readonly #requestScan: () => void;
  readonly #emit: Emit;
  readonly #states = new Map<string, TurnState>();
  #closed = false;
  #started = false;

  constructor(options: {
    store: Store;
    clock: Clock;
    nodeId: string;
    claimDelayMs: number;
    runners: readonly TaskRunner[];
    requestScan: () => void;
    emit: Emit;
  }) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#nodeId = options.nodeId;
    this.#claimDelayMs = options.claimDelayMs;
    this.#requestScan = options.requestScan;
    this.#emit = options.emit;
    for (const runner of options.runners) this.#states.set(runner.unit.name, { runner, members: [] });
  }

  start(): void {
    this.#started = true;
    for (const state of this.#states.values()) this.#planNext(state);
  }

  /** A `turns` unit declared on the running node (Cluster.addTask): its turns start with its next tick. */
  add(runner: TaskRunner): void {
    const state: TurnState = { runner, members: [] };
    this.#states.set(runner.unit.name, state);
    if (this.#started) this.#planNext(state);
  }

  /** The `turns` units of this node: a scan looks at them every time (their turns come by the clock). */
  units(): Iterable<string> {
    return this.#states.keys();
  }

  /** A unit removed from the running node (Cluster.removeTask): no more turns for it. */
  remove(unit: string): void {
    this.#states.get(unit)?.cancel?.();
    this.#states.delete(unit);
  }

  close(): void {
    this.#closed = true;
    for (const state of this.#states.values()) state.cancel?.();
  }

  /** A trigger for a turns unit: every node races for it at once (the winner runs pending triggers). */
  onRecordChange(key: string): void {
    if (!key.startsWith('trigger/')) return;
    for (const state of this.#states.values()) {
      if (key.startsWith(triggerPrefix(state.runner.unit.name))) {
        state.due = { tick: this.#clock.now(), at: this.#clock.monotonic(), mine: true };
        this.#requestScan();
      }
    }
  }

  /** Called by a scan for a unit this node does not hold: should it try to acquire it now? */
  wantsTurn(runner: TaskRunner, holder: Holder | undefined, sessions: readonly SessionRecord[], eligible: ReadonlySet<string> | undefined): boolean {
    const state = this.#states.get(runner.unit.name);
    if (!state) return false;
    state.members = [...(eligible ?? [])].sort();
    const due = state.due;
    if (!due) return false;
    if (holder) {
      due.heldBy = holder.sessionId;
      return false;
    }
    if (due.heldBy !== undefined) {
      // Released: by a live node, which ran what was due; or its session died, and the tick may be open.
      if (sessions.some((s) => s.id === due.heldBy)) state.due = undefined;
      return state.due !== undefined;
    }
    if (due.mine || due.unhandled) return true;
    if (this.#clock.monotonic() - due.at >= this.#claimDelayMs && !due.checking) {
      due.checking = true;
      void this.#store
        .list<RunRecord>(runPrefix(runner.unit.name), { reverse: true, limit: 1 })
        .then(([newest]) => {
          if (state.due !== due) return;
          if (newest && newest.value.tick >= due.tick) state.due = undefined;
          else due.unhandled = true;
          this.#requestScan();
        })
        .catch((error: unknown) => this.#emit('error', { where: `task "${runner.unit.name}": turn`, error: toError(error) }))
        .finally(() => (due.checking = false));
    }
    return false;
  }

  /** The unit was acquired by this node: its runner now handles what is due. */
  acquired(runner: TaskRunner): void {
    const state = this.#states.get(runner.unit.name);
    if (state) state.due = undefined;
  }

  /** Another node holds the unit. */
  lost(runner: TaskRunner, holder: Holder): void {
    const due = this.#states.get(runner.unit.name)?.due;
    if (due) due.heldBy = holder.sessionId;
  }

  /** Time until a waiting turn's claim delay runs out (the scan must look then). */
  nextCheckDelay(): number {
    let delay = Infinity;
    const now = this.#clock.monotonic();
    for (const { due } of this.#states.values()) {
      if (due && !due.mine && !due.unhandled && due.heldBy === undefined) delay = Math.min(delay, Math.max(0, due.at + this.#claimDelayMs - now));
    }
    return delay;
  }

  /** Sets the timer for the next tick's start (tick + jitter). */
  #planNext(state: TurnState): void {
    // A removed unit's pending turn ends here instead of planning another.
    if (this.#closed || this.#states.get(state.runner.unit.name) !== state) return;
    const { def, unit } = state.runner;
    const from = Math.max(state.lastTimed ?? -Infinity, this.#clock.now());
    const tick = def.schedule.next(from);
    if (tick === undefined) return;
    const start = tick + jitterFor(unit.name, tick, def.policy.jitterMs);
    state.lastTimed = tick;
    state.cancel = this.#clock.setTimer(Math.max(0, start - this.#clock.now()), () => {
      state.cancel = undefined;
      void this.#turnCame(state, tick).finally(() => this.#planNext(state));
    });
  }

  async #turnCame(state: TurnState, tick: number): Promise<void> {
    const { runner } = state;
    let mine = true;
    if (runner.def.mode.kind === 'round-robin') {
      try {
        mine = this.#turnOf(state, tick, (await this.#lastRecord(runner))?.node) === this.#nodeId;
      } catch (error) {
        this.#emit('error', { where: `task "${runner.unit.name}": turn`, error: toError(error) });
      }
    }
    if (this.#closed) return;
    state.due = { tick, at: this.#clock.monotonic(), mine };
    this.#requestScan();
  }

  /** Whose turn tick `tick` is: the member after the last runner, or by tick number when none ran yet. */
  #turnOf(state: TurnState, tick: number, lastRunner: string | undefined): string | undefined {
    const members = state.members.length > 0 ? state.members : [this.#nodeId];
    if (lastRunner === undefined) {
      const gap = state.runner.def.schedule.intervalMs ?? 1000;
      return members[Math.floor(tick / gap) % members.length];
    }
    return members.find((id) => id > lastRunner) ?? members[0];
  }

  /** The newest run record of the unit that a node ran (missed records name none). */
  async #lastRecord(runner: TaskRunner): Promise<RunRecord | undefined> {
    const records = await this.#store.list<RunRecord>(runPrefix(runner.unit.name), { reverse: true, limit: 5 });
    return records.map((r) => r.value).find((r) => r.node !== undefined && r.trigger !== true);
  }
}
