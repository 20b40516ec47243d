/**
 * The task lifecycle of one node: the tasks it declares, a runner per unit (modes.ts), the dispatch
 * consumers, the coordinator that places units, the watcher of triggers and pauses — and the operations
 * on tasks any node may call (trigger, pause, resume, dead letters).
 *
 * The node facade (node/node.ts) owns the session and hands it in; the scheduler never opens or closes
 * a session itself. Order of shutdown (see {@link stop}): placement stops first, then consumers and
 * runners; the leases still held come back to the caller, who frees them all at once by closing the
 * session (invariant 5).
 */
import { hostname } from 'node:os';
import type { Clock } from '../core/clock.js';
import { BatonError, ClosedError, ConfigError, TaskDuplicateError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo, TaskDeclaration } from '../core/node-info.js';
import type { Lease } from '../cluster/lease.js';
import type { SessionKeeper } from '../cluster/session-keeper.js';
import type { Store } from '../stores/contract.js';
import { ControlWatch } from './control-watch.js';
import { sendControl, type ControlAction } from './controls.js';
import { Coordinator, type CoordinatorTiming } from './coordinator.js';
import type { Emit } from './events.js';
import { assertTaskName } from './keys.js';
import type { TaskName } from './names.js';
import { unitsOf, type TaskUnit } from './modes.js';
import { listDeadLetters, QueueConsumer, requeueDeadLetter, type DeadLetter } from './queue.js';
import { TaskRunner, type RunnerDeps } from './task-runner.js';
import { validateTaskSet } from './task-set.js';
import {
  defineTask,
  publishDeclarations,
  type DispatchHandlers,
  type TaskDefinition,
  type TaskHandler,
  type TaskOptions,
} from './task.js';

export interface SchedulerDeps {
  readonly store: Store;
  readonly keeper: SessionKeeper;
  readonly clock: Clock;
  readonly emit: Emit;
  readonly log: Logger;
  readonly nodeId: string;
  readonly timing: CoordinatorTiming;
  /** This node as the store shows it (its runners name it in run records). */
  readonly node: () => NodeInfo;
  /** Publishes this node's task list on its live session (after addTask / removeTask). */
  readonly publishInfo: () => Promise<void>;
  /** Names the node in error messages (`cluster "shop"`). */
  readonly label: string;
  /** See {@link RunnerDeps.clockForwardSince}. */
  readonly clockForwardSince?: (since: number) => number;
}

type SchedulerState = 'declaring' | 'running' | 'stopped';

/** A unit still held when the scheduler stopped: its lease ended locally, its key freed with the session. */
export interface HeldUnit {
  readonly unit: TaskUnit;
  readonly lease: Lease;
}

export class Scheduler {
  readonly #deps: SchedulerDeps;
  readonly #definitions = new Map<string, TaskDefinition>();
  /** What declarations() returned, until the definitions change. */
  #declared: Record<string, TaskDeclaration> | undefined;
  /** By unit name (modes.ts): a task's name, or `task#i`, `task@node`. */
  readonly #runners = new Map<string, TaskRunner>();
  readonly #consumers: QueueConsumer[] = [];
  /** Watches triggers and pauses for every runner of this node (one store watch and poll, not one per task). */
  readonly #controlWatch: ControlWatch;
  /** Concurrency slot keys held by this node's runs (see slots.ts). */
  readonly #localSlots = new Set<string>();
  /** Tasks being removed (removeTask): their runners stop outside #runners. */
  readonly #removals = new Set<Promise<void>>();
  #coordinator: Coordinator | undefined;
  #sharedRunnerDeps: RunnerDeps | undefined;
  #state: SchedulerState = 'declaring';

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
    this.#controlWatch = new ControlWatch({
      store: deps.store,
      clock: deps.clock,
      onError: (error) => deps.emit('error', { where: 'controls (triggers, pauses)', error }),
    });
  }

  /** The names of the tasks this node declares. */
  taskNames(): string[] {
    return [...this.#definitions.keys()];
  }

  /** The lease this node holds for a unit, if any. */
  leaseOf(unit: string): Lease | undefined {
    return this.#runners.get(unit)?.lease;
  }

  /** What this node publishes of each of its tasks in its session (placement and status read it). */
  declarations(): Record<string, TaskDeclaration> {
    // The same object while the tasks stay the same: its fingerprint is computed once (task-sets.ts).
    if (this.#declared) return this.#declared;
    const tasks: Record<string, TaskDeclaration> = {};
    for (const d of this.#definitions.values()) {
      tasks[d.name] = {
        schedule: d.schedule.description,
        mode: d.mode.kind,
        fingerprint: d.fingerprint,
        ...(d.mode.kind === 'sharded' ? { shards: d.mode.count } : {}),
      };
    }
    this.#declared = tasks;
    return tasks;
  }

  /** Declares a task before start(). @throws like defineTask; TaskDuplicateError. */
  declare(name: string, options: TaskOptions, handler: TaskHandler<never> | DispatchHandlers<never, never>): void {
    const definition = defineTask(name, options, handler);
    if (this.#definitions.has(definition.name)) {
      throw new TaskDuplicateError(`${this.#deps.label}: task "${definition.name}" is declared twice`);
    }
    this.#definitions.set(definition.name, definition);
    this.#declared = undefined;
  }

  /** Checks the declared set (dependencies name declared tasks, no cycles). */
  validate(): void {
    validateTaskSet(this.#definitions);
  }

  /** Writes the declarations to the store (`decl/`, task-sets.ts says who and when), until `signal` aborts. */
  publishDeclarations(signal?: AbortSignal): Promise<void> {
    return publishDeclarations(this.#deps.store, this.#definitions.values(), this.#deps.nodeId, this.#deps.clock.now(), signal);
  }

  /** Starts competing for the declared tasks on the keeper's session (opened by the caller). */
  start(): void {
    if (this.#state !== 'declaring') return;
    const { store, clock, emit, log, keeper, timing, nodeId } = this.#deps;
    for (const definition of this.#definitions.values()) {
      this.#createRunners(definition);
      if (definition.mode.kind === 'dispatch' && definition.consume) {
        this.#consumers.push(
          new QueueConsumer({
            task: definition.name,
            queue: definition.mode.queue,
            consume: definition.consume,
            store,
            clock,
            node: this.#deps.node(),
            emit,
            log,
            mayConsume: () => this.#coordinator?.mayRun(definition.name) ?? false,
          }),
        );
      }
    }
    this.#coordinator = new Coordinator({ store, keeper, runners: this.#runners, clock, emit, timing, nodeId });
    this.#state = 'running';
    this.#controlWatch.start();
    this.#coordinator.start();
    for (const consumer of this.#consumers) consumer.start();
  }

  /**
   * What every runner of this node shares: one object, not one per runner (a node declares every task of
   * the cluster but owns about T/N of them). `node` is read when a runner needs it, so runners see the
   * node's current info.
   */
  #runnerDeps(): RunnerDeps {
    const deps = this.#deps;
    const coordinator = () => this.#coordinator;
    this.#sharedRunnerDeps ??= {
      store: deps.store,
      clock: deps.clock,
      get node() {
        return deps.node();
      },
      emit: deps.emit,
      log: deps.log,
      onLeaseEnded: (unit, token, released) => coordinator()?.leaseEnded(unit, token, released),
      localSlots: this.#localSlots,
      controls: this.#controlWatch,
      ...(deps.clockForwardSince ? { clockForwardSince: deps.clockForwardSince } : {}),
    };
    return this.#sharedRunnerDeps;
  }

  /** Creates the runners of a task's units and adds them to `#runners`. */
  #createRunners(definition: TaskDefinition): TaskRunner[] {
    const created: TaskRunner[] = [];
    for (const unit of unitsOf(definition.name, definition.mode, this.#deps.nodeId)) {
      const runner = new TaskRunner(definition, unit, this.#runnerDeps());
      this.#runners.set(unit.name, runner);
      created.push(runner);
    }
    return created;
  }

  /**
   * Declares a task on a running node: publishes its declaration and this node's new task list, and
   * starts competing for it. Other tasks are untouched. Not for `dispatch` tasks.
   */
  async addTask(name: string, options: TaskOptions, handler: TaskHandler<never>): Promise<void> {
    const definition = defineTask(name, options, handler);
    if (definition.mode.kind === 'dispatch') throw new ConfigError(`task "${definition.name}": a dispatch task is declared before start(), with task()`);
    if (this.#definitions.has(definition.name)) throw new TaskDuplicateError(`${this.#deps.label}: task "${definition.name}" is declared twice`);
    validateTaskSet(new Map([...this.#definitions, [definition.name, definition]]));
    // The declaration first: a node reading this node's task list must find the declaration it names.
    await publishDeclarations(this.#deps.store, [definition], this.#deps.nodeId, this.#deps.clock.now());
    if (this.#state !== 'running') throw new ClosedError(`${this.#deps.label}: closed while adding task "${definition.name}"`);
    this.#definitions.set(definition.name, definition);
    this.#declared = undefined;
    const runners = this.#createRunners(definition);
    await this.#deps.publishInfo();
    for (const runner of runners) this.#coordinator?.unitAdded(runner);
  }

  /**
   * Removes a task from a running node: aborts its runs here, waits for them, releases its units so
   * another node takes it at once. @returns false when this node does not declare the task.
   */
  async removeTask(name: string): Promise<boolean> {
    const definition = this.#definitions.get(name);
    if (!definition) return false;
    for (const other of this.#definitions.values()) {
      if (other.name !== name && other.policy.dependsOn.includes(definition.name)) {
        throw new ConfigError(`task "${name}": cannot be removed while task "${other.name}" depends on it`);
      }
    }
    this.#definitions.delete(name);
    this.#declared = undefined;
    const runners = [...this.#runners.values()].filter((runner) => runner.unit.task === name);
    for (const runner of runners) {
      // Out of the map first: the next placement scan no longer competes for it.
      this.#runners.delete(runner.unit.name);
      this.#coordinator?.unitRemoved(runner.unit.name);
    }
    await this.#deps.publishInfo();
    const stopping = Promise.all(runners.map((runner) => this.#removeRunner(runner))).then(() => undefined);
    // stop() waits for it too: these runners are no longer in #runners, yet must not outlive it.
    this.#removals.add(stopping);
    try {
      await stopping;
    } finally {
      this.#removals.delete(stopping);
    }
    return true;
  }

  async #removeRunner(runner: TaskRunner): Promise<void> {
    const reason = () => new ClosedError(`task "${runner.unit.name}": removed from this node`);
    const lease = await runner.stop(reason());
    if (!lease) return;
    try {
      await lease.release(reason());
      this.#deps.emit('owner:released', { task: runner.unit.task, unit: runner.unit.name, token: lease.token, reason: 'removed' });
    } catch (error) {
      // The key then frees with the session's TTL: slower, still safe.
      this.#deps.emit('error', { where: `task "${runner.unit.name}": release after removal`, error: toError(error) });
    }
  }

  /** Asks the task's owner, wherever it runs, to run it once now (see Cluster.trigger). @returns the trigger's id. */
  async trigger(task: string): Promise<string> {
    const id = (await this.#control('trigger', task)) as string;
    this.#deps.emit('task:triggered', { task: task as TaskName, id });
    return id;
  }

  /** Pauses the task cluster-wide. */
  async pause(task: string): Promise<void> {
    await this.#control('pause', task);
    this.#deps.emit('task:paused', { task: task as TaskName });
  }

  /** Resumes a paused task cluster-wide. */
  async resume(task: string): Promise<void> {
    await this.#control('resume', task);
    this.#deps.emit('task:resumed', { task: task as TaskName });
  }

  /** A control of a task this node declares, or one some node declared. @throws ConfigError for an unknown task. */
  async #control(action: ControlAction, task: string): Promise<string | undefined> {
    if (this.#state === 'stopped') throw new BatonError('INVALID_STATE', `${this.#deps.label}: ${action}("${task}") after close()`);
    assertTaskName(task);
    const mode = this.#definitions.get(task)?.mode;
    const declared = mode ? { mode: mode.kind, shards: mode.kind === 'sharded' ? mode.count : undefined } : undefined;
    const actor = { by: 'node', address: `${hostname()}:${process.pid}` };
    return sendControl(this.#deps.store, action, task, { node: this.#deps.nodeId, now: this.#deps.clock.now(), actor, ...(declared ? { declared } : {}) });
  }

  /** Items of a `dispatch` task that failed `queue.maxAttempts` deliveries, oldest first. */
  deadLetters<P = unknown>(task: string): Promise<DeadLetter<P>[]> {
    assertTaskName(task);
    return listDeadLetters<P>(this.#deps.store, task);
  }

  /** Puts a dead letter back into its queue with a fresh attempt count. False when absent. */
  requeueDeadLetter(task: string, id: string): Promise<boolean> {
    assertTaskName(task);
    return requeueDeadLetter(this.#deps.store, task, id);
  }

  /**
   * Stops placement, consumers and runners (aborting running handlers and waiting for them). Returns
   * the leases still held, ended locally but NOT released: the caller closes the session, which frees
   * every key of the node in one store operation and one notification.
   */
  async stop(): Promise<HeldUnit[]> {
    this.#state = 'stopped';
    try {
      await this.#coordinator?.close();
      await Promise.all(this.#consumers.map((consumer) => consumer.stop()));
      await Promise.all(this.#removals);
      const held = await Promise.all([...this.#runners.values()].map(async (runner) => ({ unit: runner.unit, lease: await runner.stop() })));
      return held.filter((h): h is HeldUnit => h.lease !== undefined);
    } finally {
      this.#controlWatch.close();
    }
  }
}
