/**
 * The public entry point: a cluster node. Every process of the fleet creates one with the same name and
 * store, declares the same tasks, and starts it; baton then runs each task's ticks in exactly one node.
 *
 * ```ts
 * const cluster = await createCluster({ store: 'sqlite:./baton.db', name: 'shop' });
 * cluster.task('sync-orders', { every: '10s' }, async (ctx) => {
 *   const since = await ctx.checkpoint.get();
 *   const next = await pullOrders(since, { signal: ctx.signal });
 *   await ctx.checkpoint.commit(next);
 * });
 * await cluster.start();
 * // … on shutdown:
 * await cluster.close();
 * ```
 */
import { systemClock, type Clock } from './core/clock.js';
import { describe as describeValue, parseDuration, type Duration } from './core/duration.js';
import { BatonError, ClosedError, ConfigError, TaskDuplicateError, toError } from './core/errors.js';
import { TypedEmitter, type Listener } from './core/events.js';
import { defaultLogger, type Logger } from './core/logger.js';
import { BATON_VERSION, defaultNodeId, type NodeInfo, type TaskDeclaration } from './core/node-info.js';
import { currentProcessIdentity } from './core/process-identity.js';
import { hostname } from 'node:os';
import { SessionKeeper } from './cluster/session-keeper.js';
import type { Lease } from './cluster/lease.js';
import { taskOfOwnerKey } from './scheduler/keys.js';
import { Primitives } from './cluster/primitives.js';
import type { LockHandle, LockOptions } from './cluster/lock.js';
import type { Semaphore, SemaphoreOptions } from './cluster/semaphore.js';
import type { SharedState } from './cluster/shared-state.js';
import type { ElectionEvent, ElectionsOptions } from './cluster/election.js';
import { resolveSessionTiming, type SessionTimingOptions } from './cluster/session-timing.js';
import { Coordinator, type CoordinatorTiming } from './scheduler/coordinator.js';
import type { BatonEvents, Emit } from './scheduler/events.js';
import { TASK_OWNER_PREFIX } from './scheduler/keys.js';
import {
  defineTask,
  publishDeclarations,
  type DeclarationRecord,
  type DispatchHandlers,
  type TaskDefinition,
  type TaskHandler,
  type TaskOptions,
} from './scheduler/task.js';
import { unitsOf } from './scheduler/modes.js';
import { listDeadLetters, QueueConsumer, requeueDeadLetter, type DeadLetter } from './scheduler/queue.js';
import { TaskRunner } from './scheduler/task-runner.js';
import { ControlWatch } from './scheduler/control-watch.js';
import { validateTaskSet } from './scheduler/task.js';
import { clearPause, requireDeclaration, triggerTask, unitsToTrigger, writePause } from './scheduler/controls.js';
import { assertTaskName } from './scheduler/keys.js';
import { readStatus, type StatusSnapshot } from './monitor/status.js';
import type { Monitor, MonitorOptions } from './monitor/monitor.js';
import type { Store } from './stores/contract.js';
import { openStore, redactStoreUrl } from './stores/open-store.js';

export interface ClusterOptions extends SessionTimingOptions {
  /** A store URL (`sqlite:./baton.db`, `memory:`) or an opened Store (then you close it yourself). */
  readonly store: string | Store;
  /** Cluster name: nodes with the same name and store form one cluster. Default `"default"`. */
  readonly name?: string;
  /** This node's id (default `host-pid-random`) and labels (e.g. `{ region: 'eu' }`). */
  readonly node?: { readonly id?: string; readonly labels?: Readonly<Record<string, string>> };
  /**
   * Longest time between two looks at ownership when the store sends no hint. Bounds failover after
   * host loss to about TTL + scanEvery. Default min(1s, TTL / 4).
   */
  readonly scanEvery?: Duration;
  /**
   * How long a free task waits for its preferred node before any other node takes it. Default 300ms.
   * Too long delays failover when the preferred node is stuck; too short makes placement uneven.
   */
  readonly claimDelay?: Duration;
  /** How long a node must have been alive before tasks are handed over to it (rebalancing). Default: TTL. */
  readonly rebalanceAfter?: Duration;
  /** The clock (tests pass a FakeClock). Default: the system clock. */
  readonly clock?: Clock;
  /** A pino-compatible logger. Default: pino on stderr at BATON_LOG_LEVEL (default "warn"). */
  readonly logger?: Logger;
}

export type ClusterState = 'new' | 'starting' | 'running' | 'closing' | 'closed';

const CLUSTER_NAME = /^[A-Za-z0-9][\w.-]{0,63}$/;
const CLUSTER_OPTIONS: ReadonlySet<string> = new Set([
  'store', 'name', 'node', 'ttl', 'renewEvery', 'safetyMargin', 'scanEvery', 'claimDelay', 'rebalanceAfter', 'clock', 'logger',
] satisfies (keyof ClusterOptions)[]);

export class Cluster {
  readonly name: string;
  readonly store: Store;
  readonly #ownsStore: boolean;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #events: TypedEmitter<BatonEvents>;
  readonly #emit: Emit;
  readonly #keeper: SessionKeeper;
  readonly #coordinatorTiming: CoordinatorTiming;
  readonly #definitions = new Map<string, TaskDefinition>();
  /** By unit name (modes.ts): a task's name, or `task#i`, `task@node`. */
  readonly #runners = new Map<string, TaskRunner>();
  readonly #consumers: QueueConsumer[] = [];
  readonly #monitors = new Set<Monitor>();
  /** Watches triggers and pauses for every runner of this node (one store watch and poll, not one per task). */
  readonly #controlWatch: ControlWatch;
  /** Concurrency slot keys held by this node's runs (see scheduler/slots.ts). */
  readonly #localSlots = new Set<string>();
  readonly #nodeId: string;
  readonly #labels: Readonly<Record<string, string>>;
  readonly #startedAt: number;
  #info: NodeInfo;
  #coordinator: Coordinator | undefined;
  #state: ClusterState = 'new';
  #closing: Promise<void> | undefined;
  readonly #primitives: Primitives;
  /** Aborted as close() begins: lock waits and primitive streams end before the session does. */
  readonly #primitivesClosed = new AbortController();
  #starting: Promise<void> | undefined;
  /** Tasks being removed (removeTask): their runners stop outside #runners. */
  readonly #removals = new Set<Promise<void>>();

  /** @internal use {@link createCluster}. */
  constructor(options: ClusterOptions, store: Store, ownsStore: boolean, logger: Logger) {
    this.name = store.cluster;
    this.store = store;
    this.#ownsStore = ownsStore;
    this.#clock = options.clock ?? systemClock;
    this.#log = logger.child({ cluster: store.cluster });
    this.#events = new TypedEmitter<BatonEvents>((error, event) =>
      this.#log.error({ err: toError(error), event }, 'event listener threw; other listeners still ran'),
    );
    this.#emit = (event, payload) => {
      this.#logEvent(event, payload);
      this.#events.emit(event, payload);
    };
    const timing = resolveSessionTiming(options);
    this.#coordinatorTiming = resolveCoordinatorTiming(options, timing.ttlMs);
    this.#nodeId = options.node?.id ?? defaultNodeId();
    this.#labels = { ...(options.node?.labels ?? {}) };
    this.#startedAt = this.#clock.now();
    this.#info = this.#nodeInfo();
    this.#keeper = new SessionKeeper({
      store,
      info: this.#info,
      timing,
      clock: this.#clock,
      emit: (event, payload) => this.#emit(event, payload as never),
    });
    this.#controlWatch = new ControlWatch({
      store,
      clock: this.#clock,
      onError: (error) => this.#emit('error', { where: 'controls (triggers, pauses)', error }),
    });
    this.#primitives = new Primitives({
      store,
      keeper: this.#keeper,
      clock: this.#clock,
      node: () => this.#info,
      pollMs: this.#coordinatorTiming.scanEveryMs,
      closed: this.#primitivesClosed.signal,
      assertRunning: (what) => {
        if (this.#state !== 'running') throw new BatonError('INVALID_STATE', `cluster "${this.name}": ${what} needs a running cluster (state: ${this.#state})`);
      },
      tasks: () => [...this.#definitions.keys()],
      ownerPrefix: TASK_OWNER_PREFIX,
      on: (event, listener) => this.#events.on(event, listener as Listener<BatonEvents[typeof event]>),
      leaseOf: (task) => this.#runners.get(task)?.lease,
    });
  }

  /** This node as other nodes see it. */
  get node(): NodeInfo {
    return this.#info;
  }

  get state(): ClusterState {
    return this.#state;
  }

  /**
   * Declares a task. Every node declares the same tasks; each tick runs on one of them.
   * @throws ConfigError / ScheduleError / DurationError for bad options, TaskDuplicateError for a name
   *   declared twice, BatonError INVALID_STATE after start().
   */
  task<T = unknown>(name: string, options: TaskOptions & { readonly mode?: Exclude<TaskOptions['mode'], 'dispatch'> }, handler: TaskHandler<T>): this;
  /** A `dispatch` task: `produce` runs on one node per tick and enqueues items; every node `consume`s them. */
  task<P = unknown, T = unknown>(name: string, options: TaskOptions & { readonly mode: 'dispatch' }, handlers: DispatchHandlers<P, T>): this;
  task(name: string, options: TaskOptions, handler: TaskHandler<never> | DispatchHandlers<never, never>): this;
  task(name: string, options: TaskOptions, handler: TaskHandler<never> | DispatchHandlers<never, never>): this {
    if (this.#state !== 'new') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": declare task "${name}" before start() (state: ${this.#state})`);
    }
    const definition = defineTask(name, options, handler);
    if (this.#definitions.has(definition.name)) {
      throw new TaskDuplicateError(`cluster "${this.name}": task "${definition.name}" is declared twice`);
    }
    this.#definitions.set(definition.name, definition);
    return this;
  }

  /** Subscribes to an event (see {@link BatonEvents}); returns the unsubscribe function. */
  on<K extends keyof BatonEvents>(event: K, listener: Listener<BatonEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Joins the cluster: opens the session and starts competing for the declared tasks. Resolves once the
   * session is open (tasks are taken in the background). On failure nothing is left running.
   */
  start(): Promise<void> {
    if (this.#state !== 'new') {
      return Promise.reject(new BatonError('INVALID_STATE', `cluster "${this.name}": start() called in state ${this.#state}`));
    }
    try {
      validateTaskSet(this.#definitions);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#state = 'starting';
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    this.#info = this.#nodeInfo();
    this.#keeper.updateInfo(this.#info);
    try {
      await publishDeclarations(this.store, this.#definitions.values(), this.#nodeId, this.#clock.now());
      await this.#keeper.start();
    } catch (error) {
      this.#state = 'closed';
      if (this.#ownsStore) await this.store.close().catch(() => undefined);
      throw error;
    }
    if (this.#closing) {
      // close() was called while the session was opening: it waits for this start and closes the session.
      throw new ClosedError(`cluster "${this.name}": closed while starting`);
    }
    for (const definition of this.#definitions.values()) {
      this.#createRunners(definition);
      if (definition.mode.kind === 'dispatch' && definition.consume) {
        this.#consumers.push(
          new QueueConsumer({
            task: definition.name,
            queue: definition.mode.queue,
            consume: definition.consume,
            store: this.store,
            clock: this.#clock,
            node: this.#info,
            emit: this.#emit,
            log: this.#log,
            mayConsume: () => this.#coordinator?.mayRun(definition.name) ?? false,
          }),
        );
      }
    }
    this.#coordinator = new Coordinator({
      store: this.store,
      keeper: this.#keeper,
      runners: this.#runners,
      clock: this.#clock,
      emit: this.#emit,
      timing: this.#coordinatorTiming,
      nodeId: this.#nodeId,
    });
    this.#state = 'running';
    this.#controlWatch.start();
    this.#coordinator.start();
    for (const consumer of this.#consumers) consumer.start();
  }

  /** Creates the runners of a task's units (modes.ts) and adds them to `#runners`. */
  #createRunners(definition: TaskDefinition): TaskRunner[] {
    const created: TaskRunner[] = [];
    for (const unit of unitsOf(definition.name, definition.mode, this.#nodeId)) {
      const runner = new TaskRunner(definition, unit, {
        store: this.store,
        clock: this.#clock,
        node: this.#info,
        emit: this.#emit,
        log: this.#log,
        onLeaseEnded: () => this.#coordinator?.requestScan(),
        localSlots: this.#localSlots,
        controls: this.#controlWatch,
      });
      this.#runners.set(unit.name, runner);
      created.push(runner);
    }
    return created;
  }

  /**
   * Declares a task on a running node (what {@link task} does before start()): publishes its declaration
   * and this node's new task list, and starts competing for it. Other tasks are untouched: their leases
   * and runs go on. Used by the agent's config reload. Not for `dispatch` tasks (declare those before start()).
   * On a Store implementation without `updateSessionInfo` (every bundled store has it) other nodes see
   * this node's task list of its session's opening until the session is re-opened.
   * @throws like {@link task}; ConfigError for a dispatch task; BatonError INVALID_STATE unless running.
   */
  async addTask(name: string, options: TaskOptions & { readonly mode?: Exclude<TaskOptions['mode'], 'dispatch'> }, handler: TaskHandler<never>): Promise<void> {
    if (this.#state !== 'running') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": addTask("${name}") needs a running cluster (state: ${this.#state}); before start() use task()`);
    }
    const definition = defineTask(name, options, handler);
    if (definition.mode.kind === 'dispatch') throw new ConfigError(`task "${definition.name}": a dispatch task is declared before start(), with task()`);
    if (this.#definitions.has(definition.name)) throw new TaskDuplicateError(`cluster "${this.name}": task "${definition.name}" is declared twice`);
    validateTaskSet(new Map([...this.#definitions, [definition.name, definition]]));
    // The declaration first: a node reading this node's task list must find the declaration it names.
    await publishDeclarations(this.store, [definition], this.#nodeId, this.#clock.now());
    if (this.#state !== 'running') throw new ClosedError(`cluster "${this.name}": closed while adding task "${definition.name}"`);
    this.#definitions.set(definition.name, definition);
    const runners = this.#createRunners(definition);
    await this.#publishInfo();
    for (const runner of runners) this.#coordinator?.unitAdded(runner);
  }

  /**
   * Removes a task from a running node: aborts its runs here (their signal's reason says so), waits for
   * them, and releases its ownership so another declaring node takes it at once. Other tasks are untouched.
   * @returns false when this node does not declare the task.
   * @throws ConfigError when another task of this node depends on it; INVALID_STATE unless running.
   */
  async removeTask(name: string): Promise<boolean> {
    if (this.#state !== 'running') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": removeTask("${name}") needs a running cluster (state: ${this.#state})`);
    }
    const definition = this.#definitions.get(name);
    if (!definition) return false;
    const rest = new Map(this.#definitions);
    rest.delete(name);
    for (const other of rest.values()) {
      if (other.policy.dependsOn.includes(name)) throw new ConfigError(`task "${name}": cannot be removed while task "${other.name}" depends on it`);
    }
    this.#definitions.delete(name);
    const runners = [...this.#runners.values()].filter((runner) => runner.unit.task === name);
    for (const runner of runners) {
      // Out of the map first: the next placement scan no longer competes for it.
      this.#runners.delete(runner.unit.name);
      this.#coordinator?.unitRemoved(runner.unit.name);
    }
    await this.#publishInfo();
    const stopping = Promise.all(
      runners.map(async (runner) => {
        const lease = await runner.stop(new ClosedError(`task "${runner.unit.name}": removed from this node`));
        if (!lease) return;
        try {
          await lease.release(new ClosedError(`task "${runner.unit.name}": removed from this node`));
          this.#emit('owner:released', { task: runner.unit.name, token: lease.token, reason: 'removed' });
        } catch (error) {
          // The key then frees with the session's TTL: slower, still safe.
          this.#emit('error', { where: `task "${runner.unit.name}": release after removal`, error: toError(error) });
        }
      }),
    ).then(() => undefined);
    // close() waits for it too: these runners are no longer in #runners, yet must not outlive close().
    this.#removals.add(stopping);
    try {
      await stopping;
    } finally {
      this.#removals.delete(stopping);
    }
    return true;
  }

  /** Publishes this node's task list on its live session (see Store.updateSessionInfo). */
  async #publishInfo(): Promise<void> {
    this.#info = this.#nodeInfo();
    try {
      await this.#keeper.publishInfo(this.#info);
    } catch (error) {
      // The store is unreachable: the task list shows again with the next session; nothing else depends on it.
      this.#emit('error', { where: 'publish node info', error: toError(error) });
    }
  }

  /**
   * Takes a cluster-wide lock with a fencing token; waits until it is free unless `wait` says otherwise.
   * `await using lock = await cluster.lock('x')` releases it at the end of the scope. See docs/primitives.md.
   * @throws LockHeldError, SessionExpiredError, ClosedError, the signal's reason; INVALID_STATE unless running.
   */
  lock(name: string, options?: LockOptions): Promise<LockHandle> {
    return this.#primitives.lock(name, options);
  }

  /** Runs `fn` under lock `name` and releases it when `fn` settles (see {@link lock}). */
  withLock<T>(name: string, fn: (lock: LockHandle) => Promise<T> | T): Promise<T>;
  withLock<T>(name: string, options: LockOptions, fn: (lock: LockHandle) => Promise<T> | T): Promise<T>;
  withLock<T>(name: string, optionsOrFn: LockOptions | ((lock: LockHandle) => Promise<T> | T), fn?: (lock: LockHandle) => Promise<T> | T): Promise<T> {
    return this.#primitives.withLock(name, optionsOrFn, fn);
  }

  /** A cluster-wide semaphore: at most `limit` permits held at once across every node. */
  semaphore(name: string, options: SemaphoreOptions): Semaphore {
    return this.#primitives.semaphore(name, options);
  }

  /**
   * A small cluster-wide value (JSON, ≤ 64 KiB) with versions, compare-and-set and a change stream.
   * (Named `sharedState`, not `state`: {@link state} is the node's lifecycle state.)
   */
  sharedState<T = unknown>(name: string): SharedState<T> {
    return this.#primitives.state<T>(name);
  }

  /** This node's role (leader / follower) and the owner of each task, as an async iterator of changes. */
  elections(options?: ElectionsOptions): AsyncIterableIterator<ElectionEvent> {
    return this.#primitives.elections(options);
  }

  /**
   * Asks the task's owner, wherever it runs, to run the task once now, outside its schedule: writes
   * `trigger/<task>/<id>` to the store. The run's `tick` is the request time and its record shows
   * `trigger: true`; it is claimed once like any tick. Works from any node. See docs/scheduling.md.
   * @returns the trigger's id. @throws ConfigError for a task no node declared; INVALID_STATE once closed.
   */
  async trigger(task: string): Promise<string> {
    const declaration = await this.#assertKnownTask(task, 'trigger');
    const mine = this.#definitions.get(task)?.mode;
    const units = await unitsToTrigger(this.store, task, mine?.kind ?? declaration?.mode, mine?.kind === 'sharded' ? mine.count : declaration?.shards, this.#nodeId);
    const id = await triggerTask(this.store, task, units, this.#nodeId, this.#clock.now());
    this.#emit('task:triggered', { task, id });
    return id;
  }

  /** Items of a `dispatch` task that failed `queue.maxAttempts` deliveries, oldest first. */
  async deadLetters<P = unknown>(task: string): Promise<DeadLetter<P>[]> {
    assertTaskName(task);
    return listDeadLetters<P>(this.store, task);
  }

  /** Puts a dead letter of a `dispatch` task back into its queue with a fresh attempt count. False when absent. */
  async requeueDeadLetter(task: string, id: string): Promise<boolean> {
    assertTaskName(task);
    return requeueDeadLetter(this.store, task, id);
  }

  /**
   * Pauses the task cluster-wide: its owner runs no tick until {@link resume} (ticks meanwhile are
   * recorded missed, reason `paused`, in one record). A run in progress is not aborted.
   */
  async pause(task: string): Promise<void> {
    await this.#assertKnownTask(task, 'pause');
    await writePause(this.store, task, this.#nodeId, this.#clock.now());
    this.#emit('task:paused', { task });
  }

  /** Resumes a paused task cluster-wide; its next tick runs as scheduled. Resuming a running task is harmless. */
  async resume(task: string): Promise<void> {
    await this.#assertKnownTask(task, 'resume');
    await clearPause(this.store, task);
    this.#emit('task:resumed', { task });
  }

  async #assertKnownTask(task: string, what: string): Promise<DeclarationRecord | undefined> {
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": ${what}("${task}") after close() (state: ${this.#state})`);
    }
    assertTaskName(task);
    if (this.#definitions.has(task)) return undefined;
    return requireDeclaration(this.store, task, what);
  }

  /**
   * Starts a monitor inside this node: the HTTP API, event stream, `/metrics`, dashboard and alerts of
   * `baton serve`, on this cluster's store (see docs/monitoring.md). Closed with the cluster.
   * The monitor module (and prom-client) is loaded only when this is called.
   */
  async monitor(options: Omit<MonitorOptions, 'store' | 'cluster' | 'clock' | 'logger'> = {}): Promise<Monitor> {
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": monitor() after close() (state: ${this.#state})`);
    }
    const { startMonitor } = await import('./monitor/monitor.js');
    const monitor = await startMonitor({ ...options, store: this.store, clock: this.#clock, logger: this.#log });
    this.#monitors.add(monitor);
    return monitor;
  }

  /** A snapshot of the whole cluster, read from the store. */
  async status(): Promise<StatusSnapshot> {
    return readStatus(this.store);
  }

  /**
   * Leaves the cluster cleanly: stops taking tasks, aborts running handlers and waits for them, releases
   * every task so a standby takes over at once, closes the session (and the store if opened from a URL).
   * Resolves when nothing of this node runs any more. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // A start() in progress finishes first (and starts nothing): the session it opens must not outlive close().
    await this.#starting?.catch(() => undefined);
    const wasRunning = this.#state === 'running' || this.#state === 'starting';
    this.#state = 'closing';
    this.#primitivesClosed.abort(new ClosedError(`cluster "${this.name}": closing`));
    try {
      await Promise.all([...this.#monitors].map((monitor) => monitor.close()));
      await this.#coordinator?.close();
      await Promise.all(this.#consumers.map((consumer) => consumer.stop()));
      await Promise.all(this.#removals);
      const held = (await Promise.all([...this.#runners.values()].map((runner) => runner.stop()))).filter(
        (lease): lease is Lease => lease !== undefined,
      );
      // Handlers have stopped: now free every key at once by closing the session (invariant 5).
      if (wasRunning) await this.#keeper.close();
      for (const lease of held) {
        this.#emit('owner:released', { task: taskOfOwnerKey(lease.key), token: lease.token, reason: 'shutdown' });
      }
    } finally {
      this.#controlWatch.close();
      if (this.#ownsStore) await this.store.close();
      this.#state = 'closed';
    }
  }

  #nodeInfo(): NodeInfo {
    const tasks: Record<string, TaskDeclaration> = {};
    for (const d of this.#definitions.values()) {
      tasks[d.name] = {
        schedule: d.schedule.description,
        mode: d.mode.kind,
        fingerprint: d.fingerprint,
        ...(d.mode.kind === 'sharded' ? { shards: d.mode.count } : {}),
      };
    }
    return {
      id: this.#nodeId,
      host: hostname(),
      pid: process.pid,
      version: BATON_VERSION,
      labels: this.#labels,
      startedAt: this.#startedAt,
      process: currentProcessIdentity(),
      tasks,
    };
  }

  #logEvent<K extends keyof BatonEvents>(event: K, payload: BatonEvents[K]): void {
    const fields = { event, ...(payload as object) } as Record<string, unknown>;
    for (const [k, v] of Object.entries(fields)) if (typeof v === 'bigint') fields[k] = v.toString();
    switch (event) {
      case 'error':
      case 'session:lost':
      case 'session:renew-failed':
      case 'session:stalled':
        this.#log.warn(fields, String(event));
        break;
      case 'session:opened':
        // A recovery is as worth seeing as the loss before it.
        if ((payload as BatonEvents['session:opened']).replaces) this.#log.warn(fields, 'session re-opened after a loss');
        else this.#log.info(fields, String(event));
        break;
      case 'run:started':
      case 'run:finished':
      case 'session:renewed':
        this.#log.debug(fields, String(event));
        break;
      default:
        this.#log.info(fields, String(event));
    }
  }
}

function resolveCoordinatorTiming(options: ClusterOptions, ttlMs: number): CoordinatorTiming {
  const scanEveryMs = parseDuration(options.scanEvery ?? Math.min(1000, Math.floor(ttlMs / 4)), 'scanEvery');
  const claimDelayMs = parseDuration(options.claimDelay ?? 300, 'claimDelay');
  const rebalanceAfterMs = parseDuration(options.rebalanceAfter ?? ttlMs, 'rebalanceAfter');
  if (scanEveryMs < 10) throw new ConfigError(`scanEvery: must be at least 10ms, got ${scanEveryMs}ms`);
  if (scanEveryMs >= ttlMs) throw new ConfigError(`scanEvery (${scanEveryMs}ms) must be less than ttl (${ttlMs}ms)`);
  return { scanEveryMs, claimDelayMs, rebalanceAfterMs };
}

const NODE_ID = /^[\w.:@-]{1,128}$/;

/** The node id goes into keys (`task@node`) and the labels into placement (`prefer`): both plain strings. */
function validateNode(node: unknown): void {
  if (node === undefined) return;
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw new ConfigError(`node: must be { id?, labels? }, got ${describeValue(node)}`);
  const { id, labels, ...rest } = node as { id?: unknown; labels?: unknown };
  if (Object.keys(rest).length > 0) throw new ConfigError(`node: unknown field ${Object.keys(rest).map((k) => JSON.stringify(k)).join(', ')} (known: id, labels)`);
  if (id !== undefined && (typeof id !== 'string' || !NODE_ID.test(id))) {
    throw new ConfigError(`node.id: expected 1–128 letters, digits, '_', '.', ':', '@' or '-', got ${describeValue(id)}`);
  }
  if (labels === undefined) return;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw new ConfigError(`node.labels: must be an object of strings, got ${describeValue(labels)}`);
  for (const [key, value] of Object.entries(labels)) {
    if (typeof value !== 'string') throw new ConfigError(`node.labels.${key}: must be a string, got ${describeValue(value)}`);
  }
}

/**
 * Creates a cluster node: validates every option and opens the store. Nothing runs until `start()`.
 * @throws ConfigError, DurationError, StoreUrlError, StoreUnavailableError — each naming the field.
 */
export async function createCluster(options: ClusterOptions): Promise<Cluster> {
  if (typeof options !== 'object' || options === null) throw new ConfigError('createCluster: options must be an object');
  const unknown = Object.keys(options).filter((key) => !CLUSTER_OPTIONS.has(key));
  if (unknown.length > 0) {
    throw new ConfigError(
      `createCluster: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...CLUSTER_OPTIONS].join(', ')})`,
    );
  }
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || !CLUSTER_NAME.test(name)) {
    throw new ConfigError(
      `name: expected 1–64 letters, digits, '_', '.' or '-' starting with a letter or digit, got ${JSON.stringify(options.name)}`,
    );
  }
  if (options.store === undefined) throw new ConfigError('store: required, e.g. "sqlite:./baton.db" or "memory:"');
  validateNode(options.node);
  // Validate timings before opening anything, so a bad option leaves nothing half-open.
  resolveCoordinatorTiming(options, resolveSessionTiming(options).ttlMs);
  const logger = options.logger ?? (await defaultLogger());
  const ownsStore = typeof options.store === 'string';
  const store =
    typeof options.store === 'string'
      ? await openStore(options.store, { cluster: name, ...(options.clock ? { clock: options.clock } : {}) })
      : options.store;
  if (options.name !== undefined && store.cluster !== name) {
    throw new ConfigError(`store: opened for cluster "${store.cluster}" but name is "${name}"`);
  }
  try {
    return new Cluster(options, store, ownsStore, logger);
  } catch (error) {
    if (ownsStore) await store.close();
    throw error;
  } finally {
    if (ownsStore) logger.debug({ store: redactStoreUrl(options.store as string) }, 'store opened');
  }
}
