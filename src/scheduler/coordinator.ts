/**
 * Decides, for this node, which of its units (modes.ts) to try to own and which to hand over. It reads
 * the whole picture in two queries (live sessions and unit owners) whatever the number of tasks, when
 * the store hints at a change, and at least every `scanEveryMs`.
 *
 * Placement is a preference, never a vote: the store's atomic acquisition decides who owns a unit.
 * - `balanced` units (singleton, shards, dispatch producers): a free unit is taken at once by its
 *   preferred node (placement.ts); any other declaring node takes it when it stayed free for
 *   `claimDelayMs`. An owner hands a unit to its preferred node only when that node has been alive for
 *   `rebalanceAfterMs` and the unit is between runs. Otherwise an owner keeps its units while it lives.
 * - `ranked` units (preferred): only nodes of the best rank alive may take it; an owner of a worse rank
 *   hands it back (fail-back) once a better-ranked node has been alive for the task's `failbackAfter`.
 * - `own` units (broadcast): this node's own share, always taken.
 * - `turns` units (mutex, round-robin): see turns.ts.
 * - A node whose declaration of a task differs from the running version (versions.ts) takes none of its units.
 *
 * Hand-over on a hint: when a hint frees a unit (its holder released it, or the holder's session ended),
 * the node that is its preferred owner without the leaver claims it at once, from the hint, before any
 * re-read (one store round trip after the event); the others keep to the claim delay.
 */
import { slices } from '../core/batches.js';
import { Backoff } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { parseDuration, type Duration } from '../core/duration.js';
import { ClosedError, ConfigError, NotOwnerError, SessionExpiredError, toError } from '../core/errors.js';
import { tryAcquireLeases, type AcquireOutcome, type Lease } from '../cluster/lease.js';
import type { SessionKeeper } from '../cluster/session-keeper.js';
import type { Holder, SessionRecord, Store } from '../stores/contract.js';
import type { Emit } from './events.js';
import { declarationVersionKey, ownerKey, TASK_OWNER_PREFIX, unitOfOwnerKey } from './keys.js';
import { rankOf } from './modes.js';
import type { TaskName, UnitName } from './names.js';
import { score } from './placement.js';
import { membershipPlan, unitsPreferredFor } from './membership-plan.js';
import { OwnershipView, type ViewChanges } from './ownership-view.js';
import { differingFields, type NormalizedDeclaration } from './task.js';
import type { TaskRunner } from './task-runner.js';
import { Turns } from './turns.js';
import type { TaskVersions } from './versions.js';

export interface CoordinatorTiming {
  readonly scanEveryMs: number;
  readonly resyncEveryMs: number;
  readonly claimDelayMs: number;
  readonly rebalanceAfterMs: number;
}

/** Placement timing as given by the user (the node's options scanEvery, claimDelay, rebalanceAfter). */
export interface CoordinatorTimingOptions {
  readonly scanEvery?: Duration;
  readonly resyncEvery?: Duration;
  readonly claimDelay?: Duration;
  readonly rebalanceAfter?: Duration;
}

/** Validates placement timing against the session TTL and names both values when they conflict. */
export function resolveCoordinatorTiming(options: CoordinatorTimingOptions, ttlMs: number): CoordinatorTiming {
  const scanEveryMs = parseDuration(options.scanEvery ?? Math.min(1000, Math.floor(ttlMs / 4)), 'scanEvery');
  const claimDelayMs = parseDuration(options.claimDelay ?? 300, 'claimDelay');
  const rebalanceAfterMs = parseDuration(options.rebalanceAfter ?? ttlMs, 'rebalanceAfter');
  const resyncEveryMs = parseDuration(options.resyncEvery ?? DEFAULT_RESYNC_MS, 'resyncEvery');
  if (scanEveryMs < 10) throw new ConfigError(`scanEvery: must be at least 10ms, got ${scanEveryMs}ms`);
  if (scanEveryMs >= ttlMs) throw new ConfigError(`scanEvery (${scanEveryMs}ms) must be less than ttl (${ttlMs}ms)`);
  if (resyncEveryMs < scanEveryMs) throw new ConfigError(`resyncEvery (${resyncEveryMs}ms) must be at least scanEvery (${scanEveryMs}ms)`);
  return { scanEveryMs, resyncEveryMs, claimDelayMs, rebalanceAfterMs };
}

/**
 * Where the scan loop is: `waiting` for its timer or a request; `scanning`; `rescan`: scanning, with a
 * request that came meanwhile (one more scan follows at once); `backing-off` after a failed scan.
 */
type CoordinatorState = 'new' | 'waiting' | 'scanning' | 'rescan' | 'backing-off' | 'closed';

/** How a scan that did not throw ended: `claims-failed` when the store failed an acquisition it wanted. */
type ScanOutcome = 'done' | 'no-session' | 'claims-failed';

/** Anti-entropy: a full re-read of sessions and owners although no hint said anything changed. */
const DEFAULT_RESYNC_MS = 30 * 60_000;

/** First pause after a failed scan; it doubles up to scanEvery. */
const SCAN_RETRY_MS = 50;

/**
 * Units asked of the store in one tryAcquireMany: a few round trips each (stores split further). Bounds
 * what one request of a scan carries; the batches of a scan go one after the other.
 */
const ACQUISITION_BATCH = 500;
/** A unit a scan took: its runner starts once every batch of the scan was taken. */
interface Taken {
  readonly runner: TaskRunner;
  readonly lease: Lease;
  readonly heldUntil: number | undefined;
}

/** Every this many scan intervals a scan looks at every unit, whatever the view reports. */
const FULL_LOOK_EVERY = 10;

export class Coordinator {
  readonly #store: Store;
  readonly #keeper: SessionKeeper;
  readonly #runners: ReadonlyMap<string, TaskRunner>;
  readonly #clock: Clock;
  readonly #emit: Emit;
  readonly #timing: CoordinatorTiming;
  readonly #nodeId: string;
  readonly #turns: Turns;
  /** Local monotonic time each unit was first seen without owner. */
  readonly #freeSince = new Map<string, number>();
  /**
   * Per unit this node does not hold: the store time up to which it saw another node hold it, and
   * whether it has since seen the unit free (then the time is no longer extended). Passed to the runner
   * on acquisition, so that ticks missed while a holder sat on them are not recorded `no-owner`.
   */
  readonly #heldSeen = new Map<string, { until: number; gone: boolean }>();
  /** Conflicts already reported, by task: the sorted fingerprints. */
  readonly #reportedConflicts = new Map<string, string>();
  #state: CoordinatorState = 'new';
  #scan: Promise<void> | undefined;
  /** Paces scans after a failed one: from SCAN_RETRY_MS up to scanEvery. */
  readonly #backoff: Backoff;
  #cancelTimer: (() => void) | undefined;
  #unwatch: (() => void) | undefined;
  #unsession: (() => void) | undefined;
  /** Tasks this node stays out of (another version of their declaration runs), as of the last scan. */
  #excluded: ReadonlySet<string> = new Set();
  #assignmentKey = '';
  #assignment: ReadonlyMap<string, string> = new Map();
  readonly #view: OwnershipView;
  /** Units to look at in the next scan besides those the view reports changed. */
  readonly #lookAt = new Set<string>();
  /** This node's `preferred` (ranked) units, derived from #runners when units come or go. */
  #ranked: TaskRunner[] | undefined;
  /** Local monotonic time of the last look at every unit, and at this node's part (see #runnersToLookAt). */
  #lookedAtAll = Number.NEGATIVE_INFINITY;
  #lookedAtMine = Number.NEGATIVE_INFINITY;
  /** Units whose runner this node handed a lease (until the runner reports it ended). */
  readonly #held = new Set<string>();
  /** Units with an acquisition in flight, until their runner started: a scan and a hint's claim never take one twice. */
  readonly #acquiring = new Set<string>();

  constructor(options: {
    store: Store;
    keeper: SessionKeeper;
    /** This node's runners, by unit name. */
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
    this.#backoff = new Backoff({ initialMs: Math.min(SCAN_RETRY_MS, options.timing.scanEveryMs), maxMs: options.timing.scanEveryMs });
    this.#view = new OwnershipView({ store: options.store, clock: options.clock, prefix: TASK_OWNER_PREFIX, resyncEveryMs: options.timing.resyncEveryMs });
    this.#turns = new Turns({
      store: options.store,
      clock: options.clock,
      nodeId: options.nodeId,
      claimDelayMs: options.timing.claimDelayMs,
      runners: [...options.runners.values()].filter((r) => r.unit.placement === 'turns'),
      requestScan: () => this.requestScan(),
      emit: options.emit,
    });
  }

  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'waiting';
    this.#unwatch = this.#store.watch((change) => {
      const freed = this.#view.frees(change) ? [unitOfOwnerKey(change.key)] : undefined;
      if (this.#view.hint(change)) {
        // A session's end changes the membership: every free unit may now be this node's to take.
        if (freed || change.endedSession !== undefined) this.#claimFreed(freed ?? this.#freeUnits());
        this.requestScan();
      }
      else if (change.scope === 'records' && change.key !== undefined) this.#turns.onRecordChange(change.key);
    });
    this.#unsession = this.#keeper.onSession(() => this.requestScan());
    this.#turns.start();
    this.requestScan();
  }

  /**
   * Asks for a scan soon. Scans never overlap: requests during one are merged into one more right after
   * it; after a failed scan, requests wait for the back-off (a store that fails fast is not asked in a hot
   * loop, however many hints and claim delays fall due meanwhile).
   */
  requestScan(): void {
    switch (this.#state) {
      case 'waiting':
        this.#runScan();
        return;
      case 'scanning':
        this.#state = 'rescan';
        return;
      default:
        // new and closed: nothing to do; rescan: one more is planned; backing-off: its timer scans.
        return;
    }
  }

  #runScan(): void {
    this.#cancelTimer?.();
    this.#state = 'scanning';
    this.#scan = this.#scanOnce().then(
      (outcome) => {
        if (outcome !== 'claims-failed') this.#backoff.reset();
        this.#afterScan(outcome);
      },
      (error: unknown) => {
        this.#emit('error', { where: 'placement scan', error: toError(error) });
        this.#afterScan('failed');
      },
    );
  }

  #afterScan(outcome: ScanOutcome | 'failed'): void {
    this.#scan = undefined;
    if (this.#state === 'closed') return;
    if (outcome === 'failed' || outcome === 'claims-failed') {
      // A failed acquisition counts as a failed scan: the units it wanted stay free past their claim
      // delay, so #nextScanDelay() says 0, and a store that reads but refuses writes (a member without
      // quorum, a read-only replica) would otherwise be asked again at once, for as long as it fails.
      this.#state = 'backing-off';
      this.#cancelTimer = this.#clock.setTimer(Math.max(this.#backoff.next(), this.#nextScanDelay()), () => this.#runScan());
    } else if (this.#state === 'rescan') {
      this.#runScan();
    } else {
      this.#state = 'waiting';
      // Without a session nothing can be claimed: the next session's opening asks for a scan (onSession),
      // so a claim delay that fell due meanwhile must not re-arm an empty scan at once, again and again.
      const delay = outcome === 'no-session' ? this.#timing.scanEveryMs : this.#nextScanDelay();
      this.#cancelTimer = this.#clock.setTimer(delay, () => this.requestScan());
    }
  }

  /** A runner added to the shared `runners` map on a running node (Cluster.addTask). */
  unitAdded(runner: TaskRunner): void {
    if (runner.unit.placement === 'turns') this.#turns.add(runner);
    this.#ranked = undefined;
    this.look(runner.unit.name);
  }

  /**
   * A runner's lease ended. When it released the key, the view forgets that holder at once: the store's
   * hint of the release may come after the scan this asks for, which would otherwise see the key still
   * ours and take it again (a turn unit released between its ticks went round that loop without end).
   */
  leaseEnded(unit: UnitName, token: bigint, released: boolean): void {
    this.#held.delete(unit);
    if (released) this.#view.forget(ownerKey(unit), token);
    this.look(unit);
  }

  /** Asks for a scan that looks at `unit` (its runner's lease ended, or it is new). */
  look(unit: string): void {
    this.#lookAt.add(unit);
    this.requestScan();
  }

  /** A unit removed from the shared `runners` map (Cluster.removeTask). */
  unitRemoved(unit: string): void {
    this.#turns.remove(unit);
    this.#ranked = undefined;
    this.#freeSince.delete(unit);
    this.#heldSeen.delete(unit);
    this.#held.delete(unit);
  }

  /** False while another version of the task's declaration runs (versions.ts): this node stays out of it. */
  mayRun(task: string): boolean {
    return !this.#excluded.has(task);
  }

  /** Stops scanning; leases are left to their runners. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#unwatch?.();
    this.#unsession?.();
    this.#cancelTimer?.();
    this.#turns.close();
    await this.#scan;
  }

  #nextScanDelay(): number {
    const now = this.#clock.monotonic();
    let delay = Math.min(this.#timing.scanEveryMs, this.#view.nextReadDelay());
    for (const since of this.#freeSince.values()) delay = Math.min(delay, Math.max(0, since + this.#timing.claimDelayMs - now));
    return Math.min(delay, this.#turns.nextCheckDelay());
  }

  /**
   * The runners a scan looks at:
   * - all of them after every holder was re-read (nothing else says which changed), and every
   *   `FULL_LOOK_EVERY` scan intervals as a safety net;
   * - when membership changed, and once per scan interval while a node may still be owed a hand-over
   *   (younger than the longest hand-over delay): this node's part, i.e. the units it holds (hand-overs,
   *   versions), those the plan prefers it for, and its ranked units. A unit another node holds needs no
   *   look until its holder changes (a changed key): 100 nodes × 10,000 tasks would otherwise look at a
   *   million units per node join;
   * - always: the units whose owner changed, those waiting out a claim delay, those asked for (look()),
   *   and the turns units. So an idle node of 10,000 tasks does no work per scan.
   */
  #runnersToLookAt(changes: ViewChanges, sessions: readonly SessionRecord[], balanced: ReadonlyMap<string, string>): Iterable<TaskRunner> {
    const now = this.#clock.monotonic();
    const since = now - this.#lookedAtAll;
    if (changes.reread || since >= this.#timing.scanEveryMs * FULL_LOOK_EVERY) {
      this.#lookedAtAll = now;
      this.#lookedAtMine = now;
      this.#lookAt.clear();
      return this.#runners.values();
    }
    const units = new Set(this.#lookAt);
    this.#lookAt.clear();
    const youngest = Math.min(...sessions.filter((s) => s.info.id !== this.#nodeId).map((s) => s.ageMs));
    // Past the longest delay by two scans, so that the scan after a node came of age looks again.
    const maybeOwed = youngest <= this.#handoverWithinMs() + 2 * this.#timing.scanEveryMs;
    if (changes.all || (maybeOwed && now - this.#lookedAtMine >= this.#timing.scanEveryMs)) {
      this.#lookedAtMine = now;
      for (const unit of this.#held) units.add(unit);
      for (const unit of unitsPreferredFor(balanced, this.#nodeId)) units.add(unit);
      for (const runner of this.#rankedRunners()) units.add(runner.unit.name);
    }
    for (const key of changes.keys) units.add(unitOfOwnerKey(key));
    for (const unit of this.#freeSince.keys()) units.add(unit);
    for (const unit of this.#turns.units()) units.add(unit);
    return [...units].flatMap((unit) => this.#runners.get(unit) ?? []);
  }

  /** The longest a hand-over may wait for a node's age: rebalanceAfter, or a preferred task's failbackAfter. */
  #handoverWithinMs(): number {
    let ms = this.#timing.rebalanceAfterMs;
    for (const runner of this.#rankedRunners()) if (runner.def.mode.kind === 'preferred') ms = Math.max(ms, runner.def.mode.failbackAfterMs);
    return ms;
  }

  #rankedRunners(): readonly TaskRunner[] {
    this.#ranked ??= [...this.#runners.values()].filter((runner) => runner.def.mode.kind === 'preferred');
    return this.#ranked;
  }

  async #scanOnce(): Promise<ScanOutcome> {
    const session = this.#keeper.current;
    if (!session) return 'no-session';
    const changes = await this.#view.refresh();
    if (this.#state === 'closed') return 'done';
    const sessions = this.#view.sessions();
    const { versions, balanced } = membershipPlan(this.#view.membershipKey, sessions);
    if (changes.all) {
      this.#reportConflicts(versions);
      this.#excluded = new Set([...versions].filter(([, v]) => !v.eligible.has(this.#nodeId)).map(([task]) => task));
    }
    const assignment = this.#preferred(sessions, versions, balanced);
    const me = this.#nodeId;
    const now = this.#clock.monotonic();
    const toAcquire: TaskRunner[] = [];
    for (const runner of this.#runnersToLookAt(changes, sessions, balanced)) {
      const { unit, def } = runner;
      const holder = this.#view.holder(ownerKey(unit.name));
      if (!runner.lease) this.#noteHolder(unit.name, holder, session.id, changes.gapSince);
      const version = versions.get(unit.task);
      if (version && !version.eligible.has(me)) {
        // Another version of this task runs: stay out of it (and hand it over if we hold it).
        this.#freeSince.delete(unit.name);
        if (runner.lease) runner.requestHandover();
        continue;
      }
      if (runner.lease) {
        this.#freeSince.delete(unit.name);
        this.#checkHeld(runner, holder, assignment.get(unit.name), sessions);
        continue;
      }
      if (holder?.sessionId === session.id) {
        // Still ours in the store although its runner stopped (e.g. a store error while starting it):
        // re-acquiring returns the same token, so pick it up again at once.
        toAcquire.push(runner);
        continue;
      }
      if (unit.placement === 'turns') {
        if (this.#turns.wantsTurn(runner, holder, sessions, version?.eligible)) toAcquire.push(runner);
        continue;
      }
      if (holder) {
        this.#freeSince.delete(unit.name);
        continue;
      }
      if (unit.placement === 'own') {
        toAcquire.push(runner);
        continue;
      }
      const since = this.#freeSince.get(unit.name) ?? now;
      this.#freeSince.set(unit.name, since);
      const preferred = assignment.get(unit.name);
      if (preferred === me) toAcquire.push(runner);
      else if (now - since >= this.#timing.claimDelayMs && this.#mayStandIn(def.mode, sessions, version)) toAcquire.push(runner);
    }
    return (await this.#acquireAll(toAcquire)) ? 'done' : 'claims-failed';
  }

  /**
   * Takes the units of `runners` in batches, then starts the runners of those it took. Every batch is
   * taken before any runner starts: a runner's first steps read the store (its history), and those reads
   * would otherwise queue before the next batch on the handle's connection (a dead node's 3,333 tasks on
   * PostgreSQL took 2.2 s to be owned again that way). False when the store failed a batch (reported).
   */
  async #acquireAll(runners: readonly TaskRunner[]): Promise<boolean> {
    const todo = runners.filter((runner) => !runner.lease && !this.#acquiring.has(runner.unit.name));
    for (const runner of todo) this.#acquiring.add(runner.unit.name);
    try {
      let failed = false;
      const taken: Taken[] = [];
      for (const batch of slices(todo, ACQUISITION_BATCH)) if (!(await this.#acquire(batch, taken))) failed = true;
      await Promise.all(taken.map(({ runner, lease, heldUntil }) => this.#start(runner, lease, heldUntil)));
      return !failed;
    } finally {
      for (const runner of todo) this.#acquiring.delete(runner.unit.name);
    }
  }

  /**
   * Claims at once the units a hint just freed whose preferred owner, in the membership the view knows
   * now (an ended session already dropped), is this node: the scan the hint also asks for would first
   * re-read the sessions. Other nodes keep to the claim delay; a wrong guess (the view is behind) costs
   * one refused acquisition, the store deciding.
   */
  #claimFreed(units: readonly string[]): void {
    const session = this.#keeper.current;
    if (units.length === 0 || !session || this.#state === 'closed' || this.#state === 'new') return;
    const sessions = this.#view.sessions();
    const { versions, balanced } = membershipPlan(this.#view.membershipKey, sessions);
    const assignment = this.#preferred(sessions, versions, balanced);
    const mine = units.flatMap((unit) => {
      const runner = this.#runners.get(unit);
      if (!runner || runner.lease || runner.unit.placement === 'turns') return [];
      const version = versions.get(runner.unit.task);
      if (version && !version.eligible.has(this.#nodeId)) return [];
      return runner.unit.placement === 'own' || assignment.get(unit) === this.#nodeId ? [runner] : [];
    });
    // A failure is reported by #acquire; the scan that follows the hint looks at the unit again.
    if (mine.length > 0) void this.#acquireAll(mine);
  }

  /** This node's units that the view shows free and that it does not hold. */
  #freeUnits(): string[] {
    return [...this.#runners.values()].filter((r) => !r.lease && this.#view.holder(ownerKey(r.unit.name)) === undefined).map((r) => r.unit.name);
  }

  /** For a `ranked` unit, only nodes of the best rank alive may take it when its preferred node does not. */
  #mayStandIn(mode: TaskRunner['def']['mode'], sessions: readonly SessionRecord[], version: TaskVersions | undefined): boolean {
    if (mode.kind !== 'preferred') return true;
    const ranks = sessions.filter((s) => version?.eligible.has(s.info.id) ?? true).map((s) => rankOf(mode.prefer, s.info));
    const mine = sessions.find((s) => s.info.id === this.#nodeId);
    return mine !== undefined && rankOf(mode.prefer, mine.info) <= Math.min(...ranks);
  }

  #checkHeld(runner: TaskRunner, holder: Holder | undefined, preferred: string | undefined, sessions: SessionRecord[]): void {
    const lease = runner.lease;
    if (!lease) return;
    if (!holder || holder.token !== lease.token) {
      // Only trust a missing holder while our session is provably alive: then the store really moved on.
      if (lease.session.isLive()) lease.end(new NotOwnerError(`task "${runner.unit.name}": the store shows another holder`));
      return;
    }
    if (preferred === undefined || preferred === this.#nodeId || runner.unit.placement === 'turns') return;
    // A node restarted under the same id may still show its old session: judge by the youngest.
    const theirs = sessions.filter((s) => s.info.id === preferred);
    if (theirs.length === 0) return;
    const age = Math.min(...theirs.map((s) => s.ageMs));
    let after = this.#timing.rebalanceAfterMs;
    const mode = runner.def.mode;
    if (mode.kind === 'preferred') {
      const mine = sessions.find((s) => s.info.id === this.#nodeId);
      const better = mine === undefined || rankOf(mode.prefer, (theirs[0] as SessionRecord).info) < rankOf(mode.prefer, mine.info);
      if (better) after = mode.failbackAfterMs;
    }
    if (age >= after) runner.requestHandover();
  }

  /**
   * Keeps {@link #heldSeen} for a unit this node does not hold. A holder seen now extends the time; the
   * first look that finds the unit free closes it, and extends it to now: the view followed the holder
   * by the store's hints, so the ticks up to its going are counted as the holder's. When the view may
   * have missed changes meanwhile (this node could not read: its own store outage; a reconnect), only
   * up to `gapSince`, the time it was last known current: the rest stay `no-owner`.
   */
  #noteHolder(unit: string, holder: Holder | undefined, mySession: string, gapSince?: number): void {
    const now = this.#clock.now();
    if (holder && holder.sessionId !== mySession) {
      const seen = this.#heldSeen.get(unit);
      if (seen && !seen.gone) seen.until = now;
      else this.#heldSeen.set(unit, { until: now, gone: false });
      return;
    }
    const seen = this.#heldSeen.get(unit);
    // The view followed the holder up to now, unless it lost track meanwhile (a failed read, a
    // reconnect): then only up to the time it was last known current.
    if (seen && !seen.gone) this.#heldSeen.set(unit, { until: gapSince ?? now, gone: true });
  }

  /**
   * Tries to take the units of `runners` in one batch ({@link tryAcquireLeases}: a few store round trips),
   * adding what it took to `taken`. False when the store failed it (reported); true when it answered, or
   * the session is gone.
   */
  async #acquire(runners: readonly TaskRunner[], taken: Taken[]): Promise<boolean> {
    const session = this.#keeper.current;
    if (!session) return true;
    const keys = runners.map((runner) => ownerKey(runner.unit.name));
    let outcomes: AcquireOutcome[];
    try {
      outcomes = await tryAcquireLeases(this.#store, session, keys);
    } catch (error) {
      // A lost session is the keeper's to report and recover; its next session asks for a scan.
      if (error instanceof SessionExpiredError) return true;
      const what = runners.length === 1 ? `task "${runners[0]?.unit.name}"` : `${runners.length} tasks`;
      this.#emit('error', { where: `acquire ${what}`, error: toError(error) });
      return false;
    }
    outcomes.forEach((outcome, i) => {
      const runner = runners[i] as TaskRunner;
      const key = keys[i] as string;
      this.#view.note(key, 'lease' in outcome ? { key, token: outcome.lease.token, sessionId: session.id, acquiredAt: this.#clock.now() } : outcome.holder);
      if (!('lease' in outcome)) {
        this.#noteHolder(runner.unit.name, outcome.holder, session.id);
        this.#turns.lost(runner, outcome.holder);
        return;
      }
      this.#freeSince.delete(runner.unit.name);
      const seen = this.#heldSeen.get(runner.unit.name);
      this.#heldSeen.delete(runner.unit.name);
      this.#turns.acquired(runner);
      taken.push({ runner, lease: outcome.lease, heldUntil: seen?.until });
    });
    return true;
  }

  /** Hands an acquired lease to its runner, or gives it back when placement closed meanwhile. */
  async #start(runner: TaskRunner, lease: Lease, heldUntil: number | undefined): Promise<void> {
    if (this.#state === 'closed') return lease.release(new ClosedError('coordinator closed'));
    runner.own(lease, heldUntil);
    if (runner.lease === lease) this.#held.add(runner.unit.name);
  }

  /** Preferred owner per balanced or ranked unit, recomputed only when membership or declarations change. */
  #preferred(sessions: SessionRecord[], versions: ReadonlyMap<string, TaskVersions>, balanced: ReadonlyMap<string, string>): ReadonlyMap<string, string> {
    const key = this.#view.membershipKey;
    if (key === this.#assignmentKey) return this.#assignment;
    const ranked = this.#rankedRunners();
    // `balanced` is shared by the nodes of the process (membership-plan.ts): copied only to add ranked units.
    let assignment = balanced;
    if (ranked.length > 0) {
      const withRanked = new Map(balanced);
      // Ranked units stay out of the load balance: their placement is the user's choice.
      for (const runner of ranked) {
        const mode = runner.def.mode;
        if (mode.kind !== 'preferred') continue;
        const eligible = sessions.filter((s) => versions.get(runner.unit.task)?.eligible.has(s.info.id));
        const best = Math.min(...eligible.map((s) => rankOf(mode.prefer, s.info)));
        const top = eligible.filter((s) => rankOf(mode.prefer, s.info) === best).map((s) => s.info.id);
        const chosen = top.sort((a, b) => score(runner.unit.name, b) - score(runner.unit.name, a) || (a < b ? -1 : 1))[0];
        if (chosen !== undefined) withRanked.set(runner.unit.name, chosen);
      }
      assignment = withRanked;
    }
    this.#assignmentKey = key;
    this.#assignment = assignment;
    return assignment;
  }

  /** Reports each new combination of versions of a task once, naming the fields that differ. */
  #reportConflicts(versions: ReadonlyMap<string, TaskVersions>): void {
    for (const runner of this.#runners.values()) {
      const task = runner.unit.task;
      const version = versions.get(task);
      if (!version) continue;
      const seen = version.fingerprints.join(',');
      if (version.fingerprints.length < 2) {
        this.#reportedConflicts.delete(task);
        continue;
      }
      if (this.#reportedConflicts.get(task) === seen) continue;
      this.#reportedConflicts.set(task, seen);
      void this.#describeConflict(task, runner.def.fingerprint, runner.def.declaration, version)
        .then((error) => {
          this.#emit('task:conflict', {
            task,
            fingerprints: version.fingerprints,
            active: version.active,
            excluded: version.active !== runner.def.fingerprint,
            error,
          });
        })
        .catch((error: unknown) => this.#emit('error', { where: `task "${task}": conflict report`, error: toError(error) }));
    }
  }

  async #describeConflict(task: TaskName, mine: string, declaration: NormalizedDeclaration, version: TaskVersions): Promise<ConfigError> {
    const other = mine === version.active ? version.fingerprints.find((f) => f !== mine) : version.active;
    const theirs = other ? await this.#store.get<NormalizedDeclaration>(declarationVersionKey(task, other)) : null;
    const fields = theirs ? differingFields(declaration, theirs.value) : [];
    const what = fields.length > 0 ? `fields ${fields.join(', ')} differ` : 'their options differ';
    const who = mine === version.active ? 'this node runs it; nodes with the other version stay out' : 'this node stays out of it until the other version is gone';
    return new ConfigError(`task "${task}": live nodes declare it differently (${what}; versions ${version.fingerprints.join(', ')}); ${who}`);
  }
}
