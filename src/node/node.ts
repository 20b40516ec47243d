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
import { hostname } from 'node:os';
import { systemClock, type Clock } from '../core/clock.js';
import { BatonError, ClosedError, ConfigError, toError } from '../core/errors.js';
import { TypedEmitter, type Listener } from '../core/events.js';
import { defaultLogger, type Logger } from '../core/logger.js';
import { BATON_VERSION, defaultNodeId, type NodeInfo } from '../core/node-info.js';
import { currentProcessIdentity } from '../core/process-identity.js';
import type { LockHandle, LockOptions } from '../cluster/lock.js';
import { Primitives } from '../cluster/primitives.js';
import type { Semaphore, SemaphoreOptions } from '../cluster/semaphore.js';
import { SessionKeeper } from '../cluster/session-keeper.js';
import { resolveSessionTiming } from '../cluster/session-timing.js';
import type { SharedState } from '../cluster/shared-state.js';
import { resolveCoordinatorTiming } from '../scheduler/coordinator.js';
import { publishTaskSet } from '../scheduler/task-sets.js';
import { electionEvents, type ElectionEvent, type ElectionsOptions } from '../scheduler/elections.js';
import type { BatonEvents, Emit } from '../scheduler/events.js';
import type { DeadLetter } from '../scheduler/queue.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { DispatchHandlers, TaskHandler, TaskOptions } from '../scheduler/task.js';
import type { Monitor, MonitorOptions } from '../monitor/monitor.js';
import { readStatus, type StatusSnapshot } from '../monitor/status.js';
import type { Store } from '../stores/contract.js';
import { openStore } from '../stores/open-store.js';
import { redactUrl } from '../core/redact.js';
import { logEvent } from './log-events.js';
import { StoreClock } from '../cluster/store-clock.js';
import { validateClusterOptions, type ClusterOptions } from './options.js';

export type { ClusterOptions } from './options.js';

export type ClusterState = 'new' | 'starting' | 'running' | 'closing' | 'closed';

export class Cluster {
  readonly name: string;
  readonly store: Store;
  readonly #ownsStore: boolean;
  readonly #clock: Clock;
  /** The store's time, for schedules: ticks are wall times every node must agree on. */
  readonly #storeClock: StoreClock;
  /** A store-time sample in flight (close() waits for it). */
  #sampling: Promise<void> | undefined;
  readonly #log: Logger;
  readonly #events: TypedEmitter<BatonEvents>;
  readonly #emit: Emit;
  readonly #keeper: SessionKeeper;
  readonly #scheduler: Scheduler;
  readonly #primitives: Primitives;
  readonly #monitors = new Set<Monitor>();
  readonly #nodeId: string;
  readonly #labels: Readonly<Record<string, string>>;
  readonly #startedAt: number;
  readonly #pollMs: number;
  #info: NodeInfo;
  #state: ClusterState = 'new';
  #closing: Promise<void> | undefined;
  /** The declarations this node writes after its start, when it stored a new task list (task-sets.ts). */
  #declaring: Promise<void> | undefined;
  /** Aborted as close() begins: lock waits, primitive and election streams end before the session does. */
  readonly #primitivesClosed = new AbortController();
  #starting: Promise<void> | undefined;

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
      logEvent(this.#log, event, payload);
      this.#events.emit(event, payload);
    };
    const timing = resolveSessionTiming(options);
    const coordinatorTiming = resolveCoordinatorTiming(options, timing.ttlMs);
    this.#pollMs = coordinatorTiming.scanEveryMs;
    this.#nodeId = options.node?.id ?? defaultNodeId();
    this.#labels = { ...(options.node?.labels ?? {}) };
    this.#startedAt = this.#clock.now();
    this.#storeClock = new StoreClock(this.#clock, store);
    this.#keeper = new SessionKeeper({
      store,
      info: this.#identity({}),
      timing,
      clock: this.#clock,
      emit: (event, payload) => {
        this.#emit(event, payload as never);
        // Riding on the heartbeat: no timer of its own, and never while the store is unreachable.
        if (event === 'session:renewed') this.#sampleStoreTime();
      },
    });
    this.#scheduler = new Scheduler({
      store,
      keeper: this.#keeper,
      clock: this.#storeClock,
      emit: this.#emit,
      log: this.#log,
      nodeId: this.#nodeId,
      timing: coordinatorTiming,
      node: () => this.#info,
      publishInfo: () => this.#publishInfo(),
      label: `cluster "${store.cluster}"`,
      clockForwardSince: (since) => this.#storeClock.forwardSince(since),
    });
    this.#info = this.#nodeInfo();
    this.#primitives = new Primitives({
      store,
      keeper: this.#keeper,
      clock: this.#clock,
      node: () => this.#info,
      pollMs: this.#pollMs,
      onError: (where, error) => this.#emit('error', { where, error }),
      closed: this.#primitivesClosed.signal,
      assertRunning: (what) => this.#assertRunning(what),
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
    this.#scheduler.declare(name, options, handler);
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
      this.#scheduler.validate();
    } catch (error) {
      return Promise.reject(error);
    }
    this.#state = 'starting';
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    let declare = false;
    try {
      await this.#storeClock.sample();
      // The session opens saying whether this node's clock is bounded (it steps aside if not).
      this.#info = this.#nodeInfo();
      const published = await publishTaskSet(this.store, this.#info);
      this.#keeper.updateInfo(published.info);
      declare = published.declarations;
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
    this.#state = 'running';
    this.#scheduler.start();
    if (declare) {
      this.#declaring = this.#scheduler
        .publishDeclarations(this.#primitivesClosed.signal)
        .catch((error: unknown) => this.#emit('error', { where: 'publish declarations', error: toError(error) }));
    }
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
    await this.#scheduler.addTask(name, options, handler);
  }

  /**
   * Removes a task from a running node: aborts its runs here (their signal's reason says so), waits for
   * them, and releases its units so another node takes it at once. Other tasks are untouched.
   * @returns false when this node does not declare the task.
   * @throws ConfigError when another task of this node depends on it; INVALID_STATE unless running.
   */
  async removeTask(name: string): Promise<boolean> {
    if (this.#state !== 'running') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": removeTask("${name}") needs a running cluster (state: ${this.#state})`);
    }
    return this.#scheduler.removeTask(name);
  }

  /** Publishes this node's task list on its live session (see Store.updateSessionInfo). */
  async #publishInfo(): Promise<void> {
    this.#info = this.#nodeInfo();
    try {
      // Every declaration of the list is already stored: those of the start, and the added one (addTask).
      await this.#keeper.publishInfo((await publishTaskSet(this.store, this.#info)).info);
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
    return electionEvents(
      {
        store: this.store,
        clock: this.#clock,
        node: () => this.#info,
        pollMs: this.#pollMs,
        onError: (error) => this.#emit('error', { where: 'elections', error }),
        closed: this.#primitivesClosed.signal,
        assertRunning: (what) => this.#assertRunning(what),
        tasks: () => this.#scheduler.taskNames(),
        on: (event, listener) => this.#events.on(event, listener as Listener<BatonEvents[typeof event]>),
        leaseOf: (task) => this.#scheduler.leaseOf(task),
      },
      options,
    );
  }

  /**
   * Asks the task's owner, wherever it runs, to run the task once now, outside its schedule: writes
   * `trigger/<task>/<id>` to the store. The run's `tick` is the request time and its record shows
   * `trigger: true`; it is claimed once like any tick. Works from any node. See docs/scheduling.md.
   * @returns the trigger's id. @throws ConfigError for a task no node declared; INVALID_STATE once closed.
   */
  trigger(task: string): Promise<string> {
    this.#assertOpen('trigger', task);
    return this.#scheduler.trigger(task);
  }

  /** Items of a `dispatch` task that failed `queue.maxAttempts` deliveries, oldest first. */
  deadLetters<P = unknown>(task: string): Promise<DeadLetter<P>[]> {
    return this.#scheduler.deadLetters<P>(task);
  }

  /** Puts a dead letter of a `dispatch` task back into its queue with a fresh attempt count. False when absent. */
  requeueDeadLetter(task: string, id: string): Promise<boolean> {
    return this.#scheduler.requeueDeadLetter(task, id);
  }

  /**
   * Pauses the task cluster-wide: its owner runs no tick until {@link resume} (ticks meanwhile are
   * recorded missed, reason `paused`, in one record). A run in progress is not aborted.
   */
  pause(task: string): Promise<void> {
    this.#assertOpen('pause', task);
    return this.#scheduler.pause(task);
  }

  /** Resumes a paused task cluster-wide; its next tick runs as scheduled. Resuming a running task is harmless. */
  resume(task: string): Promise<void> {
    this.#assertOpen('resume', task);
    return this.#scheduler.resume(task);
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
    const { startMonitor } = await import('../monitor/monitor.js');
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
      await this.#declaring;
      await Promise.all([...this.#monitors].map((monitor) => monitor.close()));
      const held = await this.#scheduler.stop();
      // Handlers have stopped: now free every key at once by closing the session (invariant 5).
      if (wasRunning) await this.#keeper.close();
      await this.#sampling;
      for (const { unit, lease } of held) {
        this.#emit('owner:released', { task: unit.task, unit: unit.name, token: lease.token, reason: 'shutdown' });
      }
    } finally {
      if (this.#ownsStore) await this.store.close();
      this.#state = 'closed';
    }
  }

  /** Measures the offset to the store's clock again when it is due; a failure is reported, never thrown. */
  #sampleStoreTime(): void {
    if (this.#sampling || !this.#storeClock.sampleDue || this.#state !== 'running') return;
    this.#sampling = this.#storeClock
      .sample()
      .then(() => this.#publishClockBound())
      .catch((error: unknown) => this.#emit('error', { where: 'store time', error: toError(error) }))
      .finally(() => (this.#sampling = undefined));
  }

  /** Publishes a change of {@link StoreClock.bounded}: other nodes' placement reads it (versions.ts). */
  async #publishClockBound(): Promise<void> {
    const unbounded = !this.#storeClock.bounded;
    if (unbounded === (this.#info.clockUnbounded === true) || this.#state !== 'running') return;
    if (unbounded) this.#log.warn({ offsetMs: this.#storeClock.offsetMs }, 'the offset to the store clock cannot be bounded: this node steps aside from its tasks');
    else this.#log.info({ offsetMs: this.#storeClock.offsetMs }, 'the offset to the store clock is bounded again: this node competes for its tasks');
    await this.#publishInfo();
  }

  #assertRunning(what: string): void {
    if (this.#state !== 'running') throw new BatonError('INVALID_STATE', `cluster "${this.name}": ${what} needs a running cluster (state: ${this.#state})`);
  }

  #assertOpen(what: string, task: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new BatonError('INVALID_STATE', `cluster "${this.name}": ${what}("${task}") after close() (state: ${this.#state})`);
    }
  }

  #nodeInfo(): NodeInfo {
    return this.#identity(this.#scheduler.declarations());
  }

  #identity(tasks: NodeInfo['tasks']): NodeInfo {
    return {
      id: this.#nodeId,
      host: hostname(),
      pid: process.pid,
      version: BATON_VERSION,
      labels: this.#labels,
      startedAt: this.#startedAt,
      process: currentProcessIdentity(),
      tasks,
      ...(this.#storeClock.bounded ? {} : { clockUnbounded: true as const }),
    };
  }
}

/**
 * Creates a cluster node: validates every option and opens the store. Nothing runs until `start()`.
 * @throws ConfigError, DurationError, StoreUrlError, StoreUnavailableError — each naming the field.
 */
export async function createCluster(options: ClusterOptions): Promise<Cluster> {
  // Every option is checked before anything is opened, so a bad one leaves nothing half-open.
  const name = validateClusterOptions(options);
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
    if (ownsStore) logger.debug({ store: redactUrl(options.store as string) }, 'store opened');
  }
}
