/**
 * The agent: one cluster node per host whose tasks are shell commands from a config file. Each config
 * task becomes a `cluster.task` whose handler runs the command (command.ts) — so every scheduler promise
 * holds for commands too: once per tick across the fleet, misfire/overlap policies, timeouts and retries,
 * run history, and fenced ownership (the command gets the run's fencing token as BATON_FENCING_TOKEN).
 *
 * Lifecycle: {@link startAgent} → {@link Agent.reload} any number of times → {@link Agent.close}, which is
 * the graceful hand-over (running commands get SIGTERM, then SIGKILL after their grace; every task is
 * released at once so another agent takes over without waiting for a TTL).
 *
 * A command's environment: the agent's (minus the variables the config's secret fields reference), the
 * task's `env`, and BATON_TASK, BATON_UNIT, BATON_TICK (ISO 8601), BATON_ATTEMPT, BATON_NODE,
 * BATON_FENCING_TOKEN (the run's fencing token), BATON_TRIGGER (`1` for `baton run`), and for a sharded
 * task BATON_SHARD and BATON_SHARDS (docs/operations.md).
 *
 * Guarantees: a command's process group ends with its run (command.ts, watchdog.ts): SIGTERM then SIGKILL
 * after `killGrace` on timeout and shutdown; SIGKILL at once when the lease is lost, when the agent dies
 * (even by SIGKILL) and when the agent stays silent past its lease deadline — so it cannot overlap the
 * next owner's run. Non-guarantees: processes that leave the group; a SIGKILLed watchdog.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { BatonError, ClosedError, ConfigError, TimeoutError, toError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { createCluster, type Cluster } from '../node/node.js';
import { resolveSessionTiming } from '../cluster/session-timing.js';
import type { Monitor } from '../monitor/monitor.js';
import type { TaskContext } from '../scheduler/task.js';
import { redactUrl } from '../core/redact.js';
import { CommandFailedError, describeExit, runCommand } from './command.js';
import type { AgentConfig, AgentTask } from './config.js';
import { diffConfig, removalOrder, type TaskDiff } from './reload.js';

export interface AgentOptions {
  readonly logger: Logger;
  /** Default: the system clock. */
  readonly clock?: Clock;
}

type AgentState = 'running' | 'closing' | 'closed';

export class Agent {
  readonly cluster: Cluster;
  readonly #clock: Clock;
  #config: AgentConfig;
  /** The session's self-fencing deadline (TTL − safety margin): a watchdog not pinged for that long kills. */
  readonly #silenceMs: number;
  /** The tasks running now, by name; what a run's handler reads its command from. */
  readonly #tasks: Map<string, AgentTask>;
  #monitor: Monitor | undefined;
  #state: AgentState = 'running';
  /** Reloads run one at a time (a second SIGHUP during one waits for it). */
  #reloading: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;

  /** @internal use {@link startAgent}. */
  constructor(cluster: Cluster, config: AgentConfig, options: AgentOptions) {
    this.cluster = cluster;
    this.#config = config;
    this.#tasks = new Map(config.tasks);
    const timing = resolveSessionTiming(config.ttl !== undefined ? { ttl: config.ttl } : {});
    this.#silenceMs = timing.ttlMs - timing.safetyMarginMs;
    this.#clock = options.clock ?? systemClock;
  }

  get config(): AgentConfig {
    return this.#config;
  }

  get monitor(): Monitor | undefined {
    return this.#monitor;
  }

  /** @internal */
  async startMonitor(): Promise<void> {
    const { monitor, alerts } = this.#config;
    if (!monitor && !alerts) return;
    this.#monitor = await this.cluster.monitor({
      listen: monitor ? monitor.listen : false,
      ...(monitor?.token !== undefined ? { token: monitor.token } : {}),
      alerts: alerts?.webhook ? { webhook: alerts.webhook } : {},
    });
  }

  /** The handler of a config task: looks the task up at each run, so an `updated` command applies at once. */
  handler(name: string): (ctx: TaskContext) => Promise<void> {
    return async (ctx) => {
      const task = this.#tasks.get(name);
      if (!task) throw new ConfigError(`agent: task "${name}" is no longer in the config`);
      await this.#run(task, ctx);
    };
  }

  async #run(task: AgentTask, ctx: TaskContext): Promise<void> {
    const inherited: Record<string, string | undefined> = { ...process.env };
    // The store URL's password and the monitor's token stay with the agent.
    for (const name of this.#config.secretEnv) delete inherited[name];
    const env: Record<string, string | undefined> = {
      ...inherited,
      ...task.env,
      BATON_TASK: ctx.task,
      BATON_UNIT: ctx.unit,
      BATON_TICK: ctx.tick.toISOString(),
      BATON_ATTEMPT: String(ctx.attempt),
      BATON_NODE: ctx.node.id,
      BATON_FENCING_TOKEN: ctx.token.toString(),
      BATON_TRIGGER: ctx.trigger ? '1' : '0',
      ...(ctx.shard ? { BATON_SHARD: String(ctx.shard.index), BATON_SHARDS: String(ctx.shard.count) } : {}),
    };
    const result = await runCommand({
      command: task.command,
      env,
      cwd: task.cwd,
      killGraceMs: task.killGraceMs,
      title: `${this.cluster.name}/${ctx.unit}`,
      signal: ctx.signal,
      // Timeout and shutdown keep the lease until the command ended: it gets its grace. Any other reason
      // means the lease is lost, and another node may start the task about a safety margin later.
      killAtOnce: (reason) => !(reason instanceof TimeoutError || reason instanceof ClosedError),
      silenceMs: this.#silenceMs,
      clock: this.#clock,
      // `commandPid`, not `pid`: every log line already carries the agent's own pid.
      onSpawn: (pid) => ctx.log.info({ commandPid: pid }, 'command started'),
    });
    ctx.recordOutput({
      exitCode: result.exitCode,
      signal: result.signal,
      ...(result.pid !== undefined ? { pid: result.pid } : {}),
      stdout: result.stdout.text(),
      stderr: result.stderr.text(),
      stdoutBytes: result.stdout.totalBytes,
      stderrBytes: result.stderr.totalBytes,
    });
    ctx.log.info({ commandPid: result.pid, exitCode: result.exitCode, signal: result.signal, durationMs: result.durationMs }, 'command finished');
    // Stopped by us (timeout, lease lost, shutdown): the signal's reason says why, and decides the outcome.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (result.exitCode !== 0) {
      const lastLine = result.stderr.text().trimEnd().split('\n').pop();
      throw new CommandFailedError(`task "${task.name}": command ${describeExit(result)}${lastLine ? `; stderr: ${lastLine.slice(0, 500)}` : ''}`, result);
    }
  }

  /**
   * Applies a new config: unchanged tasks keep their runners and leases, updated ones swap their command
   * in place, removed ones are released, added and redeclared ones are declared (see reload.ts). Settings
   * that need a restart are reported and keep their running values.
   * @throws BatonError INVALID_STATE once closing; a cluster error for a task (the reload stops there,
   *   what was applied stays applied, and the agent's config reflects it).
   */
  reload(next: AgentConfig): Promise<TaskDiff> {
    const run = this.#reloading.then(() => this.#reload(next));
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  async #reload(next: AgentConfig): Promise<TaskDiff> {
    if (this.#state !== 'running') throw new BatonError('INVALID_STATE', `agent: reload after close() (state: ${this.#state})`);
    const current = this.#config;
    const diff = diffConfig(current, next);
    try {
      // Swapped in place: the next run of each reads its command from #tasks.
      for (const name of diff.updated) this.#tasks.set(name, next.tasks.get(name) as AgentTask);
      for (const name of removalOrder([...diff.removed, ...diff.redeclared], current.tasks)) {
        await this.cluster.removeTask(name);
        this.#tasks.delete(name);
      }
      // Dependencies before their dependents: addTask checks that what a task depends on is declared.
      for (const name of removalOrder([...diff.added, ...diff.redeclared], next.tasks).reverse()) {
        const task = next.tasks.get(name) as AgentTask;
        // Before addTask: its first run may start before addTask returns.
        this.#tasks.set(name, task);
        try {
          await this.cluster.addTask(name, task.options, this.handler(name));
        } catch (error) {
          this.#tasks.delete(name);
          throw error;
        }
      }
    } finally {
      // What was applied, in the new file's order; top-level settings keep their running values (restart).
      const order = [...next.tasks.keys(), ...current.tasks.keys()].filter((name, i, all) => all.indexOf(name) === i && this.#tasks.has(name));
      this.#config = { ...current, tasks: new Map(order.map((name) => [name, this.#tasks.get(name) as AgentTask])) };
    }
    return diff;
  }

  /** Graceful stop: commands get SIGTERM (SIGKILL after their grace), every task is released at once. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    await this.#reloading;
    try {
      await this.cluster.close();
    } finally {
      this.#state = 'closed';
    }
  }
}

/**
 * Joins the cluster of `config.store` with every task of the config, and starts the monitor when the
 * config has one. @throws ConfigError, StoreUrlError, StoreUnavailableError — nothing is left running.
 */
export async function startAgent(config: AgentConfig, options: AgentOptions): Promise<Agent> {
  const cluster = await createCluster({
    store: config.store,
    name: config.cluster,
    node: { ...(config.node.id !== undefined ? { id: config.node.id } : {}), labels: config.node.labels },
    ...(config.ttl !== undefined ? { ttl: config.ttl } : {}),
    logger: options.logger,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const agent = new Agent(cluster, config, options);
  try {
    for (const [name, task] of config.tasks) cluster.task(name, task.options, agent.handler(name));
    await cluster.start();
    await agent.startMonitor();
  } catch (error) {
    await cluster.close().catch((closeError: unknown) => options.logger.error({ err: toError(closeError) }, 'agent: closing after a failed start failed too'));
    throw error;
  }
  options.logger.info({ cluster: config.cluster, store: redactUrl(config.store), node: cluster.node.id, tasks: [...config.tasks.keys()] }, 'agent started');
  return agent;
}
